"""A sweep killed with kill -9 finishes on the same command without re-running trials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.engine.sweep.conftest import sweep_dict, write_candles, write_sweep

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]


def _command(path: Path) -> list[str]:
    return [sys.executable, "-m", "engine.sweep", str(path), "--num-cpus", "1"]


def _env() -> dict[str, str]:
    # Ray's workers import the engine from this checkout, like the sweep process does.
    paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def test_resume_after_kill_9(tmp_path):
    out = tmp_path / "out"
    sweep = sweep_dict(write_candles(tmp_path / "data"), out, max_concurrent=1)
    path = write_sweep(tmp_path / "sweep.yaml", sweep)
    proc = subprocess.Popen(_command(path), cwd=tmp_path, env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 400
        while not list(out.glob("trials/*/result.json")):
            assert proc.poll() is None, "the sweep ended before any trial finished"
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # kill -9 the sweep process
        proc.wait()
        try:  # and whatever Ray processes it had started, as a crash of the machine would
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    finished = {p: p.read_bytes() for p in out.glob("trials/*/result.json")}
    assert 1 <= len(finished) < 4
    assert not (out / "summary.json").exists()

    again = subprocess.run(_command(path), cwd=tmp_path, env=_env(), capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"4 trials: {len(finished)} already finished, {4 - len(finished)} to run" \
        in again.stdout
    for result, content in finished.items():
        assert result.read_bytes() == content  # not run again
    assert len(list(out.glob("trials/*/result.json"))) == 4
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 4 and trials["error"].isna().all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"] == 4 and summary["best_trial"] in set(trials["trial"])
    assert len(pd.read_parquet(out / "returns.parquet").columns) == 4
