"""One run, described once: :class:`RunConfig` owns every run option.

A run option is one field of :class:`RunConfig`. Its metadata says everything else
about it: the command-line flags of ``deepobs-run``, the help line, and whether the
option changes the numbers (``identity``: part of the setting, the configuration hash
and the checkpoint binding). The CLI parser, the argv round trip
(:meth:`RunConfig.to_argv` / :func:`parse_run_argv`), the validation and the hash are
all generated from the fields, so a new option is one edit: a field.

The configuration as given keeps ``None`` for "the problem's default";
:meth:`RunConfig.resolved` fills the defaults (problem batch size and epochs, the
optimizer's hyperparameter defaults, schedule parameters) and checks everything that
needs the problem and the optimizer. The runner, the CLI and the tuner all build this
object; the training loop receives the resolved one.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from deepobs.config import PROTOCOLS
from deepobs.errors import ConfigurationError, one_line
from deepobs.runners.results import format_value

#: Largest run seed: NumPy's global generator takes seeds below 2**32.
MAX_SEED = 2 ** 32 - 1
#: Largest ``fake_data`` size (ImageNet's training set is 1.28 million images).
MAX_FAKE_DATA = 10_000_000
#: Largest number of epochs (a typo such as -N 1e20 is refused, not run for ever).
MAX_EPOCHS = 1_000_000
#: File systems limit a name to 255 bytes; longer setting names are shortened with a hash.
MAX_NAME_BYTES = 255


def option(flags=(), help="", identity=False, group="run", **argparse_kwargs):
    """Field metadata of one run option (see the module docstring)."""
    return {"flags": tuple(flags), "help": help, "identity": identity, "group": group,
            "argparse": argparse_kwargs}


def _field(default, *flags, help="", identity=False, group="run", factory=None, **argparse_kwargs):
    meta = option(flags, help, identity, group, **argparse_kwargs)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunConfig:
    """Everything that describes one run of one optimizer on one problem with one seed.

    Fields left ``None`` take their defaults in :meth:`resolved`. Dict fields are
    copied on creation and must not be mutated.
    """

    testproblem: str = _field(None, help="problem name (deepobs-run --list shows them)", identity=True)
    optimizer: Optional[str] = _field(
        None, "--optimizer", help="deepobs name, torch.optim class, pytorch_optimizer name or dotted path")
    hyperparams: dict = _field(None, factory=dict, identity=True)
    random_seed: int = _field(42, "-r", "--random_seed", type=int, help="run seed (default 42)", identity=True)
    output_dir: str = _field("./results", "--output_dir", help="results folder (default ./results)")
    batch_size: Optional[int] = _field(None, "--bs", "--batch_size", type=int, identity=True,
                                       help="mini-batch size (default: the problem's)")
    num_epochs: Optional[int] = _field(None, "-N", "--num_epochs", type=int, identity=True,
                                       help="epochs (default: the problem's)")
    weight_decay: Optional[float] = _field(None, "--wd", "--weight_decay", type=float, identity=True,
                                           help="L2 factor of the problem (default: the problem's)")
    protocol: str = _field("1.2", "--protocol", choices=PROTOCOLS, identity=True,
                           help="1.2: held-out validation split (default); 1.1: the published baselines' setting")
    fake_data: Optional[int] = _field(None, "--fake_data", type=int, metavar="N", identity=True,
                                      help="train on N random examples of the real shape (tests, benchmarks)")
    data_dir: Optional[str] = _field(None, "--data_dir",
                                     help="data folder (default $DEEPOBS_DATA_DIR or ./data_deepobs)")
    device: Optional[str] = _field(None, "--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    eval_batch_size: Optional[int] = _field(None, "--eval_batch_size", type=int,
                                            help="batch size of evaluation passes (same results, faster)")
    train_log_interval: int = _field(10, "--train_log_interval", type=int,
                                     help="log the mini-batch loss every k steps (default 10)")
    optimizer_name: Optional[str] = _field(None, "--optimizer_name",
                                           help="name written to the results (default: the optimizer's)")
    # ------------------------------------------------------------ schedule
    lr_schedule: str = _field("constant", "--lr_schedule", identity=True, group="schedule",
                              help="learning-rate schedule, per step (default constant; see docs/schedules.md)")
    schedule_params: dict = _field(None, factory=dict, identity=True, group="schedule")
    # ------------------------------------------------- optimizer families
    base_optimizer: Optional[str] = _field(None, "--base_optimizer", identity=True, group="family",
                                           help="the optimizer a wrapper (SAM, Lookahead, ...) wraps")
    base_hyperparams: dict = _field(None, factory=dict, identity=True, group="family")
    fallback_optimizer: Optional[str] = _field(
        None, "--fallback_optimizer", identity=True, group="family",
        help="optimizer of the parameters a matrix optimizer (Muon, ...) does not take (default AdamW)")
    fallback_hyperparams: dict = _field(None, factory=dict, identity=True, group="family")
    # ------------------------------------------------------------- logging
    print_train_iter: bool = _field(False, "--print_train_iter", action="store_true",
                                    help="print the logged mini-batch losses")
    tb_log: bool = _field(False, "--tb_log", action="store_true", help="log to TensorBoard")
    tb_log_dir: Optional[str] = _field(None, "--tb_log_dir", help="TensorBoard folder")
    no_logs: bool = _field(False, "--no_logs", action="store_true", help="write no result file")
    quiet: bool = _field(False, "-q", "--quiet", action="store_true", help="no progress bar or log lines")
    threads: Optional[int] = _field(None, "--threads", type=int, metavar="N",
                                    help="CPU threads of torch (default: chosen for this machine)")
    # --------------------------------------------------- fault tolerance
    skip_if_exists: bool = _field(False, "--skip_if_exists", action="store_true", group="faults",
                                  help="do nothing if a result of this setting and seed exists")
    resume: bool = _field(False, "--resume", action="store_true", group="faults",
                          help="continue an interrupted run from its checkpoint")
    overwrite: bool = _field(False, "--overwrite", action="store_true", group="faults",
                             help="start again even if a checkpoint or a result of this seed exists; "
                                  "the old result is replaced once the new one is written")
    keep_checkpoints: bool = _field(False, "--keep_checkpoints", action="store_true", group="faults",
                                    help="keep the checkpoint after the run has finished")
    checkpoint_every: int = _field(0, "--checkpoint_every", type=int, metavar="K", group="faults",
                                   help="also checkpoint every K training steps (default 0: after every "
                                        "epoch only)")
    # --------------------------------------------------------------- speed
    amp: Optional[str] = _field(None, "--amp", choices=["bf16"], identity=True, group="speed",
                                help="mixed precision (bfloat16 autocast); changes the numerics, "
                                     "recorded in the result")
    compile_mode: Optional[str] = _field(
        None, "--compile", nargs="?", const="default", group="speed",
        choices=["default", "reduce-overhead", "max-autotune"],
        help="torch.compile the model (mode default; reduce-overhead uses CUDA graphs)")
    channels_last: bool = _field(False, "--channels_last", action="store_true", group="speed",
                                 help="channels-last memory layout (conv nets)")

    def __post_init__(self):
        for item in dataclasses.fields(self):  # None means "the default" for every option
            if getattr(self, item.name) is None and item.default not in (None, dataclasses.MISSING):
                object.__setattr__(self, item.name, item.default)
        for name in ("hyperparams", "schedule_params", "base_hyperparams", "fallback_hyperparams"):
            object.__setattr__(self, name, dict(getattr(self, name) or {}))
        _check_fields(self)

    # ------------------------------------------------------------ helpers
    def replace(self, **changes) -> "RunConfig":
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        """A configuration from a dict of field values; unknown keys are a one-line error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigurationError(f"unknown run option(s) {', '.join(unknown)}; allowed: "
                                     f"{', '.join(sorted(names))}")
        return cls(**values)

    def to_dict(self) -> dict:
        """Every field as plain data."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    # ---------------------------------------------------------- resolution
    def resolved(self, optimizer_spec=None) -> "RunConfig":
        """The configuration with every default filled in and checked against the problem
        and the optimizer (``optimizer_spec``: an OptimizerSpec; default: looked up from
        :attr:`optimizer`)."""
        from deepobs.registry import get_problem_class
        from deepobs.runners import schedules
        from deepobs.runners.optimizers import resolve_optimizer

        problem_class = get_problem_class(self.testproblem)
        spec = optimizer_spec or resolve_optimizer(self._required("optimizer"))
        batch_size = self.batch_size if self.batch_size is not None else problem_class.default_batch_size
        num_epochs = self.num_epochs if self.num_epochs is not None else problem_class.default_num_epochs
        if batch_size is None or num_epochs is None:
            raise ConfigurationError(f"{self.testproblem} has no default batch size / epochs; give --bs and -N")
        weight_decay = self.weight_decay if problem_class.default_weight_decay is not None else None
        hyperparams = complete_hyperparams(spec, self.hyperparams, "")
        base = fallback = {}
        if self.base_optimizer is not None:
            base = complete_hyperparams(resolve_optimizer(self.base_optimizer), self.base_hyperparams, "base_")
        elif self.base_hyperparams:
            raise ConfigurationError("base optimizer hyperparameters given without --base_optimizer")
        if self.fallback_optimizer is not None:
            fallback = complete_hyperparams(resolve_optimizer(self.fallback_optimizer),
                                            self.fallback_hyperparams, "fallback_")
        elif self.fallback_hyperparams:
            raise ConfigurationError("fallback optimizer hyperparameters given without --fallback_optimizer")
        schedule_params = schedules.check_schedule(self.lr_schedule, self.schedule_params, num_epochs)
        return self.replace(batch_size=batch_size, num_epochs=num_epochs, weight_decay=weight_decay,
                            hyperparams=hyperparams, base_hyperparams=base, fallback_hyperparams=fallback,
                            schedule_params=schedule_params,
                            optimizer_name=self.optimizer_name or spec.name)

    def _required(self, name: str):
        value = getattr(self, name)
        if value is None:
            raise ConfigurationError(f"{name} is required")
        return value

    # ------------------------------------------------------------ identity
    def identity(self) -> dict:
        """The options that determine the numbers, seed included (plain, JSON-able)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.metadata["identity"]} | {"optimizer_name": self.optimizer_name}

    def config_hash(self) -> str:
        """16 hex digits of SHA-256 over the identity without the seed: one per setting."""
        identity = self.identity()
        identity.pop("random_seed")
        return _hash(identity)

    def training_params(self) -> dict:
        """The result file's ``training_params``: the schedule and its parameters
        (DeepOBS wrote ``lr_sched_epochs``/``lr_sched_factors`` here; they stay there)."""
        if self.lr_schedule == "constant":
            return {}
        return {"lr_schedule": self.lr_schedule, **{k: _plain(v) for k, v in self.schedule_params.items()}}

    def setting_name(self) -> str:
        """The setting folder: DeepOBS's v1.2 name when it is clean and short enough,
        else a readable prefix and a hash of the configuration (see :func:`setting_name`)."""
        return setting_name(self)

    def run_folder(self) -> Path:
        """``<output_dir>/<testproblem>/<optimizer_name>/<setting>`` (resolved configurations);
        every part passes the one name gate and the folder stays inside ``output_dir``."""
        from deepobs.safe_names import join_under

        return join_under(self.output_dir, self.testproblem, self.optimizer_name, self.setting_name())

    def find_result(self) -> Optional[Path]:
        """This run's result file, if it exists (resolved configurations)."""
        from deepobs.runners import results

        return results.find_run(self.run_folder(), self.random_seed)

    # ----------------------------------------------------------------- argv
    def to_argv(self) -> list:
        """The ``deepobs-run`` arguments of this configuration; parsed back by
        :func:`parse_run_argv` they give an equal configuration (given as it is)."""
        words = [self._required("testproblem")]
        if self.optimizer is not None:
            words += ["--optimizer", self.optimizer]
        for name in sorted(self.hyperparams):  # the optimizer's flags first, as people write them
            words += _hyperparameter_words(hyperparameter_flag(name), self.hyperparams[name])
        defaults = RunConfig(testproblem=self.testproblem)
        for item in dataclasses.fields(self):
            flags, value = item.metadata["flags"], getattr(self, item.name)
            if not flags or item.name == "optimizer" or value == getattr(defaults, item.name):
                continue
            if item.metadata["argparse"].get("action") == "store_true":
                words.append(flags[-1])
            else:
                words += [flags[-1], _argv_value(value)]
        for kind in ("bhp", "fhp"):
            values = getattr(self, _HYPERPARAMETER_KINDS[kind][0])
            for name in sorted(values):
                words += _hyperparameter_words(_flag_of(kind, name), values[name])
        for name in sorted(self.schedule_params):
            words += _hyperparameter_words(f"--{name}", self.schedule_params[name])
        return words


