"""A damaged or read-only model store: checksums on every read, repair, and no writes."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine.config import validate_config
from engine.errors import ModelError
from engine.models_store import ModelStore, checksums
from engine.pipeline import run
from models import lstm
from tests.engine.test_models_store import TINY, csv_config, generated


def store_files(store: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of a store with its bytes and modification time."""
    return {p.relative_to(store).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(store.rglob("*")) if p.is_file()}


def test_damaged_entries_are_removed_retrained_and_never_linked(tmp_path, caplog):
    raw = csv_config(tmp_path, generated(340))
    first = run(validate_config({**raw, "output_dir": str(tmp_path / "a")}), progress=False)
    store = tmp_path / "cache" / "models"
    keys = [f.store_key for f in first.walkforward.folds]
    assert len(keys) == 5
    entry = [store / k for k in keys]
    # Every file of an entry is listed with its checksum; forecasts added later have theirs.
    assert checksums.entry_files(entry[0]) == [p.name for p in entry[0].glob(
        "forecasts-*.npy")] + ["model.json", "model.keras"]
    assert len(list(entry[0].glob("forecasts-*.npy.sha256"))) == 1
    # 1. A fold model cut short, as a full disk or a bad copy leaves it.
    model = entry[0] / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    # 2. Forecasts with flipped bytes that still parse: silently wrong numbers otherwise.
    cached = next(entry[1].glob("forecasts-*.npy"))
    data = bytearray(cached.read_bytes())
    data[-8] ^= 0x01  # the lowest bit of the last forecast: a change in the 16th digit
    cached.write_bytes(bytes(data))
    assert np.load(cached).shape == np.load(next(entry[2].glob("forecasts-*.npy"))).shape
    # 3. A file missing, and 4. an entry whose checksums are gone.
    (entry[2] / "model.keras").unlink()
    (entry[3] / "SHA256SUMS").unlink()
    with caplog.at_level(logging.WARNING):
        second = run(validate_config({**raw, "output_dir": str(tmp_path / "b")}),
                     progress=False)
    assert [f.reused for f in second.walkforward.folds] == [False] * 4 + [True]
    for reason in ("model.keras does not match its checksum",
                   "forecasts-", "model.keras is missing", "SHA256SUMS is missing"):
        assert reason in caplog.text, reason
    assert caplog.text.count("is damaged") == 4
    # The retrained folds give the first run's numbers, byte for byte.
    for name in ("predictions.csv", "equity.csv", "comparison.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # The run's models/ holds the new, whole models, linked from the repaired entries.
    linked = tmp_path / "b" / "models" / "fold_000.keras"
    assert linked.stat().st_ino == model.stat().st_ino
    assert checksums.file_digest(linked) == checksums.expected(entry[0], "model.keras")
    assert lstm.load(linked).count_params() > 0
    for folder in entry:
        checksums.verify(folder)
    third = run(validate_config({**raw, "output_dir": str(tmp_path / "c")}), progress=False)
    assert third.walkforward.folds_reused == 5 and third.walkforward.forecasts_reused == 5


def test_a_model_damaged_after_its_lookup_is_never_linked(tmp_path, caplog):
    store = ModelStore(tmp_path / "store")
    lstm.seed_everything(1)
    key = "cd" * 32
    model = lstm.build_model(TINY, 3, 2)

    def save(folder):
        model.save(folder / "model.keras")
        return ["model.keras"]

    store.put(key, save, {"fold": {"n": 1}})
    assert store.lookup(key) == {"fold": {"n": 1}, "files": ["model.keras"], "key": key}
    with open(store.entry(key) / "model.keras", "r+b") as handle:  # changed in place
        handle.seek(100)
        handle.write(b"\0" * 16)
    dest = tmp_path / "out" / "models" / "fold_000.keras"
    with caplog.at_level(logging.WARNING), pytest.raises(ModelError, match="damaged while"):
        store.link(key, "model.keras", dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    assert not store.entry(key).exists() and "is damaged" in caplog.text
    assert store.lookup(key) is None


@contextlib.contextmanager
def read_only(root: Path):
    """``root`` as a user meets a store shared read-only: a read-only mount as root (who
    may write anywhere), without write permission otherwise."""
    if os.geteuid() == 0:
        made = subprocess.run(["mount", "--bind", "-o", "ro", str(root), str(root)],
                              capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"cannot mount a read-only directory here: {made.stderr.strip()}")
        try:
            yield
        finally:
            subprocess.run(["umount", str(root)], check=True)
        return
    paths = sorted(root.rglob("*"), reverse=True) + [root]
    modes = {p: p.stat().st_mode for p in paths}
    for path, mode in modes.items():
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield
    finally:
        for path, mode in reversed(modes.items()):
            path.chmod(mode)


def test_a_read_only_store_is_used_without_writing(tmp_path, caplog):
    raw = csv_config(tmp_path, generated(260))
    first = run(validate_config({**raw, "output_dir": str(tmp_path / "a")}), progress=False)
    store = tmp_path / "cache" / "models"
    keys = [f.store_key for f in first.walkforward.folds]
    # The shared store lacks one fold and one set of forecasts; nobody may write it.
    shutil.rmtree(store / keys[2])
    next((store / keys[1]).glob("forecasts-*.npy")).unlink()
    before = store_files(store)
    with read_only(store), caplog.at_level(logging.WARNING):
        second = run(validate_config({**raw, "output_dir": str(tmp_path / "b")}),
                     progress=False)
        assert store_files(store) == before  # not even marked as used
    # One warning, no "damaged", no "Permission denied"; the numbers are the first run's.
    assert caplog.text.count("is read-only") == 1, caplog.text
    assert "damaged" not in caplog.text and "cannot" not in caplog.text
    assert (second.walkforward.folds_trained, second.walkforward.folds_reused) == (1, 2)
    assert (tmp_path / "a" / "predictions.csv").read_bytes() == \
        (tmp_path / "b" / "predictions.csv").read_bytes()
    assert sorted(p.name for p in (tmp_path / "b" / "models").glob("*.keras")) == [
        "fold_000.keras", "fold_001.keras", "fold_002.keras"]
    # Writable again, the next run stores what the read-only one could not.
    third = run(validate_config({**raw, "output_dir": str(tmp_path / "c")}), progress=False)
    assert (third.walkforward.folds_trained, third.walkforward.forecasts_reused) == (1, 1)
    assert ModelStore(store).lookup(keys[2]) is not None
