"""StandardRunner: train one optimizer on one problem and write a DeepOBS result file.

The loop follows DeepOBS: at epochs 0 … N the model is evaluated on train_eval, valid
and test (so every per-epoch list has N+1 entries); between evaluations one full
training pass is made. A run whose training loss turns NaN or infinite stops, is marked
``diverged`` and keeps what it measured before.

A run is described by one :class:`~deepobs.runners.run_config.RunConfig`;
:meth:`StandardRunner.run` takes one, or DeepOBS's keyword arguments (a thin layer that
builds one). The state of the run in progress (checkpointer, progress, stop signal)
travels in one :class:`RunSession` object.

Subclass and override :meth:`StandardRunner.training_step` for an optimizer that
needs something special in a step (a second backward, per-sample gradients), or
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

import contextlib
import json
import math
import platform
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch

from deepobs.config import default_device
from deepobs.errors import ConfigurationError
from deepobs import result_schema
from deepobs.registry import get_problem_class
from deepobs.runners import checkpoint, distributed, provenance, results
from deepobs.runners.finiteness import _finite_loss, float_parameters, non_finite_state  # noqa: F401
from deepobs.runners.locking import RunLock, lock_path
from deepobs.runners import optimizer_setup
from deepobs.runners.optimizers import OptimizerSpec, resolve_optimizer
from deepobs.runners.run_config import MAX_FAKE_DATA, MAX_SEED, RunConfig, parse_run_argv  # noqa: F401
from deepobs.runners.schedules import LRSchedule
from deepobs.runners.threads import apply_threads
from deepobs.runners.training_state import (EvaluationStopped, RunProgress, TrainingLog,  # noqa: F401
                                            progress_bar)
from deepobs.safe_names import writable_folder
from deepobs.version import __version__


def seed_everything(random_seed: int) -> None:
    """Seed Python, NumPy and torch (initialisation and dropout draw from these)."""
    random.seed(random_seed)
    np.random.seed(random_seed)
    torch.manual_seed(random_seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


#: DeepOBS's ``run()`` keywords that are not RunConfig fields under the same name.
_TRAINING_PARAM_ALIASES = {"lr_sched_epochs", "lr_sched_factors"}


@dataclass
class RunSession:
    """The state of one run in progress, passed explicitly (created by :meth:`StandardRunner.run`).

    Attributes:
        config: the resolved configuration.
        checkpointer: saves this run's checkpoints (None with ``no_logs``).
        resume_state: the checkpoint being resumed, or None.
        schedule: the per-step learning-rate schedule.
        optimizer: the optimizer(s) of the run (:func:`~deepobs.runners.optimizer_setup.prepare_optimizer`).
        progress: where the training loop stands (set by :meth:`StandardRunner.training`).
        stop_signal: a SIGTERM/SIGINT received; the run stops after the current step.
    """

    config: RunConfig
    checkpointer: Optional[checkpoint.Checkpointer] = None
    resume_state: Optional[dict] = None
    schedule: Optional[LRSchedule] = None
    optimizer: Optional[optimizer_setup.PreparedOptimizer] = None
    progress: Optional[RunProgress] = None
    stop_signal: Optional[int] = None
    epochs_done: int = 0
    wrote_checkpoint: bool = False
    started: float = field(default_factory=time.perf_counter)

    def wall_time(self) -> float:
        """Seconds of this run, earlier attempts of a resumed run included."""
        before = self.resume_state["wall_time"] if self.resume_state else 0.0
        return before + time.perf_counter() - self.started

    def resumed_at(self) -> list:
        """Where earlier attempts stopped (``[{epoch, step}, ...]``)."""
        if self.resume_state is None:
            return []
        return list(self.resume_state["resumed_at"]) + [
            {"epoch": self.resume_state["epoch"], "step": self.resume_state["step"]}]


class StandardRunner:
    """Trains an optimizer on a test problem and writes a DeepOBS result file.

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
        self._spec = OptimizerSpec(name=optimizer_name or getattr(optimizer_class, "__name__", "Optimizer"),
                                   build=optimizer_class, hyperparameters=dict(hyperparameter_names))
        self._quiet = False
        #: The run in progress (None between runs); see :class:`RunSession`.
        self.session: Optional[RunSession] = None

    @classmethod
    def for_optimizer(cls, spec: OptimizerSpec) -> "StandardRunner":
        """A runner for a looked-up optimizer (:func:`~deepobs.runners.optimizers.resolve_optimizer`)."""
        return cls(spec.build, spec.hyperparameters, optimizer_name=spec.name)

    # ------------------------------------------------------------------ run
    def run(self, testproblem: Union[str, RunConfig, None] = None, hyperparams: Optional[dict] = None,
            **options) -> Optional[dict]:
        """Run one problem and return the output dict (an existing result's when reused;
        None when reused under ``skip_if_exists``, as in DeepOBS).

        ``testproblem`` is a :class:`~deepobs.runners.run_config.RunConfig`, or the DeepOBS
        keyword API: ``run(testproblem, hyperparams, batch_size=..., num_epochs=...,
        random_seed=..., ...)`` with any RunConfig field as a keyword (``lr_sched_epochs``
        and ``lr_sched_factors`` select DeepOBS's step schedule; ``lr_schedule`` and
        its parameters, e.g. ``warmup_epochs``, any other). As in DeepOBS, if
        ``testproblem`` or a required hyperparameter is missing, the missing arguments
        are read from the command line (``sys.argv``). Options left as None take their
        defaults: the problem's batch size, epochs and weight decay, seed 42,
        ``./results``, train_log_interval 10, protocol 1.2.

        Fault tolerance (see :mod:`deepobs.runners.checkpoint`): unless ``no_logs``, the
        run holds a lock file, saves a checkpoint next to its result after every epoch
        (and every ``checkpoint_every`` steps), and removes it once the result is written
        (unless ``keep_checkpoints``). ``resume`` continues from an existing checkpoint
        of the same configuration; an existing result is reused (the run is skipped,
        with one line saying so) unless ``overwrite`` (start again, replace the result).
        SIGTERM and SIGINT stop the run after the current step with a checkpoint and
        raise :class:`~deepobs.runners.checkpoint.RunInterrupted`.
        """
        if isinstance(testproblem, RunConfig):
            if hyperparams or options:
                raise ConfigurationError("give either a RunConfig or keyword arguments, not both")
            return self.execute(testproblem)
        return self.execute(self.config_from_arguments(testproblem, hyperparams, **options))

    def config_from_arguments(self, testproblem: Optional[str] = None, hyperparams: Optional[dict] = None,
                              **options) -> RunConfig:
        """The RunConfig of DeepOBS's ``run()`` keywords (missing ones from ``sys.argv``)."""
        given = {name: value for name, value in options.items() if value is not None}
        schedule_params = dict(given.pop("schedule_params", {}))
        fields = set(RunConfig.__dataclass_fields__)
        from deepobs.runners import schedules

        schedule_names = schedules.all_schedule_parameters()
        for name in list(given):
            if name not in fields and name in schedule_names:
                schedule_params[name] = given.pop(name)
        unknown = sorted(set(given) - fields)
        if unknown:
            raise ConfigurationError(
                f"unknown run argument(s) {', '.join(unknown)} for {type(self).__name__}")
        if schedule_params.keys() & _TRAINING_PARAM_ALIASES and "lr_schedule" not in given:
            given["lr_schedule"] = "step"
        hyperparams = dict(hyperparams or {})
        missing = [name for name, entry in self._spec.hyperparameters.items()
                   if "default" not in entry and name not in hyperparams]
        base = RunConfig(testproblem=testproblem, hyperparams=hyperparams, schedule_params=schedule_params,
                         optimizer_name=self._spec.name, **given)
        if testproblem is not None and not missing:
            return base
        parsed = parse_run_argv(sys.argv[1:], optimizer_spec=self._spec)
        merged = parsed.to_dict() | {name: value for name, value in base.to_dict().items()
                                     if value is not None and name in given}
        merged["testproblem"] = testproblem or parsed.testproblem
        merged["hyperparams"] = {**parsed.hyperparams, **hyperparams}
        merged["schedule_params"] = {**parsed.schedule_params, **schedule_params}
        merged["optimizer_name"] = self._spec.name
        return RunConfig.from_dict(merged)

    def execute(self, config: RunConfig) -> Optional[dict]:
        """Run ``config``: the single path every run takes (see :meth:`run`)."""
        config = config.resolved(self._spec)
        device = _check_device(distributed.rank_device(config.device or default_device()))  # (joins torchrun)
        no_logs = config.no_logs or not distributed.is_main_process()  # under torchrun rank 0 writes
        self._quiet = config.quiet or not distributed.is_main_process()
        if torch.device(device).type == "cpu":
            note = apply_threads(config.threads)
            if note:
                self._log(note)
        run_folder = config.run_folder()
        if not no_logs and not config.overwrite and config.find_result() is not None:
            return self._reuse(config.find_result(), config.skip_if_exists)
        tproblem = self.create_testproblem(
            config.testproblem, config.batch_size, config.weight_decay, config.random_seed,
            data_dir=config.data_dir, protocol=config.protocol, device=device,
            eval_batch_size=config.eval_batch_size, fake_data=config.fake_data)
        tproblem.set_performance_options(amp=config.amp, channels_last=config.channels_last,
                                         compile_mode=config.compile_mode)
        _check_batch_counts(tproblem)
        session = RunSession(config)
        session.schedule = LRSchedule(config.lr_schedule, config.schedule_params,
                                      tproblem.data.num_batches("train"), config.num_epochs)
        # Bad hyperparameter values are refused here, before any file is written.
        _check_representable(config, tproblem.net)
        optimizer = self.create_optimizer(tproblem, config)
        if not no_logs:
            writable_folder(run_folder)
        lock = None if no_logs else RunLock(lock_path(run_folder, config.random_seed)).acquire()
        signals = contextlib.ExitStack()
        try:
            if not no_logs:
                existing = results.find_run(run_folder, config.random_seed)
                if existing is not None and not config.overwrite:  # finished while we waited for the lock
                    if not config.keep_checkpoints:  # left by a finished run killed before cleaning up
                        checkpoint.checkpoint_path(run_folder, config.random_seed).unlink(missing_ok=True)
                    return self._reuse(existing, config.skip_if_exists)
                checkpoint.remove_stale_temporaries(run_folder, config.random_seed)
                session.checkpointer = checkpoint.Checkpointer(
                    checkpoint.checkpoint_path(run_folder, config.random_seed), checkpoint_identity(config),
                    config.checkpoint_every, config.resume)
                session.resume_state = session.checkpointer.load_existing(overwrite=config.overwrite)
            distributed.prepare(tproblem, config.random_seed, resuming=session.resume_state is not None)
            if session.resume_state:
                self._log(f"resuming from {session.checkpointer.path} at epoch {session.resume_state['epoch']}, "
                          f"step {session.resume_state['step']}")
            session.optimizer = optimizer
            self.session = session
            # The handlers stay until the result is written: a signal after the last step
            # lets the run finish instead of killing it while it writes.
            signals.enter_context(self._graceful_signals(session))
            output = self.training(tproblem, dict(config.hyperparams), config.num_epochs,
                                   config.print_train_iter, config.train_log_interval, config.tb_log,
                                   config.tb_log_dir, **config.training_params())
            output = self._post_process_output(output, config, tproblem, session.wall_time())
            output["resumed_at"] = session.resumed_at()
            if not no_logs:
                result_schema.validate(output, "the result to write")  # the schema the analyzer reads with
                path = results.write_json_atomic(run_folder / results.run_file_name(config.random_seed), output)
                self._log(f"wrote {path}")
                if config.overwrite:
                    for old in run_folder.glob(f"random_seed__{config.random_seed}__*.json"):
                        if old != path:
                            old.unlink(missing_ok=True)
                if not config.keep_checkpoints:
                    session.checkpointer.remove()
            return output
        except Exception:
            if session.wrote_checkpoint and session.resume_state is None and session.epochs_done == 0:
                session.checkpointer.remove()  # this attempt's, with nothing worth resuming
            raise
        finally:
            signals.close()
            self.session = None
            if lock is not None:
                lock.release()
            if not no_logs:
                _remove_if_empty(run_folder)

    def _reuse(self, path: Path, skip: bool) -> Optional[dict]:
        """An existing result, reused like a cache entry (one line says so); None with
        ``skip_if_exists``, as DeepOBS's runner returns."""
        self._log(f"reusing {path}: a result of this setting and seed exists (--overwrite runs it again)")
        if skip:
            return None
        with open(path) as stream:
            return json.load(stream)

    # -------------------------------------------------------------- set-up
    @staticmethod
    def create_testproblem(testproblem: str, batch_size: int, weight_decay, random_seed: int,
                           **problem_kwargs):
        """Seed everything, then build and set up the problem (data split included)."""
        seed_everything(random_seed)
        problem = get_problem_class(testproblem)(batch_size, weight_decay,
                                                 random_seed=random_seed, **problem_kwargs)
        return problem.set_up()

    def create_optimizer(self, tproblem, config: RunConfig) -> optimizer_setup.PreparedOptimizer:
        """The run's optimizer(s), built on the problem's model and given what they need
        (parameters or the model, a base or fallback optimizer, closures, modes; see
        :mod:`deepobs.runners.optimizer_setup`)."""
        data = tproblem.data
        steps_per_epoch = data.num_batches("train")
        context = {"num_train_examples": len(data.splits["train"]), "steps_per_epoch": steps_per_epoch,
                   "num_epochs": config.num_epochs, "total_steps": steps_per_epoch * config.num_epochs,
                   "batch_size": data.batch_size}
        companions = {}
        for name in ("base", "fallback"):
            optimizer = getattr(config, f"{name}_optimizer")
            if optimizer is not None:
                companions[name] = (resolve_optimizer(optimizer), getattr(config, f"{name}_hyperparams"))
        optimizer = optimizer_setup.prepare_optimizer(self._spec, tproblem.net, config.hyperparams,
                                                      context=context, **companions)
        rates = sorted({group["lr"] for group in optimizer.param_groups
                        if isinstance(group.get("lr"), (int, float))})
        self._log(f"optimizer {config.optimizer_name} ({optimizer.family}), learning rate "
                  f"{', '.join(f'{rate:g}' for rate in rates) or '-'}")
        return optimizer

    # ------------------------------------------------------------- training
    def training(self, tproblem, hyperparams: dict, num_epochs: int, print_train_iter: bool,
                 train_log_interval: int, tb_log: bool, tb_log_dir: Optional[str],
                 **training_params) -> dict:
        """The training loop (DeepOBS signature). Returns the per-epoch output lists.

        Within :meth:`run` it resumes from the checkpoint :meth:`run` found, saves one
        after every evaluation (and every ``checkpoint_every`` steps), and stops with a
        checkpoint on SIGTERM/SIGINT. The learning-rate schedule is applied before
        every step.
        """
        session = self.session
        if session is None:
            raise ConfigurationError("training() runs inside run(); call run() instead")
        optimizer = session.optimizer
        log = TrainingLog(tproblem)
        log.learning_rates = _learning_rates(optimizer, session.schedule, num_epochs)
        writer = _tensorboard_writer(tb_log, tb_log_dir)
        progress = RunProgress(tproblem, optimizer, log)
        if session.resume_state is not None:
            progress.resume_from(session.resume_state)
        session.progress = progress
        try:
            while True:
                epoch = progress.epoch
                if not progress.evaluated:
                    progress.before_evaluation()
                    optimizer.eval()  # schedule-free: evaluate (and checkpoint) at the averaged weights
                    try:
                        self.evaluate_all(epoch, num_epochs, tproblem, log)
                    except EvaluationStopped:  # a signal: checkpoint the state before this evaluation
                        progress.undo_evaluation()
                        self._stop_if_signalled(session)
                    progress.evaluated = True
                    if writer is not None:
                        log.write_tensorboard(writer, epoch)
                if epoch == num_epochs:
                    break
                if progress.step == 0 and progress.pending is None:
                    self._save_checkpoint(session)
                self._stop_if_signalled(session)
                optimizer.train()
                progress.epoch_started = time.perf_counter()
                diverged_step = self.train_epoch(tproblem, optimizer, log, epoch, num_epochs,
                                                 train_log_interval, print_train_iter)
                log.train_times.append(progress.epoch_train_time())
                progress.next_epoch()
                session.epochs_done = progress.epoch
                if diverged_step is not None:
                    log.mark_diverged(epoch + 1, diverged_step, num_epochs)
                    self._log(f"diverged in epoch {epoch + 1}, step {diverged_step}: the "
                              f"{log.divergence_reason} are not finite; run stopped")
                    break
        finally:
            session.progress = None
            if writer is not None:
                writer.close()
        return log.output()

    def training_step(self, tproblem, optimizer) -> torch.Tensor:
        """One optimizer step on the next training batch; returns the batch loss.

        ``optimizer`` is a :class:`~deepobs.runners.optimizer_setup.PreparedOptimizer`,
        which makes the step its optimizer needs (a closure, ``create_graph``, a fallback).
        """
        batch = tproblem.get_batch_loss_and_accuracy_func()  # StopIteration at the end
        return optimizer.train_step(batch)

    def train_epoch(self, tproblem, optimizer, log: TrainingLog, epoch: int, num_epochs: int,
                    train_log_interval: int, print_train_iter: bool) -> Optional[int]:
        """One pass over the training data. Returns the step at which the loss (or a
        parameter, or a gradient) became non-finite, or None; ``log.divergence_reason``
        says which."""
        session = self.session
        state = session.progress if session is not None else None
        step = state.start_pass() if state is not None else 0
        if state is None:
            tproblem.train_init_op()
        steps = tproblem.data.num_batches("train")
        every_steps = session.checkpointer.every_steps if session is not None and session.checkpointer else 0
        schedule = session.schedule if session is not None and not session.schedule.is_constant else None
        progress = progress_bar(steps, f"epoch {epoch + 1}/{num_epochs}", self._quiet, initial=step)
        parameters = float_parameters(tproblem.net)
        across_ranks = distributed.is_distributed()
        loss = None
        while True:
            if schedule is not None:
                schedule.apply(optimizer.param_groups, epoch * steps + step)
            try:
                loss = self.training_step(tproblem, optimizer)
            except StopIteration:
                break
            if across_ranks:
                loss = distributed.mean_across_ranks(loss)
            if step % train_log_interval == 0:
                value = loss.item()
                log.minibatch_train_losses.append(value)
                if print_train_iter:
                    self._log(f"epoch {epoch + 1}, step {step}: minibatch train loss {value:.5f}")
                # Finiteness is checked where the loss is read anyway (a device sync):
                # a divergence is caught within train_log_interval steps.
                reason = "loss" if not math.isfinite(value) else non_finite_state(parameters)
                if reason is not None:
                    return log.diverge(reason, step)
            step += 1
            if progress is not None:
                progress.update()
            if state is not None:
                state.step = step
                if every_steps and step % every_steps == 0 and step < steps:
                    self._save_checkpoint(session)
                self._stop_if_signalled(session)
        if progress is not None:
            progress.close()
        if loss is not None and (step - 1) % train_log_interval:  # (else checked at its log step)
            reason = "loss" if not _finite_loss(loss) else non_finite_state(parameters)
            if reason is not None:
                return log.diverge(reason, step - 1)
        return None

    # ------------------------------------------------------- fault tolerance
    def _save_checkpoint(self, session: RunSession, final: bool = False) -> Optional[Path]:
        """Write the checkpoint of the run in progress (nothing without a checkpointer);
        ``final``: the run stops after it (always fsynced)."""
        if session.checkpointer is None or session.progress is None:
            return None
        snapshot = session.progress.snapshot(session.wall_time(), session.resumed_at())
        session.wrote_checkpoint = True
        return session.checkpointer.save(snapshot, final=final)

    def _stop_if_signalled(self, session: RunSession) -> None:
        """After a SIGTERM/SIGINT: write a checkpoint and raise RunInterrupted."""
        if session.stop_signal is None:
            return
        path = self._save_checkpoint(session, final=True)
        self._log(f"stopped by {signal.Signals(session.stop_signal).name}"
                  + (f"; checkpoint {path}" if path else "; no checkpoint (no_logs)"))
        raise checkpoint.RunInterrupted(session.stop_signal, path)

    @contextlib.contextmanager
    def _graceful_signals(self, session: RunSession):
        """Turn SIGTERM and SIGINT into a stop after the current step (a second SIGINT
        interrupts at once). Only the main thread can install signal handlers."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signal_number, frame):
            if signal_number == signal.SIGINT and session.stop_signal is not None:
                raise KeyboardInterrupt
            session.stop_signal = signal_number

        previous = {number: signal.signal(number, handler) for number in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for number, old_handler in previous.items():
                signal.signal(number, old_handler)

    def evaluate_all(self, epoch: int, num_epochs: int, tproblem, log: TrainingLog) -> None:
        """Evaluate on train_eval, valid (if the protocol has it) and test; log one line."""
        started = time.perf_counter()
        session = self.session
        line = [f"epoch {epoch}/{num_epochs}"]
        bar = progress_bar(len(log.phases), f"epoch {epoch}/{num_epochs} evaluation", self._quiet)
        for phase in log.phases:
            if session is not None and session.stop_signal is not None and session.progress is not None:
                raise EvaluationStopped  # evaluations can be long: do not make a pre-emption wait
            if bar is not None:
                bar.set_postfix_str(phase)
            loss, accuracy = tproblem.evaluate(phase)
            log.record(phase, loss, accuracy)
            extra_metrics = getattr(tproblem, "extra_metrics", None)
            if extra_metrics is not None:
                log.record_extras(phase, extra_metrics(phase, loss, accuracy))
            text = f"{phase} loss {loss:.5g}"
            if accuracy is not None:
                text += f" acc {accuracy:.4f}"
            line.append(text)
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
        log.eval_times.append(time.perf_counter() - started)
        self._log(" | ".join(line))

    def _log(self, message: str) -> None:
        if not self._quiet:
            print(message, flush=True)

    # -------------------------------------------------------------- output
    def _post_process_output(self, output: dict, config: RunConfig, tproblem, wall_time: float) -> dict:
        """Add DeepOBS's meta keys (v1.2 order) and our extras to the training output."""
        meta = {
            "testproblem": config.testproblem,
            "batch_size": config.batch_size,
            "num_epochs": config.num_epochs,
            "random_seed": config.random_seed,
            "weight_decay": config.weight_decay,
            "optimizer_name": config.optimizer_name,
            "optimizer_hyperparams": _json_hyperparams(config.hyperparams),
            "training_params": config.training_params(),
        }
        extras = {
            "train_log_interval": config.train_log_interval,
            "protocol": config.protocol,
            "fake_data": config.fake_data,
            "optimizer_class": _qualified_name(self._spec.build),
            "device": _device_name(tproblem.device),
            "deepobs_version": __version__,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "wall_time": wall_time,
            "amp": config.amp,
            "compile": config.compile_mode,
            "channels_last": config.channels_last,
            "eval_batch_size": tproblem.data.eval_batch_size,
            "num_threads": torch.get_num_threads(),
            "config_hash": config.config_hash(),
            "git_commit": checkpoint.git_commit(),
            "optimizer_package": provenance.optimizer_package(self._spec.build),
            "machine": provenance.machine(),
            "run_config": {name: value for name, value in config.identity().items()},
            "optimizer_setup": self.session.optimizer.record if self.session is not None else None,
        }
        for name in ("base_optimizer", "fallback_optimizer"):
            if getattr(config, name) is not None:
                prefix = name.split("_")[0]
                extras[name] = getattr(config, name)
                extras[f"{prefix}_hyperparams"] = _json_hyperparams(getattr(config, f"{prefix}_hyperparams"))
        return {**meta, **output, **extras}


