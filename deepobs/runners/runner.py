"""StandardRunner and LearningRateScheduleRunner: train one optimizer on one problem.

The loop follows DeepOBS (reference/deepobs.md §3.3): at epochs 0 … N the model is
evaluated on train_eval, valid and test (so every per-epoch list has N+1 entries);
between evaluations one full training pass is made. A run whose training loss turns
NaN or infinite stops, is marked ``diverged`` and keeps what it measured before.

Subclass and override :meth:`StandardRunner.training_step` for an optimizer that
needs something special in a step (a closure, a second backward), or
:meth:`StandardRunner.training` to replace the whole loop::

    class ClosureRunner(StandardRunner):
        def training_step(self, tproblem, optimizer):
            batch = tproblem.get_batch_loss_and_accuracy_func()

            def closure():
                optimizer.zero_grad()
                loss, _ = batch()
                loss.backward()
                return loss

            return optimizer.step(closure)
"""

from __future__ import annotations

import math
import platform
import random
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from deepobs.config import DEFAULT_PROTOCOL, check_protocol, default_device
from deepobs.errors import ConfigurationError
from deepobs.registry import get_problem_class
from deepobs.runners import results
from deepobs.runners.optimizers import build_optimizer
from deepobs.version import __version__


def seed_everything(random_seed: int) -> None:
    """Seed Python, NumPy and torch (initialisation and dropout draw from these)."""
    random.seed(random_seed)
    np.random.seed(random_seed)
    torch.manual_seed(random_seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class StandardRunner:
    """Trains ``optimizer_class`` on a test problem and writes a DeepOBS result file.

    Args:
        optimizer_class: a ``torch.optim.Optimizer`` subclass, or any callable
            ``build(params, **hyperparams)`` returning one.
        hyperparameter_names: DeepOBS-style ``{name: {"type": type, "default": value}}``;
            names without a default must be given to :meth:`run`.
        optimizer_name: the name written to the results (default: the class name), so
            that e.g. SGD, Momentum and Nesterov are told apart.
    """

    def __init__(self, optimizer_class: Callable, hyperparameter_names: dict,
                 optimizer_name: Optional[str] = None):
        self._optimizer_class = optimizer_class
        self._hyperparameter_names = dict(hyperparameter_names)
        self._optimizer_name = optimizer_name or getattr(optimizer_class, "__name__", "Optimizer")
        self._quiet = False

    # ------------------------------------------------------------------ run
    def run(self, testproblem: Optional[str] = None, hyperparams: Optional[dict] = None,
            batch_size: Optional[int] = None, num_epochs: Optional[int] = None,
            random_seed: Optional[int] = None, data_dir: Optional[str] = None,
            output_dir: Optional[str] = None, weight_decay: Optional[float] = None,
            no_logs: Optional[bool] = None, train_log_interval: Optional[int] = None,
            print_train_iter: Optional[bool] = None, tb_log: Optional[bool] = None,
            tb_log_dir: Optional[str] = None, skip_if_exists: bool = False,
            protocol: Optional[str] = None, device: Optional[str] = None,
            quiet: Optional[bool] = None, eval_batch_size: Optional[int] = None,
            fake_data: Optional[int] = None, **training_params) -> Optional[dict]:
        """Run one problem and return the output dict (None when skipped).

        As in DeepOBS, if ``testproblem`` or a required hyperparameter is missing, the
        missing arguments are read from the command line (``sys.argv``); otherwise
        arguments left as None take their defaults: the problem's batch size, epochs
        and weight decay, seed 42, ``./results``, train_log_interval 10, protocol 1.2.
        ``fake_data=N`` trains on N random examples of the real shape (tests, benchmarks).
        """
        hyperparams = dict(hyperparams or {})
        missing = [name for name, spec in self._hyperparameter_names.items()
                   if "default" not in spec and name not in hyperparams]
        if testproblem is None or missing:
            parsed = self._parse_command_line(hyperparams)
            testproblem = testproblem or parsed.pop("testproblem")
            for name, value in parsed.pop("hyperparams").items():
                hyperparams.setdefault(name, value)
            batch_size = batch_size if batch_size is not None else parsed.get("batch_size")
            num_epochs = num_epochs if num_epochs is not None else parsed.get("num_epochs")
            random_seed = random_seed if random_seed is not None else parsed.get("random_seed")
            data_dir = data_dir or parsed.get("data_dir")
            output_dir = output_dir or parsed.get("output_dir")
            weight_decay = weight_decay if weight_decay is not None else parsed.get("weight_decay")
            no_logs = no_logs if no_logs is not None else parsed.get("no_logs")
            train_log_interval = train_log_interval or parsed.get("train_log_interval")
            print_train_iter = print_train_iter if print_train_iter is not None else parsed.get("print_train_iter")
            protocol = protocol or parsed.get("protocol")
            device = device or parsed.get("device")
            quiet = quiet if quiet is not None else parsed.get("quiet")
            fake_data = fake_data or parsed.get("fake_data")
            for name in self.training_param_names():
                if training_params.get(name) is None and parsed.get(name) is not None:
                    training_params[name] = parsed[name]
        for name, spec in self._hyperparameter_names.items():
            if name not in hyperparams and "default" in spec:
                hyperparams[name] = spec["default"]
        unknown = sorted(set(hyperparams) - set(self._hyperparameter_names))
        if unknown:
            raise ConfigurationError(
                f"unknown hyperparameter(s) {', '.join(unknown)} for {self._optimizer_name}; "
                f"allowed: {', '.join(sorted(self._hyperparameter_names)) or 'none'}"
            )
        missing = [name for name in self._hyperparameter_names if name not in hyperparams]
        if missing:
            raise ConfigurationError(f"missing hyperparameter(s) for {self._optimizer_name}: {', '.join(missing)}")

        problem_class = get_problem_class(testproblem)
        batch_size = batch_size if batch_size is not None else problem_class.default_batch_size
        num_epochs = num_epochs if num_epochs is not None else problem_class.default_num_epochs
        if batch_size is None or num_epochs is None:
            raise ConfigurationError(f"{testproblem} has no default batch size / epochs; give --bs and -N")
        batch_size = _positive_int("batch_size", batch_size)
        num_epochs = _positive_int("num_epochs", num_epochs, minimum=0)
        random_seed = _positive_int("random_seed", 42 if random_seed is None else random_seed, minimum=0)
        train_log_interval = _positive_int("train_log_interval", train_log_interval or 10)
        if eval_batch_size is not None:
            eval_batch_size = _positive_int("eval_batch_size", eval_batch_size)
        if fake_data is not None:
            fake_data = _positive_int("fake_data", fake_data)
        if weight_decay is not None and (not isinstance(weight_decay, (int, float)) or weight_decay < 0
                                         or not math.isfinite(weight_decay)):
            raise ConfigurationError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        protocol = check_protocol(protocol or DEFAULT_PROTOCOL)
        training_params = self.check_training_params(**training_params)
        self._quiet = bool(quiet)
        output_dir = output_dir or "./results"

        effective_wd = weight_decay if problem_class.default_weight_decay is not None else None
        setting = results.setting_name(num_epochs, batch_size, hyperparams, effective_wd,
                                       training_params, protocol)
        run_folder = Path(output_dir) / testproblem / self._optimizer_name / setting
        if skip_if_exists and results.find_run(run_folder, random_seed):
            self._log(f"skipping {run_folder}: a result for seed {random_seed} exists")
            return None
        if not no_logs:
            results.ensure_writable(run_folder)
        # Reject bad hyperparameter values before any data is loaded.
        build_optimizer(self._optimizer_class, [torch.zeros(1, requires_grad=True)], hyperparams)

        tproblem = self.create_testproblem(
            testproblem, batch_size, weight_decay, random_seed, data_dir=data_dir,
            protocol=protocol, device=device or default_device(), eval_batch_size=eval_batch_size,
            fake_data=fake_data)
        start = time.perf_counter()
        output = self.training(tproblem, hyperparams, num_epochs, bool(print_train_iter),
                               train_log_interval, bool(tb_log), tb_log_dir, **training_params)
        output = self._post_process_output(
            output, testproblem, batch_size, num_epochs, random_seed, weight_decay, hyperparams,
            train_log_interval, protocol, tproblem, time.perf_counter() - start, fake_data,
            **training_params)
        if not no_logs:
            path = results.write_json_atomic(run_folder / results.run_file_name(random_seed), output)
            self._log(f"wrote {path}")
        return output

    def _parse_command_line(self, given_hyperparams: dict) -> dict:
        from deepobs.runners.cli import build_run_parser, split_hyperparameters

        parser = build_run_parser(self._hyperparameter_names, optimizer_flag=False,
                                  lr_schedule=bool(self.training_param_names()),
                                  given=given_hyperparams)
        hyperparams, parsed = split_hyperparameters(vars(parser.parse_args()))
        return {**parsed, "hyperparams": hyperparams}

    # -------------------------------------------------------------- set-up
    @staticmethod
    def create_testproblem(testproblem: str, batch_size: int, weight_decay, random_seed: int,
                           **problem_kwargs):
        """Seed everything, then build and set up the problem (data split included)."""
        seed_everything(random_seed)
        problem = get_problem_class(testproblem)(batch_size, weight_decay,
                                                 random_seed=random_seed, **problem_kwargs)
        return problem.set_up()

    def training_param_names(self) -> tuple:
        """Names of the extra training parameters this runner takes."""
        return ()

    def check_training_params(self, **training_params) -> dict:
        """Validate the extra training parameters; StandardRunner takes none."""
        if training_params:
            raise ConfigurationError(
                f"unknown run argument(s) {', '.join(sorted(training_params))} for "
                f"{type(self).__name__}")
        return {}

    def make_scheduler(self, optimizer, **training_params):
        """A per-epoch learning-rate scheduler, or None (StandardRunner: none)."""
        return None

    # ------------------------------------------------------------- training
    def training(self, tproblem, hyperparams: dict, num_epochs: int, print_train_iter: bool,
                 train_log_interval: int, tb_log: bool, tb_log_dir: Optional[str],
                 **training_params) -> dict:
        """The training loop (DeepOBS signature). Returns the per-epoch output lists."""
        optimizer = build_optimizer(self._optimizer_class, tproblem.net.parameters(), hyperparams)
        scheduler = self.make_scheduler(optimizer, **training_params)
        log = TrainingLog(tproblem)
        writer = _tensorboard_writer(tb_log, tb_log_dir)
        for epoch in range(num_epochs + 1):
            self.evaluate_all(epoch, num_epochs, tproblem, log)
            if writer is not None:
                log.write_tensorboard(writer, epoch)
            if epoch == num_epochs:
                break
            started = time.perf_counter()
            diverged_step = self.train_epoch(tproblem, optimizer, log, epoch, num_epochs,
                                             train_log_interval, print_train_iter)
            log.train_times.append(time.perf_counter() - started)
            if scheduler is not None:
                scheduler.step()
            if diverged_step is not None:
                log.mark_diverged(epoch + 1, diverged_step, num_epochs)
                self._log(f"diverged in epoch {epoch + 1}, step {diverged_step}: "
                          "the loss is not finite; run stopped")
                break
        if writer is not None:
            writer.close()
        return log.output()

    def training_step(self, tproblem, optimizer) -> torch.Tensor:
        """One optimizer step on the next training batch; returns the batch loss."""
        optimizer.zero_grad(set_to_none=True)
        loss, _ = tproblem.get_batch_loss_and_accuracy()
        loss.backward()
        optimizer.step()
        return loss

    def train_epoch(self, tproblem, optimizer, log: "TrainingLog", epoch: int, num_epochs: int,
                    train_log_interval: int, print_train_iter: bool) -> Optional[int]:
        """One pass over the training data. Returns the step at which the loss became
        non-finite, or None."""
        tproblem.train_init_op()
        steps = tproblem.data.num_batches("train")
        # Checking finiteness costs a device sync; on a GPU do it at the log steps only.
        check_every = 1 if tproblem.device.type == "cpu" else train_log_interval
        progress = _progress_bar(steps, f"epoch {epoch + 1}/{num_epochs}", self._quiet)
        step = 0
        while True:
            try:
                loss = self.training_step(tproblem, optimizer)
            except StopIteration:
                break
            if step % train_log_interval == 0:
                value = float(loss.detach())
                log.minibatch_train_losses.append(value)
                if print_train_iter:
                    self._log(f"epoch {epoch + 1}, step {step}: minibatch train loss {value:.5f}")
                if not math.isfinite(value):
                    return step
            elif step % check_every == 0 and not torch.isfinite(loss):
                return step
            step += 1
            if progress is not None:
                progress.update()
        if progress is not None:
            progress.close()
        if step and not torch.isfinite(loss):
            return step - 1
        return None

    def evaluate_all(self, epoch: int, num_epochs: int, tproblem, log: "TrainingLog") -> None:
        """Evaluate on train_eval, valid (if the protocol has it) and test; log one line."""
        started = time.perf_counter()
        line = [f"epoch {epoch}/{num_epochs}"]
        for phase in log.phases:
            loss, accuracy = tproblem.evaluate(phase)
            log.record(phase, loss, accuracy)
            text = f"{phase} loss {loss:.5g}"
            if accuracy is not None:
                text += f" acc {accuracy:.4f}"
            line.append(text)
        log.eval_times.append(time.perf_counter() - started)
        self._log(" | ".join(line))

    def _log(self, message: str) -> None:
        if not self._quiet:
            print(message, flush=True)

    # -------------------------------------------------------------- output
    def _post_process_output(self, output: dict, testproblem: str, batch_size: int,
                             num_epochs: int, random_seed: int, weight_decay, hyperparams: dict,
                             train_log_interval: int, protocol: str, tproblem, wall_time: float,
                             fake_data: Optional[int] = None, **training_params) -> dict:
        """Add DeepOBS's meta keys (v1.2 order) and our extras to the training output."""
        meta = {
            "testproblem": testproblem,
            "batch_size": batch_size,
            "num_epochs": num_epochs,
            "random_seed": random_seed,
            "weight_decay": weight_decay,
            "optimizer_name": self._optimizer_name,
            "optimizer_hyperparams": hyperparams,
            "training_params": training_params,
        }
        extras = {
            "train_log_interval": train_log_interval,
            "protocol": protocol,
            "fake_data": fake_data,
            "optimizer_class": _qualified_name(self._optimizer_class),
            "device": _device_name(tproblem.device),
            "deepobs_version": __version__,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "wall_time": wall_time,
        }
        return {**meta, **output, **extras}


class LearningRateScheduleRunner(StandardRunner):
    """A StandardRunner with a step schedule: from epoch ``lr_sched_epochs[i]`` on, the
    learning rate is ``lr · lr_sched_factors[i]`` (DeepOBS semantics)."""

    def training_param_names(self) -> tuple:
        return ("lr_sched_epochs", "lr_sched_factors")

    def check_training_params(self, lr_sched_epochs=None, lr_sched_factors=None, **other) -> dict:
        if other:
            super().check_training_params(**other)
        if (lr_sched_epochs is None) != (lr_sched_factors is None):
            raise ConfigurationError("give both lr_sched_epochs and lr_sched_factors, or neither")
        if lr_sched_epochs is not None:
            lr_sched_epochs = [int(e) for e in lr_sched_epochs]
            lr_sched_factors = [float(f) for f in lr_sched_factors]
            if len(lr_sched_epochs) != len(lr_sched_factors):
                raise ConfigurationError(
                    f"lr_sched_epochs {lr_sched_epochs} and lr_sched_factors {lr_sched_factors} "
                    "must have the same length")
            if any(e < 1 for e in lr_sched_epochs) or lr_sched_epochs != sorted(set(lr_sched_epochs)):
                raise ConfigurationError(
                    f"lr_sched_epochs must be increasing epochs >= 1, got {lr_sched_epochs}")
            if any(not math.isfinite(f) or f < 0 for f in lr_sched_factors):
                raise ConfigurationError(f"lr_sched_factors must be finite and >= 0, got {lr_sched_factors}")
        return {"lr_sched_epochs": lr_sched_epochs, "lr_sched_factors": lr_sched_factors}

    def make_scheduler(self, optimizer, lr_sched_epochs=None, lr_sched_factors=None):
        if lr_sched_epochs is None:
            return None
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda epoch: schedule_factor(epoch, lr_sched_epochs, lr_sched_factors))


