"""The DeepOBS problems: published defaults and counts, L2 groups, losses, the stateful char-RNN."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import deepobs
from deepobs.models.vae import vae_loss
from deepobs.registry import get_problem_class
from deepobs.testproblems.bases import AuxiliaryHeadProblem

#: name: (parameters, batch size, epochs, weight decay, has accuracy) — docs/testproblems.md
#: §1.1 and §1.5; values we chose where DeepOBS publishes none are marked "ours".
PUBLISHED = {
    "mnist_logreg": (7_850, 128, 50, None, True),
    "mnist_mlp": (1_336_610, 128, 100, None, True),
    "mnist_2c2d": (3_274_634, 128, 100, None, True),
    "mnist_vae": (10_151_489, 64, 50, None, False),
    "fmnist_logreg": (7_850, 128, 50, None, True),
    "fmnist_mlp": (1_336_610, 128, 100, None, True),
    "fmnist_2c2d": (3_274_634, 128, 100, None, True),
    "fmnist_vae": (10_151_489, 64, 100, None, False),
    "cifar10_3c3d": (895_210, 128, 100, 0.002, True),
    "cifar10_vgg16": (134_301_514, 128, 100, 5e-4, True),  # bs/epochs ours
    "cifar10_vgg19": (139_611_210, 128, 100, 5e-4, True),  # bs/epochs ours
    "cifar10_resnet18": (11_173_962, 128, 100, 5e-4, True),
    "cifar100_3c3d": (918_340, 128, 100, 0.002, True),  # bs/epochs ours
    "cifar100_allcnnc": (1_387_108, 256, 350, 5e-4, True),
    "cifar100_vgg16": (134_670_244, 128, 100, 5e-4, True),  # bs/epochs ours
    "cifar100_vgg19": (139_979_940, 128, 100, 5e-4, True),  # bs/epochs ours
    "cifar100_wrn164": (2_772_020, 128, 160, 5e-4, True),
    "cifar100_wrn404": (8_972_340, 128, 160, 5e-4, True),
    "cifar100_resnet18": (11_220_132, 128, 100, 5e-4, True),
    "svhn_3c3d": (895_210, 128, 100, 0.002, True),
    "svhn_wrn164": (2_748_890, 128, 160, 5e-4, True),
    "imagenet_vgg16": (138_361_641, 256, 74, 5e-4, True),  # bs/epochs ours
    "imagenet_vgg19": (143_671_337, 256, 74, 5e-4, True),  # bs/epochs ours
    "imagenet_inception_v3": (27_164_082, 32, 100, 5e-4, True),  # bs/epochs ours
    "tolstoi_char_rnn": (284_499, 50, 200, None, True),
}
#: Built on the meta device (shapes only): building their weights takes seconds.
HEAVY = ("vgg", "inception", "wrn404")


def _describe(name: str) -> dict:
    problem = get_problem_class(name)(device="cpu")
    if any(key in name for key in HEAVY):
        with torch.device("meta"):
            return problem.describe()
    return problem.describe()


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_problem_defaults_and_parameter_count(name):
    parameters, batch_size, num_epochs, weight_decay, has_accuracy = PUBLISHED[name]
    row = _describe(name)
    assert row["parameters"] == parameters
    assert (row["batch_size"], row["num_epochs"], row["weight_decay"]) == (batch_size, num_epochs, weight_decay)
    assert row["dataset"] and row["model"] and row["loss"]
    assert get_problem_class(name).has_accuracy is has_accuracy


def test_every_published_problem_is_registered():
    assert set(PUBLISHED) <= set(deepobs.list_problems())


def _regularized(name: str):
    """(problem, set of ids of the L2-penalised tensors), the net built without data."""
    problem = get_problem_class(name)(device="cpu")
    if any(key in name for key in HEAVY):
        with torch.device("meta"):
            problem.net = problem._build_net()
    else:
        problem.net = problem._build_net()
    groups = problem.get_regularization_groups()
    return problem, groups


def _weights(net, kinds):
    return [m.weight for m in net.modules() if isinstance(m, kinds)]


# name: (layer types whose weights are penalised, number of such tensors)
L2_GROUPS = {
    "cifar10_3c3d": ((nn.Conv2d, nn.Linear), 6),
    "cifar100_allcnnc": ((nn.Conv2d,), 9),
    "cifar10_vgg16": ((nn.Conv2d,), 13),
    "imagenet_vgg19": ((nn.Conv2d,), 16),
    "svhn_wrn164": ((nn.Conv2d, nn.Linear), 17),
    "cifar100_wrn404": ((nn.Conv2d, nn.Linear), 41),
    "imagenet_inception_v3": ((nn.Conv2d,), 96),  # 5 stem + 3·7 + 4 + 4·10 + 2 aux + 6 + 2·9
    "cifar100_resnet18": ((nn.Conv2d, nn.Linear), 21),
}


@pytest.mark.parametrize("name", sorted(L2_GROUPS))
def test_l2_groups_as_published(name):
    kinds, count = L2_GROUPS[name]
    problem, groups = _regularized(name)
    assert list(groups) == [problem.default_weight_decay]
    penalised = groups[problem.default_weight_decay]
    assert len(penalised) == count
    assert {id(p) for p in penalised} == {id(w) for w in _weights(problem.net, kinds)}
    biases_and_norms = [p for n, p in problem.net.named_parameters() if n.endswith("bias") or p.dim() == 1]
    assert not {id(p) for p in biases_and_norms} & {id(p) for p in penalised}


@pytest.mark.parametrize("name", ["mnist_logreg", "mnist_mlp", "fmnist_2c2d", "mnist_vae", "tolstoi_char_rnn"])
def test_unregularized_problems_have_no_l2(name):
    _, groups = _regularized(name)
    assert groups == {}
    with pytest.warns(UserWarning, match="no regularization"):
        assert get_problem_class(name)(weight_decay=0.1, device="cpu").weight_decay is None


def test_reported_loss_includes_half_wd_sum_of_squares():
    losses = {}
    for weight_decay in (0.0, 0.002):
        torch.manual_seed(0)
        problem = deepobs.get_problem("cifar10_3c3d", 2, weight_decay, fake_data=4, protocol="1.1",
                                      device="cpu").set_up()
        problem.train_init_op()
        losses[weight_decay], _ = problem.get_batch_loss_and_accuracy()
        penalty = sum(w.pow(2).sum() for w in _weights(problem.net, (nn.Conv2d, nn.Linear)))
    torch.testing.assert_close(losses[0.002] - losses[0.0], 0.5 * 0.002 * penalty)


@pytest.mark.parametrize("name,classes", [("cifar10_resnet18", 10), ("cifar100_resnet18", 100),
                                          ("cifar100_wrn404", 100)])
def test_label_smoothing_only_for_the_resnet18_recipe(name, classes):
    logits, targets = torch.randn(5, classes), torch.randint(0, classes, (5,))
    smoothing = 0.1 if name.endswith("resnet18") else 0.0
    losses = get_problem_class(name)(device="cpu").loss_function(logits, targets)
    torch.testing.assert_close(losses, F.cross_entropy(logits, targets, reduction="none",
                                                       label_smoothing=smoothing))


class _TwoHeads(nn.Module):
    """Stands in for Inception-v3: (logits, aux logits) in training, logits otherwise."""

    def __init__(self):
        super().__init__()
        self.main, self.aux = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x):
        return (self.main(x), self.aux(x)) if self.training else self.main(x)


def test_auxiliary_loss_counts_in_training_only():
    problem = get_problem_class("imagenet_inception_v3")(device="cpu")
    assert isinstance(problem, AuxiliaryHeadProblem) and problem.label_smoothing == 0.1
    problem.net = _TwoHeads()
    x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))

    def smoothed(logits):
        return F.cross_entropy(logits, y, reduction="none", label_smoothing=0.1)

    train_losses, correct = problem._compute(x, y)
    torch.testing.assert_close(train_losses, smoothed(problem.net.main(x)) + 0.4 * smoothed(problem.net.aux(x)))
    problem.net.eval()
    eval_losses, correct = problem._compute(x, y)
    torch.testing.assert_close(eval_losses, smoothed(problem.net(x)))
    assert torch.equal(correct, problem.net(x).argmax(1) == y)


def test_vae_problem_is_loss_only():
    torch.manual_seed(0)
    problem = deepobs.get_problem("mnist_vae", 2, fake_data=4, protocol="1.1", device="cpu").set_up()
    problem.test_init_op()
    images, _ = next(iter(problem.data.batches("test")))
    torch.manual_seed(1)
    loss, accuracy = problem.get_batch_loss_and_accuracy()
    torch.manual_seed(1)
    reconstruction, mean, log_std = problem.net(images)
    expected = vae_loss(reconstruction, images, mean, log_std).mean()
    assert accuracy is None
    torch.testing.assert_close(loss, expected)
    assert problem.evaluate("test")[1] is None


# ------------------------------------------------------------------ tolstoi_char_rnn
def _char_rnn(**kwargs):
    torch.manual_seed(0)
    return deepobs.get_problem("tolstoi_char_rnn", 2, fake_data=6, protocol="1.1", device="cpu",
                               **kwargs).set_up()


def test_char_rnn_evaluation_carries_state_in_stream_order():
    problem = _char_rnn()
    net = problem.net.eval()
    state, losses, correct = None, [], []
    with torch.no_grad():
        for inputs, targets in problem.data.batches("test"):
            logits, state = net(inputs, state)
            losses.append(F.cross_entropy(logits.transpose(1, 2), targets))
            correct.append((logits.argmax(2) == targets).float().mean())
    assert len(losses) >= 1
    loss, accuracy = problem.evaluate("test")
    assert loss == pytest.approx(torch.stack(losses).mean().item(), rel=1e-5)
    assert accuracy == pytest.approx(torch.stack(correct).mean().item(), rel=1e-5)
    train_eval = problem.evaluate("train_eval")
    assert problem.data.num_batches("train_eval") >= 2  # more than one batch: the state is carried
    state, losses = None, []
    with torch.no_grad():
        for inputs, targets in problem.data.batches("train_eval"):
            logits, state = net(inputs, state)
            losses.append(F.cross_entropy(logits.transpose(1, 2), targets))
    assert train_eval[0] == pytest.approx(torch.stack(losses).mean().item(), rel=1e-5)


def test_char_rnn_evaluates_at_training_batch_size():
    assert _char_rnn(eval_batch_size=4).evaluate("test") == pytest.approx(_char_rnn().evaluate("test"))


def test_char_rnn_training_state_is_carried_detached_and_reset():
    problem = _char_rnn()
    problem.train_init_op()
    closure = problem.get_batch_loss_and_accuracy_func()
    torch.manual_seed(5)
    first, _ = closure()
    torch.manual_seed(5)
    again, _ = closure()  # same batch, same start state
    assert torch.equal(first, again)
    problem.get_batch_loss_and_accuracy()  # second batch starts from the first batch's state
    assert problem._state is not None and all(t.grad_fn is None for layer in problem._state for t in layer)
    saved = problem.state_dict()["lstm_state"]
    problem.train_init_op()
    assert problem._state is None  # reset at the start of every pass
    problem.load_state_dict({"lstm_state": saved})
    assert problem._state is saved


@pytest.mark.realdata
def test_mnist_vae_untrained_test_loss_is_published(shared_data):
    """Epoch-0 test loss of the published baselines (protocol 1.1): 181.4."""
    from deepobs.runners.runner import seed_everything

    seed_everything(42)
    problem = deepobs.get_problem("mnist_vae", protocol="1.1", data_dir=str(shared_data), device="cpu",
                                  eval_batch_size=1000).set_up()
    assert problem.evaluate("test")[0] == pytest.approx(181.4, abs=1.0)