# ------------------------------------------------------------------- validation
def _check_fields(config: RunConfig) -> None:
    """Field-wise checks that need neither the problem nor the optimizer."""
    from deepobs.runners import schedules
    from deepobs.safe_names import output_path, path_component

    if config.testproblem is not None:
        path_component(config.testproblem, "problem")
    for name in ("optimizer_name",):
        if getattr(config, name) is not None:
            path_component(getattr(config, name), name)
    _integer(config, "random_seed", 0, MAX_SEED, "NumPy's limit")
    _integer(config, "batch_size", 1)
    _integer(config, "num_epochs", 0, MAX_EPOCHS)
    _integer(config, "train_log_interval", 1)
    _integer(config, "checkpoint_every", 0)
    _integer(config, "eval_batch_size", 1)
    _integer(config, "fake_data", 1, MAX_FAKE_DATA)
    _integer(config, "threads", 1, 4096)
    wd = config.weight_decay
    if wd is not None and (isinstance(wd, bool) or not isinstance(wd, (int, float))
                           or not math.isfinite(wd) or wd < 0):
        raise ConfigurationError(f"weight_decay must be a finite number >= 0, got {wd!r}")
    if config.protocol not in PROTOCOLS:
        raise ConfigurationError(f"unknown protocol {config.protocol!r}; allowed: {', '.join(PROTOCOLS)}")
    for item in dataclasses.fields(config):
        choices = item.metadata["argparse"].get("choices")
        value = getattr(config, item.name)
        if choices and value is not None and value not in choices:
            raise ConfigurationError(f"{item.name} must be one of {', '.join(choices)}, got {value!r}")
    if config.lr_schedule not in schedules.SCHEDULES:
        raise ConfigurationError(f"unknown learning-rate schedule {config.lr_schedule!r}; allowed: "
                                 f"{', '.join(schedules.SCHEDULES)}")
    for name in ("output_dir", "data_dir", "tb_log_dir"):
        if getattr(config, name) is not None:
            output_path(getattr(config, name), name)
    for name in ("hyperparams", "base_hyperparams", "fallback_hyperparams"):
        for key, value in getattr(config, name).items():
            check_hyperparameter_value(key, value)


