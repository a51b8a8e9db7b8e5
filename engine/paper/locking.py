"""The paper state's files on disk: the lock a trading run holds, and what a run that
never wrote its state leaves behind (nothing).

A trading run holds an OS lock on ``<state>.lock`` for its whole life, so one process
trades one state file; the OS drops the lock when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from engine.errors import StateError


def lock_path(path: Path) -> Path:
    """The lock file a trading run holds (``state.sqlite`` -> ``state.sqlite.lock``)."""
    return path.with_name(f"{path.name}.lock")


def acquire_lock(path: Path) -> int:
    """Lock ``<state>.lock`` for this process's life; the OS drops it when the process
    ends, however it ends (kill -9 included). Returns the lock's file descriptor.

    A run that made no state removes its lock file when it stops (``give_up``); a
    process that locked that file just before it went takes the new one instead.

    Raises:
        StateError: Another process holds it; the message names the state and that pid.
    """
    while True:
        fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateError(f"{path} is in use by another paper-trading process (pid "
                             f"{holder}); run one process per state file: stop that one "
                             "first, or pass another --state file") from None
        try:
            current = os.stat(lock_path(path)).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        release_lock(fd)  # the file was removed meanwhile: lock the one now at the path
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def give_up(path: Path, lock: int | None, new_dir: Path | None) -> None:
    """Leave no trace of a state that was never written: its lock file (removed while
    still held, so no other process can be holding it) and the folders made for it."""
    if lock is not None and not path.exists():
        lock_path(path).unlink(missing_ok=True)
    release_lock(lock)
    if new_dir is not None and not path.exists():
        folder = path.parent
        while True:
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break
            if folder == new_dir:
                break
            folder = folder.parent


def first_missing(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that does not exist yet, or None."""
    missing = None
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def release_lock(fd: int | None) -> None:
    """Give back a lock taken by ``acquire_lock`` (None: nothing to do)."""
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
