"""The store of fitted fold models: exact reuse, keys, atomic entries, pruning, paper trading."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.backtest import main as backtest_main
from engine.cli import run_cli
from engine.config import ModelConfig, WalkForwardConfig, validate_config
from engine.fold_data import fold_keys
from engine.folds import plan_folds
from engine.models_store import ModelStore, checksums, fold_key, prune
from engine.models_store.__main__ import main
from engine.paper.state import PaperState
from engine.paper.trader import PaperTrader
from engine.pipeline import NO_DEVICE, run
from engine.walkforward import run_walkforward
from models import lstm, runtime
from tests.conftest import config_dict, make_ohlcv, write_config
from tests.loopback import LoopbackExchange

REPO = Path(__file__).resolve().parents[2]
TINY = ModelConfig(window_len=5, layers=1, units=4, epochs=2, batch_size=32, seed=11)
WF = WalkForwardConfig(train_bars=120, retrain_every=25, finetune_epochs=1)
SECTIONS = {
    "model": {"window_len": 5, "layers": 1, "units": 4, "epochs": 2},
    "walkforward": {"train_bars": 150, "retrain_every": 40, "finetune_epochs": 1},
    "strategies": [{"name": "lstm_signal", "entry": 0.002}, "buy_and_hold",
                   {"name": "sma_cross", "fast": 5, "slow": 20}],
}


def generated(n: int) -> dict:
    return {"BTC/USDT": make_ohlcv(n, seed=1, price=10_000.0),
            "ETH/USDT": make_ohlcv(n, seed=2, price=200.0)}


@pytest.fixture(scope="module")
def frames():
    return generated(220)


def short(frames: dict, n: int) -> dict:
    return {s: f.iloc[:n] for s, f in frames.items()}


def assert_same_forecasts(a, b):
    for symbol in a.forecasts:
        assert a.forecasts[symbol].equals(b.forecasts[symbol]), symbol


def csv_config(tmp_path: Path, frames: dict, **sections) -> dict:
    paths = {}
    for symbol, frame in frames.items():
        path = tmp_path / f"{symbol.replace('/', '-')}.csv"
        frame.rename_axis("timestamp").reset_index().to_csv(path, index=False)
        paths[symbol] = str(path)
    return config_dict(tmp_path, data={"csv": paths}, **{**SECTIONS, **sections})


# --- the backtest -----------------------------------------------------------------------

def test_second_backtest_reuses_every_fold_with_identical_outputs(tmp_path):
    raw = csv_config(tmp_path, generated(300))
    first = run(validate_config({**raw, "output_dir": str(tmp_path / "a")}), progress=False)
    second = run(validate_config({**raw, "output_dir": str(tmp_path / "b")}), progress=False)
    n = len(first.walkforward.folds)
    assert n == 4
    assert (first.report["run"]["folds_trained"], first.report["run"]["folds_reused"]) == (n, 0)
    assert (second.report["run"]["folds_trained"], second.report["run"]["folds_reused"]) == (0, n)
    for name in ("predictions.csv", "equity.csv", "comparison.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert first.report["strategies"] == second.report["strategies"]
    assert first.report["forecast"] == second.report["forecast"]
    assert [f["final_loss"] for f in first.report["folds"]] == \
        [f["final_loss"] for f in second.report["folds"]]
    # The store sits under the cache directory; the run's models/ links its files.
    store = tmp_path / "cache" / "models"
    assert len([p for p in store.iterdir() if not p.name.startswith(".")]) == n
    fold = second.report["folds"][2]
    assert fold["reused"] and (store / fold["store_key"]).is_dir()
    saved = json.loads((tmp_path / "b" / "models" / "fold_002.json").read_text())
    assert saved["fold"]["reused"] and saved["model"]["units"] == 4
    assert lstm.load(tmp_path / "b" / fold["model_file"]).count_params() > 0
    # The second run took every fold's forecasts from the store too: no model ran.
    assert second.walkforward.forecasts_reused == n and first.walkforward.forecasts_reused == 0
    assert second.report["run"]["device"] == NO_DEVICE != first.report["run"]["device"]
    assert second.report["run"]["versions"] == first.report["run"]["versions"]
    # Without the stored forecasts they are recomputed from the weights, as exactly.
    cached = sorted(store.glob("*/forecasts-*.npy"))
    assert len(cached) == n
    for path in cached:
        path.unlink()
    third = run(validate_config({**raw, "output_dir": str(tmp_path / "c")}), progress=False)
    assert (third.walkforward.folds_reused, third.walkforward.forecasts_reused) == (n, 0)
    for name in ("predictions.csv", "equity.csv", "comparison.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "c" / name).read_bytes(), name
    assert first.report["strategies"] == third.report["strategies"]
    assert third.report["run"]["device"] == first.report["run"]["device"]
    assert sorted(store.glob("*/forecasts-*.npy")) == cached  # put back


def test_strategy_change_reuses_and_retrain_trains(tmp_path):
    raw = csv_config(tmp_path, generated(300))
    raw["data"]["model_store"] = str(tmp_path / "elsewhere")
    first = run(validate_config({**raw, "output_dir": str(tmp_path / "a")}), progress=False)
    changed = {**raw, "output_dir": str(tmp_path / "b"),
               "strategies": [{"name": "lstm_signal", "entry": 0.01}, "buy_and_hold"]}
    second = run(validate_config(changed), progress=False)
    assert second.walkforward.folds_reused == len(first.walkforward.folds)
    assert second.report["strategies"][1] == first.report["strategies"][1]  # buy-and-hold
    again = run(validate_config({**raw, "output_dir": str(tmp_path / "c")}), progress=False,
                retrain=True)
    assert again.walkforward.folds_reused == 0
    assert (tmp_path / "a" / "predictions.csv").read_bytes() == \
        (tmp_path / "c" / "predictions.csv").read_bytes()
    assert (tmp_path / "elsewhere").is_dir() and not (tmp_path / "cache" / "models").exists()


def test_concurrent_command_line_runs_share_one_store(tmp_path, capsys):
    config = write_config(tmp_path, csv_config(tmp_path, generated(260)))
    procs = [subprocess.Popen([sys.executable, "-m", "engine.backtest", str(config),
                               "--output", str(tmp_path / name), "--no-progress"], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("one", "two")]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    assert (tmp_path / "one" / "predictions.csv").read_bytes() == \
        (tmp_path / "two" / "predictions.csv").read_bytes()
    store = tmp_path / "cache" / "models"
    assert sorted(p.name.startswith(".") for p in store.iterdir()) == [False] * 3
    # The printed summary says where the folds came from; --retrain trains them all.
    assert backtest_main([str(config), "--output", str(tmp_path / "three"), "--no-progress"]) == 0
    assert f"Folds: 0 trained, 3 reused from the model store {store}/" in capsys.readouterr().out
    assert backtest_main([str(config), "--output", str(tmp_path / "three"), "--no-progress",
                          "--retrain"]) == 0
    assert "Folds: 3 trained, 0 reused" in capsys.readouterr().out
    report = json.loads((tmp_path / "three" / "report.json").read_text())
    assert (report["run"]["folds_trained"], report["run"]["folds_reused"]) == (3, 0)


_IMPORTS_AT_EXIT = """
import atexit, json, runpy, sys
atexit.register(lambda: print(json.dumps(sorted(
    m for m in sys.modules if m.split(".")[0] in ("keras", "tensorflow", "jax", "torch")))))
