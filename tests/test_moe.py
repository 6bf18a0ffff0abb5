"""The sparse mixture of experts: same function as the dense reference, the capacity
rule as documented, causal, deterministic, and the load-balancing term."""

import pytest
import torch

from deepobs.errors import ConfigurationError
from deepobs.models.moe import MixtureOfExperts, expert_capacity
from deepobs.models.resnet_bk import ResNetBKConfig, resnet_bk

D, HIDDEN = 8, 12


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pair(num_experts=4, top_k=1, capacity=None, dropout=0.0, dtype=torch.float64, seed=0):
    """A sparse MoE and a dense one with the same weights."""
    layers = []
    for dispatch in ("sparse", "dense"):
        torch.manual_seed(seed)
        layers.append(MixtureOfExperts(D, HIDDEN, num_experts, top_k, dropout, capacity, capacity,
                                       dispatch).to(dtype))
    return layers


def outputs_and_gradients(layer, x, upstream):
    x = x.clone().requires_grad_()
    layer.zero_grad(set_to_none=True)
    out = layer(x)
    (out * upstream).sum().backward()
    return out.detach(), x.grad, {name: p.grad for name, p in layer.named_parameters()}


def naive_kept(experts, batch, length, capacity, num_experts):
    """The capacity rule written out: positions in order, then sequences, then choices."""
    used = [0] * num_experts
    kept = torch.zeros_like(experts, dtype=torch.bool)
    for n in range(length):
        for b in range(batch):
            for rank, expert in enumerate(experts[b * length + n].tolist()):
                if used[expert] < capacity:
                    used[expert] += 1
                    kept[b * length + n, rank] = True
    return kept


def test_capacity_formula():
    assert expert_capacity(2500, 4, 1, 1.25) == 782      # ⌈781.25⌉
    assert expert_capacity(2500, 8, 1, 1.25) == 391
    assert expert_capacity(2500, 4, 2, 2.0) == 2500       # never more than T
    assert expert_capacity(100, 10, 1, 1.1) == 11         # 11.000000000000002 is 11
    assert expert_capacity(7, 4, 1, None) == 7
    assert expert_capacity(3, 8, 1, 0.1) == 1


def test_bad_moe_options_are_rejected():
    with pytest.raises(ConfigurationError, match="capacity_factor must be a number > 0 or None"):
        ResNetBKConfig(capacity_factor=0)
    with pytest.raises(ConfigurationError, match="eval_capacity_factor must be a number > 0 or None \\(no capacity limit\\), got 'x'"):
        ResNetBKConfig(eval_capacity_factor="x")
    with pytest.raises(ConfigurationError, match="moe_dispatch must be one of sparse, dense, got 'all'"):
        ResNetBKConfig(moe_dispatch="all")