class LearningRateScheduleRunner(StandardRunner):
    """DeepOBS's runner with a step schedule (``lr_sched_epochs``/``lr_sched_factors``).

    Kept for DeepOBS scripts: every StandardRunner now takes every schedule
    (docs/schedules.md), DeepOBS's step schedule included.
    """


def checkpoint_identity(config: RunConfig) -> dict:
    """What a checkpoint is bound to: the whole run configuration (seed included) and
    the versions that can change the numbers; another one is refused on resume."""
    return {**config.identity(), "deepobs_version": __version__,
            "torch_version": torch.__version__.split("+")[0]}


def _learning_rates(optimizer, schedule: LRSchedule, num_epochs: int) -> list:
    """The learning rate of the first parameter group at the first step of each epoch
    (the last entry: after the last step); None for an optimizer without ``lr``."""
    groups = getattr(optimizer, "param_groups", None) or [{}]
    base = groups[0].get("initial_lr", groups[0].get("lr"))
    if not isinstance(base, (int, float)) or isinstance(base, bool):
        return [None] * (num_epochs + 1)
    return [float(base) * factor for factor in schedule.epoch_factors()]


def _check_representable(config: RunConfig, net: torch.nn.Module) -> None:
    """A finite hyperparameter beyond the model's floating-point range (``--lr 1e39`` on a
    float32 model) cannot be applied: a one-line error instead of an overflow mid-run."""
    dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()), torch.float32)
    largest = torch.finfo(dtype).max
    for field_name in ("hyperparams", "base_hyperparams", "fallback_hyperparams"):
        for name, value in getattr(config, field_name).items():
            for item in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(item, float) and math.isfinite(item) and abs(item) > largest:
                    raise ConfigurationError(
                        f"hyperparameter {name} = {item!r} is beyond the largest {str(dtype)[6:]} value "
                        f"of the model's parameters ({largest:.4g})")


