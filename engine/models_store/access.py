"""Whether a model store may be written: found out once, said once, and honoured.

A store can be read-only for this process (a team's shared store, a read-only mount). It
is then read without writing: entries are reused but not marked as used, and what a run
would add (new folds, forecasts) is simply not stored. ``StoreAccess`` finds this out
before the first write (or from the first refused one) and logs one warning.
"""

from __future__ import annotations

import errno
import logging
import os
import uuid
from pathlib import Path

log = logging.getLogger("engine.models_store")
_REFUSED = (errno.EACCES, errno.EPERM, errno.EROFS)


class StoreAccess:
    """Write access to one store directory.

    Args:
        root: The store directory.
    """

    def __init__(self, root: Path):
        self.root = root
        self.read_only = False  # set, with one warning, when the store cannot be written
        self._checked = False

    def writable(self) -> bool:
        """False for a store this process may not write (checked once, before the first
        write or touch, so a read-only store is never even marked as used)."""
        if not self._checked:
            self._checked = True
            if self.root.is_dir() and not os.access(self.root, os.W_OK):
                self._set_read_only("no write permission")
        return not self.read_only

    def refused(self, exc: OSError) -> bool:
        """Whether ``exc`` says the store cannot be written (then it is read from only)."""
        if exc.errno not in _REFUSED:
            return False
        self._set_read_only(exc.strerror or str(exc))
        return True

    def touch(self, path: Path) -> None:
        """Mark ``path`` as used now, where the store may be written."""
        if not self.writable():
            return
        try:
            os.utime(path)
        except OSError as exc:
            if not self.refused(exc):
                log.debug("cannot mark %s as used (%s)", path, exc)

    def _set_read_only(self, why: str) -> None:
        if not self.read_only:  # one warning per store
            self.read_only = True
            log.warning("the model store %s is read-only (%s): its fold models are reused, "
                        "folds it lacks are trained without being stored", self.root, why)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` under a temporary name, flush it to disk and rename it to ``path``."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
