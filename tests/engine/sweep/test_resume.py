"""A sweep killed with kill -9 finishes on the same command without re-running trials; trial
files damaged meanwhile make those trials run again."""

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


def _start(path: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(_command(path), cwd=cwd, env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for_results(proc: subprocess.Popen, out: Path, count: int) -> None:
    deadline = time.monotonic() + 400
    while len(list(out.glob("trials/*/result.json"))) < count:
        assert proc.poll() is None, f"the sweep ended early: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no trial finished in time"
        time.sleep(0.2)


def _kill_9(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)  # kill -9 the sweep process
        proc.wait()
    try:  # and whatever Ray processes it had started, as a crash of the machine would
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_interrupt_then_kill_9_then_resume(tmp_path):
    out = tmp_path / "out"
    # Every trial trains its own forecaster (no shared forecasts), one at a time.
    sweep = sweep_dict(write_candles(tmp_path / "data"), out, max_concurrent=1,
                       space={"model.units": [2, 3, 4, 5]})
    path = write_sweep(tmp_path / "sweep.yaml", sweep)

    # 1. Ctrl-C: the sweep stops with status 130 and chooses nothing from a partial run.
    proc = _start(path, tmp_path)
    try:
        _wait_for_results(proc, out, 1)
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=300) == 130, proc.stderr.read()
        assert "run the same command again" in proc.stderr.read()
    finally:
        _kill_9(proc)
    assert not (out / "summary.json").exists()
    after_interrupt = len(list(out.glob("trials/*/result.json")))
    assert after_interrupt < 4

    # 2. kill -9 once another trial has finished.
    proc = _start(path, tmp_path)
    try:
        _wait_for_results(proc, out, after_interrupt + 1)
    finally:
        _kill_9(proc)
    finished = {p: p.read_bytes() for p in sorted(out.glob("trials/*/result.json"))}
    assert after_interrupt < len(finished) < 4 or after_interrupt + 1 == 4
    assert not (out / "summary.json").exists()

    # 3. Two finished trials damaged on disk: garbage in one's result.json, the other's
    # returns cut short. They count as unfinished and run again, with their old files
    # kept aside; the others are not run again.
    (garbled, garbled_record), (cut, cut_record) = [
        (p.parent, json.loads(content)) for p, content in list(finished.items())[:2]]
    (garbled / "result.json").write_bytes(b"\x00\xff" + os.urandom(64))
    returns = (cut / "returns.parquet").read_bytes()
    (cut / "returns.parquet").write_bytes(returns[: len(returns) // 2])
    again = subprocess.run(_command(path), cwd=tmp_path, env=_env(), capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert f"4 trials: {len(finished) - 2} already finished, {6 - len(finished)} to run" \
        in again.stdout
    for folder, problem in ((garbled, "result.json is not JSON"),
                            (cut, "returns.parquet does not read")):
        assert f"trial {folder.name} did not finish cleanly: {problem}" in again.stderr
        assert {f.name.split(".damaged-")[0] for f in folder.glob("*.damaged-*")} == {
            "result.json", "returns.parquet"}
    for result, content in list(finished.items())[2:]:
        assert result.read_bytes() == content  # not run again
    # Run again (on the forecasts they had saved), the damaged trials score exactly what
    # they scored the first time.
    for folder, before in ((garbled, garbled_record), (cut, cut_record)):
        after = json.loads((folder / "result.json").read_text())
        assert after["metrics"].pop("forecasts_reused") and \
            not before["metrics"].pop("forecasts_reused")
        assert (after["metrics"], after["objective"]) == (before["metrics"], before["objective"])
    assert len(list(out.glob("trials/*/result.json"))) == 4
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 4 and trials["error"].isna().all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"] == 4 and summary["best_trial"] in set(trials["trial"])
    assert len(pd.read_parquet(out / "returns.parquet").columns) == 4