def _integer(config, name: str, minimum: int, maximum: Optional[int] = None, why: str = "") -> None:
    value = getattr(config, name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum):
        bound = f" and at most {maximum:,}" + (f" ({why})" if why else "") if maximum is not None else ""
        raise ConfigurationError(f"{name} must be an integer >= {minimum}{bound}, got {value!r}")


def check_hyperparameter_value(name: str, value) -> None:
    """Hyperparameter values are plain data: numbers (inf allowed: optimizers use it as a
    default), booleans, None, strings, tuples of those. NaN is refused."""
    if isinstance(value, (tuple, list)):
        for item in value:
            check_hyperparameter_value(name, item)
    elif isinstance(value, float) and math.isnan(value):
        raise ConfigurationError(f"hyperparameter {name} must be a finite number or ±inf, got nan")
    elif isinstance(value, str) and any(ord(c) < 32 for c in value):
        raise ConfigurationError(f"hyperparameter {name} must not hold control characters, got {value!r}")
    elif not isinstance(value, (bool, int, float, str, type(None))):
        raise ConfigurationError(
            f"hyperparameter {name} must be a number, boolean, string, None or a tuple of those, "
            f"got {type(value).__name__}")


def complete_hyperparams(spec, given: dict, prefix: str) -> dict:
    """``given`` checked against the optimizer's declared hyperparameters, with their
    defaults filled in; a missing required one or an unknown name is a one-line error."""
    declared = spec.hyperparameters
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConfigurationError(
            f"unknown hyperparameter(s) {', '.join(prefix + u for u in unknown)} for {spec.name}; "
            f"allowed: {', '.join(prefix + d for d in sorted(declared)) or 'none'}")
    values = {name: entry["default"] for name, entry in declared.items() if "default" in entry}
    for name, value in given.items():  # an infinity only where the optimizer's own default is one
        if _has_infinity(value) and not _has_infinity(declared[name].get("default")):
            raise ConfigurationError(f"hyperparameter {prefix}{name} must be finite, got {value!r}")
    values.update(given)
    missing = [name for name in declared if name not in values]
    if missing:
        flags = ", ".join(hyperparameter_flag(prefix + m) for m in missing)
        raise ConfigurationError(f"missing hyperparameter(s) for {spec.name}: {flags}")
    for name, value in values.items():
        check_hyperparameter_value(prefix + name, value)
    return {name: values[name] for name in declared if name in values}


