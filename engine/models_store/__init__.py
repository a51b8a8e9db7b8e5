"""A content-addressed store of fitted fold models, shared by every run on this machine.

A fold's model is decided by the forecaster's kind and settings (the seeds among them),
the fold's shape (index, warm start, epochs), the exact rows of every symbol the fold may
know, the previous fold's model when it is warm-started, and the runtime (Keras and its
backend's versions). The store's key is a hash of all of these (``fold_key``), so a fold
whose key is present is loaded, not trained, and its forecasts are taken from the entry
when it holds outputs for exactly the same input windows (else recomputed from its model
and added); anything that could change the model changes the key. Entries live under
``data.model_store`` (default ``<data.cache_dir>/models``), one directory per key::

    <store>/<key>/model.json     the fold's settings, training record and model files
    <store>/<key>/<model files>  what the kind saves: model.keras (every seed's member)
                                 with the optimizer state a warm start continues from,
                                 model.npz (ridge), LightGBM text models, a custom
                                 class's member_J/ folders
    <store>/<key>/forecasts-<digest>.npy
                                 the members' outputs for a set of input windows, keyed
                                 by ``windows_digest`` of exactly those windows

Every file of an entry is covered by a sha256 checksum written with it (``SHA256SUMS``
for the files written with the entry, ``<name>.sha256`` beside a forecasts file added
later; see ``engine.models_store.checksums``) and checked whenever it is read: an entry
with a missing or changed file is logged, removed and its fold trained again, and is never
linked into a run's outputs. A store that cannot be written is read without writing.

An entry is written in a temporary directory beside it and renamed into place, so a crash
never leaves a half-written entry under a key, and runs that fit the same fold at once
both succeed (the first rename wins; the folds are identical). Each use touches
``model.json``; ``python -m engine.models_store prune --older-than DAYS`` removes the
entries not used for that long (the command lives in ``__main__``).

Example:
    >>> store = ModelStore.for_data(cfg.data)
    >>> store.lookup(key)  # the entry's settings, or None when the fold must be trained
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.config import DataConfig
from engine.errors import ConfigError, ModelError
from engine.models_store import checksums
from engine.models_store.access import StoreAccess, write_atomic

log = logging.getLogger(__name__)

# Bump when the training procedure changes in a way the key does not see (the loss, the
# shuffling, the seeding): every earlier entry then stops matching. 2: models.training's
# compiled loop (padded last batch, XLA on TensorFlow) replaced one Keras fit per epoch.
FORMAT = 2
STALE_TEMP_S = 3600.0  # temporary directories older than this are left by a crashed run
_KEY_LEN = 64
MODEL, META = "model.keras", "model.json"  # a Keras model's file; every entry's settings


def rows_digest(frames: Mapping[str, pd.DataFrame], columns: Sequence[str], start: int,
                end: int) -> str:
    """sha256 of bars ``start .. end - 1`` of ``columns`` of every symbol, with their times.

    The times are hashed in nanoseconds whatever unit the index uses, so candles read from
    the cache or from CSV files hash alike when their values are the same.
    """
    digest = hashlib.sha256()
    for symbol, frame in frames.items():
        digest.update(symbol.encode() + b"\0")
        stamps = pd.DatetimeIndex(frame.index[start:end]).as_unit("ns").asi8
        digest.update(np.ascontiguousarray(stamps, dtype="<i8").tobytes())
        for column in columns:
            values = frame[column].to_numpy(dtype="float64")[start:end]
            digest.update(column.encode() + b"\0")
            digest.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    return digest.hexdigest()


def windows_digest(X: np.ndarray) -> str:
    """sha256 of a batch of model input windows: their dtype, shape and values."""
    digest = hashlib.sha256(f"{X.dtype.str}{X.shape}".encode())
    digest.update(np.ascontiguousarray(X).tobytes())
    return digest.hexdigest()


def fold_key(model: Mapping[str, Any], fold: Mapping[str, Any], data: str,
             previous: str | None, runtime: Mapping[str, Any]) -> str:
    """The store key of one fold.

    Args:
        model: Every model setting (the seed among them).
        fold: What shapes the fold besides its data: its index (the fold's seed is
            ``seed + index``), whether it is warm-started, its epochs.
        data: ``rows_digest`` of the bars the fold may know.
        previous: The key of the fold it continues from when warm-started, else None.
        runtime: The Keras version and backend (``models.runtime.runtime``).
    """
    payload = {"format": FORMAT, "model": dict(model), "fold": dict(fold), "data": data,
               "previous": previous, "runtime": dict(runtime)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class ModelStore:
    """Fitted fold models on disk, by key.

    Every file of an entry is checked against the checksum written with it whenever it is
    read (``engine.models_store.checksums``); an entry with a missing or changed file is
    logged, removed and its fold trained again, and never linked into a run's outputs. A
    store that cannot be written (a shared, read-only directory) is read without writing:
    its entries are reused, missing folds are trained without being stored, and one
    warning says so.

    Args:
        root: The store directory (created on the first write).
        retrain: Never report an entry as present: every fold is trained and its entry
            replaced (``--retrain``).
    """

    def __init__(self, root: Path, retrain: bool = False):
        self.root = Path(root).expanduser()
        self.retrain = retrain
        self.access = StoreAccess(self.root)

    @property
    def read_only(self) -> bool:
        """Whether this store was found read-only (see ``StoreAccess``)."""
        return self.access.read_only

    @classmethod
    def for_data(cls, data: DataConfig, retrain: bool = False) -> ModelStore:
        """The store a config names: ``data.model_store``, else ``<data.cache_dir>/models``."""
        return cls(store_path(data), retrain=retrain)

    def entry(self, key: str) -> Path:
        """The directory of ``key``'s entry (which may not exist)."""
        return self.root / key

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The settings saved with ``key``'s model, or None when it must be trained.

        Every file of the entry is checked first; a damaged entry is removed (logged) and
        None returned. A found entry is touched, so pruning by age keeps what is in use.
        """
        if self.retrain or not self.entry(key).is_dir():
            return None
        try:
            checksums.verify(self.entry(key))
            meta = json.loads(checksums.read_verified(self.entry(key), META))
            if not isinstance(meta, dict) or meta.get("key") != key:
                raise checksums.Damaged(f"{META} names another key")
        except FileNotFoundError:
            return None  # pruned meanwhile
        except (checksums.Damaged, ValueError) as exc:
            self._discard(key, str(exc))
            return None
        self.access.touch(self.entry(key) / META)
        return meta

    def check(self, key: str, name: str = MODEL) -> bool:
        """Whether file ``name`` of ``key``'s entry is there with the bytes written; a
        damaged entry is removed (logged) and False returned."""
        try:
            checksums.read_verified(self.entry(key), name)
        except FileNotFoundError:
            return False
        except checksums.Damaged as exc:
            self._discard(key, str(exc))
            return False
        return True

    def read_forecasts(self, key: str, digest: str) -> np.ndarray | None:
        """The outputs ``key``'s model gave for the windows of ``digest``, or None when
        the entry holds none for them. A file that does not match its checksum or does
        not parse is removed (logged) and None returned: they are then recomputed from
        the weights, which were checked too."""
        name = f"forecasts-{digest}.npy"
        try:
            return np.load(io.BytesIO(checksums.read_verified(self.entry(key), name)),
                           allow_pickle=False)
        except FileNotFoundError:
            return None
        except (checksums.Damaged, OSError, ValueError) as exc:
            log.warning("model store forecasts %s are damaged (%s); recomputing them",
                        self.entry(key) / name, exc)
            if self.access.writable():
                for path in (self.entry(key) / name, self.entry(key) / f"{name}.sha256"):
                    try:
                        path.unlink(missing_ok=True)
                    except OSError as unlink_error:
                        if not self.access.refused(unlink_error):
                            raise
            return None

    def put_forecasts(self, key: str, digest: str, outputs: np.ndarray) -> None:
        """Keep ``key``'s model outputs for the windows of ``digest`` in its entry, with
        their checksum (each written aside and renamed into place, the checksum first).
        A store that cannot be written costs reuse, not the run, so a failure is only
        logged."""
        name = f"forecasts-{digest}.npy"
        final = self.entry(key) / name
        if not self.access.writable() or final.exists():  # exists: another run put them meanwhile
            return
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(outputs), allow_pickle=False)
        data = buffer.getvalue()
        sums = checksums.sums_text([(name, checksums.digest_of(data))]).encode()
        try:
            write_atomic(self.entry(key) / f"{name}{checksums.SIDECAR}", sums)
            write_atomic(final, data)
        except OSError as exc:
            if not self.access.refused(exc):
                log.warning("cannot keep forecasts in the model store entry %s (%s); they "
                            "will be recomputed next time", self.entry(key),
                            exc.strerror or exc)

    def put(self, key: str, save: Callable[[Path], list[str]],
            meta: dict[str, Any]) -> Path | None:
        """Store a fitted fold (replacing an entry when ``retrain``): ``save(folder)``
        writes the model's files into the entry's temporary folder and returns their
        names, which ``model.json`` lists beside ``meta``.

        Returns:
            The entry; None when nothing was stored (a read-only store, or one that
            cannot be written: that costs reuse, not the run, so it is only logged).
        """
        def write(folder: Path) -> None:
            meta["files"] = list(save(folder))

        meta = dict(meta)
        try:
            return self._write_entry(key, write, meta)
        except OSError as exc:
            log.warning("cannot write the model store %s (%s); this fold will be trained "
                        "again next time", self.root, exc.strerror or exc)
            return None

    def _write_entry(self, key: str, write_files: Callable[[Path], None],
                     meta: dict[str, Any]) -> Path | None:
        """Write an entry: ``write_files(folder)`` puts the model's files into a temporary
        folder, ``meta`` (with the key) becomes ``model.json``; then every file's checksum
        goes into ``SHA256SUMS``, everything is flushed to disk and the folder is renamed
        into place. If another run put the same key meanwhile, its entry is kept.

        Returns:
            The entry, or None when the store is read-only.
        """
        if not self.access.writable():
            return None
        tmp = self.root / f".tmp-{key[:16]}-{uuid.uuid4().hex[:8]}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            write_files(tmp)
            (tmp / META).write_text(json.dumps({**meta, "key": key}, indent=2, default=str))
            for path in checksums.write_sums(tmp):
                _fsync(path)
            self._move_into_place(tmp, key)
        except OSError as exc:
            if self.access.refused(exc):
                return None
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self.entry(key)

    def model_files(self, key: str) -> list[str]:
        """The names of an entry's model files (an entry of a ``model:`` forecaster made
        before entries listed them has one: ``model.keras``)."""
        meta = json.loads(checksums.read_verified(self.entry(key), META))
        return list(meta.get("files", [MODEL]))

    def check_model(self, key: str) -> bool:
        """Whether every model file of ``key``'s entry is there with the bytes written
        (what a warm start is about to load); a damaged entry is removed (logged)."""
        try:
            names = self.model_files(key)
        except FileNotFoundError:
            return False
        except (checksums.Damaged, ValueError) as exc:
            self._discard(key, str(exc))
            return False
        entry = self.entry(key)
        return all(self.check(key, f) for name in names
                   for f in ([p.relative_to(entry).as_posix() for p in
                              sorted((entry / name).rglob("*")) if p.is_file()]
                             if (entry / name).is_dir() else [name]))

    def discard(self, key: str, reason: str) -> None:
        """Remove an entry found unusable (logged), so the fold's new model can take its
        place."""
        self._discard(key, reason)

    def link(self, key: str, name: str, dest: Path) -> None:
        """Put the entry's model file (or folder) ``name`` at ``dest``: hard links where
        the file system allows, else copies. What lands at ``dest`` is checked against the
        entry's checksums first, and a file replaces ``dest`` atomically.

        Raises:
            ModelError: The stored file was damaged after the run checked its entry (the
                entry is removed; the next run trains that fold again).
        """
        source = self.entry(key) / name
        if source.is_dir():
            shutil.rmtree(dest, ignore_errors=True)
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    rel = path.relative_to(self.entry(key)).as_posix()
                    self.link(key, rel, dest / path.relative_to(source))
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        _link_or_copy(source, tmp)
        try:
            if checksums.file_digest(tmp) != checksums.expected(self.entry(key), name):
                raise checksums.Damaged(f"{name} does not match its checksum")
        except checksums.Damaged as exc:
            tmp.unlink(missing_ok=True)
            self._discard(key, str(exc))
            raise ModelError(f"the model store entry {self.entry(key)} was damaged while "
                             f"this run used it ({exc}); run the command again to train "
                             "that fold anew") from None
        os.replace(tmp, dest)

    def _move_into_place(self, tmp: Path, key: str) -> None:
        final = self.entry(key)
        if final.exists() and self.retrain:
            _remove_entry(final)
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():  # not a lost race with an identical entry: a real failure
                raise

    # --- damaged entries -----------------------------------------------------------------

    def _discard(self, key: str, reason: str) -> None:
        """Log a damaged entry and remove it (a read-only store keeps it)."""
        where = self.entry(key)
        if not where.exists():
            return  # removed meanwhile: nothing was damaged, it is just gone
        if self.access.writable():
            try:
                _remove_entry(where)
            except OSError as exc:
                if not self.access.refused(exc):
                    raise
        kept = " without storing it (the store is read-only: its owner can remove the " \
               "entry)" if self.read_only else ""
        log.warning("model store entry %s is damaged (%s); training that fold again%s",
                    where, reason, kept)


def store_path(data: DataConfig) -> Path:
    """``data.model_store``, or ``<data.cache_dir>/models`` when it is not set."""
    return Path(data.model_store) if data.model_store is not None else \
        Path(data.cache_dir) / "models"


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _remove_entry(path: Path) -> None:
    """Rename an entry away first, so a reader never sees it half-deleted."""
    trash = path.with_name(f".trash-{path.name[:16]}-{uuid.uuid4().hex[:8]}")
    try:
        path.rename(trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


# --- pruning ------------------------------------------------------------------------------

def entries(root: Path) -> list[tuple[Path, float, int]]:
    """Every complete entry as (directory, last use as epoch seconds, bytes)."""
    found = []
    if not root.is_dir():
        return found
    for path in root.iterdir():
        if len(path.name) != _KEY_LEN or not path.is_dir():
            continue
        try:
            used = (path / META).stat().st_mtime
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        except OSError:
            continue  # removed meanwhile
        found.append((path, used, size))
    return found


def prune(root: Path, older_than_days: float, now: float | None = None,
          dry_run: bool = False) -> tuple[int, int, int, int]:
    """Remove entries last used more than ``older_than_days`` ago, and temporary
    directories left by crashed runs.

    Returns:
        (entries removed, bytes removed, entries kept, bytes kept).

    Raises:
        ConfigError: ``older_than_days`` is negative, infinite or not a number.
    """
    _check_days(older_than_days)
    now = time.time() if now is None else now
    cutoff = now - older_than_days * 86_400
    removed = freed = kept = kept_bytes = 0
    for path, used, size in entries(root):
        if used < cutoff:
            if not dry_run:
                _remove_entry(path)
            removed, freed = removed + 1, freed + size
        else:
            kept, kept_bytes = kept + 1, kept_bytes + size
    if not dry_run and root.is_dir():
        for path in root.iterdir():
            if path.name.startswith((".tmp-", ".trash-")) and _older(path, now - STALE_TEMP_S):
                shutil.rmtree(path, ignore_errors=True)
    return removed, freed, kept, kept_bytes


def _check_days(days: float) -> None:
    problem = ("is not a finite number of days" if not math.isfinite(days)
               else "is negative" if days < 0 else None)
    if problem:
        raise ConfigError(f"--older-than {days:g} {problem}; give a number of days >= 0 "
                          "(0 removes every entry)")


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except OSError:
        return False  # removed meanwhile
