"""CIFAR-10 and CIFAR-100 (fine labels) from the python pickle files, held as uint8."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from deepobs.datasets.augment import recipe_image_batch, small_image_batch
from deepobs.datasets.base import DataSet, Split
from deepobs.datasets.files import dataset_dir, require_file, verify_file
from deepobs.errors import ConfigurationError, DataError

IMAGE_BYTES = 3 * 32 * 32
#: Input pipelines: DeepOBS's TF one, and the ResNet-18 CIFAR recipe's.
PIPELINES = ("deepobs", "recipe")


def read_cifar_pickle(path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one CIFAR python batch file.

    The file is a pickled dict with ``b"data"`` (N, 3072) uint8, channel-major R, G, B
    planes of 32×32, and the labels under ``label_key``.
    """
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            batch = pickle.load(stream, encoding="bytes")
        # Python 2 pickles (the official ones) give bytes keys; accept str keys as well.
        batch = {key.encode() if isinstance(key, str) else key: value for key, value in batch.items()}
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError, AttributeError,
            IndexError) as error:
        raise DataError(f"corrupt or truncated data file {path}: not a CIFAR python batch "
                        f"({type(error).__name__}: {error})") from None
    if data.ndim != 2 or data.shape[1] != IMAGE_BYTES or labels.shape != data.shape[:1]:
        raise DataError(f"corrupt data file {path}: data {data.shape} and labels {labels.shape} "
                        f"(expected (N, {IMAGE_BYTES}) and (N,))")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar_binary(path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images and (last-byte) labels of a CIFAR binary file (DeepOBS's TF layout).

    Each record is ``label_bytes`` label bytes (CIFAR-100: coarse, fine) followed by
    3,072 image bytes; the image starts after *all* label bytes (no byte shift).
    """
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    record = label_bytes + IMAGE_BYTES
    if raw.size == 0 or raw.size % record:
        raise DataError(f"corrupt or truncated data file {path}: {raw.size:,} bytes is not a "
                        f"multiple of the {record}-byte CIFAR record")
    records = raw.reshape(-1, record)
    images = records[:, label_bytes:].reshape(-1, 3, 32, 32)
    return images, records[:, label_bytes - 1].astype(np.int64)


class CIFAR10(DataSet):
    """CIFAR-10: 50,000 training and 10,000 test colour images of 32×32, 10 classes.

    Batches are float32 (B, 3, 32, 32). Two pipelines (``pipeline``):

    * ``"deepobs"`` (default): per-image standardisation; training (and train-eval)
      batches are augmented as DeepOBS's TF pipeline: pad 2 + random 32 crop, random
      horizontal flip, brightness/saturation/contrast distortions.
    * ``"recipe"`` (the ResNet-18 problems): per-channel normalisation with the
      ``channel_mean``/``channel_std`` constants; training adds pad 4 + random 32 crop,
      random horizontal flip and Cutout of side ``cutout_size``.

    Files: the python version, ``<data_dir>/cifar-10/{data_batch_1..5,test_batch}``
    (what ``deepobs-prepare-data`` writes), torchvision's ``<data_dir>/cifar-10-batches-py/``,
    or DeepOBS's TF binary files ``<data_dir>/cifar-10/*.bin``.

    Args:
        verify: check the official files' checksums (once per file version).
        pipeline: ``"deepobs"`` or ``"recipe"``.
        cutout_size: side of the Cutout hole of the recipe pipeline (default: the data
            set's ``cutout_size``; 0: no Cutout).
    """

    name = "cifar10"
    folders = ("cifar-10", "cifar-10-batches-py")
    train_files = tuple(f"data_batch_{k}" for k in range(1, 6))
    test_files = ("test_batch",)
    label_key = b"labels"
    binary_label_bytes = 1
    binary_train_files = tuple(f"data_batch_{k}.bin" for k in range(1, 6))
    binary_test_files = ("test_batch.bin",)
    input_shape = (3, 32, 32)
    input_dtype = torch.uint8
    num_classes = 10
    train_eval_size = 10_000
    valid_size = 10_000
    #: SVHN keeps the crop and colour distortions but drops the flip.
    random_flip = True
    #: DeepOBS's TF training files (five of 10,000 records) and shuffle buffer: the
    #: protocol-1.1 order (:meth:`~deepobs.datasets.DataSet._published_order`).
    tf_train_file_sizes = (10_000,) * 5
    tf_shuffle_buffer = 20_000
    #: Per-channel mean and std of the 50,000 training images on the [0, 1] scale (the
    #: standard published constants, also those of DeepOBS's PyTorch port; fixed, so
    #: that the pipeline does not depend on the split or on fake data).
    channel_mean = (0.49139968, 0.48215841, 0.44653091)
    channel_std = (0.24703223, 0.24348513, 0.26158784)
    #: Cutout side of the recipe pipeline: the size DeVries & Taylor (2017) found best
    #: for ResNet-18 on CIFAR-10 on a held-out validation set.
    cutout_size = 16

    def __init__(self, batch_size, *, verify: bool = True, pipeline: str = "deepobs",
                 cutout_size: int | None = None, **kwargs):
        if pipeline not in PIPELINES:
            raise ConfigurationError(f"pipeline must be one of {', '.join(PIPELINES)}, got {pipeline!r}")
        if cutout_size is not None and int(cutout_size) < 0:
            raise ConfigurationError(f"cutout_size must be >= 0, got {cutout_size}")
        self.verify = verify
        self.pipeline = pipeline
        self._channel_tensors = None  # channel mean and std on the data's device, made once
        if cutout_size is not None:
            self.cutout_size = int(cutout_size)
        super().__init__(batch_size, **kwargs)

    def _folder(self) -> Path:
        """The first candidate folder that holds the data (else the DeepOBS one)."""
        candidates = [dataset_dir(self.data_dir, folder) for folder in self.folders]
        for folder in candidates:
            if (folder / self.test_files[0]).is_file() or (folder / self.binary_test_files[0]).is_file():
                return folder
        return candidates[0]

    def _read_files(self, folder: Path, names, binary_names) -> Split:
        if not (folder / names[0]).is_file() and (folder / binary_names[0]).is_file():
            parts = [read_cifar_binary(require_file(folder / name, self.name, self.data_dir),
                                       self.binary_label_bytes) for name in binary_names]
        else:
            parts = []
            for name in names:
                path = require_file(folder / name, self.name, self.data_dir)
                if self.verify:
                    verify_file(path, self.name, self.data_dir)
                parts.append(read_cifar_pickle(path, self.label_key))
        images = np.concatenate([images for images, _ in parts])
        labels = np.concatenate([labels for _, labels in parts])
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise DataError(f"{self.name}: labels in {folder} outside 0..{self.num_classes - 1}")
        return Split(torch.from_numpy(images), torch.from_numpy(labels))

    def _load_raw(self) -> dict:
        folder = self._folder()
        return {
            "train": self._read_files(folder, self.train_files, self.binary_train_files),
            "test": self._read_files(folder, self.test_files, self.binary_test_files),
        }

    def transform_batch(self, inputs: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 images to model input through the data set's ``pipeline``."""
        if self.pipeline == "recipe":
            if self._channel_tensors is None:
                self._channel_tensors = tuple(torch.tensor(values, device=inputs.device)
                                              for values in (self.channel_mean, self.channel_std))
            mean, std = self._channel_tensors
            return recipe_image_batch(inputs, train, self.augment_generator, mean=mean, std=std,
                                      cutout_size=self.cutout_size, flip=self.random_flip)
        return small_image_batch(inputs, train, self.augment_generator, flip=self.random_flip)


class CIFAR100(CIFAR10):
    """CIFAR-100 with its 100 fine labels; same images, format and pipeline as CIFAR-10.

    Files: ``<data_dir>/cifar-100/{train,test}`` (python version), torchvision's
    ``<data_dir>/cifar-100-python/``, or DeepOBS's TF ``<data_dir>/cifar-100/{train,test}.bin``.
    """

    name = "cifar100"
    folders = ("cifar-100", "cifar-100-python")
    train_files = ("train",)
    test_files = ("test",)
    label_key = b"fine_labels"
    binary_label_bytes = 2
    binary_train_files = ("train.bin",)
    binary_test_files = ("test.bin",)
    num_classes = 100
    tf_train_file_sizes = (50_000,)  # one file: the same protocol-1.1 order every pass
    channel_mean = (0.50707516, 0.48654887, 0.44091784)
    channel_std = (0.26733429, 0.25643846, 0.27615047)
    #: DeVries & Taylor's best Cutout side for ResNet-18 on CIFAR-100.
    cutout_size = 8


__all__ = ["CIFAR10", "CIFAR100", "PIPELINES", "read_cifar_pickle", "read_cifar_binary"]
