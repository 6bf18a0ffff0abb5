"""``deepobs-prepare-data``: download the data sets from their original sources and lay
them out as the loaders read them (DeepOBS's folder names: mnist/, fmnist/, cifar-10/ ...).
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from deepobs.config import get_data_dir
from deepobs.datasets.download import download_file
from deepobs.datasets.files import check_digest, is_writable_dir, official_file
from deepobs.errors import ConfigurationError, DataError

MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
FMNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
# The War and Peace copy DeepOBS downloads, pinned to the commit shared/data was taken from.
TOLSTOI_URL = ("https://raw.githubusercontent.com/AllenDowney/fluent-python-notebooks/"
               "b71e738e2b816c962369b6d5c1ecb62065a65454/attic/sequences/war-and-peace.txt")
IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@dataclass
class Source:
    """One data set: what to download into ``<data_dir>/<folder>`` and what it yields.

    ``downloads`` maps file names to their URLs (mirrors, tried in order); ``archive``
    names a downloaded tarball to unpack (first path component stripped) and delete;
    ``ready`` lists the files the loader needs, verified against their checksums.
    """

    name: str
    folder: str
    downloads: dict
    ready: tuple
    archive: Optional[str] = None
    after: Optional[Callable] = field(default=None, repr=False)


def _warm_tolstoi(data_dir: Path) -> str:
    """Derive (and cache) Tolstoi's arrays now, so the first run does not have to."""
    from deepobs.datasets.tolstoi import Tolstoi

    data = Tolstoi(1, data_dir=str(data_dir), protocol="1.1")
    return (f"vocabulary {len(data.vocabulary)}, train {data.streams['train'].numel():,} "
            f"and test {data.streams['test'].numel():,} characters")


SOURCES = {
    "mnist": Source("mnist", "mnist", {name: [m + name for m in MNIST_MIRRORS] for name in IDX_NAMES},
                    IDX_NAMES),
    "fmnist": Source("fmnist", "fmnist", {name: [m + name for m in FMNIST_MIRRORS] for name in IDX_NAMES},
                     IDX_NAMES),
    "cifar10": Source(
        "cifar10", "cifar-10",
        {"cifar-10-python.tar.gz": ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]},
        tuple(f"data_batch_{k}" for k in range(1, 6)) + ("test_batch", "batches.meta"),
        archive="cifar-10-python.tar.gz"),
    "cifar100": Source(
        "cifar100", "cifar-100",
        {"cifar-100-python.tar.gz": ["https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"]},
        ("train", "test", "meta"), archive="cifar-100-python.tar.gz"),
    "svhn": Source(
        "svhn", "svhn",
        {name: [f"http://ufldl.stanford.edu/housenumbers/{name}"]
         for name in ("train_32x32.mat", "test_32x32.mat")},
        ("train_32x32.mat", "test_32x32.mat")),
    "tolstoi": Source("tolstoi", "tolstoi", {"war-and-peace.txt": [TOLSTOI_URL]},
                      ("war-and-peace.txt",), after=_warm_tolstoi),
}
#: ImageNet cannot be downloaded without an image-net.org account: it is only checked.
ALL_NAMES = tuple(SOURCES) + ("imagenet",)
DEFAULT_NAMES = tuple(SOURCES)


def is_ready(source: Source, folder: Path) -> bool:
    """True if every file the loader needs is there with its official checksum."""
    for name in source.ready:
        path = folder / name
        if not path.is_file():
            return False
        record = official_file(source.name, name)
        if record is not None:
            try:
                check_digest(path, record)
            except DataError:
                return False
    return True


def unpack(archive: Path, folder: Path) -> None:
    """Unpack a tarball into ``folder``, dropping its top folder (``tar --strip 1``)."""
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if len(parts) < 2 or not (member.isfile() or member.isdir()):
                    continue
                member.name = str(Path(*parts[1:]))
                tar.extract(member, folder, filter="data")
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataError(f"corrupt archive {archive}: {error}; delete it and run again") from None