def _has_infinity(value) -> bool:
    items = value if isinstance(value, (tuple, list)) else (value,)
    return any(isinstance(item, float) and math.isinf(item) for item in items)


# --------------------------------------------------------------- setting names
_CLEAN_VALUE = re.compile(r"[A-Za-z0-9.+-]+(_[A-Za-z0-9.+-]+)*")


def setting_name(config: RunConfig) -> str:
    """The setting folder name of a resolved configuration.

    DeepOBS v1.2's name: ``num_epochs__N__batch_size__B`` [``__weight_decay__wd``],
    every hyperparameter ``name__value`` in alphabetical order, then our additions
    when they differ from the default (schedule and its parameters, base and fallback
    optimizers, ``protocol__1.1``, ``amp__bf16``). When every name and value is clean
    (letters, digits, ``.+-`` and single underscores, never ``__``) and the whole fits in
    255 bytes, that is the name: it is then injective and equal to DeepOBS's. Otherwise
    the clean parts are kept as a readable prefix and ``__cfg__<hash>`` is appended, the
    hash of the full configuration (which the result file holds in full).
    """
    parts = [("num_epochs", config.num_epochs), ("batch_size", config.batch_size)]
    if config.weight_decay is not None:
        parts.append(("weight_decay", float(config.weight_decay)))
    parts += sorted(config.hyperparams.items())
    if config.lr_schedule != "constant":
        parts.append(("lr_schedule", config.lr_schedule))
        parts += sorted(config.schedule_params.items())
    for prefix, optimizer, values in (("base", config.base_optimizer, config.base_hyperparams),
                                      ("fallback", config.fallback_optimizer, config.fallback_hyperparams)):
        if optimizer is not None:
            parts.append((f"{prefix}_optimizer", optimizer))
            parts += [(f"{prefix}_{name}", value) for name, value in sorted(values.items())]
    if config.protocol != "1.2":
        parts.append(("protocol", config.protocol))
    if config.amp is not None:
        parts.append(("amp", config.amp))
    pieces, clean = [], True
    for name, value in parts:
        text = format_value(value)
        if _CLEAN_VALUE.fullmatch(name) and _CLEAN_VALUE.fullmatch(text):
            pieces.append(f"{name}__{text}")
        else:
            clean = False
    name = "__".join(pieces)
    if clean and len(name.encode()) <= MAX_NAME_BYTES:
        return name
    suffix = f"__cfg__{config.config_hash()}"
    budget = MAX_NAME_BYTES - len(suffix)
    while len(name.encode()) > budget:
        name = name.rsplit("__", 2)[0] if name.count("__") >= 2 else name[:budget]
    return name + suffix


