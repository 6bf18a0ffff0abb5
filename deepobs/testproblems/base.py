"""The test problem base class: data + model + loss + metric + defaults.

The public methods are DeepOBS's PyTorch API (``set_up``, ``train_init_op``,
``get_batch_loss_and_accuracy`` ...), so runners written for DeepOBS work unchanged.
A subclass supplies ``_build_data``, ``_build_net`` and, when the model needs more
than ``loss_function(net(x), y)``, ``_compute``.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Optional

import torch
from torch import nn

from deepobs.config import DEFAULT_PROTOCOL, check_protocol, default_device
from deepobs.errors import ConfigurationError

PHASES = ("train", "train_eval", "valid", "test")

#: Automatic evaluation batch: about this many examples per batch ...
AUTO_EVAL_EXAMPLES = 1024
#: ... but no more input values than this per batch (keeps big images at the training size).
AUTO_EVAL_INPUT_VALUES = 2 ** 22
#: Mixed-precision modes of :meth:`TestProblem.set_performance_options`.
AMP_DTYPES = {"bf16": torch.bfloat16}
#: ``torch.compile`` modes (``reduce-overhead`` uses CUDA graphs on a GPU).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


class TestProblem:
    """Base class of every test problem.

    Args:
        batch_size: mini-batch size (default: the problem's ``default_batch_size``).
        weight_decay: L2 factor (default: the problem's ``default_weight_decay``);
            ignored with a warning by problems without regularization.
        data_dir: folder of the raw data files.
        protocol: ``"1.2"`` (held-out validation split) or ``"1.1"`` (published setting).
        random_seed: run seed of the data streams (order, train-eval, augmentation).
        device: device of data and model (default: cuda if available, else cpu).
        data_augmentation: use the published training augmentation.
        eval_batch_size: batch size of evaluation passes (same results, fewer steps).
        fake_data: use this many random examples of the real shape instead of files.
    """

    __test__ = False  # not a pytest test class, despite the name

    #: Registry name, set by :func:`deepobs.register_problem`.
    name: str = ""
    #: Defaults carried by the problem (docs/testproblems.md).
    default_batch_size: Optional[int] = None
    default_num_epochs: Optional[int] = None
    #: L2 factor; None means the problem has no regularization at all.
    default_weight_decay: Optional[float] = None
    #: Classification problems report accuracies; loss-only problems do not.
    has_accuracy: bool = True
    #: Short descriptions for ``deepobs-run --list -v``.
    dataset_name: str = ""
    model_name: str = ""
    loss_name: str = ""
    #: Evaluation results do not depend on how examples are grouped into batches (no
    #: state carried from batch to batch, no random draws): an automatic, larger
    #: ``eval_batch_size`` then gives the same numbers, faster.
    batch_independent_eval: bool = True

    def __init__(self, batch_size: Optional[int] = None, weight_decay: Optional[float] = None, *,
                 data_dir: Optional[str] = None, protocol: str = DEFAULT_PROTOCOL,
                 random_seed: int = 42, device=None, data_augmentation: bool = True,
                 eval_batch_size: Optional[int] = None, fake_data: Optional[int] = None):
        if batch_size is None:
            batch_size = self.default_batch_size
        if batch_size is None or int(batch_size) < 1:
            raise ConfigurationError(f"{self.name}: batch_size must be a positive integer, got {batch_size}")
        self._batch_size = int(batch_size)
        if weight_decay is not None and self.default_weight_decay is None:
            warnings.warn(f"{self.name} has no regularization; weight_decay={weight_decay} is ignored",
                          stacklevel=2)
            weight_decay = None
        if weight_decay is not None and float(weight_decay) < 0:
            raise ConfigurationError(f"{self.name}: weight_decay must be >= 0, got {weight_decay}")
        self._weight_decay = self.default_weight_decay if weight_decay is None else float(weight_decay)
        self._data_dir = data_dir
        self._protocol = check_protocol(protocol)
        self._random_seed = int(random_seed)
        self._device = torch.device(device or default_device())
        self._data_augmentation = data_augmentation
        self._eval_batch_size = eval_batch_size
        self._fake_data = fake_data
        self.data = None
        self.net: Optional[nn.Module] = None
        self.phase: Optional[str] = None
        self._iterator = None
        self._regularized_params: list = []
        self._autocast_dtype: Optional[torch.dtype] = None
        self._channels_last = False

    # ----------------------------------------------------------- to be defined
    def _build_data(self, **dataset_kwargs):
        """Return the problem's :class:`~deepobs.datasets.DataSet`."""
        raise NotImplementedError

    def _build_net(self) -> nn.Module:
        """Return the model (built without touching the data)."""
        raise NotImplementedError

    def loss_function(self, outputs, targets) -> torch.Tensor:
        """Per-example losses. Default: cross-entropy (classification problems)."""
        return nn.functional.cross_entropy(outputs, targets, reduction="none")

    def _compute(self, inputs, targets):
        """Per-example losses and, for classification, per-example correctness."""
        outputs = self.net(inputs)
        losses = self.loss_function(outputs, targets)
        correct = (outputs.argmax(dim=1) == targets) if self.has_accuracy else None
        return losses, correct

    def get_regularization_groups(self) -> dict:
        """``{factor: [parameters]}`` of the L2 penalty; empty when unregularized."""
        return {}

    def extra_metrics(self, phase: str, loss: float, accuracy: Optional[float]) -> dict:
        """Further per-epoch metrics of an evaluation pass, ``{name: float}``.

        The runner stores each as a per-epoch list ``<train|valid|test>_<name>`` in the
        results (e.g. ``test_perplexities``). Default: none.
        """
        return {}

    # ------------------------------------------------------------------ set-up
    @property
    def batch_size(self) -> int:
        """The training mini-batch size."""
        return self._batch_size

    @property
    def weight_decay(self) -> Optional[float]:
        """The L2 factor in use (None: the problem is not regularized)."""
        return self._weight_decay

    @property
    def protocol(self) -> str:
        """The split protocol, ``"1.2"`` or ``"1.1"``."""
        return self._protocol

    @property
    def device(self) -> torch.device:
        """The device of data and model."""
        return self._device

    def dataset_kwargs(self) -> dict:
        """The arguments every data set of this problem is built with."""
        return dict(
            protocol=self._protocol, data_augmentation=self._data_augmentation,
            random_seed=self._random_seed, device=self._device, data_dir=self._data_dir,
            eval_batch_size=self._eval_batch_size, fake_data=self._fake_data,
        )

    def set_up(self) -> "TestProblem":
        """Load the data and build the model on the problem's device."""
        self.data = self._build_data(**self.dataset_kwargs())
        self.net = self._build_net().to(self._device)
        self._regularized_params = [
            (factor, params) for factor, params in self.get_regularization_groups().items()
        ]
        if self._eval_batch_size is None:
            self.data.eval_batch_size = self.auto_eval_batch_size()
        return self

    def auto_eval_batch_size(self, device=None) -> int:
        """The evaluation batch size used when none is given (for ``device``, default
        the problem's).

        A multiple of the training batch size near ``AUTO_EVAL_EXAMPLES`` examples
        (fewer for big inputs) when results do not depend on the batching
        (``batch_independent_eval``) and bigger batches pay: on a GPU (fewer, fuller
        kernel launches), and on a CPU for models without convolutions (fewer, larger
        matrix products: quadratic_deep evaluates in 0.62×, mnist_logreg 0.80×,
        mnist_mlp 0.94× the time at 1024 as at 128). Otherwise the training batch size:
        CPU convolutions slow down at bigger batches (caches spill: mnist_2c2d 1.73×,
        cifar10_3c3d 1.27× at 1024; docs/performance.md), and batching matters to an
        LSTM whose state runs from batch to batch or to a model drawing random noise.
        """
        device = torch.device(device) if device is not None else self._device
        if (not self.batch_independent_eval or getattr(self.data, "stateful", False)
                or (device.type == "cpu" and _has_convolutions_or_recurrence(self.net))):
            return self._batch_size
        values = 1
        for size in getattr(self.data, "input_shape", ()) or ():
            values *= int(size)
        target = min(AUTO_EVAL_EXAMPLES, max(1, AUTO_EVAL_INPUT_VALUES // max(values, 1)))
        return self._batch_size * max(1, target // self._batch_size)

    def set_performance_options(self, amp: Optional[str] = None, channels_last: bool = False,
                                compile_mode: Optional[str] = None) -> "TestProblem":
        """Speed options, all off by default; call after :meth:`set_up`.

        Args:
            amp: ``"bf16"``: forward passes under bfloat16 autocast (training and
                evaluation). Changes the numerics: results are not comparable
                bit-for-bit with float32 baselines.
            channels_last: conv nets (4-D inputs) in channels-last memory layout;
                same numbers up to float rounding.
            compile_mode: ``torch.compile`` the model in place (state-dict keys
                unchanged); one of ``COMPILE_MODES``. Same numbers up to float rounding.
        """
        if amp is not None and amp not in AMP_DTYPES:
            raise ConfigurationError(f"amp must be one of {', '.join(AMP_DTYPES)} or None, got {amp!r}")
        if compile_mode is not None and compile_mode not in COMPILE_MODES:
            raise ConfigurationError(
                f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {compile_mode!r}")
        if self.net is None:
            raise RuntimeError(f"{self.name}: call set_up() before set_performance_options()")
        self._autocast_dtype = AMP_DTYPES[amp] if amp is not None else None
        self._channels_last = bool(channels_last)
        if self._channels_last:
            self.net.to(memory_format=torch.channels_last)
        if compile_mode is not None:
            self.net.compile(mode=None if compile_mode == "default" else compile_mode)
        return self

    def _fast_context(self):
        """Autocast context of the ``amp`` option (a no-op without it)."""
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self._device.type, dtype=self._autocast_dtype)

    def _layout(self, inputs):
        """Inputs in the memory layout of the ``channels_last`` option."""
        if self._channels_last and isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
            return inputs.contiguous(memory_format=torch.channels_last)
        return inputs

    def num_parameters(self) -> int:
        """Trainable parameters of the model. Without a set-up model, one is built on
        the meta device (shapes only, no memory, no initialisation cost)."""
        net = self.net
        if net is None:
            try:
                with torch.device("meta"):
                    net = self._build_net()
            except (NotImplementedError, RuntimeError, TypeError):
                net = self._build_net()  # a builder that needs real tensors
        return sum(p.numel() for p in net.parameters() if p.requires_grad)

    # ------------------------------------------------------------------ phases
    def _start_phase(self, phase: str) -> None:
        if self.data is None:
            raise RuntimeError(f"{self.name}: call set_up() before using the problem")
        self.phase = phase
        self._iterator = iter(self.data.batches(phase))
        self.net.train(phase == "train")

    def train_init_op(self) -> None:
        """Start a training pass (shuffled, augmented, model in training mode)."""
        self._start_phase("train")

    def train_eval_init_op(self) -> None:
        """Start a pass over the train-eval subset (model in evaluation mode)."""
        self._start_phase("train_eval")

    def valid_init_op(self) -> None:
        """Start a pass over the validation split (model in evaluation mode)."""
        self._start_phase("valid")

    def test_init_op(self) -> None:
        """Start a pass over the test split (model in evaluation mode)."""
        self._start_phase("test")

    def _get_next_batch(self):
        """Next batch of the current phase; raises StopIteration at the end of the pass."""
        if self._iterator is None:
            raise RuntimeError(f"{self.name}: call one of the *_init_op methods first")
        return next(self._iterator)

    # ------------------------------------------------------------------ losses
    def get_regularization_loss(self) -> torch.Tensor:
        """½ Σ_groups factor · Σ‖w‖² (TF's l2_regularizer), 0 without regularization."""
        total = torch.zeros((), device=self._device)
        for factor, params in self._regularized_params:
            if factor:
                total = total + 0.5 * factor * sum(p.pow(2).sum() for p in params)
        return total

    def get_batch_loss_and_accuracy_func(self, reduction: str = "mean",
                                         add_regularization_if_available: bool = True):
        """Draw the next batch and return a closure computing ``(loss, accuracy)`` on it.

        The closure can be called several times on the same batch (line searches,
        L-BFGS). Gradients are tracked in the training phase only. ``accuracy`` is a
        0-dim tensor, or None for loss-only problems.
        """
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        inputs, targets = self._get_next_batch()
        if self._channels_last:
            inputs = self._layout(inputs)

        def closure():
            # Entering contexts costs microseconds per step, a visible share of a tiny
            # model's step: enter them only when they change something.
            train = self.phase == "train"
            if torch.is_grad_enabled() == train and self._autocast_dtype is None:
                return self._loss_and_accuracy(inputs, targets, reduction,
                                               add_regularization_if_available)
            with (torch.enable_grad() if train else torch.no_grad()), self._fast_context():
                return self._loss_and_accuracy(inputs, targets, reduction,
                                               add_regularization_if_available)

        return closure

    def get_batch_loss_and_accuracy(self, reduction: str = "mean",
                                    add_regularization_if_available: bool = True):
        """``(loss, accuracy)`` of the next batch of the current phase (DeepOBS API)."""
        return self.get_batch_loss_and_accuracy_func(reduction, add_regularization_if_available)()

    def _loss_and_accuracy(self, inputs, targets, reduction: str, regularize: bool):
        """The closure's body: reduced loss (+ L2) and mean accuracy of one batch."""
        losses, correct = self._compute(inputs, targets)
        if self._autocast_dtype is not None:
            losses = losses.float()  # reduce in float32 under autocast
        if reduction == "mean":
            loss = losses.mean()
        elif reduction == "sum":
            loss = losses.sum()
        else:
            loss = losses
        if regularize and self._regularized_params:
            loss = loss + self.get_regularization_loss()
        return loss, (correct.float().mean() if correct is not None else None)

    # --------------------------------------------------------------- evaluation
    def _eval_batches(self, phase: str):
        return self.data.eval_batches(phase)

    def _reduce_eval_sums(self, loss_sum, correct_sum, count: int):
        """Hook for data-parallel runs, which add the sums of all ranks (here: unchanged)."""
        return loss_sum, correct_sum, count

    def evaluate(self, phase: str):
        """Loss (incl. L2) and accuracy over one evaluation pass of ``phase``.

        Equal to DeepOBS's mean of per-batch means (drop-last batches of the training
        batch size), computed under ``inference_mode`` with ``eval_batch_size``.
        Returns ``(loss, accuracy)`` as floats; accuracy is None for loss-only problems.
        """
        if phase not in ("train_eval", "valid", "test"):
            raise ValueError(f"unknown evaluation phase {phase!r}; allowed: train_eval, valid, test")
        self.phase = phase
        self.net.eval()
        with torch.inference_mode():
            loss_sum = torch.zeros((), dtype=torch.float64, device=self._device)
            correct_sum = torch.zeros((), dtype=torch.float64, device=self._device)
            count = 0
            for inputs, targets in self._eval_batches(phase):
                with self._fast_context():
                    losses, correct = self._compute(self._layout(inputs), targets)
                loss_sum += losses.sum(dtype=torch.float64)
                if correct is not None:
                    correct_sum += correct.sum(dtype=torch.float64)
                count += losses.shape[0]
            loss_sum, correct_sum, count = self._reduce_eval_sums(loss_sum, correct_sum, count)
            if count == 0:
                raise ValueError(f"{self.name}: the {phase} split has fewer examples than one batch")
            loss = (loss_sum / count).item() + float(self.get_regularization_loss())
        accuracy = (correct_sum / count).item() if self.has_accuracy else None
        return loss, accuracy

    # -------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Extra problem state a checkpoint must carry to resume a run exactly, e.g. an
        LSTM's hidden state carried from batch to batch. Tensors and plain containers
        only. The model, optimizer and data streams are saved by the runner; the base
        problem has nothing else."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (called after the data stream of the
        interrupted pass has been re-drawn)."""
        if state:
            raise ValueError(f"{self.name}: unexpected problem state {sorted(state)}")

    # -------------------------------------------------------------- description
    def describe(self) -> dict:
        """One row of ``deepobs-run --list -v`` (builds the model, not the data)."""
        return {
            "problem": self.name,
            "dataset": self.dataset_name,
            "model": self.model_name,
            "parameters": self.num_parameters(),
            "loss": self.loss_name,
            "batch_size": self.default_batch_size,
            "num_epochs": self.default_num_epochs,
            "weight_decay": self.default_weight_decay,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, batch_size={self._batch_size})"


def _has_convolutions_or_recurrence(net: Optional[nn.Module]) -> bool:
    """Whether ``net`` (None: not built, assumed yes) has convolution or recurrent layers."""
    if net is None:
        return True
    return any(isinstance(module, (nn.modules.conv._ConvNd, nn.RNNBase)) for module in net.modules())
