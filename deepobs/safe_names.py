"""Placeholder: the one gate from names to path components."""

from deepobs.errors import ConfigurationError


def path_component(value, what: str = "name") -> str:
    if (not isinstance(value, str) or not value.strip() or value in (".", "..") or "/" in value
            or "\\" in value or any(ord(c) < 32 for c in value) or len(value.encode()) > 255):
        raise ConfigurationError(f"{what} {value!r} is not usable as a folder name")
    return value
