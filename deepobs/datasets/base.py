"""In-memory data sets: splits held as tensors, batches drawn as index gathers.

Every DeepOBS data set derives from :class:`DataSet`. A subclass only says how to
read its raw arrays (``_load_raw``) and how to turn a gathered batch into model input
(``transform_batch``); splitting, shuffling, drop-last batching and the train-eval
subset are done here, once, for every data set (docs/design.md, decisions 3, 5 and 6).
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Iterator, Optional

import torch

from deepobs.config import check_protocol
from deepobs.errors import ConfigurationError

#: Seed of the generator that carves validation splits. Fixed on purpose: the split
#: must not depend on the run seed, so that every run sees the same validation data.
SPLIT_SEED = 2718281828

#: Most bytes of inputs gathered at once for shuffled passes (whole batches, at least one).
GATHER_CHUNK_BYTES = 1 << 20

# Offsets that derive independent streams from the run seed.
_ORDER_STREAM = 1
_TRAIN_EVAL_STREAM = 2
_AUGMENT_STREAM = 3
_SHUFFLE_BUFFER_STREAM = 4


@dataclass
class Split:
    """One split of a data set: inputs and targets with the same first dimension."""

    inputs: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def to(self, device) -> "Split":
        """This split with inputs and targets on ``device``."""
        return Split(self.inputs.to(device), self.targets.to(device))

    def subset(self, index: torch.Tensor) -> "Split":
        """The examples at positions ``index`` (a 1-D index tensor), in that order."""
        return Split(self.inputs[index], self.targets[index])


def buffer_shuffle(size: int, buffer_size: int, generator: torch.Generator) -> torch.Tensor:
    """The order in which a ``tf.data`` shuffle buffer of ``buffer_size`` emits ``size``
    inputs: ``output[k] = input[order[k]]``.

    TF fills the buffer with the next inputs, emits a uniformly chosen buffered element
    and refills, until the input is exhausted. Which *position* is emitted depends only
    on the random draws, not on the inputs, so one seeded shuffle is one fixed
    permutation. A buffer at least as large as the input gives a uniform permutation
    (the loop is then Fisher–Yates).
    """
    steps = torch.arange(size, dtype=torch.float64)
    buffered = (torch.clamp(steps + buffer_size, max=size) - steps)  # elements in the buffer at step k
    draws = torch.rand(size, dtype=torch.float64, generator=generator)
    offsets = (draws * buffered).long().clamp_(max=buffered.long() - 1).tolist()
    slots = list(range(size))  # buffer slots k..: the unemitted inputs, in slot order
    order = [0] * size
    for k, offset in enumerate(offsets):
        chosen = k + offset
        order[k] = slots[chosen]
        slots[chosen] = slots[k]
    return torch.tensor(order, dtype=torch.int64)


def file_blocks(size: int, file_sizes: tuple) -> list:
    """``size`` consecutive examples cut into blocks in the proportions of ``file_sizes``
    (exactly those sizes when ``size`` is their sum): the data set's training files."""
    total = sum(file_sizes)
    bounds, seen = [0], 0
    for length in file_sizes:
        seen += length
        bounds.append(round(size * seen / total))
    return [torch.arange(start, end) for start, end in zip(bounds[:-1], bounds[1:])]


def carve_validation(train: Split, valid_size: int) -> tuple[Split, Split]:
    """Split ``valid_size`` examples off ``train``, the same way for every run seed."""
    if not 0 < valid_size < len(train):
        raise ConfigurationError(
            f"cannot hold out valid_size={valid_size:,} of {len(train):,} training examples; "
            f"it must be in (0, {len(train):,})"
        )
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    permutation = torch.randperm(len(train), generator=generator)
    valid_index, train_index = permutation[:valid_size], permutation[valid_size:]
    return train.subset(train_index.sort().values), train.subset(valid_index.sort().values)


