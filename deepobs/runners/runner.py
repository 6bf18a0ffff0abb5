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

import contextlib
import math
import platform
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from deepobs.config import DEFAULT_PROTOCOL, check_protocol, default_device
from deepobs.errors import ConfigurationError
from deepobs.registry import get_problem_class
from deepobs.runners import checkpoint, distributed, results
from deepobs.runners.locking import RunLock, lock_path
from deepobs.runners.optimizers import OptimizerSpec
from deepobs.runners import optimizer_setup  # [optfam] every optimizer family
from deepobs.version import __version__


def seed_everything(random_seed: int) -> None:
    """Seed Python, NumPy and torch (initialisation and dropout draw from these)."""
    random.seed(random_seed)
    np.random.seed(random_seed)
    torch.manual_seed(random_seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


#: Largest run seed: NumPy's global generator takes seeds below 2**32.
MAX_SEED = 2 ** 32 - 1
#: Largest ``fake_data`` size (ImageNet's training set is 1.28 million images).
MAX_FAKE_DATA = 10_000_000


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
        base, fallback: a wrapper's base optimizer and a matrix optimizer's fallback,
            each a name or ``(name or OptimizerSpec, hyperparams)`` (see
            :func:`deepobs.runners.optimizer_setup.prepare_optimizer`).
    """

    def __init__(self, optimizer_class: Callable, hyperparameter_names: dict,
                 optimizer_name: Optional[str] = None, *, base=None, fallback=None):
        self._optimizer_class = optimizer_class
        self._hyperparameter_names = dict(hyperparameter_names)
        self._optimizer_name = optimizer_name or getattr(optimizer_class, "__name__", "Optimizer")
        self._quiet = False
        # [optfam] base and fallback optimizers, (OptimizerSpec, hyperparams) or None
        self._base = optimizer_setup.companion(base)
        self._fallback = optimizer_setup.companion(fallback)

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
            fake_data: Optional[int] = None, resume: Optional[bool] = None,
            overwrite: Optional[bool] = None, keep_checkpoints: Optional[bool] = None,
            checkpoint_every: Optional[int] = None, amp: Optional[str] = None,
            compile_mode: Optional[str] = None, channels_last: Optional[bool] = None,
            **training_params) -> Optional[dict]:
        """Run one problem and return the output dict (None when skipped).

        As in DeepOBS, if ``testproblem`` or a required hyperparameter is missing, the
        missing arguments are read from the command line (``sys.argv``); otherwise
        arguments left as None take their defaults: the problem's batch size, epochs
        and weight decay, seed 42, ``./results``, train_log_interval 10, protocol 1.2.
        ``fake_data=N`` trains on N random examples of the real shape (tests, benchmarks).

        Fault tolerance (see :mod:`deepobs.runners.checkpoint`): unless ``no_logs``, the
        run holds a lock file, saves a checkpoint next to its result after every epoch
        (and every ``checkpoint_every`` steps), and removes it once the result is written
        (unless ``keep_checkpoints``). ``resume`` continues from an existing checkpoint;
        without it an existing checkpoint is refused, and so is an existing result,
        unless ``overwrite`` (start again, replace the result), ``skip_if_exists`` or
        ``resume`` (the run is finished: nothing is done, None is returned).
        SIGTERM and SIGINT stop the run after the current step with a checkpoint and
        raise :class:`~deepobs.runners.checkpoint.RunInterrupted`.

        Speed options (off by default; see docs/performance.md): ``amp="bf16"``
        (bfloat16 autocast: changes the numerics, so it is written to the result and
        to the configuration hash), ``compile_mode`` (``torch.compile`` mode, e.g.
        ``"default"`` or ``"reduce-overhead"``), ``channels_last`` (conv nets).
        ``eval_batch_size`` None picks :meth:`TestProblem.auto_eval_batch_size`.
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
            resume = resume if resume is not None else parsed.get("resume")
            overwrite = overwrite if overwrite is not None else parsed.get("overwrite")
            keep_checkpoints = keep_checkpoints if keep_checkpoints is not None else parsed.get("keep_checkpoints")
            checkpoint_every = checkpoint_every if checkpoint_every is not None else parsed.get("checkpoint_every")
            amp = amp or parsed.get("amp")
            compile_mode = compile_mode or parsed.get("compile_mode")
            channels_last = channels_last if channels_last is not None else parsed.get("channels_last")
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
        if random_seed > MAX_SEED:
            raise ConfigurationError(f"random_seed must be at most {MAX_SEED} (NumPy's limit), got {random_seed}")
        train_log_interval = _positive_int("train_log_interval", 10 if train_log_interval is None
                                           else train_log_interval)
        checkpoint_every = _positive_int("checkpoint_every", checkpoint_every or 0, minimum=0)
        if eval_batch_size is not None:
            eval_batch_size = _positive_int("eval_batch_size", eval_batch_size)
        if fake_data is not None:
            fake_data = _positive_int("fake_data", fake_data)
            if fake_data > MAX_FAKE_DATA:
                raise ConfigurationError(f"fake_data must be at most {MAX_FAKE_DATA:,}, got {fake_data}")
        _check_hyperparameter_values(hyperparams, self._hyperparameter_names)
        _check_performance_options(amp, compile_mode)
        _check_name("optimizer_name", self._optimizer_name)
        for name, path in (("output_dir", output_dir), ("data_dir", data_dir), ("tb_log_dir", tb_log_dir)):
            _check_path(name, path)
        device = _check_device(distributed.rank_device(device or default_device()))
        no_logs = no_logs or not distributed.is_main_process()  # under torchrun rank 0 writes
        if weight_decay is not None and (not isinstance(weight_decay, (int, float)) or weight_decay < 0
                                         or not math.isfinite(weight_decay)):
            raise ConfigurationError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        protocol = check_protocol(protocol or DEFAULT_PROTOCOL)
        training_params = self.check_training_params(**training_params)
        self._quiet = bool(quiet) or not distributed.is_main_process()
        output_dir = output_dir or "./results"

        effective_wd = weight_decay if problem_class.default_weight_decay is not None else None
        companions = self._companion_settings()  # [optfam] base/fallback optimizers tell settings apart
        setting = results.setting_name(num_epochs, batch_size, {**hyperparams, **companions}, effective_wd,
                                       training_params, protocol, amp)
        run_folder = Path(output_dir) / testproblem / self._optimizer_name / setting
        if skip_if_exists and results.find_run(run_folder, random_seed):
            self._log(f"skipping {run_folder}: a result for seed {random_seed} exists")
            return None
        if not no_logs:
            results.ensure_writable(run_folder)
        # Reject bad hyperparameter values before any data is loaded.
        optimizer_setup.check_optimizer(self._optimizer_spec(), hyperparams, base=self._base,  # [optfam]
                                        fallback=self._fallback)
        config = checkpoint.run_config(
            testproblem, batch_size, num_epochs, effective_wd, self._optimizer_name,
            _qualified_name(self._optimizer_class), hyperparams, training_params, protocol, fake_data)
        if amp is not None:  # mixed precision changes the numbers: runs must not be merged
            config["amp"] = amp
        if companions:  # [optfam]
            config["companions"] = {k: checkpoint._plain(v) for k, v in companions.items()}

        lock = None if no_logs else RunLock(lock_path(run_folder, random_seed)).acquire()
        signals = contextlib.ExitStack()
        try:
            checkpointer, resume_state = None, None
            if not no_logs:
                existing = results.find_run(run_folder, random_seed)
                if existing is not None and not overwrite:
                    if not keep_checkpoints:  # left by a finished run killed before cleaning up
                        checkpoint.checkpoint_path(run_folder, random_seed).unlink(missing_ok=True)
                    if skip_if_exists or resume:  # resuming a finished run: nothing left to do
                        self._log(f"skipping {run_folder}: a result for seed {random_seed} exists")
                        return None
                    raise checkpoint.ResultExistsError(
                        f"a result of this setting and seed exists: {str(existing)!r}; use --overwrite "
                        "to replace it or --skip_if_exists to skip the run")
                checkpoint.remove_stale_temporaries(run_folder, random_seed)
                checkpointer = checkpoint.Checkpointer(
                    checkpoint.checkpoint_path(run_folder, random_seed), config, checkpoint_every, bool(resume))
                resume_state = checkpointer.load_existing(overwrite=bool(overwrite))

            tproblem = self.create_testproblem(
                testproblem, batch_size, weight_decay, random_seed, data_dir=data_dir,
                protocol=protocol, device=device, eval_batch_size=eval_batch_size,
                fake_data=fake_data)
            tproblem.set_performance_options(amp=amp, channels_last=bool(channels_last),
                                             compile_mode=compile_mode)
            _check_batch_counts(tproblem)
            distributed.prepare(tproblem, random_seed, resuming=resume_state is not None)
            self._checkpointer, self._resume_state = checkpointer, resume_state
            self._run_started = time.perf_counter()
            self._wall_time_before = resume_state["wall_time"] if resume_state else 0.0
            if resume_state:
                self._log(f"resuming from {checkpointer.path} at epoch {resume_state['epoch']}, "
                          f"step {resume_state['step']}")
            # The handlers stay until the result is written: a signal after the last step
            # lets the run finish instead of killing it while it writes.
            signals.enter_context(self._graceful_signals())
            output = self.training(tproblem, hyperparams, num_epochs, bool(print_train_iter),
                                   train_log_interval, bool(tb_log), tb_log_dir, **training_params)
            wall_time = self._wall_time_before + time.perf_counter() - self._run_started
            output = self._post_process_output(
                output, testproblem, batch_size, num_epochs, random_seed, weight_decay, hyperparams,
                train_log_interval, protocol, tproblem, wall_time, fake_data,
                **training_params)
            output["optimizer_setup"] = getattr(self, "_optimizer_record", None)  # [optfam]
            output.update(amp=amp, compile=compile_mode, channels_last=bool(channels_last),
                          eval_batch_size=tproblem.data.eval_batch_size,
                          num_threads=torch.get_num_threads())
            output["config_hash"] = checkpoint.config_hash(config)
            output["git_commit"] = checkpoint.git_commit()
            output["resumed_at"] = list(resume_state["resumed_at"]) + [
                {"epoch": resume_state["epoch"], "step": resume_state["step"]}] if resume_state else []
            if not no_logs:
                path = results.write_json_atomic(run_folder / results.run_file_name(random_seed), output)
                self._log(f"wrote {path}")
                if overwrite:
                    for old in run_folder.glob(f"random_seed__{random_seed}__*.json"):
                        if old != path:
                            old.unlink(missing_ok=True)
                if not keep_checkpoints:
                    checkpointer.remove()
            return output
        finally:
            signals.close()
            self._checkpointer, self._resume_state = None, None
            if lock is not None:
                lock.release()

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
        """The training loop (DeepOBS signature). Returns the per-epoch output lists.

        Within :meth:`run` it resumes from the checkpoint :meth:`run` found, saves one
        after every evaluation (and every ``checkpoint_every`` steps), and stops with a
        checkpoint on SIGTERM/SIGINT.
        """
        optimizer = self._prepare_optimizer(tproblem, hyperparams, num_epochs)  # [optfam]
        scheduler = self.make_scheduler(optimizer, **training_params)
        log = TrainingLog(tproblem)
        writer = _tensorboard_writer(tb_log, tb_log_dir)
        progress = _Progress(tproblem, optimizer, scheduler, log)
        resume_state = getattr(self, "_resume_state", None)
        if resume_state is not None:
            progress.resume_from(resume_state)
        self._progress = progress
        try:
            while True:
                epoch = progress.epoch
                if not progress.evaluated:
                    progress.before_evaluation()
                    optimizer.eval()  # [optfam] schedule-free: evaluate (and checkpoint) at x
                    try:
                        self.evaluate_all(epoch, num_epochs, tproblem, log)
                    except _EvaluationStopped:  # a signal: checkpoint the state before this evaluation
                        progress.undo_evaluation()
                        self._stop_if_signalled()
                    progress.evaluated = True
                    if writer is not None:
                        log.write_tensorboard(writer, epoch)
                if epoch == num_epochs:
                    break
                if progress.step == 0 and progress.pending is None:
                    self._save_checkpoint()
                self._stop_if_signalled()
                optimizer.train()  # [optfam]
                progress.epoch_started = time.perf_counter()
                diverged_step = self.train_epoch(tproblem, optimizer, log, epoch, num_epochs,
                                                 train_log_interval, print_train_iter)
                log.train_times.append(progress.epoch_train_time())
                if scheduler is not None:
                    scheduler.step()
                progress.next_epoch()
                if diverged_step is not None:
                    log.mark_diverged(epoch + 1, diverged_step, num_epochs)
                    self._log(f"diverged in epoch {epoch + 1}, step {diverged_step}: the "
                              f"{log.divergence_reason} are not finite; run stopped")
                    break
        finally:
            self._progress = None
            if writer is not None:
                writer.close()
        return log.output()

    def training_step(self, tproblem, optimizer) -> torch.Tensor:
        """One optimizer step on the next training batch; returns the batch loss.

        ``optimizer`` is a :class:`~deepobs.runners.optimizer_setup.PreparedOptimizer`,
        which makes the step its optimizer needs (closure, create_graph, fallback ...).
        """
        batch = tproblem.get_batch_loss_and_accuracy_func()  # StopIteration at the end
        return optimizer.train_step(batch)  # [optfam]

    # [optfam] begin
    def _optimizer_spec(self) -> OptimizerSpec:
        return OptimizerSpec(self._optimizer_name, self._optimizer_class, self._hyperparameter_names)

    def _companion_settings(self) -> dict:
        """``base_optimizer``, ``base_<hp>`` ... of a wrapper's base and a matrix
        optimizer's fallback, for the setting name and the configuration hash."""
        settings = {}
        for prefix, companion in (("base", self._base), ("fallback", self._fallback)):
            if companion is not None:
                spec, hyperparams = companion
                settings[f"{prefix}_optimizer"] = spec.name
                settings.update({f"{prefix}_{name}": value for name, value in hyperparams.items()})
        return settings

    def _prepare_optimizer(self, tproblem, hyperparams: dict, num_epochs: int):
        """The run's optimizer(s), given what they need (optimizer_setup)."""
        steps_per_epoch = tproblem.data.num_batches("train")
        context = {"num_train_examples": len(tproblem.data.splits["train"]), "steps_per_epoch": steps_per_epoch,
                   "num_epochs": num_epochs, "total_steps": steps_per_epoch * num_epochs,
                   "batch_size": tproblem.data.batch_size}
        optimizer = optimizer_setup.prepare_optimizer(self._optimizer_spec(), tproblem.net, hyperparams,
                                                      context=context, base=self._base, fallback=self._fallback)
        self._optimizer_record = optimizer.record
        rates = sorted({group["lr"] for group in optimizer.param_groups if "lr" in group})
        self._log(f"optimizer {self._optimizer_name} ({optimizer.family}), learning rate "
                  f"{', '.join(f'{r:g}' for r in rates) or '-'}")
        return optimizer
    # [optfam] end

    def train_epoch(self, tproblem, optimizer, log: "TrainingLog", epoch: int, num_epochs: int,
                    train_log_interval: int, print_train_iter: bool) -> Optional[int]:
        """One pass over the training data. Returns the step at which the loss (or a
        parameter, or a gradient) became non-finite, or None; ``log.divergence_reason``
        says which."""
        state = getattr(self, "_progress", None)
        step = state.start_pass() if state is not None else 0
        if state is None:
            tproblem.train_init_op()
        steps = tproblem.data.num_batches("train")
        every_steps = self._checkpointer.every_steps if getattr(self, "_checkpointer", None) else 0
        progress = _progress_bar(steps, f"epoch {epoch + 1}/{num_epochs}", self._quiet, initial=step)
        parameters = float_parameters(tproblem.net)
        across_ranks = distributed.is_distributed()
        loss = None
        while True:
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
                    self._save_checkpoint()
                self._stop_if_signalled()
        if progress is not None:
            progress.close()
        if loss is not None and (step - 1) % train_log_interval:  # (else checked at its log step)
            reason = "loss" if not _finite_loss(loss) else non_finite_state(parameters)
            if reason is not None:
                return log.diverge(reason, step - 1)
        return None

    # ------------------------------------------------------- fault tolerance
    def _save_checkpoint(self, final: bool = False) -> Optional[Path]:
        """Write the checkpoint of the run in progress (nothing without a checkpointer);
        ``final``: the run stops after it (always fsynced)."""
        checkpointer = getattr(self, "_checkpointer", None)
        state = getattr(self, "_progress", None)
        if checkpointer is None or state is None:
            return None
        wall_time = self._wall_time_before + time.perf_counter() - self._run_started
        resume_state = getattr(self, "_resume_state", None)
        resumed_at = []
        if resume_state is not None:
            resumed_at = list(resume_state["resumed_at"]) + [
                {"epoch": resume_state["epoch"], "step": resume_state["step"]}]
        return checkpointer.save(state.snapshot(wall_time, resumed_at), final=final)

    def _stop_if_signalled(self) -> None:
        """After a SIGTERM/SIGINT: write a checkpoint and raise RunInterrupted."""
        signal_number = getattr(self, "_stop_signal", None)
        if signal_number is None:
            return
        path = self._save_checkpoint(final=True)
        self._log(f"stopped by {signal.Signals(signal_number).name}"
                  + (f"; checkpoint {path}" if path else "; no checkpoint (no_logs)"))
        raise checkpoint.RunInterrupted(signal_number, path)

    @contextlib.contextmanager
    def _graceful_signals(self):
        """Turn SIGTERM and SIGINT into a stop after the current step (a second SIGINT
        interrupts at once). Only the main thread can install signal handlers."""
        self._stop_signal = None
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signal_number, frame):
            if signal_number == signal.SIGINT and self._stop_signal is not None:
                raise KeyboardInterrupt
            self._stop_signal = signal_number

        previous = {number: signal.signal(number, handler) for number in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for number, old_handler in previous.items():
                signal.signal(number, old_handler)

    def evaluate_all(self, epoch: int, num_epochs: int, tproblem, log: "TrainingLog") -> None:
        """Evaluate on train_eval, valid (if the protocol has it) and test; log one line."""
        started = time.perf_counter()
        line = [f"epoch {epoch}/{num_epochs}"]
        for phase in log.phases:
            if getattr(self, "_stop_signal", None) is not None and getattr(self, "_progress", None) is not None:
                raise _EvaluationStopped  # evaluations can be long: do not make a pre-emption wait
            loss, accuracy = tproblem.evaluate(phase)
            log.record(phase, loss, accuracy)
            extra_metrics = getattr(tproblem, "extra_metrics", None)
            if extra_metrics is not None:
                log.record_extras(phase, extra_metrics(phase, loss, accuracy))
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
        """``lr_sched_epochs`` and ``lr_sched_factors``."""
        return ("lr_sched_epochs", "lr_sched_factors")

    def check_training_params(self, lr_sched_epochs=None, lr_sched_factors=None, **other) -> dict:
        """Check the schedule: both lists or neither, same length, increasing epochs >= 1, factors >= 0."""
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
        """A per-epoch LambdaLR following the schedule, or None without one."""
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
        self.divergence_reason = "loss"
        #: Per-epoch lists of the problem's extra metrics, by result key.
        self.extra_metrics: dict = {}

    def diverge(self, reason: str, step: int) -> int:
        """Note what became non-finite ("loss", "parameters", "gradients"); returns ``step``."""
        self.divergence_reason = reason
        return step

    def state_dict(self) -> dict:
        """The lists measured so far (for checkpoints)."""
        return {"losses": self.losses, "accuracies": self.accuracies,
                "minibatch_train_losses": self.minibatch_train_losses,
                "train_times": self.train_times, "eval_times": self.eval_times,
                "extra_metrics": self.extra_metrics}

    def load_state_dict(self, state: dict) -> None:
        """Restore the lists saved by :meth:`state_dict` (checkpoints)."""
        for name, value in state.items():
            setattr(self, name, value)

    def record(self, phase: str, loss: float, accuracy: Optional[float]) -> None:
        """Append one evaluation's loss (and accuracy, if any) of ``phase``."""
        self.losses[phase].append(loss)
        if accuracy is not None:
            self.accuracies[phase].append(accuracy)

    def record_extras(self, phase: str, metrics: dict) -> None:
        """Append a problem's extra metrics (``TestProblem.extra_metrics``) of ``phase``."""
        prefix = {"train_eval": "train", "valid": "valid", "test": "test"}[phase]
        for name, value in metrics.items():
            self.extra_metrics.setdefault(f"{prefix}_{name}", []).append(float(value))

    def mark_diverged(self, epoch: int, step: int, num_epochs: int) -> None:
        """Record the divergence and pad every per-epoch list to num_epochs+1 entries with
        its epoch-0 value, as DeepOBS does, so that tools expecting full lists work."""
        self.diverged_at = {"epoch": epoch, "step": step, "reason": self.divergence_reason}
        for lists in (self.losses, self.accuracies, self.extra_metrics):
            for values in lists.values():
                if values:
                    values.extend([values[0]] * (num_epochs + 1 - len(values)))

    def write_tensorboard(self, writer, epoch: int) -> None:
        """Write the last evaluation's losses and accuracies to a TensorBoard writer."""
        for phase in self.phases:
            writer.add_scalar(f"{phase}/loss", self.losses[phase][-1], epoch)
            if self.accuracies[phase]:
                writer.add_scalar(f"{phase}/accuracy", self.accuracies[phase][-1], epoch)

    def output(self) -> dict:
        """The per-epoch lists and divergence record under their result-file keys."""
        key = {"train_eval": "train", "valid": "valid", "test": "test"}
        output = {f"{key[phase]}_losses": self.losses[phase] for phase in self.phases}
        output["minibatch_train_losses"] = self.minibatch_train_losses
        if self.has_accuracy:
            output.update({f"{key[phase]}_accuracies": self.accuracies[phase] for phase in self.phases})
        output.update(self.extra_metrics)
        output["diverged"] = self.diverged_at is not None
        output["diverged_at"] = self.diverged_at
        output["train_times"] = self.train_times
        output["eval_times"] = self.eval_times
        return output


def _progress_bar(total: int, description: str, quiet: bool, initial: int = 0):
    if quiet:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=description, leave=False, disable=None, file=sys.stderr, initial=initial)


