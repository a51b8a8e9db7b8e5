"""Where a sweep runs: CPU counts and cluster addresses are checked before anything starts,
and a trial whose files are damaged runs again."""

from __future__ import annotations

import json
import logging
import socket

import pandas as pd
import pytest

from engine.cli import run_cli
from engine.errors import ConfigError
from engine.sweep import trial as trials
from engine.sweep.__main__ import main
from engine.sweep.runner import run_sweep
from engine.sweep.spec import load_sweep
from tests.engine.sweep.conftest import sweep_dict, write_candles, write_sweep


@pytest.fixture
def sweep_file(tmp_path):
    return write_sweep(tmp_path / "sweep.yaml",
                       sweep_dict(write_candles(tmp_path / "data"), tmp_path / "out"))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(("args", "message"), [
    (["--num-cpus", "0"], "--num-cpus 0: give a whole number of CPUs >= 1"),
    (["--num-cpus", "-1"], "--num-cpus -1: give a whole number of CPUs >= 1"),
    (["--connect-timeout", "0"], "--connect-timeout 0: give a number of seconds > 0"),
    (["--connect-timeout", "nan"], "--connect-timeout nan: give a number of seconds > 0"),
    (["--address", "10.0.0.5"], "--address 10.0.0.5 is not host:port"),
])
def test_bad_resources_are_one_line(sweep_file, tmp_path, capsys, args, message):
    assert run_cli(main, [str(sweep_file), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # refused before the sweep started


def test_an_address_where_nothing_listens_fails_at_once(sweep_file, tmp_path, capsys):
    port = _closed_port()
    assert run_cli(main, [str(sweep_file), "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --address 127.0.0.1:{port}: cannot reach a Ray cluster "
                          "there (Connection refused); check that its head node runs")
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_an_address_that_never_answers_fails_after_the_timeout(sweep_file, capsys):
    # A listening socket whose queue is full drops new connections, as a firewall would.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        address = f"127.0.0.1:{server.getsockname()[1]}"
        with socket.create_connection(server.getsockname()):
            assert run_cli(main, [str(sweep_file), "--address", address,
                                  "--connect-timeout", "0.5"]) == 2
    assert f"--address {address}: cannot reach a Ray cluster there (no answer within 0.5 s)" \
        in capsys.readouterr().err


def test_run_sweep_refuses_zero_cpus(sweep_file):
    with pytest.raises(ConfigError, match="--num-cpus 0"):
        run_sweep(load_sweep(sweep_file), num_cpus=0)


def _finished_trial(root, key: str, objective: float | None = 0.5):
    folder = root / key
    folder.mkdir(parents=True)
    returns = pd.Series([0.01, -0.02], index=pd.date_range("2020-01-01", periods=2, tz="UTC"))
    returns.rename(key).to_frame().to_parquet(folder / trials.RETURNS)
    record = {"key": key, "params": {"a": 1}, "metrics": {}, "objective": objective,
              "error": None, "node": "here", "seconds": 1.0, "finished": 1.0}
    (folder / trials.RESULT).write_text(json.dumps(record))
    return folder


def test_damaged_trial_files_count_as_unfinished_and_are_kept_aside(tmp_path, caplog):
    root = tmp_path / "trials"
    good = _finished_trial(root, "t-good")
    garbage = _finished_trial(root, "t-garbage")
    (garbage / trials.RESULT).write_bytes(b"\xff\xfe\x00garbage")
    cut = _finished_trial(root, "t-cut")
    data = (cut / trials.RETURNS).read_bytes()
    (cut / trials.RETURNS).write_bytes(data[: len(data) // 2])
    other = _finished_trial(root, "t-other")
    (other / trials.RESULT).write_text(json.dumps({"key": "t-good", "objective": None}))
    with caplog.at_level(logging.WARNING):
        done = trials.finished(root)
    assert list(done) == ["t-good"] and done["t-good"]["objective"] == 0.5
    for folder, problem in ((garbage, "result.json is not JSON"),
                            (cut, "returns.parquet does not read"),
                            (other, "result.json is not the record of trial t-other")):
        assert f"trial {folder.name} did not finish cleanly: {problem}" in caplog.text
        assert not (folder / trials.RESULT).exists()
        assert len(list(folder.glob(f"{trials.RESULT}.damaged-*"))) == 1
    assert len(list(cut.glob(f"{trials.RETURNS}.damaged-*"))) == 1
    assert trials.finished(root).keys() == {"t-good"}  # nothing moved twice
    assert (good / trials.RESULT).exists()