class DataSet:
    """Base class of all data sets: train, train_eval, valid and test splits in memory.

    Args:
        batch_size: mini-batch size of training and of the DeepOBS evaluation passes.
        protocol: ``"1.2"`` (held-out validation split carved from the training data)
            or ``"1.1"`` (no validation split, full training set: the setting of the
            published baselines).
        data_augmentation: apply the published training augmentation.
        random_seed: run seed; data order, train-eval draws and augmentation use
            generators derived from it.
        device: where the tensors live and batches are built.
        data_dir: folder with the raw files (real data sets only).
        train_eval_size: examples per train-eval pass (default: the class attribute).
        eval_batch_size: batch size of evaluation passes. Results are the same as with
            ``batch_size`` (see :meth:`eval_batches`), only faster.
        fake_data: if set, use this many random examples of the real shape instead of
            reading files (tests, smoke tests and benchmarks).
        reshuffle: draw a new training order every epoch (default: True under protocol
            1.2, False under 1.1). False gives the order of the published TF runs, which
            re-initialised a seeded shuffle at every epoch (and train-eval was the first
            batches of that order); protocol 1.1 reproduces this, which matters: on
            quadratic_deep, Momentum's final test loss over seeds is 87.05 ± 0.02 with a
            fixed order (published: 87.05 ± 0.02) against 89 ± 1 with reshuffling. For
            data sets read from several TF files (``tf_train_file_sizes``) the file order
            was drawn anew at every pass, so the order then changes from pass to pass:
            see :meth:`_published_order`.
    """

    #: Name of the data set, used in messages.
    name: str = "dataset"
    #: Default size of the train-eval subset (DeepOBS §2.2).
    train_eval_size: int = 10_000
    #: Size of the validation split carved from the training set under protocol 1.2.
    valid_size: int = 10_000
    #: Shape of one input example and its dtype; number of classes (None: no labels).
    input_shape: tuple = ()
    input_dtype: torch.dtype = torch.float32
    num_classes: Optional[int] = None
    #: DeepOBS's TF input pipeline (the order of protocol 1.1, see
    #: :meth:`_published_order`): the record counts of its training files, whose order
    #: ``tf.random_shuffle`` drew at every pass (empty: one source, no file shuffle) ...
    tf_train_file_sizes: tuple = ()
    #: ... and its ``Dataset.shuffle`` buffer (None: a uniform permutation).
    tf_shuffle_buffer: Optional[int] = None

    def __init__(
        self,
        batch_size: int,
        *,
        protocol: str = "1.2",
        data_augmentation: bool = True,
        random_seed: int = 42,
        device="cpu",
        data_dir: Optional[str] = None,
        train_eval_size: Optional[int] = None,
        eval_batch_size: Optional[int] = None,
        fake_data: Optional[int] = None,
        reshuffle: Optional[bool] = None,
    ):
        if int(batch_size) < 1:
            raise ConfigurationError(f"batch_size must be a positive integer, got {batch_size}")
        self.batch_size = int(batch_size)
        self.protocol = check_protocol(protocol)
        self.data_augmentation = bool(data_augmentation)
        self.random_seed = int(random_seed)
        self.device = torch.device(device)
        self.data_dir = data_dir
        self.fake_data = fake_data
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.reshuffle = (self.protocol != "1.1") if reshuffle is None else bool(reshuffle)
        self.splits = self._build_splits()
        self._buffer_order = None  # the fixed shuffle-buffer permutation of protocol 1.1
        if train_eval_size is not None:
            self.train_eval_size = int(train_eval_size)
        self.train_eval_size = min(self.train_eval_size, len(self.splits["train"]))
        self.order_generator = torch.Generator().manual_seed(self.random_seed * 10 + _ORDER_STREAM)
        self.train_eval_generator = torch.Generator().manual_seed(
            self.random_seed * 10 + _TRAIN_EVAL_STREAM
        )
        self.augment_generator = torch.Generator(device=self.device).manual_seed(
            self.random_seed * 10 + _AUGMENT_STREAM
        )

    # ------------------------------------------------------------------ loading
    def _load_raw(self) -> dict:
        """Return ``{"train": Split, "test": Split}`` (and ``"valid"`` if the data set
        has its own) read from ``self.data_dir``. Real data sets override this."""
        raise NotImplementedError(f"{type(self).__name__} must implement _load_raw")

    def _fake_raw(self, size: int) -> dict:
        """Random examples of the real shape and dtype, for tests and benchmarks."""
        generator = torch.Generator().manual_seed(0)

        def make(n):
            shape = (n, *self.input_shape)
            if self.input_dtype == torch.uint8:
                inputs = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
            else:
                inputs = torch.randn(shape, generator=generator).to(self.input_dtype)
            if self.num_classes:
                targets = torch.randint(0, self.num_classes, (n,), generator=generator)
            else:
                targets = torch.zeros(n)
            return Split(inputs, targets)

        return {"train": make(size), "test": make(max(size // 2, 1))}

    def _split_validation(self, train: Split) -> tuple[Split, Split]:
        """Carve the validation split (protocol 1.2). Override for ordered data."""
        valid_size = self.valid_size
        if self.fake_data:
            valid_size = max(len(train) // 5, 1)
        return carve_validation(train, valid_size)

    def _build_splits(self) -> dict:
        raw = self._fake_raw(int(self.fake_data)) if self.fake_data else self._load_raw()
        train, test, valid = raw["train"], raw["test"], raw.get("valid")
        if self.protocol == "1.2" and valid is None:
            train, valid = self._split_validation(train)
        splits = {"train": train, "test": test}
        if self.protocol == "1.2":
            splits["valid"] = valid
        return {name: split.to(self.device) for name, split in splits.items()}

    # ---------------------------------------------------------------- batching
    @property
    def has_validation(self) -> bool:
        """Whether there is a validation split (protocol 1.2)."""
        return "valid" in self.splits

    def transform_batch(self, inputs: torch.Tensor, train: bool) -> torch.Tensor:
        """Turn gathered raw inputs into model input; ``train`` selects augmentation.

        Override in data sets that preprocess or augment. Random draws must use
        ``self.augment_generator``.
        """
        return inputs

    def num_batches(self, split: str) -> int:
        """Number of mini-batches in one DeepOBS pass over ``split`` (drop-last)."""
        size = self.train_eval_size if split == "train_eval" else len(self._split(split))
        return size // self.batch_size

    def _split(self, split: str) -> Split:
        if split == "train_eval":
            return self.splits["train"]
        if split not in self.splits:
            if split == "valid":
                raise ConfigurationError(
                    f"{self.name}: protocol {self.protocol} has no validation split"
                )
            raise ConfigurationError(f"unknown split {split!r}; allowed: train, train_eval, valid, test")
        return self.splits[split]

    def _published_order(self) -> torch.Tensor:
        """The training order of one pass as DeepOBS's TF pipeline made it (no reshuffle).

        In TF 1.x every ``*_init_op`` re-ran the input graph: ``tf.random_shuffle`` of the
        file names is a stateful op whose kernel lives as long as the session, so each
        pass (training or train-eval) got a new file order; the seeded ``shuffle`` dataset
        was built anew each time and so drew the same random numbers in every pass,
        i.e. applied one fixed permutation (:func:`buffer_shuffle`) to the file stream.
        Here: a file order drawn from ``order_generator`` (which advances from pass to
        pass, as TF's kernel did), then the run's fixed buffer permutation. One file
        (CIFAR-100) or none (in-memory arrays): the same order in every pass.
        """
        size = len(self.splits["train"])
        if self._buffer_order is None or len(self._buffer_order) != size:
            generator = torch.Generator().manual_seed(self.random_seed * 10 + _SHUFFLE_BUFFER_STREAM)
            self._buffer_order = buffer_shuffle(size, self.tf_shuffle_buffer or size, generator)
        stream = torch.arange(size)
        if len(self.tf_train_file_sizes) > 1:
            blocks = file_blocks(size, self.tf_train_file_sizes)
            files = torch.randperm(len(blocks), generator=self.order_generator).tolist()
            stream = torch.cat([blocks[k] for k in files])
        return stream[self._buffer_order]

    def _pass_index(self, split: str) -> Optional[torch.Tensor]:
        """Example order of one pass: shuffled for train/train_eval, fixed otherwise."""
        if split == "train" or (split == "train_eval" and not self.reshuffle):
            if not self.reshuffle and (self.tf_train_file_sizes or self.tf_shuffle_buffer):
                order = self._published_order()
                return order if split == "train" else order[: self.train_eval_size]
            if not self.reshuffle:  # the same order in every pass (published setting)
                self.order_generator.manual_seed(self.random_seed * 10 + _ORDER_STREAM)
            permutation = torch.randperm(len(self.splits["train"]), generator=self.order_generator)
            return permutation if split == "train" else permutation[: self.train_eval_size]
        if split == "train_eval":
            permutation = torch.randperm(
                len(self.splits["train"]), generator=self.train_eval_generator
            )
            return permutation[: self.train_eval_size]
        return None

    def batches(self, split: str, batch_size: Optional[int] = None) -> Iterator[tuple]:
        """Yield ``(inputs, targets)`` batches of one pass over ``split`` (drop-last).

        ``train`` and ``train_eval`` are shuffled with the run's generators and
        augmented like training data (as published: train-eval is drawn from the
        augmented training stream); ``valid`` and ``test`` keep their order.
        """
        data = self._split(split)
        batch_size = batch_size or self.batch_size
        index = self._pass_index(split)
        # Evaluate exactly the examples that drop-last batches of the training
        # batch size would see, whatever batch size is used to compute them.
        usable = self.num_batches(split) * self.batch_size
        train_like = split in ("train", "train_eval") and self.data_augmentation
        if train_like:  # whole training-size chunks keep the augmentation draws unchanged
            batch_size = max(1, batch_size // self.batch_size) * self.batch_size
        # Two Python calls per batch matter to tiny models: skip the identity transform.
        identity = type(self).transform_batch is DataSet.transform_batch
        transform = self._transform_in_training_chunks
        if index is None:  # valid/test: views in stored order
            inputs, targets = data.inputs[:usable], data.targets[:usable]
            for start in range(0, usable, batch_size):
                batch_inputs = inputs[start:start + batch_size]
                yield (batch_inputs if identity else transform(batch_inputs, train_like),
                       targets[start:start + batch_size])
            return
        if index.device != data.inputs.device:
            index = index.to(data.inputs.device)
        # Gather several batches per call: one index_select costs ~10 µs whatever its
        # size, a large share of a tiny model's step. Chunks are bounded in bytes.
        batch_bytes = math.prod(data.inputs.shape[1:]) * data.inputs.element_size() * batch_size
        chunk = max(1, GATHER_CHUNK_BYTES // max(1, batch_bytes)) * batch_size
        for chunk_start in range(0, usable, chunk):
            chunk_index = index[chunk_start:min(chunk_start + chunk, usable)]
            inputs = data.inputs.index_select(0, chunk_index).split(batch_size)
            targets = data.targets.index_select(0, chunk_index).split(batch_size)
            for batch_inputs, batch_targets in zip(inputs, targets):
                yield batch_inputs if identity else transform(batch_inputs, train_like), batch_targets

    def _transform_in_training_chunks(self, inputs: torch.Tensor, train: bool) -> torch.Tensor:
        """``transform_batch``; an augmented batch larger than the training batch size is
        transformed in training-size chunks, so the augmentation draws (and the generator
        state after the pass) are those of training-size batches: a train-eval pass at a
        larger ``eval_batch_size`` sees the very same augmented images."""
        if not train or inputs.shape[0] <= self.batch_size:
            return self.transform_batch(inputs, train=train)
        chunks = [self.transform_batch(chunk, train=True) for chunk in inputs.split(self.batch_size)]
        if not all(isinstance(chunk, torch.Tensor) for chunk in chunks):  # e.g. deferred decoding
            return self.transform_batch(inputs, train=train)
        return torch.cat(chunks)

    def eval_batches(self, split: str) -> Iterator[tuple]:
        """Batches of an evaluation pass, at ``eval_batch_size``.

        They cover the same examples as :meth:`batches` with the training batch size,
        so a per-example mean over them equals DeepOBS's mean of per-batch means.
        """
        return self.batches(split, batch_size=self.eval_batch_size)

    # ------------------------------------------------------------ reproducibility
    def state_dict(self) -> dict:
        """RNG states of the data streams (for checkpoints)."""
        return {
            "order": self.order_generator.get_state(),
            "train_eval": self.train_eval_generator.get_state(),
            "augment": self.augment_generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the random streams saved by :meth:`state_dict` (checkpoints)."""
        self.order_generator.set_state(state["order"])
        self.train_eval_generator.set_state(state["train_eval"])
        self.augment_generator.set_state(state["augment"])

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={len(split)}" for name, split in self.splits.items())
        return f"{type(self).__name__}(batch_size={self.batch_size}, protocol={self.protocol}, {sizes})"


__all__ = ["DataSet", "Split", "buffer_shuffle", "carve_validation", "file_blocks", "SPLIT_SEED"]
