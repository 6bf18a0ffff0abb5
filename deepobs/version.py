"""The package version, read from the installed metadata or the VERSION file."""

from importlib import metadata
from pathlib import Path


def _read_version() -> str:
    version_file = Path(__file__).resolve().parent.parent / "VERSION"
    if version_file.is_file():
        return version_file.read_text().strip()
    try:
        return metadata.version("deepobs")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _read_version()