class _EvaluationStopped(Exception):
    """A signal arrived during an evaluation; it is abandoned and redone on resume."""


@dataclass
class _Progress:
    """Where a run stands, and the objects a checkpoint is made of.

    ``pending`` holds a checkpoint being resumed until the interrupted training pass
    has been re-drawn: the data order of that pass is drawn again from the generator
    state of its start, the batches already trained on are skipped, and only then are
    the random streams set to their state at the checkpoint.
    """

    tproblem: object
    optimizer: object
    scheduler: object
    log: TrainingLog
    epoch: int = 0
    step: int = 0
    evaluated: bool = False
    epoch_started: float = 0.0
    train_time_before: float = 0.0
    pass_start_data: Optional[dict] = None
    pending: Optional[dict] = field(default=None, repr=False)

    def resume_from(self, state: dict) -> None:
        """Load model, optimizer, scheduler and lists; streams follow in :meth:`start_pass`."""
        try:
            self.tproblem.net.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state["scheduler"] is not None:
                self.scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, KeyError, ValueError, TypeError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise checkpoint.CheckpointError(
                f"the checkpoint does not fit this run's model or optimizer ({first_line}); "
                "use --overwrite to start again") from None
        self.log.load_state_dict(state["log"])
        self.epoch, self.step, self.evaluated = state["epoch"], state["step"], state["evaluated"]
        self.train_time_before = state["epoch_train_time"]
        self.pending = state
        if not self.evaluated:  # stopped before (or during) an evaluation: redo it from here
            self._restore_streams(state)
            self.pending = None

    def before_evaluation(self) -> None:
        """Remember the streams and list lengths, in case a signal stops the evaluation."""
        log = self.log
        self._before_evaluation = {
            "rng": checkpoint.capture_rng_state(), "data": self.tproblem.data.state_dict(),
            "problem": self.tproblem.state_dict(),
            "lengths": {name: {key: len(values) for key, values in lists.items()}
                        for name, lists in (("losses", log.losses), ("accuracies", log.accuracies),
                                            ("extra_metrics", getattr(log, "extra_metrics", {})))},
        }

    def undo_evaluation(self) -> None:
        """Return to the state before the stopped evaluation (it is redone on resume)."""
        saved = self._before_evaluation
        self._restore_streams(saved)
        for name, lengths in saved["lengths"].items():
            lists = getattr(self.log, name)
            for key in list(lists):
                del lists[key][lengths.get(key, 0):]
                if key not in lengths and name == "extra_metrics":
                    del lists[key]
        self.evaluated = False

    def start_pass(self) -> int:
        """Start (or re-enter) the training pass of this epoch; returns its first step."""
        data = self.tproblem.data
        pending, self.pending = self.pending, None
        if pending is not None:
            data.load_state_dict(pending["data_pass_start"])
        self.pass_start_data = data.state_dict()
        self.tproblem.train_init_op()
        if pending is None:
            return 0
        for _ in range(pending["step"]):  # re-draw the batches trained on before the stop
            self.tproblem.get_batch_loss_and_accuracy_func()
        self._restore_streams(pending)
        return pending["step"]

    def _restore_streams(self, state: dict) -> None:
        self.tproblem.data.load_state_dict(state["data"])
        self.tproblem.load_state_dict(state["problem"])
        checkpoint.restore_rng_state(state["rng"])

    def epoch_train_time(self) -> float:
        return self.train_time_before + time.perf_counter() - self.epoch_started

    def next_epoch(self) -> None:
        self.epoch, self.step, self.evaluated, self.train_time_before = self.epoch + 1, 0, False, 0.0

    def snapshot(self, wall_time: float, resumed_at: list) -> dict:
        """Everything a checkpoint holds (tensors and plain containers)."""
        data_now = self.tproblem.data.state_dict()
        mid_pass = self.step > 0
        return {
            "epoch": self.epoch, "step": self.step, "evaluated": self.evaluated,
            "model": self.tproblem.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "log": self.log.state_dict(),
            "rng": checkpoint.capture_rng_state(),
            "data": data_now,
            "data_pass_start": self.pass_start_data if mid_pass else data_now,
            "problem": self.tproblem.state_dict(),
            "epoch_train_time": self.epoch_train_time() if mid_pass else 0.0,
            "wall_time": wall_time,
            "resumed_at": resumed_at,
        }


