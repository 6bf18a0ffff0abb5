"""Raw data files: where they live, their official checksums, and clear errors about them.

Loaders call :func:`require_file` (missing file -> :class:`DataError` naming the path
and the ``deepobs-prepare-data`` command that fixes it) and :func:`verify_file`
(known checksum of an official file; a truncated or altered copy is refused).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from deepobs.config import get_data_dir
from deepobs.errors import DataError

CACHE_ENV = "XDG_CACHE_HOME"


@dataclass(frozen=True)
class OfficialFile:
    """A file as published by the data set's authors: its name, size and checksum."""

    name: str
    md5: str
    size: Optional[int] = None
    sha256: Optional[str] = None


# Checksums: md5 as published by the data sets' authors (and checked by torchvision);
# sha256 and sizes of the files in shared/data as listed in its README.
OFFICIAL_FILES = {
    "mnist": [
        OfficialFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422,
                     "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        OfficialFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28_881,
                     "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        OfficialFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1_648_877,
                     "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        OfficialFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4_542,
                     "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ],
    "fmnist": [
        OfficialFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26_421_880,
                     "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        OfficialFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", 29_515,
                     "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        OfficialFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", 4_422_102,
                     "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        OfficialFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", 5_148,
                     "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ],
    "cifar10": [
        OfficialFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", 170_498_071),
        OfficialFile("data_batch_1", "c99cafc152244af753f735de768cd75f"),
        OfficialFile("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
        OfficialFile("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
        OfficialFile("data_batch_4", "634d18415352ddfa80567beed471001a"),
        OfficialFile("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
        OfficialFile("test_batch", "40351d587109b95175f43aff81a1287e"),
        OfficialFile("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
    ],
    "cifar100": [
        OfficialFile("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
        OfficialFile("train", "16019d7e3df5f24257cddd939b257f8d"),
        OfficialFile("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),
        OfficialFile("meta", "7973b15100ade9c7d40fb424638fde48"),
    ],
    "svhn": [
        OfficialFile("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
        OfficialFile("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
    ],
    "tolstoi": [
        OfficialFile("war-and-peace.txt", "", 3_291_641,
                     "3ed0f41cfdf660846878943bad5b9d575bcae1e4a92ee9a7f43d3c9dba2af344"),
    ],
}


def official_file(dataset: str, name: str) -> Optional[OfficialFile]:
    """The official record of file ``name`` of ``dataset`` (None if it has none)."""
    for record in OFFICIAL_FILES.get(dataset, []):
        if record.name == name:
            return record
    return None


def prepare_command(dataset: str, data_dir) -> str:
    """The shell command that downloads and prepares ``dataset`` into ``data_dir`` (the
    folder as resolved: ``$DEEPOBS_DATA_DIR`` or ./data_deepobs when none is given)."""
    import shlex

    folder = get_data_dir(None if data_dir is None else str(data_dir))
    return f"deepobs-prepare-data --data_dir {shlex.quote(str(folder))} --only {dataset}"


def dataset_dir(data_dir, folder: str) -> Path:
    """``<data_dir>/<folder>``, the data dir resolved as :func:`deepobs.config.get_data_dir`."""
    return get_data_dir(None if data_dir is None else str(data_dir)) / folder


def require_file(path: Path, dataset: str, data_dir) -> Path:
    """Return ``path`` if it is a file, else raise DataError naming it and the fix."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{dataset}: missing data file {path}; run `{prepare_command(dataset, data_dir)}` "
            "(or point --data_dir / $DEEPOBS_DATA_DIR at a folder that has it)"
        )
    return path


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_digest(path: Path, record: OfficialFile) -> None:
    """Raise DataError unless ``path`` has the size and checksum of ``record``."""
    path = Path(path)
    size = path.stat().st_size
    if record.size is not None and size != record.size:
        raise DataError(
            f"corrupt or truncated data file {path}: {size:,} bytes, the official "
            f"{record.name} has {record.size:,}; delete it and download it again"
        )
    algorithm, expected = ("sha256", record.sha256) if record.sha256 else ("md5", record.md5)
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DataError(
            f"corrupt data file {path}: {algorithm} {actual}, expected {expected} of the "
            f"official {record.name}; delete it and download it again"
        )


def verify_file(path: Path, dataset: str, data_dir=None) -> None:
    """Check an official raw file against its known checksum (once per file version).

    A file already verified with the same size and modification time is not hashed
    again: the result is remembered in the cache folder.
    """
    path = Path(path)
    record = official_file(dataset, path.name)
    if record is None:
        return
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    memo_path = cache_dir(data_dir) / "verified.json"
    memo = _read_json(memo_path)
    if memo.get(key) == (record.sha256 or record.md5):
        return
    check_digest(path, record)
    memo[key] = record.sha256 or record.md5
    _write_json(memo_path, memo)


def _may_write(folder: Path) -> bool:
    """Write access to an existing folder that is not marked read-only.

    A folder without any write bit counts as read-only even for root (who could write
    anyway): a shared read-only data copy must never be changed.
    """
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return bool(mode & 0o222) and os.access(folder, os.W_OK | os.X_OK)


def is_writable_dir(path: Path) -> bool:
    """True if ``path`` is (or, created in its nearest existing parent, would be) writable.

    Creates nothing.
    """
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return path.is_dir() and _may_write(path)


def cache_dir(data_dir=None) -> Path:
    """Where derived arrays are cached: ``<data_dir>/.cache`` if writable, else the user cache.

    The user cache is ``$XDG_CACHE_HOME/deepobs`` (default ``~/.cache/deepobs``), so a
    read-only data folder (a shared copy) works without any preparation step.
    """
    user_cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache") / "deepobs"
    data_cache = get_data_dir(None if data_dir is None else str(data_dir)) / ".cache"
    if data_cache.parent.is_dir() and is_writable_dir(data_cache):
        return data_cache
    return user_cache


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, content: dict) -> None:
    """Write atomically; silently skip when the cache cannot be written (memo only)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(content))
        os.replace(temporary, path)
    except OSError:
        pass


__all__ = [
    "OfficialFile", "OFFICIAL_FILES", "official_file", "prepare_command", "dataset_dir",
    "require_file", "file_digest", "check_digest", "verify_file", "is_writable_dir", "cache_dir",
]
