"""Downloads that resume, report progress and verify checksums before a file is used.

A file is fetched into ``<name>.part``; an interrupted download continues from there
with an HTTP Range request, and only a file with the expected checksum is renamed to
its final name.
"""

from __future__ import annotations

import shutil
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Sequence

from deepobs.datasets.files import OfficialFile, check_digest
from deepobs.errors import DataError

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 30
USER_AGENT = "deepobs-prepare-data"


def part_path(destination: Path) -> Path:
    """Where the unfinished download of ``destination`` is kept."""
    return destination.with_name(destination.name + ".part")


def _open(url: str, offset: int):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)


def _progress_bar(total: Optional[int], initial: int, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=name, file=sys.stderr, disable=not enabled, leave=True, dynamic_ncols=True)


def fetch(url: str, destination: Path, *, size: Optional[int] = None, progress: bool = True) -> Path:
    """Download ``url`` to ``destination``'s ``.part`` file, resuming what is there.

    Returns the ``.part`` path once the server has sent everything. A server that ignores
    the Range header (HTTP 200 to a resumed request) makes the download start over.
    Raises DataError on network failures, with the URL and the reason.
    """
    partial = part_path(destination)
    offset = partial.stat().st_size if partial.exists() else 0
    if size is not None and offset >= size:
        return partial  # complete already (or too long: the checksum will tell)
    try:
        try:
            response = _open(url, offset)
        except urllib.error.HTTPError as error:
            if error.code != 416 or not offset:
                raise
            return partial  # "range not satisfiable": nothing left to send
        with response:
            status = getattr(response, "status", None) or 200
            resumed = bool(offset) and status == 206
            if offset and not resumed:
                offset = 0  # the server sends the whole file again
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else size
            with open(partial, "ab" if resumed else "wb") as stream, \
                    _progress_bar(total, offset, destination.name, progress) as bar:
                while True:
                    chunk = response.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    stream.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as error:
        raise DataError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise DataError(f"cannot download {url}: {reason}") from None
    return partial


def download_file(urls: Sequence[str], destination, record: OfficialFile, *,
                  progress: bool = True) -> Path:
    """Make ``destination`` a verified copy of the official file ``record``.

    An existing file with the right checksum is kept. Otherwise each URL (mirror) is
    tried in turn: download (resuming a partial file), verify, and only then move into
    place. A checksum mismatch deletes the partial file and tries the next mirror.
    Raises DataError naming the file when no mirror gives a good copy.
    """
    destination = Path(destination)
    if destination.exists():
        try:
            check_digest(destination, record)
            return destination
        except DataError:
            destination.unlink()
    errors = []
    for url in urls:
        try:
            partial = fetch(url, destination, size=record.size, progress=progress)
        except DataError as error:
            errors.append(str(error))
            continue
        if record.size is not None and partial.stat().st_size < record.size:
            errors.append(f"incomplete download of {url} ({partial.stat().st_size:,} of "
                          f"{record.size:,} bytes); run again to resume")
            continue
        try:
            check_digest(partial, record)
        except DataError as error:
            partial.unlink()  # a bad copy: resuming it cannot help
            errors.append(f"{url}: {error}")
            continue
        shutil.move(str(partial), str(destination))
        return destination
    partial = part_path(destination)
    kept = (f"; the partial file {partial} is kept and the next attempt resumes it"
            if partial.exists() else "")
    raise DataError(
        f"no good copy of {destination.name}: {'; '.join(errors) or 'no URL given'}{kept}. "
        f"Check the network connection, or place the official file at {destination}"
    )

__all__ = ["download_file", "fetch", "part_path"]
