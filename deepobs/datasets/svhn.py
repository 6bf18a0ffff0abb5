"""SVHN (cropped digits) from the original train_32x32.mat / test_32x32.mat files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepobs.datasets.base import Split
from deepobs.datasets.cifar import CIFAR10
from deepobs.datasets.files import dataset_dir, require_file, verify_file
from deepobs.errors import DataError

MAT_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def read_svhn_mat(path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of an SVHN .mat file.

    The file holds ``X`` (32, 32, 3, N) and ``y`` (N, 1) with digits 1..10, where 10
    stands for the digit 0; it is mapped to 0.
    """
    import scipy.io

    path = Path(path)
    try:
        content = scipy.io.loadmat(str(path))
        images, labels = np.asarray(content["X"]), np.asarray(content["y"])
    except (ValueError, TypeError, KeyError, OSError, EOFError) as error:
        raise DataError(f"corrupt or truncated data file {path}: not an SVHN .mat file "
                        f"({type(error).__name__}: {error})") from None
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3) or labels.size != images.shape[3]:
        raise DataError(f"corrupt data file {path}: X {images.shape} and y {labels.shape} "
                        "(expected (32, 32, 3, N) and (N, 1))")
    labels = labels.reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise DataError(f"corrupt data file {path}: labels outside 1..10")
    labels[labels == 10] = 0
    images = np.ascontiguousarray(images.astype(np.uint8).transpose(3, 2, 0, 1))
    return images, labels


def read_svhn_binary(path) -> tuple[np.ndarray, np.ndarray]:
    """Records of DeepOBS's TF layout: 1 label byte (already 0..9) + 3,072 bytes HWC."""
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise DataError(f"corrupt or truncated data file {path}: {raw.size:,} bytes is not a "
                        "multiple of the 3073-byte SVHN record")
    records = raw.reshape(-1, 3073)
    images = records[:, 1:].reshape(-1, 32, 32, 3).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images), records[:, 0].astype(np.int64)


class SVHN(CIFAR10):
    """SVHN: 73,257 training and 26,032 test colour images of 32×32 digits (label 10 → 0).

    Pipeline as CIFAR-10 without the horizontal flip (digits are not mirror-symmetric).
    Validation (protocol 1.2): 26,032 training images; train = the other 47,225.
    The full 73,257 training images are used (DeepOBS 1.1 truncated them to 64,000).

    Files: ``<data_dir>/svhn/{train,test}_32x32.mat``, the same files directly under
    the data dir (torchvision's layout), or DeepOBS's TF ``svhn/data_batch_*.bin``.
    """

    name = "svhn"
    num_classes = 10
    train_eval_size = 26_032
    valid_size = 26_032
    random_flip = False
    #: DeepOBS's TF files ``data_batch_0..5.bin`` (12,800 records each, the last 9,257).
    tf_train_file_sizes = (12_800,) * 5 + (9_257,)
    channel_mean = (0.4376821, 0.4437697, 0.47280442)
    channel_std = (0.19803012, 0.20101562, 0.19703614)

    def _read_mat(self, split: str) -> Split:
        candidates = [dataset_dir(self.data_dir, "svhn") / MAT_FILES[split],
                      dataset_dir(self.data_dir, "") / MAT_FILES[split]]
        binary = self._binary_files(split)
        if not any(path.is_file() for path in candidates) and binary:
            parts = [read_svhn_binary(path) for path in binary]
            images = np.concatenate([part[0] for part in parts])
            labels = np.concatenate([part[1] for part in parts])
        else:
            path = next((path for path in candidates if path.is_file()), candidates[0])
            require_file(path, self.name, self.data_dir)
            if self.verify:
                verify_file(path, self.name, self.data_dir)
            images, labels = read_svhn_mat(path)
        return Split(torch.from_numpy(images), torch.from_numpy(labels))

    def _binary_files(self, split: str) -> list:
        folder = dataset_dir(self.data_dir, "svhn")
        if split == "test":
            return [folder / "test_batch.bin"] if (folder / "test_batch.bin").is_file() else []
        return sorted(folder.glob("data_batch_*.bin"))

    def _load_raw(self) -> dict:
        return {"train": self._read_mat("train"), "test": self._read_mat("test")}


__all__ = ["SVHN", "read_svhn_mat", "read_svhn_binary"]
