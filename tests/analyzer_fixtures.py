"""Small result trees for the analyzer tests, with numbers simple enough to check by hand.

Tree written by :func:`build_tree` (problem ``toy_class``, protocol 1.2, 2 epochs):

* SGD lr 0.1, seeds 42/43: valid acc [.1 .6 .9] and [.1 .5 .7] (final mean .8, best .8;
  on the tuning seed 42: final .9, best .9), test acc finals .6/.6;
* SGD lr 0.01, seed 42: valid acc [.1 .85 .75] (final .75, best .85), test acc final .9;
* SGD lr 1.0, seed 42: diverged in epoch 1 (lists padded with the epoch-0 value);
* Adam lr 0.001, seeds 42/43/44: valid acc finals .7/.8/.9 (mean .8, std .08165,
  median .8, quartiles .75/.85);
* an empty setting folder and a corrupt (truncated) file;
* a v1.1 file (``quadratic_deep``, GradientDescentOptimizer) with NaN in its losses.
"""

from __future__ import annotations

import json
from pathlib import Path

V11_TEXT = (
    '{"train_losses": [350.0, NaN, NaN], "test_losses": [353.0, NaN, NaN], '
    '"optimizer": "GradientDescentOptimizer", "testproblem": "quadratic_deep", "weight_decay": null, '
    '"batch_size": 128, "num_epochs": 2, "learning_rate": 1.0, "lr_sched_epochs": null, '
    '"lr_sched_factors": null, "random_seed": 42, "train_log_interval": 1, "hyperparams": {}}'
)


def run_dict(problem: str, optimizer: str, lr: float, seed: int, valid_acc, test_acc,
             num_epochs: int = 2, diverged_epoch=None, extra=None, protocol: str = "1.2") -> dict:
    """A result dict with the keys our runner writes (v1.2 plus extras)."""
    losses = [2.3 - 0.5 * i for i in range(num_epochs + 1)]
    data = {
        "testproblem": problem, "batch_size": 8, "num_epochs": num_epochs, "random_seed": seed,
        "weight_decay": None, "optimizer_name": optimizer, "optimizer_hyperparams": {"lr": lr},
        "training_params": {}, "train_losses": list(losses), "test_losses": [v + 0.1 for v in losses],
        "minibatch_train_losses": [2.0, 1.0],
        "train_accuracies": [a + 0.05 for a in valid_acc], "test_accuracies": list(test_acc),
        "diverged": diverged_epoch is not None,
        "diverged_at": None if diverged_epoch is None else {"epoch": diverged_epoch, "step": 3},
        "train_times": [0.5] * (num_epochs if diverged_epoch is None else diverged_epoch),
        "eval_times": [0.1] * (num_epochs + 1), "train_log_interval": 10, "protocol": protocol,
        "fake_data": None, "optimizer_class": "torch.optim.sgd.SGD", "device": "cpu (x86_64)",
        "deepobs_version": "0.1.0", "torch_version": "2.14.1", "python_version": "3.11.7",
        "wall_time": 1.0,
    }
    if protocol == "1.2":
        data["valid_losses"] = [v + 0.05 for v in losses]
        data["valid_accuracies"] = list(valid_acc)
    data.update(extra or {})
    return data


def write_run(root: Path, data: dict, setting: str = None) -> Path:
    """Write ``data`` where our runner would put it."""
    setting = setting or f"num_epochs__{data['num_epochs']}__batch_size__8__lr__{data['optimizer_hyperparams']['lr']}"
    folder = root / data["testproblem"] / data["optimizer_name"] / setting
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"random_seed__{data['random_seed']}__2026-01-01-00-00-00.json"
    path.write_text(json.dumps(data, indent=4))
    return path


def build_tree(root: Path, corrupt: bool = True) -> Path:
    """The tree described in the module docstring; returns ``root``."""
    write_run(root, run_dict("toy_class", "SGD", 0.1, 42, [.1, .6, .9], [.1, .5, .6]))
    write_run(root, run_dict("toy_class", "SGD", 0.1, 43, [.1, .5, .7], [.1, .5, .6]))
    write_run(root, run_dict("toy_class", "SGD", 0.01, 42, [.1, .85, .75], [.1, .8, .9]))
    diverged = run_dict("toy_class", "SGD", 1.0, 42, [.1, .1, .1], [.1, .1, .1], diverged_epoch=1)
    for key in ("train_losses", "valid_losses", "test_losses"):
        diverged[key] = [diverged[key][0]] * 3
    write_run(root, diverged)
    for seed, final in zip((42, 43, 44), (.7, .8, .9)):
        write_run(root, run_dict("toy_class", "Adam", 0.001, seed, [.1, .5, final], [.1, .5, final]))
    (root / "toy_class" / "Adam" / "num_epochs__2__batch_size__8__lr__0.5").mkdir(parents=True)
    if corrupt:
        bad = root / "toy_class" / "Adam" / "num_epochs__2__batch_size__8__lr__0.2"
        bad.mkdir(parents=True)
        (bad / "random_seed__42__2026-01-01-00-00-00.json").write_text('{"testproblem": "toy_cl')
    v11 = root / "quadratic_deep" / "GradientDescentOptimizer" / "num_epochs__2__batch_size__128__lr__1.e+00"
    v11.mkdir(parents=True)
    (v11 / "random_seed__42__2019-02-13-00-00-00.json").write_text(V11_TEXT)
    return root
