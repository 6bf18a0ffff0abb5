"""The causal transformer and tolstoi_transformer: size, initialisation, causality, learning."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import deepobs
from deepobs.errors import ConfigurationError
from deepobs.models.transformer import Transformer, TransformerConfig, transformer

VOCAB = 83
LN_VOCAB = math.log(VOCAB)


@pytest.fixture(autouse=True)
def single_thread():
    """Small tensors: one thread is faster, and much faster on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def count(model):
    return sum(p.numel() for p in model.parameters())


def expected_parameters(vocab, seq, d, layers, mlp_ratio=4):
    hidden = mlp_ratio * d
    block = (2 * d                       # LayerNorm before attention
             + d * 3 * d + 3 * d         # q, k, v projection
             + d * d + d                 # attention output projection
             + 2 * d                     # LayerNorm before the MLP
             + d * hidden + hidden       # MLP in
             + hidden * d + d)           # MLP out
    # token embedding (also the output layer: tied, no bias) + positions + blocks + final LayerNorm
    return vocab * d + seq * d + layers * block + 2 * d


def batch_of_text(batch=4, length=128, seed=0):
    """Random token windows and their next-token targets."""
    stream = torch.randint(0, VOCAB, (batch, length + 1), generator=torch.Generator().manual_seed(seed))
    return stream[:, :-1], stream[:, 1:]


def test_default_model_has_the_formula_size():
    model = Transformer()
    assert count(model) == expected_parameters(83, 128, 64, 3) == 163_584
    assert model.config == TransformerConfig()


def test_other_sizes_from_the_config():
    model = transformer(vocab_size=30, seq_length=20, d_model=48, n_layers=2, n_heads=3, mlp_ratio=2)
    assert count(model) == expected_parameters(30, 20, 48, 2, mlp_ratio=2)
    assert model(torch.randint(0, 30, (3, 12))).shape == (3, 12, 30)


def test_output_layer_is_the_token_embedding():
    model = transformer()
    tokens, _ = batch_of_text(2, 16)
    hidden = model.final_norm(_residual_stream(model, tokens))
    assert torch.equal(model(tokens), hidden @ model.token_embedding.weight.T)
    assert not any(isinstance(m, nn.Linear) and m.out_features == VOCAB for m in model.modules())


def _residual_stream(model, tokens):
    positions = torch.arange(tokens.shape[1])
    x = model.token_embedding(tokens) + model.position_embedding(positions)
    for block in model.blocks:
        x = block(x)
    return x


def test_bad_configurations_are_rejected():
    with pytest.raises(ConfigurationError, match="d_model=64 must be a multiple of n_heads=3"):
        TransformerConfig(n_heads=3)
    with pytest.raises(ConfigurationError, match="n_layers must be a positive integer, got 0"):
        TransformerConfig(n_layers=0)
    with pytest.raises(ConfigurationError, match="dropout must be in \\[0, 1\\), got 1.0"):
        TransformerConfig(dropout=1.0)
    with pytest.raises(ConfigurationError, match="sequence length 129 exceeds the model's seq_length=128"):
        Transformer()(torch.zeros(2, 129, dtype=torch.long))


def test_gpt2_initialisation():
    """N(0, 0.02²) weights and embeddings, residual projections N(0, (0.02/√(2·layers))²),
    zero biases, LayerNorms 1 and 0."""
    torch.manual_seed(0)
    model = transformer(d_model=128, n_layers=4, n_heads=4)
    residual_std = 0.02 / math.sqrt(2 * 4)
    for name, parameter in model.named_parameters():
        if name.endswith("proj.weight"):
            assert parameter.std().item() == pytest.approx(residual_std, rel=0.05), name
        elif name.endswith("weight") and parameter.dim() == 2:
            assert parameter.std().item() == pytest.approx(0.02, rel=0.05), name
            assert abs(parameter.mean().item()) < 0.002, name
        elif "norm" in name and name.endswith("weight"):
            assert torch.equal(parameter, torch.ones_like(parameter)), name
        else:
            assert name.endswith("bias") and not parameter.any(), name


def test_changing_a_token_changes_no_earlier_logit():
    torch.manual_seed(0)
    model = transformer().eval()
    tokens, _ = batch_of_text(4, 128)
    with torch.no_grad():
        before = model(tokens)
        for t in (0, 1, 63, 127):
            changed = tokens.clone()
            changed[:, t] = (changed[:, t] + 1) % VOCAB
            after = model(changed)
            assert torch.equal(before[:, :t], after[:, :t]), t  # bit for bit
            assert not torch.allclose(before[:, t:], after[:, t:]), t


