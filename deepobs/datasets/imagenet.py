"""ImageNet (ILSVRC-2012) streamed from the train/val JPEG folders with a worker pool.

It cannot live in memory, so the splits hold file indices; a thread pool decodes and
resizes the next batches while the model works on the current one. Everything random
(crop, flip) is done per batch on the run's device with the run's generator.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Optional

import torch

from deepobs.datasets.augment import central_crop, per_image_standardization, random_crop_and_flip
from deepobs.datasets.base import DataSet, Split
from deepobs.datasets.files import dataset_dir, prepare_command
from deepobs.errors import DataError

#: Short side after the aspect-preserving resize, and the side of the model input.
RESIZE_SIDE = 256
CROP_SIDE = 224
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
SPLIT_FOLDERS = {"train": ("train",), "test": ("val", "validation")}
# torchvision 0.29 deprecates its image decoders in favour of TorchCodec, which is not a
# dependency; they are the PIL-free decoders we need, so the notice (one per image) is muted.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)


def list_image_folder(folder: Path, class_index: dict) -> tuple[list, list]:
    """Paths and labels of ``folder/<class>/<image>``, in sorted order.

    ``class_index`` maps class folder names to labels; an unknown class is an error.
    """
    paths, labels = [], []
    for entry in sorted(os.scandir(folder), key=lambda item: item.name):
        if not entry.is_dir():
            continue
        if entry.name not in class_index:
            raise DataError(f"imagenet: class folder {entry.path} is not among the training classes")
        for image in sorted(os.scandir(entry.path), key=lambda item: item.name):
            if image.name.lower().endswith(IMAGE_SUFFIXES):
                paths.append(image.path)
                labels.append(class_index[entry.name])
    return paths, labels


def resize_and_center(image: torch.Tensor, side: int = RESIZE_SIDE) -> torch.Tensor:
    """Aspect-preserving bilinear resize (short side = ``side``), then the central side×side.

    TF's ``_aspect_preserving_resize`` + ``resize_image_with_crop_or_pad``; input and
    output uint8 (3, H, W). Grey images get three channels.
    """
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    image = image[:3]
    height, width = image.shape[-2:]
    scale = side / min(height, width)
    size = (max(side, round(height * scale)), max(side, round(width * scale)))
    resized = torch.nn.functional.interpolate(
        image[None].float(), size=size, mode="bilinear", align_corners=False
    )[0]
    resized = resized.round_().clamp_(0, 255).to(torch.uint8)
    return central_crop(resized, side)


def load_image(path: str) -> torch.Tensor:
    """Decode one image file (without PIL) and bring it to uint8 (3, 256, 256)."""
    from torchvision.io import ImageReadMode, decode_image, read_file

    try:
        image = decode_image(read_file(path), mode=ImageReadMode.RGB)
    except RuntimeError as error:
        raise DataError(f"imagenet: cannot decode {path}: {error}") from None
    return resize_and_center(image)


class ImageNet(DataSet):
    """ILSVRC-2012: 1000 classes + an unused background class 0 (1001 outputs, as DeepOBS).

    Batches are float32 (B, 3, 224, 224), per-image standardised. Training: resize the
    short side to 256, central 256×256, random 224 crop and random flip. Evaluation:
    central 224 crop. Test = the official validation folder; protocol 1.2 holds out
    50,000 training images as validation.

    Files: ``<data_dir>/imagenet/train/<wnid>/*.JPEG`` and ``<data_dir>/imagenet/val/<wnid>/*.JPEG``
    (the standard folder layout; labels 1..1000 follow the sorted class folder names).

    Args:
        num_workers: decoding threads (default: the number of CPUs, at most 16).
        prefetch: batches decoded ahead of the one in use.
    """

    name = "imagenet"
    input_shape = (3, RESIZE_SIDE, RESIZE_SIDE)
    input_dtype = torch.uint8
    num_classes = 1001
    train_eval_size = 50_000
    valid_size = 50_000

    def __init__(self, batch_size, *, num_workers: Optional[int] = None, prefetch: int = 2, **kwargs):
        self.num_workers = int(num_workers or min(os.cpu_count() or 1, 16))
        self.prefetch = max(int(prefetch), 1)
        self.paths: list = []
        self.class_names: list = []
        self._pool: Optional[ThreadPoolExecutor] = None
        super().__init__(batch_size, **kwargs)

    # ------------------------------------------------------------------ loading
    def _load_raw(self) -> dict:
        root = dataset_dir(self.data_dir, "imagenet")
        train_folder = root / "train"
        if not train_folder.is_dir():
            raise DataError(
                f"imagenet: missing folder {train_folder} (one sub-folder of JPEGs per class); "
                f"ImageNet cannot be downloaded automatically: get ILSVRC-2012 from image-net.org "
                f"and lay it out as {root}/train/<wnid>/ and {root}/val/<wnid>/ "
                f"(`{prepare_command('imagenet', self.data_dir)}` checks the layout)"
            )
        self.class_names = sorted(entry.name for entry in os.scandir(train_folder) if entry.is_dir())
        if not 0 < len(self.class_names) < self.num_classes:
            raise DataError(f"imagenet: {train_folder} has {len(self.class_names)} class folders; "
                            f"expected 1..{self.num_classes - 1}")
        class_index = {name: label for label, name in enumerate(self.class_names, start=1)}
        test_folder = next((root / name for name in SPLIT_FOLDERS["test"] if (root / name).is_dir()), None)
        if test_folder is None:
            raise DataError(f"imagenet: missing folder {root / 'val'} (validation images sorted into "
                            "one sub-folder per class)")
        splits = {}
        for split, folder in (("train", train_folder), ("test", test_folder)):
            paths, labels = list_image_folder(folder, class_index)
            if not paths:
                raise DataError(f"imagenet: no images (*.JPEG) under {folder}/<class>/")
            offset = len(self.paths)
            self.paths.extend(paths)
            # The split holds indices into self.paths; images are decoded per batch.
            splits[split] = Split(torch.arange(offset, offset + len(paths)), torch.tensor(labels))
        return splits

    @property
    def streaming(self) -> bool:
        """True when batches are decoded from files (real data), False for fake data."""
        return bool(self.paths)

    # ---------------------------------------------------------------- batching
    def _decode(self, index: torch.Tensor) -> list:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="imagenet-decode")
        return [self._pool.submit(load_image, self.paths[i]) for i in index.tolist()]

    def batches(self, split: str, batch_size: Optional[int] = None) -> Iterator[tuple]:
        """As :meth:`DataSet.batches`; real data is decoded ``prefetch`` batches ahead."""
        if not self.streaming:
            yield from super().batches(split, batch_size)
            return
        pending: deque = deque()
        for (index, train), targets in self._index_batches(split, batch_size):
            pending.append((self._decode(index.cpu()), train, targets))
            if len(pending) > self.prefetch:
                yield self._finish(*pending.popleft())
        while pending:
            yield self._finish(*pending.popleft())

    def _index_batches(self, split, batch_size):
        # The base class gathers file indices; transform_batch passes them through.
        return super().batches(split, batch_size)

    def _finish(self, futures: list, train: bool, targets: torch.Tensor) -> tuple:
        images = torch.stack([future.result() for future in futures]).to(self.device)
        return self._augment(images, train), targets

    def transform_batch(self, inputs: torch.Tensor, train: bool):
        """Decoded images to model input (random crop and flip in training, central crop else)."""
        if inputs.dtype == torch.int64 and inputs.ndim == 1:
            return inputs, train  # file indices of a streamed batch: decoded in batches()
        return self._augment(inputs, train)

    def _augment(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 (B, 3, 256, 256) -> standardised float32 (B, 3, 224, 224)."""
        if train:
            images = random_crop_and_flip(images, CROP_SIDE, self.augment_generator)
        else:
            images = central_crop(images, CROP_SIDE)
        return per_image_standardization(images.float())

    def close(self) -> None:
        """Stop the decoding threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __del__(self):
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["ImageNet", "list_image_folder", "resize_and_center", "load_image"]