def _json_hyperparams(values: dict) -> dict:
    """Hyperparameters as the result file records them (tuples as lists)."""
    return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}


def _remove_if_empty(folder: Path) -> None:
    """A run that wrote nothing leaves no empty setting folder (nor empty parents below output_dir)."""
    for path in (folder, folder.parent, folder.parent.parent):
        try:
            path.rmdir()
        except OSError:
            return


def _check_device(device) -> str:
    """A device string torch understands and this machine has."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigurationError(f"unknown device {device!r}; allowed: cpu, cuda, cuda:N") from None
    if parsed.type not in ("cpu", "cuda", "mps"):
        raise ConfigurationError(f"unsupported device {device!r}; allowed: cpu, cuda, cuda:N")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigurationError(f"device {device!r} asked for, but no CUDA GPU is available")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ConfigurationError(
                f"device {device!r} does not exist; this machine has {torch.cuda.device_count()} GPU(s)")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigurationError(f"device {device!r} asked for, but MPS is not available")
    return str(parsed)


def _check_batch_counts(tproblem) -> None:
    """Every pass needs at least one batch (drop-last batching drops a too-small split)."""
    data = tproblem.data
    splits = ["train", "train_eval", "test"] + (["valid"] if data.has_validation else [])
    for split in splits:
        if data.num_batches(split) < 1:
            size = data.train_eval_size if split == "train_eval" else len(data.splits[split])
            raise ConfigurationError(
                f"batch size {data.batch_size} is larger than the {split} split of "
                f"{tproblem.name} ({size} examples); use a smaller --bs")


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
