"""MNIST and Fashion-MNIST from the original idx gz files, held in memory as uint8."""

from __future__ import annotations

from pathlib import Path

import torch

from deepobs.datasets.base import DataSet, Split
from deepobs.datasets.files import dataset_dir, require_file, verify_file
from deepobs.datasets.idx import read_idx
from deepobs.errors import DataError

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def find_idx_file(folders, stem: str):
    """The first of ``<folder>/<stem>.gz`` or ``<folder>/<stem>`` that exists (or None)."""
    for folder in folders:
        for name in (stem + ".gz", stem):
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    return None


class MNIST(DataSet):
    """MNIST digits: 60,000 training and 10,000 test images of 28×28 grey pixels.

    Batches are float32 (B, 1, 28, 28) in [0, 1] (uint8 / 255, as DeepOBS's TF
    pipeline); no augmentation. Validation (protocol 1.2): 10,000 training images.

    Files (DeepOBS layout): ``<data_dir>/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``;
    torchvision's ``<data_dir>/MNIST/raw/`` is read as well.

    Args:
        verify: check the official files' checksums (once per file version);
            switch off for hand-made files in the real format.
    """

    name = "mnist"
    #: Folder under the data dir (DeepOBS layout) and torchvision's folder name.
    folder = "mnist"
    torchvision_folder = "MNIST"
    input_shape = (1, 28, 28)
    input_dtype = torch.uint8
    num_classes = 10
    train_eval_size = 10_000
    valid_size = 10_000
    #: DeepOBS's TF ``Dataset.shuffle`` buffer over the in-memory arrays (protocol 1.1).
    tf_shuffle_buffer = 20_000

    def __init__(self, batch_size, *, verify: bool = True, **kwargs):
        self.verify = verify
        super().__init__(batch_size, **kwargs)

    def _read_split(self, split: str) -> Split:
        folders = [dataset_dir(self.data_dir, self.folder),
                   dataset_dir(self.data_dir, self.torchvision_folder) / "raw"]
        arrays = []
        for stem in IDX_FILES[split]:
            path = find_idx_file(folders, stem)
            if path is None:
                require_file(folders[0] / (stem + ".gz"), self.folder, self.data_dir)
            if self.verify:
                verify_file(path, self.folder, self.data_dir)
            arrays.append(read_idx(path))
        images, labels = arrays
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise DataError(
                f"{self.name}: {split} images {images.shape} and labels {labels.shape} "
                "do not match (expected (N, 28, 28) and (N,))"
            )
        if labels.size and labels.max() >= self.num_classes:
            raise DataError(f"{self.name}: {split} label {labels.max()} is out of range 0..9")
        inputs = torch.from_numpy(images.copy()).unsqueeze(1)
        return Split(inputs, torch.from_numpy(labels.astype("int64")))

    def _load_raw(self) -> dict:
        return {"train": self._read_split("train"), "test": self._read_split("test")}

    def transform_batch(self, inputs: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 images to floats in [0, 1] (no augmentation, as DeepOBS)."""
        return inputs.float().div_(255.0)


class FashionMNIST(MNIST):
    """Fashion-MNIST: 28×28 grey images of 10 clothing classes, same format as MNIST.

    Files: ``<data_dir>/fmnist/*.gz`` (DeepOBS layout) or torchvision's
    ``<data_dir>/FashionMNIST/raw/``.
    """

    name = "fmnist"
    folder = "fmnist"
    torchvision_folder = "FashionMNIST"


__all__ = ["MNIST", "FashionMNIST", "find_idx_file"]