def _finite_loss(loss: torch.Tensor) -> bool:
    """Whether every element of ``loss`` (a scalar from the default step) is finite."""
    if loss.numel() == 1:
        return math.isfinite(loss.item())
    return bool(torch.isfinite(loss).all())


def non_finite_state(net) -> Optional[str]:
    """"gradients" or "parameters" if one of them holds a NaN or an infinity, else None.

    ``net`` is a module or a list of its parameters (a runner lists them once per pass:
    walking the module tree costs more than the test for small models). First a cheap
    screen over all gradients and parameters at once, with one device sync: their sums
    (on a CPU; 2-norms elsewhere) are non-finite if an element is. Only a non-finite
    screen (a NaN or an infinity, or an overflow of huge finite values) is confirmed
    per group with the exact max-abs norms, which on a CPU are some 50× slower than a
    sum (7.5 ms for mnist_mlp's 1.3 M parameters).
    """
    parameters = float_parameters(net) if isinstance(net, torch.nn.Module) else net
    gradients = [p.grad for p in parameters if p.grad is not None and p.grad.is_floating_point()]
    with torch.no_grad():
        if _screen_finite(gradients + parameters):
            return None
        for reason, tensors in (("gradients", gradients), ("parameters", parameters)):
            if tensors and not _all_finite(tensors):
                return reason
    return None


