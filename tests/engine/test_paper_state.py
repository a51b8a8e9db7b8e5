"""Paper state as a user meets it: a second process, damaged files, the backup, restore."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import run_cli
from engine.errors import StateError
from engine.paper.__main__ import main
from engine.paper.locking import lock_path
from engine.paper.state import PaperState, backup_path
from tests.engine.test_paper import SIZES, closed_through, make_trader
from tests.loopback import LoopbackExchange

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def made(tmp_path_factory, candles_module):
    """A state that processed one candle (model included), closed cleanly."""
    tmp = tmp_path_factory.mktemp("made")
    with LoopbackExchange(candles_module, max_limit=100) as ex:
        closed_through(ex, candles_module["BTC/USDT"].index[239])
        trader, state = make_trader(tmp, ex)
        trader.run_once()
        state.close()
    return tmp


@pytest.fixture(scope="module")
def candles_module():
    from tests.conftest import make_ohlcv

    return {"BTC/USDT": make_ohlcv(280, seed=1, price=10_000.0).round(8),
            "ETH/USDT": make_ohlcv(280, seed=2, price=200.0).round(8)}


@pytest.fixture
def copy(made, tmp_path):
    """A private copy of the made state directory; returns the state file."""
    shutil.copytree(made, tmp_path / "s")
    return tmp_path / "s" / "state.sqlite"


def status(path: Path, capsys) -> tuple[int, str]:
    code = run_cli(main, ["status", "--state", str(path), "--output",
                          str(path.with_name("chart.png"))])
    return code, capsys.readouterr().err


def test_status_of_a_sound_state_and_its_backup(copy, capsys):
    assert status(copy, capsys)[0] == 0
    assert backup_path(copy).is_file()  # written when the run closed the state
    with sqlite3.connect(backup_path(copy)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM candles").fetchone()[0] == 2


def damage_pages(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    assert pages > 4
    with open(path, "r+b") as handle:  # garbage over the middle pages, header intact
        handle.seek(page * 2)
        handle.write(os.urandom(page * (pages - 3)))


def damage_header(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.write(b"garbage!" * 8)


def drop_fills(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE fills")
    checkpoint(path)


def bad_meta(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '{not json' WHERE key = 'start'")
    checkpoint(path)


def checkpoint(path: Path) -> None:
    """Move the change from the WAL file into the database file, where it is compared."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@pytest.mark.parametrize("damage, problem", [
    (damage_pages, "SQLite"),
    (damage_header, "SQLite: file is not a database"),
    (drop_fills, "its table fills is missing"),
    (bad_meta, "its meta value 'start' is not JSON"),
])
def test_damaged_state_is_one_line_and_untouched(copy, capsys, damage, problem):
    damage(copy)
    before = copy.read_bytes()
    code, err = status(copy, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {copy}: the paper-trading state is damaged (")
    assert problem in err or (damage is damage_pages and "integrity check" in err)
    assert f"python -m engine.paper restore --state {copy}" in err
    with pytest.raises(StateError):  # a trading run refuses it the same way
        PaperState.open(copy)
    assert copy.read_bytes() == before  # nothing written: no table recreated


def test_restore_puts_back_the_last_good_copy(copy, capsys):
    good = status(copy, capsys)
    damage_pages(copy)
    assert run_cli(main, ["restore", "--state", str(copy)]) == 0
    out = capsys.readouterr().out
    assert f"restored {copy} from {backup_path(copy)}" in out
    assert list(copy.parent.glob("state.sqlite.damaged-*"))
    assert status(copy, capsys) == good


def test_truncated_model_is_one_line(copy, capsys, candles_module):
    state = PaperState.open(copy, exclusive=False)
    model = copy.parent / state.meta()["model_file"]
    state.close()
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    code, err = status(copy, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"error: {model}: the model of the state's current fold is damaged" in err
    # The trader itself, on the next candle, says the same of the file it loads.
    with LoopbackExchange(candles_module, max_limit=100) as ex:
        closed_through(ex, candles_module["BTC/USDT"].index[240])
        trader, state = make_trader(copy.parent.parent, ex, state_name="s/state.sqlite")
        with pytest.raises(StateError, match="cannot be read, the file is damaged"):
            trader.run_once()
        state.close()


def test_second_process_is_refused_at_start(tmp_path, candles_module):
    from tests.conftest import config_dict, write_config

    state = tmp_path / "state.sqlite"
    with LoopbackExchange(candles_module, max_limit=100) as ex:
        closed_through(ex, candles_module["BTC/USDT"].index[239])
        config = write_config(tmp_path, config_dict(tmp_path, ex, **SIZES,
                                                    paper={"poll_seconds": 3600}))
        first = subprocess.Popen([sys.executable, "-m", "engine.paper", "run", str(config),
                                  "--state", str(state), "--no-progress"], cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert first.stdout.readline().startswith("paper trading ")  # it holds the state
            second = subprocess.run([sys.executable, "-m", "engine.paper", "run", str(config),
                                     "--state", str(state), "--once"], cwd=REPO,
                                    capture_output=True, text=True, timeout=120)
            assert second.returncode == 2
            assert second.stderr.strip().splitlines() == [
                f"error: {state} is in use by another paper-trading process (pid {first.pid}); "
                "run one process per state file: stop that one first, or pass another --state "
                "file"]
            assert first.poll() is None  # the original goes on
        finally:
            first.kill()  # kill -9: the OS drops the lock of a killed process
            first.wait()
    assert lock_path(state).exists()  # kill -9 left the file behind, but not the lock
    PaperState.open(state).close()