@pytest.mark.parametrize("top_k,capacity", [(1, None), (2, None), (1, 4.0), (2, 2.0)])
def test_sparse_equals_dense_in_float64_when_nothing_overflows(top_k, capacity):
    sparse, dense = pair(top_k=top_k, capacity=capacity)
    x = torch.randn(3, 10, D, dtype=torch.float64)
    upstream = torch.randn(3, 10, D, dtype=torch.float64)
    out_s, dx_s, grads_s = outputs_and_gradients(sparse, x, upstream)
    out_d, dx_d, grads_d = outputs_and_gradients(dense, x, upstream)
    assert sparse.dropped_fraction.item() == 0.0
    torch.testing.assert_close(out_s, out_d, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(dx_s, dx_d, rtol=1e-12, atol=1e-13)
    for name in grads_d:
        torch.testing.assert_close(grads_s[name], grads_d[name], rtol=1e-12, atol=1e-13, msg=name)
    assert grads_s["gate.weight"].abs().max() > 0  # the gate trains through its weights
    # Every token was computed: its output is the weighted sum of its experts' outputs.
    assert (out_s.abs().sum(-1) > 0).all()


@pytest.mark.parametrize("top_k", [1, 2])
def test_overflow_drops_exactly_the_documented_routings(top_k):
    batch, length, experts = 3, 10, 4
    sparse, dense = pair(num_experts=experts, top_k=top_k, capacity=0.5)
    with torch.no_grad():  # an unbalanced gate, so that experts overflow
        sparse.gate.bias.copy_(torch.tensor([2.0, 1.0, 0.0, 0.0]))
        dense.gate.bias.copy_(sparse.gate.bias)
    x = torch.randn(batch, length, D, dtype=torch.float64)
    routing = sparse.route(x.reshape(-1, D), batch, length)
    capacity = expert_capacity(batch * length, experts, top_k, 0.5)
    assert routing.capacity == capacity
    assert torch.equal(routing.kept, naive_kept(routing.experts, batch, length, capacity, experts))
    assert 0 < (~routing.kept).sum() < routing.kept.numel()
    # Dense honours the same rule: the two paths still compute one function.
    upstream = torch.randn(batch, length, D, dtype=torch.float64)
    out_s, dx_s, grads_s = outputs_and_gradients(sparse, x, upstream)
    out_d, dx_d, grads_d = outputs_and_gradients(dense, x, upstream)
    torch.testing.assert_close(out_s, out_d, rtol=1e-12, atol=1e-13)
    for name in grads_d:
        torch.testing.assert_close(grads_s[name], grads_d[name], rtol=1e-12, atol=1e-13, msg=name)
    dropped = (~routing.kept).sum().item() / routing.kept.numel()
    assert sparse.dropped_fraction.item() == pytest.approx(dropped)
    # A token dropped from all its experts gets 0: only the residual carries it.
    all_dropped = ~routing.kept.any(1)
    assert all_dropped.any()
    assert torch.equal(out_s.reshape(-1, D)[all_dropped], torch.zeros(int(all_dropped.sum()), D,
                                                                    dtype=torch.float64))


def test_capacity_rule_is_causal_bit_for_bit():
    """With experts overflowing, later positions still cannot change earlier outputs."""
    sparse, _ = pair(capacity=0.6, dtype=torch.float32)
    sparse.eval()
    x = torch.randn(4, 20, D)
    with torch.no_grad():
        before = sparse(x)
        assert sparse.dropped_fraction.item() > 0
        for position in (0, 3, 6):  # (the last positions are all dropped: 0 either way)
            changed = x.clone()
            changed[:, position + 1:] = torch.randn(4, 19 - position, D)
            after = sparse(changed)
            assert torch.equal(before[:, : position + 1], after[:, : position + 1])
            assert not torch.equal(before[:, position + 1:], after[:, position + 1:])


def test_the_model_stays_causal_when_experts_overflow():
    torch.manual_seed(0)
    model = resnet_bk(eval_capacity_factor=0.5).eval()
    tokens = torch.randint(0, 83, (4, 50))
    changed = tokens.clone()
    changed[:, 21] = (changed[:, 21] + 1) % 83
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    assert all(block.layer.moe.dropped_fraction.item() > 0 for block in model.blocks)
    assert torch.equal(before[:, :21], after[:, :21])
    assert not torch.equal(before[:, 21], after[:, 21])


def test_sparse_and_dense_models_compute_the_same_logits():
    models = []
    for dispatch in ("sparse", "dense"):
        torch.manual_seed(3)
        models.append(resnet_bk(moe_dispatch=dispatch, top_k=2).double().eval())
    tokens = torch.randint(0, 83, (2, 50))
    with torch.no_grad():
        torch.testing.assert_close(models[0](tokens), models[1](tokens), rtol=1e-12, atol=1e-12)


def test_same_seed_same_numbers_with_dropout():
    results = []
    for _ in range(2):
        torch.manual_seed(5)
        layer = MixtureOfExperts(D, HIDDEN, 4, 2, 0.5, 1.0, 2.0, "sparse")
        x = torch.randn(3, 10, D, requires_grad=True)
        out = layer(x)
        out.square().sum().backward()
        results.append((out.detach(), x.grad, layer.w_in.grad, layer.gate.weight.grad))
    for first, second in zip(*results):
        assert torch.equal(first, second)


def test_balance_loss_is_one_when_uniform_and_num_experts_when_collapsed():
    layer = MixtureOfExperts(D, HIDDEN, 4, 1, 0.0)
    x = torch.randn(2, 8, D)
    with torch.no_grad():
        layer.gate.weight.zero_()
        layer.gate.bias.zero_()
    layer(x)  # equal probabilities: the tie goes to one expert everywhere, P = 1/4
    assert layer.balance_loss.item() == pytest.approx(1.0)
    assert sorted(layer.expert_fraction.tolist()) == [0.0, 0.0, 0.0, 1.0]
    with torch.no_grad():
        layer.gate.bias.copy_(torch.tensor([30.0, 0.0, 0.0, 0.0]))
    layer(x)  # all routed to 0 with probability ~1
    assert layer.balance_loss.item() == pytest.approx(4.0)
    # Two experts share the tokens evenly, two idle: E·(½·½ + ½·½) = 2.
    with torch.no_grad():
        layer.gate.weight.zero_()
        layer.gate.weight[:, 0] = torch.tensor([30.0, -30.0, 0.0, 0.0]) * 10
        layer.gate.bias.copy_(torch.tensor([0.0, 0.0, -1e3, -1e3]))
    signs = torch.where(torch.arange(16) % 2 == 0, 1.0, -1.0)
    x = torch.zeros(2, 8, D)
    x[..., 0] = signs.view(2, 8)
    layer(x)
    assert layer.expert_fraction.tolist() == [0.5, 0.5, 0.0, 0.0]
    assert layer.balance_loss.item() == pytest.approx(2.0)