sys.argv = ["engine.backtest", *sys.argv[1:]]
runpy.run_module("engine.backtest", run_name="__main__")
"""


def test_a_fully_reused_run_never_imports_keras(tmp_path):
    config = write_config(tmp_path, csv_config(tmp_path, generated(260)))
    assert backtest_main([str(config), "--output", str(tmp_path / "a"), "--no-progress"]) == 0

    def imports(output: str) -> list[str]:
        proc = subprocess.run([sys.executable, "-c", _IMPORTS_AT_EXIT, str(config), "--output",
                               str(tmp_path / output), "--no-progress"], cwd=REPO,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    assert imports("b") == []
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["run"]["device"] == NO_DEVICE
    assert report["run"]["versions"]["keras"] == runtime.package_version("keras")
    assert (tmp_path / "a" / "predictions.csv").read_bytes() == \
        (tmp_path / "b" / "predictions.csv").read_bytes()
    # One forecast missing from the store: that fold's model runs, so Keras loads.
    next((tmp_path / "cache" / "models").glob("*/forecasts-*.npy")).unlink()
    assert "keras" in imports("c")


def test_runtime_without_keras_matches_keras(monkeypatch, tmp_path):
    import keras

    module = sys.modules[keras.backend.backend()]
    expected = {"keras": keras.__version__, "backend": keras.backend.backend(),
                "backend_version": module.__version__}
    if expected["backend"] == "tensorflow":
        expected["onednn"] = "off"  # see tests/models/test_reproducibility.py
    assert runtime.runtime() == lstm.runtime() == expected
    # Resolved as Keras does when it is not imported: KERAS_BACKEND, keras.json, default.
    monkeypatch.delitem(sys.modules, "keras")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert runtime.keras_backend() == "tensorflow"
    (tmp_path / "keras.json").write_text('{"backend": "jax", "floatx": "float32"}')
    assert runtime.keras_backend() == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert runtime.keras_backend() == "torch"
    monkeypatch.setenv("KERAS_BACKEND", "")
    assert runtime.keras_backend() == "jax"
    (tmp_path / "keras.json").write_text("{not json")
    assert runtime.keras_backend() == "tensorflow"


# --- what the key sees ------------------------------------------------------------------

def test_appended_candles_reuse_every_unchanged_fold(frames, tmp_path):
    store = ModelStore(tmp_path / "store")
    before = run_walkforward(short(frames, 200), TINY, WF, None, progress=False, store=store)
    assert (before.folds_trained, before.folds_reused) == (4, 0)
    one_more = run_walkforward(short(frames, 201), TINY, WF, None, progress=False, store=store)
    assert (one_more.folds_trained, one_more.folds_reused) == (0, 4)
    # The new candle adds a window to the last fold: its forecasts are recomputed.
    assert one_more.forecasts_reused == 3
    assert_same_forecasts(one_more, run_walkforward(short(frames, 201), TINY, WF, None,
                                                    progress=False))
    new_fold = run_walkforward(frames, TINY, WF, None, progress=False, store=store)
    assert (new_fold.folds_trained, new_fold.folds_reused) == (1, 4)
    assert new_fold.forecasts_reused == 3
    # The new fold continued from the stored fold 3 exactly as an uninterrupted run does.
    assert_same_forecasts(new_fold, run_walkforward(frames, TINY, WF, None, progress=False))


def test_a_changed_bar_retrains_its_fold_and_every_later_one(frames, tmp_path):
    store = ModelStore(tmp_path / "store")
    run_walkforward(frames, TINY, WF, None, progress=False, store=store)
    changed = {s: f.copy() for s, f in frames.items()}
    changed["ETH/USDT"].iloc[150, changed["ETH/USDT"].columns.get_loc("volume")] += 1.0
    result = run_walkforward(changed, TINY, WF, None, progress=False, store=store)
    assert [f.reused for f in result.folds] == [True, True, False, False, False]
    assert_same_forecasts(result, run_walkforward(changed, TINY, WF, None, progress=False))


def test_key_covers_settings_seed_previous_fold_and_runtime(frames):
    plans = plan_folds(220, 120, WF)
    base = fold_keys(frames, plans, TINY, WF)
    assert len(set(base)) == len(base)
    for other in (TINY.model_copy(update={"units": 5}), TINY.model_copy(update={"seed": 12})):
        assert not set(fold_keys(frames, plans, other, WF)) & set(base)
    cold = fold_keys(frames, plans, TINY, WF.model_copy(update={"warm_start": False}))
    assert cold[0] == base[0] and not set(cold[1:]) & set(base)
    rolling_wf = WF.model_copy(update={"window": "rolling"})
    rolling = fold_keys(frames, plan_folds(220, 120, rolling_wf), TINY, rolling_wf)
    assert rolling[0] == base[0] and not set(rolling[1:]) & set(base)
    # Bars the fold may not know (later ones, the unused open) do not change its key.
    later = {s: f.copy() for s, f in frames.items()}
    later["BTC/USDT"].iloc[200:, :] *= 2
    later["BTC/USDT"].iloc[:, later["BTC/USDT"].columns.get_loc("open")] *= 1.1
    assert fold_keys(later, plans, TINY, WF)[:4] == base[:4]
    runtime = lstm.runtime()
    args = (TINY.model_dump(mode="json"), {"index": 0}, "rows", None)
    assert fold_key(*args, runtime) != fold_key(*args, {**runtime, "keras": "0.0.1"})
    assert fold_key(*args, runtime) != fold_key(*args, {**runtime, "backend": "jax"})


# --- entries on disk --------------------------------------------------------------------

def test_half_written_or_damaged_entries_are_never_used(frames, tmp_path, caplog):
    store = ModelStore(tmp_path / "store")
    data = short(frames, 160)
    trained = run_walkforward(data, TINY, WF, None, progress=False, store=store)
    keys = [f.store_key for f in trained.folds]
    # A crash mid-write leaves a temporary directory, never a directory under a key.
    (tmp_path / "store" / f".tmp-{keys[0][:16]}-deadbeef").mkdir()
    (store.entry(keys[0]) / "model.keras").write_bytes(b"PK\x03\x04 cut short")
    (store.entry(keys[1]) / "model.json").write_text('{"fold": ')
    with caplog.at_level(logging.WARNING):
        again = run_walkforward(data, TINY, WF, None, progress=False, store=store)
    assert [f.reused for f in again.folds] == [False, False]
    assert "does not match its checksum" in caplog.text and "is damaged" in caplog.text
    assert_same_forecasts(trained, again)
    reused = run_walkforward(data, TINY, WF, None, progress=False, store=store)
    assert reused.folds_reused == 2  # the new entries replaced the damaged ones


def test_a_lost_race_keeps_the_first_entry(tmp_path):
    store = ModelStore(tmp_path / "store")
    lstm.seed_everything(1)
    model = lstm.build_model(TINY, 3, 2)
    key = "ab" * 32

    def save(folder):
        model.save(folder / "model.keras")
        return ["model.keras"]

    first = store.put(key, save, {"fold": {"n": 1}})
    stamp = (first / "model.keras").stat().st_ino
    store.put(key, save, {"fold": {"n": 2}})  # another run fitted the same fold meanwhile
    assert store.lookup(key)["fold"] == {"n": 1}
    assert (first / "model.keras").stat().st_ino == stamp
    assert [p.name for p in (tmp_path / "store").iterdir()] == [key]
    ModelStore(tmp_path / "store", retrain=True).put(key, save, {"fold": {"n": 3}})
    assert store.lookup(key)["fold"] == {"n": 3}
    assert store.model_files(key) == ["model.keras"] and store.check_model(key)


def fake_entry(root: Path, key: str, days_unused: float, now: float) -> Path:
    entry = root / key
    entry.mkdir(parents=True)
    for name in ("model.keras", "weights.npz"):
        (entry / name).write_bytes(b"x" * 1000)
    (entry / "model.json").write_text(json.dumps({"key": key}))
    checksums.write_sums(entry)
    os.utime(entry / "model.json", (now - days_unused * 86_400,) * 2)
    return entry


def test_prune_removes_entries_unused_for_days_and_crash_leftovers(tmp_path, capsys):
    now = time.time()
    root = tmp_path / "store"
    old, recent = fake_entry(root, "a" * 64, 40, now), fake_entry(root, "b" * 64, 2, now)
    stale, fresh = root / ".tmp-aaaa-1", root / ".tmp-bbbb-2"
    for path, age in ((stale, 7_200), (fresh, 10)):
        path.mkdir()
        os.utime(path, (now - age,) * 2)
    assert ModelStore(root).lookup("b" * 64) == {"key": "b" * 64}  # a use counts as recent
    size = sum(f.stat().st_size for f in old.iterdir())
    assert prune(root, 30, now=now, dry_run=True) == (1, size, 1, size) and old.exists()
    assert run_cli(main, ["prune", "--store", str(root), "--older-than", "30"]) == 0
    assert f"{root}: removed 1 fold models (0.0 MB); kept 1 (0.0 MB)" in capsys.readouterr().out
    assert not old.exists() and recent.exists() and not stale.exists() and fresh.exists()
    assert run_cli(main, ["info", "--store", str(root)]) == 0
    assert f"{root}: 1 fold models" in capsys.readouterr().out
    for days, problem in (("-1", "is negative"), ("nan", "is not a finite number of days"),
                          ("inf", "is not a finite number of days")):
        assert run_cli(main, ["prune", "--store", str(root), "--older-than", days]) == 2
        assert capsys.readouterr().err.strip() == (
            f"error: --older-than {days} {problem}; give a number of days >= 0 (0 removes "
            "every entry)")
    assert recent.exists()


def test_prune_finds_the_store_a_config_names(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path, config_dict(tmp_path, data={"model_store": "fits"}))
    fake_entry(tmp_path / "fits", "c" * 64, 10, time.time())
    monkeypatch.chdir(tmp_path)  # relative paths in a config: from the working directory
    assert run_cli(main, ["prune", str(config), "--older-than", "5"]) == 0
    assert "fits: removed 1 fold models" in capsys.readouterr().out


# --- paper trading ----------------------------------------------------------------------

def test_paper_trading_after_a_backtest_trains_nothing(tmp_path, caplog):
    candles = {s: f.round(8) for s, f in generated(240).items()}
    with LoopbackExchange(candles, max_limit=100) as ex:
        ex.now_ms = int(candles["BTC/USDT"].index[-1].value // 1_000_000) + 86_400_001
        raw = config_dict(tmp_path, ex, **SECTIONS)
        backtest = run(validate_config(raw), progress=False)
        state = PaperState.open(tmp_path / "state.sqlite")
        trader = PaperTrader(validate_config(raw), state, now_ms=lambda: ex.now_ms,
                             sleep=lambda s: None)
        with caplog.at_level(logging.INFO, logger="engine.walkforward"):
            assert trader.run_once() == 1
        meta = state.meta()
        state.close()
    n = len(backtest.walkforward.folds)
    assert f"walk-forward: 0 folds trained, {n} reused" in caplog.text
    assert meta["model_fold"] == n - 1
    forecast = backtest.walkforward.forecasts["BTC/USDT"].iloc[-1]
    paper = PaperState.open(tmp_path / "state.sqlite")
    try:
        row = paper.table("forecasts").query("symbol == 'BTC/USDT'").iloc[-1]
    finally:
        paper.close()
    # One window (paper) and a fold's batch (backtest) may differ in the last bits.
    assert row["pred_close"] == pytest.approx(forecast["pred_close"], rel=1e-6)


def test_paper_refit_takes_a_fold_the_backtest_stored(tmp_path):
    candles = {s: f.round(8) for s, f in generated(240).items()}
    index = candles["BTC/USDT"].index
    with LoopbackExchange(candles, max_limit=100) as ex:
        ex.now_ms = int(index[-1].value // 1_000_000) + 86_400_001
        raw = config_dict(tmp_path, ex, **SECTIONS)
        backtest = run(validate_config(raw), progress=False)  # folds at bars 150, 190, 230
        ex.now_ms = int(index[199].value // 1_000_000) + 86_400_001
        state = PaperState.open(tmp_path / "state.sqlite")
        trader = PaperTrader(validate_config(raw), state, now_ms=lambda: ex.now_ms,
                             sleep=lambda s: None)
        trader.run_once()
        ex.now_ms = int(index[-1].value // 1_000_000) + 86_400_001
        trader.run_once()  # the re-fit at bar 230 is due on the way
        forecasts = state.table("forecasts").query("symbol == 'ETH/USDT'")
        state.close()
    saved = json.loads((tmp_path / "state_models" / "fold_002.json").read_text())
    assert saved["fold"]["reused"]
    assert saved["fold"]["store_key"] == backtest.walkforward.folds[2].store_key
    expected = backtest.walkforward.forecasts["ETH/USDT"]["pred_close"].iloc[-41:]  # 199..239
    assert forecasts["pred_close"].to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-6)
