"""sha256 checksums of a store entry's files, written with them and checked on every read.

An entry's files are listed with their sha256 in ``SHA256SUMS``, written in the entry's
temporary directory before it is renamed into place. A file added to an entry later (a
forecasts file) gets a ``<name>.sha256`` beside it, written before the file itself, so a
file never exists without its checksum. Both use ``sha256sum``'s format, so
``sha256sum -c SHA256SUMS *.sha256`` inside an entry checks it by hand too.

Names starting with a dot are temporary files of a write in progress and are not part of
an entry. A ``.sha256`` whose file is absent is what a crash between the two writes (or a
deleted forecasts file) leaves: it covers nothing and is ignored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

SUMS = "SHA256SUMS"
SIDECAR = ".sha256"
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
_CHUNK = 1 << 20


class Damaged(Exception):
    """A file of an entry is missing, or its bytes are not those written."""


def digest_of(data: bytes) -> str:
    """The sha256 of ``data`` in hex."""
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    """The sha256 of a file in hex, read in pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sums_text(sums: Iterable[tuple[str, str]]) -> str:
    """``(name, sha256)`` pairs as ``sha256sum`` writes them."""
    return "".join(f"{digest}  {name}\n" for name, digest in sums)


def entry_files(folder: Path) -> list[str]:
    """The entry's own files under ``folder`` (sub-folders included), as relative POSIX
    names: no temporary (dot) files, no checksum files."""
    names = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if rel.as_posix() == SUMS or path.name.endswith(SIDECAR):
            continue
        names.append(rel.as_posix())
    return sorted(names)


def write_sums(folder: Path) -> list[Path]:
    """Write ``SHA256SUMS`` over every file of a new entry; returns every file written
    (the entry's files and the sums), for flushing to disk."""
    names = entry_files(folder)
    (folder / SUMS).write_text(sums_text((n, file_digest(folder / n)) for n in names))
    return [folder / n for n in names] + [folder / SUMS]


def _parse(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise Damaged(f"{path.name} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Damaged(f"{path.name} cannot be read ({exc})") from None
    sums = {}
    for line in text.splitlines():
        found = _LINE.match(line)
        if found is None:
            raise Damaged(f"{path.name} is not a list of checksums")
        sums[found.group(2)] = found.group(1)
    return sums


def expected(folder: Path, name: str) -> str:
    """The checksum written for ``name``: from ``SHA256SUMS``, else its ``.sha256`` file.

    Raises:
        Damaged: No checksum covers ``name``, or the checksum files do not read.
        FileNotFoundError: Neither names ``name`` and the file is not there either (a
            forecasts file that was never written, or the entry is gone).
    """
    listed = _parse(folder / SUMS)
    if name in listed:
        return listed[name]
    sidecar = folder / f"{name}{SIDECAR}"
    if not sidecar.exists():
        if (folder / name).exists():
            raise Damaged(f"{name} has no checksum")
        raise FileNotFoundError(folder / name)
    sums = _parse(sidecar)
    if list(sums) != [Path(name).name]:
        raise Damaged(f"{sidecar.name} names another file")
    return sums[Path(name).name]


def read_verified(folder: Path, name: str) -> bytes:
    """The bytes of ``folder / name`` after checking them against their checksum.

    Raises:
        Damaged: The bytes differ from what was written, no checksum covers them, or a
            file listed in ``SHA256SUMS`` is missing.
        FileNotFoundError: A file added later (forecasts) is not there.
    """
    want = expected(folder, name)
    try:
        data = (folder / name).read_bytes()
    except FileNotFoundError:
        if name in _parse(folder / SUMS):
            raise Damaged(f"{name} is missing") from None
        raise  # a file added later and deleted since, leaving its .sha256: never written
    except OSError as exc:
        raise Damaged(f"{name} cannot be read ({exc.strerror or exc})") from None
    if digest_of(data) != want:
        raise Damaged(f"{name} does not match its checksum")
    return data


def verify(folder: Path) -> None:
    """Check every file of an entry: each one listed in ``SHA256SUMS`` is there with its
    bytes, and every other file has a matching ``.sha256``.

    Raises:
        Damaged: The first problem found.
        FileNotFoundError: The entry is gone (removed meanwhile).
    """
    if not folder.is_dir():
        raise FileNotFoundError(folder)
    listed = _parse(folder / SUMS)
    for name, want in listed.items():
        try:
            if file_digest(folder / name) != want:
                raise Damaged(f"{name} does not match its checksum")
        except FileNotFoundError:
            raise Damaged(f"{name} is missing") from None
        except OSError as exc:
            raise Damaged(f"{name} cannot be read ({exc.strerror or exc})") from None
    for name in entry_files(folder):
        if name not in listed:
            read_verified(folder, name)
