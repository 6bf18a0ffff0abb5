"""One epoch three ways: ours (the StandardRunner), the common way, and the floor.

Each function runs one epoch of a workload and returns the seconds of its parts
(``train`` and, where there is an evaluation, ``train_eval``/``valid``/``test``).
All three use the problem's own model, loss and L2 term; they differ only in how
batches are made, how the loop is driven and how evaluation is done.
"""

from __future__ import annotations

import time

import torch

from deepobs.runners.optimizer_setup import PreparedOptimizer  # what the runner drives
from deepobs.runners.runner import StandardRunner, TrainingLog

#: Logged mini-batch loss every k steps, as in every DeepOBS runner.
TRAIN_LOG_INTERVAL = 10


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_optimizer(problem) -> torch.optim.Optimizer:
    """Plain SGD with a tiny step: the model changes little while it is timed."""
    return torch.optim.SGD(problem.net.parameters(), lr=1e-5)


def _batch_loss(problem, inputs, targets, train: bool):
    losses, correct = problem._compute(inputs, targets)
    loss = losses.mean()
    if problem._regularized_params:
        loss = loss + problem.get_regularization_loss()
    return loss, correct


def _reset_state(problem) -> None:
    if hasattr(problem, "reset_state"):
        problem.reset_state()


def _advance_state(problem) -> None:
    if hasattr(problem, "_advance_state"):
        problem._advance_state()


# --------------------------------------------------------------------------- ours
def ours_epoch(problem, optimizer) -> dict:
    """The runner's training pass (``train_epoch``) and its evaluations, timed per phase."""
    runner = StandardRunner(torch.optim.SGD, {"lr": {"type": float}})
    runner._quiet = True
    log = TrainingLog(problem)
    device = problem.device
    times = {}
    synchronize(device)
    started = time.perf_counter()
    runner.train_epoch(problem, PreparedOptimizer([optimizer], "plain", {}), log, 0, 1, TRAIN_LOG_INTERVAL,
                       print_train_iter=False)
    synchronize(device)
    times["train"] = time.perf_counter() - started
    for phase in log.phases:
        started = time.perf_counter()
        problem.evaluate(phase)  # returns floats: synchronised
        times[phase] = time.perf_counter() - started
    return times


# --------------------------------------------------------------------- common way
def common_epoch(problem, optimizer, loaders) -> dict:
    """Training and evaluation through per-sample DataLoaders, as the reference port."""
    device = problem.device
    net = problem.net
    times = {}
    started = time.perf_counter()
    net.train()
    _reset_state(problem)
    for step, (inputs, targets) in enumerate(loaders("train")):
        inputs, targets = inputs.to(device), targets.to(device)
        _advance_state(problem)
        optimizer.zero_grad()
        loss, _ = _batch_loss(problem, inputs, targets, train=True)
        loss.backward()
        optimizer.step()
        if step % TRAIN_LOG_INTERVAL == 0:
            loss.item()
    synchronize(device)
    times["train"] = time.perf_counter() - started
    for phase in [p for p in ("train_eval", "valid", "test") if p in loaders.loaders]:
        started = time.perf_counter()
        net.eval()
        _reset_state(problem)
        losses, accuracies = [], []
        with torch.no_grad():
            for inputs, targets in loaders(phase):
                inputs, targets = inputs.to(device), targets.to(device)
                _advance_state(problem)
                loss, correct = _batch_loss(problem, inputs, targets, train=False)
                losses.append(loss.item())
                if correct is not None:
                    accuracies.append(correct.float().mean().item())
        _reset_state(problem)
        times[phase] = time.perf_counter() - started
    return times


# -------------------------------------------------------------------------- floor
def preload(problem, count: int) -> list:
    """``count`` training batches, already transformed, as tensors on the device."""
    data = problem.data
    problem.net.train()
    batches = []
    for inputs, targets in data.batches("train"):
        if len(batches) == count:
            break
        batches.append((inputs.clone(), targets.clone()))
    return batches


def preload_eval(problem) -> dict:
    """The batches of every evaluation pass, transformed once, at the training batch size."""
    data = problem.data
    phases = ["train_eval", "valid", "test"] if data.has_validation else ["train_eval", "test"]
    return {phase: [(inputs.clone(), targets.clone()) for inputs, targets in data.batches(phase)]
            for phase in phases}


def floor_epoch(problem, optimizer, batches: list, eval_batches: dict) -> dict:
    """The model's own arithmetic: forward, backward and step on preloaded training
    batches, and forward passes alone on preloaded evaluation batches."""
    device = problem.device
    net = problem.net
    net.train()
    _reset_state(problem)
    synchronize(device)
    started = time.perf_counter()
    for inputs, targets in batches:
        _advance_state(problem)
        optimizer.zero_grad(set_to_none=True)
        loss, _ = _batch_loss(problem, inputs, targets, train=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    times = {"train": time.perf_counter() - started}
    net.eval()
    for phase, phase_batches in eval_batches.items():
        _reset_state(problem)
        started = time.perf_counter()
        with torch.inference_mode():
            for inputs, targets in phase_batches:
                _advance_state(problem)
                problem._compute(inputs, targets)
        synchronize(device)
        times[phase] = time.perf_counter() - started
    _reset_state(problem)
    return times