def schedule_factor(epoch: int, lr_sched_epochs, lr_sched_factors) -> float:
    """The factor of the last schedule entry whose epoch is <= ``epoch`` (else 1)."""
    factor = 1.0
    for start, value in zip(lr_sched_epochs, lr_sched_factors):
        if epoch >= start:
            factor = value
    return factor


class TrainingLog:
    """The per-epoch lists of a run, and its divergence record."""

    def __init__(self, tproblem):
        self.has_accuracy = tproblem.has_accuracy
        self.phases = ["train_eval", "valid", "test"] if tproblem.data.has_validation else ["train_eval", "test"]
        self.losses = {phase: [] for phase in self.phases}
        self.accuracies = {phase: [] for phase in self.phases}
        self.minibatch_train_losses: list = []
        self.train_times: list = []
        self.eval_times: list = []
        self.diverged_at: Optional[dict] = None

    def record(self, phase: str, loss: float, accuracy: Optional[float]) -> None:
        self.losses[phase].append(loss)
        if accuracy is not None:
            self.accuracies[phase].append(accuracy)

    def mark_diverged(self, epoch: int, step: int, num_epochs: int) -> None:
        """Record the divergence and pad every per-epoch list to num_epochs+1 entries with
        its epoch-0 value, as DeepOBS does, so that tools expecting full lists work."""
        self.diverged_at = {"epoch": epoch, "step": step}
        for lists in (self.losses, self.accuracies):
            for values in lists.values():
                if values:
                    values.extend([values[0]] * (num_epochs + 1 - len(values)))

    def write_tensorboard(self, writer, epoch: int) -> None:
        for phase in self.phases:
            writer.add_scalar(f"{phase}/loss", self.losses[phase][-1], epoch)
            if self.accuracies[phase]:
                writer.add_scalar(f"{phase}/accuracy", self.accuracies[phase][-1], epoch)

    def output(self) -> dict:
        key = {"train_eval": "train", "valid": "valid", "test": "test"}
        output = {f"{key[phase]}_losses": self.losses[phase] for phase in self.phases}
        output["minibatch_train_losses"] = self.minibatch_train_losses
        if self.has_accuracy:
            output.update({f"{key[phase]}_accuracies": self.accuracies[phase] for phase in self.phases})
        output["diverged"] = self.diverged_at is not None
        output["diverged_at"] = self.diverged_at
        output["train_times"] = self.train_times
        output["eval_times"] = self.eval_times
        return output


def _progress_bar(total: int, description: str, quiet: bool):
    if quiet:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=description, leave=False, disable=None, file=sys.stderr)


def _tensorboard_writer(tb_log: bool, tb_log_dir: Optional[str]):
    if not tb_log:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigurationError("--tb_log needs the tensorboard package: pip install tensorboard") from None
    return SummaryWriter(log_dir=None if tb_log_dir in (None, "none") else tb_log_dir)


def _qualified_name(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({platform.processor() or platform.machine()})"