def float_parameters(net: torch.nn.Module) -> list:
    """The non-empty floating-point parameters of ``net``."""
    return [p for p in net.parameters() if p.is_floating_point() and p.numel()]


def _screen_finite(tensors: list) -> bool:
    """True if every element is finite; False also when a sum merely overflows."""
    if not tensors:
        return True
    if tensors[0].device.type == "cpu":  # Python floats: cheaper than more dispatches
        return math.isfinite(sum(t.sum().item() for t in tensors))
    try:
        norms = torch._foreach_norm(tensors, ord=2)  # one fused kernel on an accelerator
    except (RuntimeError, TypeError, AttributeError):  # sparse or odd tensors
        norms = [t.norm() for t in tensors]
    return math.isfinite(float(torch.stack([n.float() for n in norms]).sum()))


def _all_finite(tensors: list) -> bool:
    """Exact: every element of every tensor is finite."""
    try:
        norms = torch._foreach_norm(tensors, ord=math.inf)
    except (RuntimeError, TypeError, AttributeError):  # sparse or odd tensors
        norms = [t.abs().max() for t in tensors]
    return bool(torch.isfinite(torch.stack([n.float() for n in norms])).all())


def _check_hyperparameter_values(hyperparams: dict, declared: Optional[dict] = None) -> None:
    """Hyperparameter values must be finite numbers, booleans or safe strings: they
    become part of folder names and of the configuration hash. [optfam] An infinite
    value is accepted where the optimizer's own default is infinite (Prodigy's
    ``growth_rate``)."""
    for name, value in hyperparams.items():
        values = value if isinstance(value, (tuple, list)) else (value,)
        default = (declared or {}).get(name, {}).get("default")
        defaults = default if isinstance(default, (tuple, list)) else (default,)
        infinite_default = any(isinstance(d, float) and math.isinf(d) for d in defaults)
        for item in values:
            if isinstance(item, float) and (math.isnan(item) or (math.isinf(item) and not infinite_default)):
                raise ConfigurationError(f"hyperparameter {name} must be finite, got {value!r}")
            if isinstance(item, str):
                _check_name(f"hyperparameter {name}", item, allow_empty=True)


def _check_performance_options(amp, compile_mode) -> None:
    """``amp`` and ``compile_mode`` name known modes (before any data is loaded)."""
    from deepobs.testproblems.base import AMP_DTYPES, COMPILE_MODES

    if amp is not None and amp not in AMP_DTYPES:
        raise ConfigurationError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {amp!r}")
    if compile_mode is not None and compile_mode not in COMPILE_MODES:
        raise ConfigurationError(
            f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {compile_mode!r}")


def _check_name(what: str, value: str, allow_empty: bool = False) -> None:
    """A name that becomes a folder name: non-empty, no path separator, no control character."""
    if (not isinstance(value, str) or (not value.strip() and not allow_empty) or value in (".", "..")
            or "/" in value or "\\" in value or any(ord(c) < 32 for c in value) or len(value) > 200):
        raise ConfigurationError(
            f"{what} {value!r} is not usable as a folder name (non-empty, at most 200 characters, "
            "no '/', '\\' or control characters)")


def _check_path(what: str, value) -> None:
    if value is None:
        return
    if not isinstance(value, (str, Path)) or "\0" in str(value) or not str(value).strip():
        raise ConfigurationError(f"{what} must be a non-empty path without NUL characters, got {value!r}")


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