def _hash(data: dict) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value):
    """JSON-able plain data (tuples become lists; NumPy scalars Python numbers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


# ------------------------------------------------------------------ command line
@functools.lru_cache(maxsize=None)
def runner_flag_names() -> frozenset:
    """Names taken by run options, schedule parameters and the command's own flags; an
    optimizer hyperparameter of such a name gets the flag ``--optimizer_<name>``
    (e.g. AdamW's ``--optimizer_weight_decay``)."""
    names = {"testproblem", "list", "verbose", "list_optimizers", "help", "compile"}
    for item in dataclasses.fields(RunConfig):
        names.add(item.name)
        names.update(flag.lstrip("-") for flag in item.metadata["flags"])
    from deepobs.runners import schedules

    return frozenset(names | set(schedules.all_schedule_parameters()))


def hyperparameter_flag(name: str) -> str:
    """The command-line flag of an optimizer hyperparameter: ``--name``, or
    ``--optimizer_name`` when a run option or schedule parameter has that name."""
    return f"--optimizer_{name}" if name in runner_flag_names() else f"--{name}"


def _argv_value(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _hyperparameter_words(flag: str, value) -> list:
    if isinstance(value, bool):
        return [flag if value else "--no-" + flag[2:]]
    if isinstance(value, (tuple, list)):
        return [flag, *(_argv_value(v) for v in value)]
    if value is None:
        return [flag, "None"]
    return [flag, _argv_value(value)]


#: Destination prefixes of hyperparameter flags, and their command-line prefixes.
_HYPERPARAMETER_KINDS = {"hp": ("hyperparams", ""), "bhp": ("base_hyperparams", "--base_"),
                         "fhp": ("fallback_hyperparams", "--fallback_")}


def _flag_of(kind: str, name: str) -> str:
    return hyperparameter_flag(name) if kind == "hp" else f"{_HYPERPARAMETER_KINDS[kind][1]}{name}"


def _add_hyperparameter_flags(group, hyperparameters: dict, kind: str) -> None:
    """One flag per hyperparameter; values are read by the optimizers module's one parser
    (``inf``, ``None``, literals, ``--betas 0.9 0.99`` or ``--betas "(0.9, 0.99)"``)."""
    for name, entry in hyperparameters.items():
        value_type = entry.get("type", float)
        kwargs = dict(dest=f"{kind}__{name}", default=None,
                      help=f"default {entry['default']!r}" if "default" in entry else "required")
        if value_type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif value_type is tuple:
            kwargs.update(nargs="+", action=_JoinedValue, metavar=name.upper(), entry=entry)
        else:
            kwargs["type"] = _value_parser(entry)
        group.add_argument(_flag_of(kind, name), **kwargs)


def _value_parser(entry: dict):
    """An argparse ``type`` reading one hyperparameter (its error names the expected type)."""
    from deepobs.runners.optimizers import parse_hyperparameter_value

    def parse(text: str):
        try:
            return parse_hyperparameter_value(text, entry)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    parse.__name__ = getattr(entry.get("type"), "__name__", "literal")
    return parse


class _JoinedValue(argparse.Action):
    """A tuple hyperparameter given as several words or one literal."""

    def __init__(self, *args, entry: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.entry = entry

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, _value_parser(self.entry)(" ".join(values)))


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a single line: ``prog: error: message``."""

    def error(self, message):
        """Exit with status 2 and one line naming the bad argument (and close matches)."""
        if "unrecognized arguments" in message:
            message += self._suggestions(message)
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")

    def _suggestions(self, message: str) -> str:
        from deepobs.registry import close_matches

        known = [option for action in self._actions for option in action.option_strings]
        wrong = [word for word in message.split(":", 1)[1].split() if word.startswith("-")]
        hints = [close_matches(word.split("=")[0], known) for word in wrong]
        return "".join(hint for hint in hints if hint)


EPILOG = """example: deepobs-run quadratic_deep --optimizer sgd --lr 0.0158 -N 100

exit status: 0 done or skipped, 1 failed (e.g. disk full; earlier files intact), 2 bad input,
3 the same setting and seed is running elsewhere, 75 stopped by SIGTERM/SIGINT with a checkpoint
(rerun with --resume), 130 stopped without one"""

_GROUP_TITLES = {
    "run": None, "schedule": "learning-rate schedule (docs/schedules.md)",
    "family": "wrappers and matrix optimizers", "faults": "interruption and resumption",
    "speed": "speed options (off by default; see docs/performance.md)",
}


def build_run_parser(hyperparameters: dict, optimizer_flag: bool = True, base: Optional[dict] = None,
                     fallback: Optional[dict] = None) -> OneLineParser:
    """The ``deepobs-run`` parser: one flag per run option (from the RunConfig fields), per
    optimizer hyperparameter, per schedule parameter and per base/fallback hyperparameter.
    Every default is None ("not given"), so that the namespace says what was given."""
    from deepobs.runners import schedules

    parser = OneLineParser(
        prog="deepobs-run", allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train one optimizer on one DeepOBS test problem and write a result file.",
        epilog=EPILOG)
    parser.add_argument("testproblem", help="problem name (deepobs-run --list shows them)")
    groups = {}
    for item in dataclasses.fields(RunConfig):
        meta = item.metadata
        if not meta["flags"] or (item.name in ("optimizer", "optimizer_name") and not optimizer_flag):
            continue
        if meta["group"] not in groups:
            title = _GROUP_TITLES[meta["group"]]
            groups[meta["group"]] = parser.add_argument_group(title) if title else parser
        kwargs = dict(meta["argparse"])
        if item.name == "lr_schedule":
            kwargs["choices"] = list(schedules.SCHEDULES)
        if kwargs.get("action") == "store_true":
            kwargs["default"] = None
        groups[meta["group"]].add_argument(*meta["flags"], dest=item.name, help=meta["help"],
                                           **({"default": None} | kwargs))
    schedule_group = groups.get("schedule", parser)
    for name, entry in schedules.all_schedule_parameters().items():
        kwargs = dict(dest=f"sp__{name}", default=None, help=entry.get("help", ""),
                      type=_value_parser(entry))
        if entry.get("nargs"):
            kwargs["nargs"] = entry["nargs"]
        schedule_group.add_argument(f"--{name}", **kwargs)
    _add_hyperparameter_flags(parser.add_argument_group("optimizer hyperparameters"), hyperparameters, "hp")
    if base:
        _add_hyperparameter_flags(parser.add_argument_group("base optimizer hyperparameters"), base, "bhp")
    if fallback:
        _add_hyperparameter_flags(parser.add_argument_group("fallback optimizer hyperparameters"),
                                  fallback, "fhp")
    return parser


def namespace_to_config(namespace: dict, given: Optional[RunConfig] = None) -> RunConfig:
    """A RunConfig from a parsed namespace; options not given keep ``given``'s values."""
    values = given.to_dict() if given is not None else {}
    collected = {field_name: {} for field_name, _ in _HYPERPARAMETER_KINDS.values()}
    collected["schedule_params"] = {}
    for key, value in namespace.items():
        if value is None:
            continue
        kind, _, name = key.partition("__")
        if kind in _HYPERPARAMETER_KINDS:
            collected[_HYPERPARAMETER_KINDS[kind][0]][name] = tuple(value) if isinstance(value, list) else value
        elif kind == "sp":
            collected["schedule_params"][name] = list(value) if isinstance(value, (list, tuple)) else value
        else:
            values[key] = value
    for field_name, given_values in collected.items():
        values[field_name] = {**values.get(field_name, {}), **given_values}
    if collected["schedule_params"].keys() & {"lr_sched_epochs", "lr_sched_factors"} and values.get(
            "lr_schedule", "constant") == "constant":
        values["lr_schedule"] = "step"  # DeepOBS's flags alone select its step schedule
    return RunConfig.from_dict(values)


def parse_run_argv(argv: list, optimizer_spec=None) -> RunConfig:
    """Parse ``deepobs-run`` arguments into a RunConfig (as given; see :meth:`RunConfig.resolved`).

    The optimizer's hyperparameter flags depend on ``--optimizer`` (and a wrapper's or
    matrix optimizer's on ``--base_optimizer`` / ``--fallback_optimizer``), so those are
    read first; ``optimizer_spec`` replaces the lookup (the Python API's own class).
    """
    from deepobs.runners.optimizers import resolve_optimizer

    pre = OneLineParser(prog="deepobs-run", add_help=False, allow_abbrev=False)
    for flag in ("--optimizer", "--base_optimizer", "--fallback_optimizer"):
        pre.add_argument(flag)
    known, _ = pre.parse_known_args(argv)
    if optimizer_spec is None and known.optimizer is None:
        build_run_parser({}).parse_args(argv)  # unknown flags and a missing problem first
        raise ConfigurationError("the argument --optimizer is required "
                                 "(deepobs-run --list-optimizers shows the names)")
    spec = optimizer_spec or resolve_optimizer(known.optimizer)
    base = resolve_optimizer(known.base_optimizer).hyperparameters if known.base_optimizer else None
    fallback = resolve_optimizer(known.fallback_optimizer).hyperparameters if known.fallback_optimizer else None
    parser = build_run_parser(spec.hyperparameters, optimizer_flag=optimizer_spec is None,
                              base=base, fallback=fallback)
    return namespace_to_config(vars(parser.parse_args(argv)))
