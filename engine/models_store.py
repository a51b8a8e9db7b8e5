"""A content-addressed store of fitted fold models, shared by every run on this machine.

A fold's weights are decided by the model settings, the fold's shape (index, warm start,
epochs), the seed, the exact rows of every symbol the fold may know, the previous fold's
model when it is warm-started, and the Keras backend and version. The store's key is a
hash of all of these (``fold_key``), so a fold whose key is present is loaded, not
trained, and its forecasts are taken from the entry when it holds outputs for exactly
the same input windows (else recomputed from the weights and added); anything that
could change the weights changes the key. Entries live under ``data.model_store`` (default
``<data.cache_dir>/models``), one directory per key::

    <store>/<key>/model.keras    the full model (optimizer state included: warm starts
                                 continue from it)
    <store>/<key>/model.json     the fold's settings and training record
    <store>/<key>/weights.npz    the layer weights alone (forecasting loads only these)
    <store>/<key>/forecasts-<digest>.npy
                                 the model's outputs for a set of input windows, keyed
                                 by ``windows_digest`` of exactly those windows

An entry is written in a temporary directory beside it and renamed into place, so a crash
never leaves a half-written entry under a key, and runs that fit the same fold at once
both succeed (the first rename wins; the folds are identical). Each use touches
``model.json``; ``python -m engine.models_store prune --older-than DAYS`` removes the
entries not used for that long.

Example:
    >>> store = ModelStore.for_data(cfg.data)
    >>> store.lookup(key)  # the entry's settings, or None when the fold must be trained
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.config import DataConfig, load_config
from engine.errors import ConfigError

log = logging.getLogger(__name__)

# Bump when the training procedure changes in a way the key does not see (the loss, the
# shuffling, the seeding): every earlier entry then stops matching. 2: models.training's
# compiled loop (padded last batch, XLA on TensorFlow) replaced one Keras fit per epoch.
FORMAT = 2
STALE_TEMP_S = 3600.0  # temporary directories older than this are left by a crashed run
_KEY_LEN = 64


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

    Args:
        root: The store directory (created on the first write).
        retrain: Never report an entry as present: every fold is trained and its entry
            replaced (``--retrain``).
    """

    def __init__(self, root: Path, retrain: bool = False):
        self.root = Path(root).expanduser()
        self.retrain = retrain

    @classmethod
    def for_data(cls, data: DataConfig, retrain: bool = False) -> ModelStore:
        """The store a config names: ``data.model_store``, else ``<data.cache_dir>/models``."""
        return cls(store_path(data), retrain=retrain)

    def entry(self, key: str) -> Path:
        """The directory of ``key``'s entry (which may not exist)."""
        return self.root / key

    def model_path(self, key: str) -> Path:
        """The full ``.keras`` model of an entry."""
        return self.entry(key) / "model.keras"

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The settings saved with ``key``'s model, or None when it must be trained.

        A found entry is touched, so pruning by age keeps what is in use.
        """
        if self.retrain:
            return None
        meta_file = self.entry(key) / "model.json"
        try:
            meta = json.loads(meta_file.read_text())
            os.utime(meta_file)
        except (OSError, ValueError) as exc:
            meta = {"error": exc}
        if meta.get("key") == key:
            return meta
        if self.entry(key).is_dir():  # damaged by hand or by the disk: make room for a new one
            log.warning("model store entry %s is damaged (%s); training that fold again",
                        self.entry(key), meta.get("error", "its settings name another key"))
            _remove_entry(self.entry(key))
        return None

    def read_weights(self, key: str) -> list[np.ndarray] | None:
        """The layer weights of ``key``, or None when they cannot be read (pruned or
        damaged meanwhile: the fold is then trained again)."""
        try:
            with np.load(self.entry(key) / "weights.npz") as saved:
                return [saved[f"arr_{i}"] for i in range(len(saved.files))]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("model store entry %s is unreadable (%s); training that fold again",
                        self.entry(key), exc)
            _remove_entry(self.entry(key))  # so the fold's new model can take its place
            return None

    def read_forecasts(self, key: str, digest: str) -> np.ndarray | None:
        """The outputs ``key``'s model gave for the windows of ``digest``, or None when
        the entry holds none for them (or they cannot be read: they are then recomputed)."""
        path = self.entry(key) / f"forecasts-{digest}.npy"
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("model store forecasts %s are unreadable (%s); recomputing them",
                        path, exc)
            return None

    def put_forecasts(self, key: str, digest: str, outputs: np.ndarray) -> None:
        """Keep ``key``'s model outputs for the windows of ``digest`` in its entry (written
        aside and renamed into place). A store that cannot be written costs reuse, not
        the run, so a failure is only logged."""
        final = self.entry(key) / f"forecasts-{digest}.npy"
        tmp = final.with_name(f".{final.stem}.{uuid.uuid4().hex[:8]}.tmp.npy")
        try:
            with open(tmp, "wb") as handle:
                np.save(handle, np.ascontiguousarray(outputs), allow_pickle=False)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            log.warning("cannot keep forecasts in the model store entry %s (%s); they will "
                        "be recomputed next time", self.entry(key), exc.strerror or exc)
            tmp.unlink(missing_ok=True)

    def put(self, key: str, model: Any, meta: dict[str, Any]) -> Path:
        """Save a fitted model under ``key`` (replacing an entry when ``retrain``).

        The files are written into a temporary directory, flushed to disk and renamed into
        place. If another run put the same key meanwhile, its entry is kept.
        """
        from models import lstm

        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{key[:16]}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            lstm.save(model, tmp / "model.keras", {**meta, "key": key})
            np.savez(tmp / "weights.npz", *lstm.get_weights(model))
            for name in ("model.keras", "model.json", "weights.npz"):
                _fsync(tmp / name)
            self._move_into_place(tmp, key)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self.entry(key)

    def _move_into_place(self, tmp: Path, key: str) -> None:
        final = self.entry(key)
        if final.exists() and self.retrain:
            _remove_entry(final)
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():  # not a lost race with an identical entry: a real failure
                raise

    def link_model(self, key: str, dest: Path) -> None:
        """Put ``key``'s ``.keras`` model at ``dest`` (a hard link where the file system
        allows, else a copy), replacing ``dest`` atomically."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            os.link(self.model_path(key), tmp)
        except OSError:
            shutil.copyfile(self.model_path(key), tmp)
        os.replace(tmp, dest)


