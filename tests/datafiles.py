"""Tiny data files in the real on-disk formats, written into a temporary folder for tests."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

from deepobs.datasets.idx import write_idx


def write_mnist(data_dir, folder: str = "mnist", train: int = 60, test: int = 20, seed: int = 0,
                gz: bool = True) -> dict:
    """Random MNIST-format idx files; labels cycle 0..9. Returns the arrays written."""
    rng = np.random.RandomState(seed)
    target = Path(data_dir) / folder
    target.mkdir(parents=True, exist_ok=True)
    arrays = {}
    suffix = ".gz" if gz else ""
    for prefix, size in (("train", train), ("t10k", test)):
        images = rng.randint(0, 256, (size, 28, 28)).astype(np.uint8)
        labels = (np.arange(size) % 10).astype(np.uint8)
        write_idx(target / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(target / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        arrays[prefix] = (images, labels)
    return arrays


class Python2Pickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 ``str`` (BINSTRING opcodes), as the official CIFAR
    pickles were written: ``encoding="bytes"`` reads them as bytes, ``"latin1"`` as str."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def dump_python2(content, path: Path) -> None:
    with open(path, "wb") as stream:
        Python2Pickler(stream, protocol=2).dump(content)


def _cifar_batch(path: Path, images: np.ndarray, labels: dict) -> None:
    content = {b"data": images.reshape(len(images), -1), b"batch_label": b"testing"}
    content.update({key: list(map(int, value)) for key, value in labels.items()})
    dump_python2(content, path)


def write_cifar10(data_dir, folder: str = "cifar-10", per_batch: int = 10, test: int = 10,
                  seed: int = 0) -> dict:
    """CIFAR-10 python-format pickles: 5 training batches, a test batch, batches.meta."""
    rng = np.random.RandomState(seed)
    target = Path(data_dir) / folder
    target.mkdir(parents=True, exist_ok=True)
    written = {"train_images": [], "train_labels": []}
    for k in range(1, 6):
        images = rng.randint(0, 256, (per_batch, 3, 32, 32)).astype(np.uint8)
        labels = rng.randint(0, 10, per_batch)
        _cifar_batch(target / f"data_batch_{k}", images, {b"labels": labels})
        written["train_images"].append(images)
        written["train_labels"].append(labels)
    images = rng.randint(0, 256, (test, 3, 32, 32)).astype(np.uint8)
    labels = rng.randint(0, 10, test)
    _cifar_batch(target / "test_batch", images, {b"labels": labels})
    dump_python2({b"label_names": [f"class{k}".encode() for k in range(10)]}, target / "batches.meta")
    written["train_images"] = np.concatenate(written["train_images"])
    written["train_labels"] = np.concatenate(written["train_labels"])
    written["test_images"], written["test_labels"] = images, labels
    return written


def write_cifar100(data_dir, folder: str = "cifar-100", train: int = 50, test: int = 10,
                   seed: int = 0) -> dict:
    """CIFAR-100 python-format pickles with fine labels 0..99 and coarse labels 0..19."""
    rng = np.random.RandomState(seed)
    target = Path(data_dir) / folder
    target.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, size in (("train", train), ("test", test)):
        images = rng.randint(0, 256, (size, 3, 32, 32)).astype(np.uint8)
        fine = rng.randint(20, 100, size)  # >= 20: cannot be mistaken for coarse labels
        coarse = fine // 5
        _cifar_batch(target / name, images, {b"fine_labels": fine, b"coarse_labels": coarse})
        written[name] = (images, fine)
    dump_python2({b"fine_label_names": [b"x"] * 100, b"coarse_label_names": [b"y"] * 20}, target / "meta")
    return written


def write_svhn(data_dir, folder: str = "svhn", train: int = 40, test: int = 20, seed: int = 0) -> dict:
    """SVHN .mat files: X (32, 32, 3, N) uint8, y (N, 1) in 1..10 (10 = digit 0)."""
    import scipy.io

    rng = np.random.RandomState(seed)
    target = Path(data_dir) / folder
    target.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, size in (("train", train), ("test", test)):
        images = rng.randint(0, 256, (32, 32, 3, size)).astype(np.uint8)
        labels = (np.arange(size) % 10 + 1).reshape(-1, 1).astype(np.uint8)
        scipy.io.savemat(str(target / f"{name}_32x32.mat"), {"X": images, "y": labels})
        written[name] = (images, labels)
    return written


def gutenberg_lines(body_lines: int = 300, seed: int = 0) -> list:
    """Lines of a War-and-Peace-like raw text: 29 header lines, 4 title lines, 771 lines
    of contents, the body. The contents and header are what DeepOBS's first cuts drop."""
    rng = np.random.RandomState(seed)
    words = ["the", "prince", "said", "Natasha", "war", "peace", "and", "of", "Pierre", "Moscow"]
    header = [f"The Project Gutenberg EBook header line {k}" for k in range(29)]
    header[0] = "\ufeff" + header[0]
    title = ["WAR AND PEACE", "", "By Leo Tolstoy/Tolstoi", ""]
    contents = [f"CHAPTER {k}" for k in range(771)]
    body = [" ".join(rng.choice(words, 8)) + "." for _ in range(body_lines)]
    return header + title + contents + body


def write_tolstoi_text(data_dir, lines=None) -> bytes:
    """A raw text with CRLF line ends as ``tolstoi/war-and-peace.txt``; returns its bytes."""
    target = Path(data_dir) / "tolstoi"
    target.mkdir(parents=True, exist_ok=True)
    raw = ("\r\n".join(lines if lines is not None else gutenberg_lines()) + "\r\n").encode("utf-8")
    (target / "war-and-peace.txt").write_bytes(raw)
    return raw


def write_jpeg_folders(data_dir, classes=("n01", "n02", "n03"), train_per_class: int = 4,
                       val_per_class: int = 2, seed: int = 0) -> None:
    """``imagenet/{train,val}/<class>/*.JPEG`` with small images of different sizes."""
    import torch
    from torchvision.io import write_jpeg

    generator = torch.Generator().manual_seed(seed)
    sizes = [(60, 80), (90, 50), (64, 64), (40, 120)]
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for name in classes:
            folder = Path(data_dir) / "imagenet" / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                height, width = sizes[k % len(sizes)]
                image = torch.randint(0, 256, (3, height, width), generator=generator, dtype=torch.uint8)
                write_jpeg(image, str(folder / f"{name}_{k}.JPEG"))
