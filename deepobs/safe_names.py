"""The one gate between a name and the file system.

Every name that becomes part of a path (a problem or optimizer name read from a result
file, a hyperparameter value in a setting folder, a sweep's name, a flag) goes through
:func:`path_component`, and every path built from such names through :func:`join_under`,
which also checks that the result stays inside its root. Result folders are shared and
downloaded from others, so a name read from a file is untrusted: ``../../x`` must never
make a tool write outside its output folder.

Imports nothing heavy (no torch, no pandas): the analyzer, the tuner and the runner all
use it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import unicodedata
from pathlib import Path

from deepobs.errors import ConfigurationError

#: Longest file or folder name, in UTF-8 bytes (the limit of ext4, XFS, APFS, NTFS...).
MAX_COMPONENT_BYTES = 255
#: Unicode categories refused in names: control, format (invisible: bidi overrides, ...),
#: surrogates, unassigned/private, line and paragraph separators.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_SEPARATORS = {"/", "\\"} | {sep for sep in (os.sep, os.altsep) if sep}


def printable(text) -> str:
    """``text`` with control and invisible characters escaped, for one-line messages."""
    text = str(text)
    if all(unicodedata.category(c) not in _REFUSED_CATEGORIES for c in text):
        return text
    return "".join(c if unicodedata.category(c) not in _REFUSED_CATEGORIES
                   else c.encode("unicode_escape", "backslashreplace").decode("ascii") for c in text)


def quoted(text) -> str:
    """``'text'`` with control and invisible characters escaped (for messages)."""
    return f"'{printable(text)}'"


def component_problem(name, reserve: int = 0):
    """Why ``name`` cannot be a file or folder name (with ``reserve`` bytes to spare for a
    suffix), or None when it can."""
    if not isinstance(name, str):
        return f"must be text, got {type(name).__name__}"
    if not name or not name.strip():
        return "is empty"
    if name in (".", ".."):
        return f"{name!r} is not a name"
    if any(sep in name for sep in _SEPARATORS):
        return "contains a path separator"
    bad = next((c for c in name if unicodedata.category(c) in _REFUSED_CATEGORIES), None)
    if bad is not None:
        return f"contains the control or invisible character {bad!r}"
    size = len(name.encode("utf-8"))
    if size + reserve > MAX_COMPONENT_BYTES:
        return f"is {size} bytes long in UTF-8 (at most {MAX_COMPONENT_BYTES - reserve})"
    return None


def path_component(name, what: str = "name", reserve: int = 0) -> str:
    """``name`` itself when it can be one file or folder name, else a one-line
    ConfigurationError: not empty, not ``.``/``..``, no separator, no control or invisible
    character (newline and NUL included), at most 255 UTF-8 bytes (minus ``reserve``)."""
    problem = component_problem(name, reserve)
    if problem is not None:
        shown = printable(name) if isinstance(name, str) else repr(name)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise ConfigurationError(f"{what} '{shown}' cannot be a file or folder name: {problem}")
    return name


def bounded_component(text: str, reserve: int = 0) -> str:
    """``text`` (already a valid name) shortened with a digest of the whole when it would
    exceed the length limit together with a ``reserve``-byte suffix (e.g. ``.png``)."""
    limit = MAX_COMPONENT_BYTES - reserve
    if len(text.encode("utf-8")) <= limit:
        return text
    digest = "~" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
    head = text.encode("utf-8")[: limit - len(digest)].decode("utf-8", "ignore")
    return head + digest


def output_path(path, what: str = "output folder") -> Path:
    """A user-given path (``--out``, ``--output_dir``) checked for what no path should
    hold: an empty name, control characters (a newline, NUL), over-long components."""
    text = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"{what} must be a non-empty path, got {quoted(text)}")
    bad = next((c for c in text if unicodedata.category(c) in _REFUSED_CATEGORIES), None)
    if bad is not None:
        raise ConfigurationError(f"{what} {quoted(text)} contains the control or invisible character {bad!r}")
    for part in Path(text).parts:
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise ConfigurationError(f"{what} {quoted(text[:80])}: a folder name is over "
                                     f"{MAX_COMPONENT_BYTES} bytes")
    return Path(text)


def join_under(root, *components, what: str = "name") -> Path:
    """``root/c1/c2/...`` after checking every component with :func:`path_component` and
    that the resolved result (symbolic links followed) is still inside the resolved root."""
    for component in components:
        path_component(component, what)
    root = Path(root)
    joined = root.joinpath(*components)
    resolved_root = root.resolve()
    resolved = joined.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise ConfigurationError(f"{what} {quoted(joined)} leads outside {quoted(root)} "
                                 f"(to {quoted(resolved)})")
    return joined


def writable_folder(folder, what: str = "output folder") -> Path:
    """Create ``folder`` (with its parents) and check that a file can be written in it;
    a one-line ConfigurationError (read-only, a file in the way, no permission) if not."""
    folder = output_path(folder, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ConfigurationError(f"{what} {quoted(folder)} is not writable: "
                                 f"{error.strerror or type(error).__name__}") from None
    return folder


__all__ = ["MAX_COMPONENT_BYTES", "path_component", "component_problem", "bounded_component", "join_under",
           "output_path", "writable_folder", "printable", "quoted"]