def store_path(data: DataConfig) -> Path:
    """``data.model_store``, or ``<data.cache_dir>/models`` when it is not set."""
    return Path(data.model_store) if data.model_store is not None else \
        Path(data.cache_dir) / "models"


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
            used = (path / "model.json").stat().st_mtime
            size = sum(f.stat().st_size for f in path.iterdir())
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
    """
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


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except OSError:
        return False  # removed meanwhile


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.models_store",
        description="Inspect or prune the store of fitted fold models.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("info", "count the entries and their size"),
                       ("prune", "remove entries not used for some days")):
        sub = commands.add_parser(name, help=text)
        where = sub.add_mutually_exclusive_group(required=True)
        where.add_argument("config", nargs="?", help="a config whose store to use")
        where.add_argument("--store", metavar="DIR", help="the store directory itself")
        if name == "prune":
            sub.add_argument("--older-than", metavar="DAYS", type=float, required=True,
                             help="remove entries last used more than DAYS days ago")
            sub.add_argument("--dry-run", action="store_true",
                             help="only say what would be removed")
    args = parser.parse_args(argv)
    root = Path(args.store) if args.store else store_path(load_config(args.config).data)
    if args.command == "info":
        found = entries(root)
        size = sum(s for _, _, s in found)
        oldest = min((u for _, u, _ in found), default=None)
        since = f"; least recently used {time.strftime('%Y-%m-%d', time.gmtime(oldest))}" \
            if oldest is not None else ""
        print(f"{root}: {len(found)} fold models, {_megabytes(size)}{since}")
        return 0
    if args.older_than < 0:
        raise ConfigError(f"--older-than {args.older_than:g} is negative; give a number of "
                          "days >= 0 (0 removes every entry)")
    removed, freed, kept, kept_bytes = prune(root, args.older_than, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{root}: {verb} {removed} fold models ({_megabytes(freed)}); kept {kept} "
          f"({_megabytes(kept_bytes)})")
    return 0


if __name__ == "__main__":
    from engine.cli import run_cli

    sys.exit(run_cli(main, None))