def test_loss_at_initialisation_is_about_ln_vocabulary():
    """Logits at initialisation are LN(x)·wᵀ with w ~ N(0, 0.02²): standard deviation about
    0.02·√64 ≈ 0.16 (measured 0.175 with the token's own embedding), so the expected loss
    exceeds ln 83 by about σ²/2 ≈ 0.015 (measured 0.013–0.021 over 5 seeds); 0.05
    leaves room for the sampling noise of 1,024 targets and fails for any init whose
    logits spread much more (PyTorch's default N(0, 1) embedding gives > 5)."""
    for seed in range(3):
        torch.manual_seed(seed)
        tokens, targets = batch_of_text(8, 128, seed=100 + seed)
        loss = F.cross_entropy(transformer()(tokens).transpose(1, 2), targets)
        assert abs(loss.item() - LN_VOCAB) < 0.05, (seed, loss.item())


def test_one_adam_step_reduces_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = transformer()
    tokens, targets = batch_of_text(4, 128)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(2):
        loss = F.cross_entropy(model(tokens).transpose(1, 2), targets)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[1] < losses[0] - 0.01


def test_same_seed_same_model_and_numbers():
    tokens, _ = batch_of_text(2, 64)
    outputs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = transformer(dropout=0.1)
        outputs.append((model.state_dict(), model(tokens)))  # training mode: dropout draws too
    (state_a, logits_a), (state_b, logits_b) = outputs
    assert all(torch.equal(state_a[key], state_b[key]) for key in state_a)
    assert torch.equal(logits_a, logits_b)


# ------------------------------------------------------------------ problem
def test_problem_is_registered_with_its_defaults():
    assert "tolstoi_transformer" in deepobs.list_problems("tolstoi_*")
    description = deepobs.get_problem("tolstoi_transformer", device="cpu").describe()
    assert description["parameters"] == expected_parameters(83, 128, 64, 3)
    assert (description["batch_size"], description["num_epochs"]) == (16, 10)
    assert description["weight_decay"] == 0.0


def test_problem_steps_and_reports_perplexity_on_fake_data():
    torch.manual_seed(0)
    problem = deepobs.get_problem("tolstoi_transformer", 4, device="cpu", fake_data=20).set_up()
    problem.train_init_op()
    inputs, targets = next(iter(problem.data.batches("train")))
    assert inputs.shape == targets.shape == (4, 128)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])  # targets are the next characters
    loss, accuracy = problem.get_batch_loss_and_accuracy()
    assert loss.shape == () and 0.0 <= accuracy.item() <= 1.0
    assert abs(loss.item() - LN_VOCAB) < 0.1
    per_sequence, _ = problem.get_batch_loss_and_accuracy(reduction="none")
    assert per_sequence.shape == (4,)
    test_loss, test_accuracy = problem.evaluate("test")
    assert problem.extra_metrics("test", test_loss, test_accuracy) == {
        "perplexities": pytest.approx(math.exp(test_loss))}


def test_problem_weight_decay_covers_the_weight_matrices_once():
    problem = deepobs.get_problem("tolstoi_transformer", 4, 1e-3, device="cpu", fake_data=20).set_up()
    (factor, weights), = problem.get_regularization_groups().items()
    assert factor == 1e-3
    # token (= output layer) and position embeddings, per block: qkv, attention out, MLP in, MLP out.
    assert len(weights) == 2 + 3 * 4 == len({id(w) for w in weights})
    expected = 0.5 * 1e-3 * sum(w.pow(2).sum() for w in weights)
    assert problem.get_regularization_loss().item() == pytest.approx(expected.item())


@pytest.mark.slow
@pytest.mark.realdata
def test_300_steps_on_war_and_peace_beat_the_uniform_loss_clearly(shared_data):
    if not (shared_data / "tolstoi" / "war-and-peace.txt").is_file():
        pytest.skip(f"{shared_data / 'tolstoi' / 'war-and-peace.txt'} is absent")
    torch.manual_seed(42)
    problem = deepobs.get_problem("tolstoi_transformer", data_dir=str(shared_data), device="cpu").set_up()
    optimizer = torch.optim.Adam(problem.net.parameters(), lr=1e-3)
    problem.train_init_op()
    for _ in range(300):
        optimizer.zero_grad()
        loss, _ = problem.get_batch_loss_and_accuracy()
        loss.backward()
        optimizer.step()
    test_loss, test_accuracy = problem.evaluate("test")
    assert test_loss < LN_VOCAB - 1.5  # measured: 2.41 (accuracy 0.30) with seed 42
    assert test_accuracy > 0.25