def prepare(source: Source, data_dir: Path, progress: bool = True) -> str:
    """Download, verify and unpack one data set; returns a one-line summary."""
    folder = data_dir / source.folder
    if is_ready(source, folder):
        summary = f"{len(source.ready)} files verified in {folder}"
    else:
        if not is_writable_dir(folder):
            raise DataError(f"the data dir {data_dir} is not writable; choose another with "
                            "--data_dir or $DEEPOBS_DATA_DIR")
        folder.mkdir(parents=True, exist_ok=True)
        for name, urls in source.downloads.items():
            print(f"{source.name}: downloading {name}", file=sys.stderr)
            download_file(urls, folder / name, official_file(source.name, name), progress=progress)
        if source.archive:
            unpack(folder / source.archive, folder)
            if not is_ready(source, folder):
                raise DataError(f"{source.name}: {folder / source.archive} did not unpack to the "
                                f"expected files {', '.join(source.ready)}")
            (folder / source.archive).unlink()
        summary = f"{len(source.ready)} files downloaded and verified in {folder}"
    if source.after is not None:
        summary += "; " + source.after(data_dir)
    return summary


def check_imagenet(data_dir: Path) -> str:
    """ImageNet needs a manual download: check that its folders are laid out as read."""
    root = data_dir / "imagenet"
    counts = {}
    for split in ("train", "val"):
        path = root / split
        classes = [entry for entry in os.scandir(path) if entry.is_dir()] if path.is_dir() else []
        if not classes:
            raise DataError(
                f"imagenet: {path} has no class folders. ImageNet cannot be downloaded "
                "automatically: download ILSVRC-2012 (train and validation images) from "
                f"https://image-net.org and place them as {root}/train/<wnid>/*.JPEG and "
                f"{root}/val/<wnid>/*.JPEG"
            )
        counts[split] = len(classes)
    return f"{counts['train']} training and {counts['val']} validation class folders in {root}"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _names(values, option: str) -> list:
    # Also DeepOBS's shell spelling "-o=mnist" (argparse hands over "=mnist").
    names = [name for value in values or [] for name in value.lstrip("=").replace(",", " ").split()]
    unknown = [name for name in names if name not in ALL_NAMES]
    if unknown:
        raise ConfigurationError(f"unknown data set {unknown[0]!r} in {option}; allowed: "
                                 f"{', '.join(ALL_NAMES)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The ``deepobs-prepare-data`` argument parser."""
    parser = _Parser(
        prog="deepobs-prepare-data",
        description="Download the DeepOBS data sets from their original sources, verify their "
                    "checksums and lay them out as the loaders read them. Interrupted downloads "
                    "resume. ImageNet is only checked (it needs a manual download).",
        epilog="example: deepobs-prepare-data --data_dir ~/data_deepobs --only mnist fmnist cifar10",
    )
    parser.add_argument("-d", "--data_dir", "--data-dir", dest="data_dir",
                        help="target folder (default: $DEEPOBS_DATA_DIR, else ./data_deepobs)")
    parser.add_argument("-o", "--only", nargs="+", metavar="NAME",
                        help=f"prepare only these data sets ({', '.join(ALL_NAMES)})")
    parser.add_argument("-s", "--skip", nargs="+", metavar="NAME", help="skip these data sets")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv=None) -> int:
    """Entry point of ``deepobs-prepare-data``; exit status 2 if any data set failed."""
    args = build_parser().parse_args(argv)
    try:
        only, skip = _names(args.only, "--only"), _names(args.skip, "--skip")
    except ConfigurationError as error:
        print(f"deepobs-prepare-data: error: {error}", file=sys.stderr)
        return 2
    data_dir = get_data_dir(args.data_dir)
    names = [name for name in (only or DEFAULT_NAMES) if name not in skip]
    failures = []
    for name in names:
        try:
            if name == "imagenet":
                summary = check_imagenet(data_dir)
            else:
                summary = prepare(SOURCES[name], data_dir, progress=not args.quiet)
            print(f"{name}: ready ({summary})")
        except (DataError, ConfigurationError) as error:
            print(f"deepobs-prepare-data: error: {error}", file=sys.stderr)
            failures.append(name)
        except KeyboardInterrupt:
            print(f"deepobs-prepare-data: interrupted during {name}; run again to resume",
                  file=sys.stderr)
            return 130
    if failures:
        print(f"deepobs-prepare-data: failed: {', '.join(failures)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
