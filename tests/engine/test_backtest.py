"""``python -m engine.backtest`` end to end, on generated data through the loopback exchange."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from engine.config import load_config, validate_config
from engine.data import load_market_data
from engine.pipeline import run, run_strategies
from engine.walkforward import run_walkforward
from tests.conftest import config_dict, make_ohlcv, write_config
from tests.loopback import LoopbackExchange

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "model": {"window_len": 5, "layers": 1, "units": 4, "epochs": 2, "batch_size": 32},
    "walkforward": {"train_bars": 250, "retrain_every": 50, "finetune_epochs": 1},
    "strategies": [{"name": "lstm_signal", "entry": 0.002}, "buy_and_hold",
                   {"name": "sma_cross", "fast": 5, "slow": 20}],
    "broker": {"commission": 0.001, "slippage": 0.0005},
}
VOLATILE = ("seconds", "config_file", "output_dir")


def strip(report: dict) -> dict:
    """The report without timings and paths, which differ between identical runs."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(report)


@pytest.fixture(scope="module")
def served():
    candles = {"BTC/USDT": make_ohlcv(400, seed=1, price=10_000.0),
               "ETH/USDT": make_ohlcv(400, seed=2, price=200.0)}
    with LoopbackExchange(candles, max_limit=100) as exchange:
        yield exchange, candles


@pytest.fixture(scope="module")
def cli_run(served, tmp_path_factory):
    exchange, _ = served
    tmp = tmp_path_factory.mktemp("cli")
    config = write_config(tmp, config_dict(tmp, exchange, data={"end": "2021-02-03"}, **TINY))
    out = tmp / "run"
    proc = subprocess.run([sys.executable, "-m", "engine.backtest", str(config), "--output",
                           str(out), "--no-progress"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return config, out, proc


def test_report_json_has_every_section(cli_run):
    _, out, _ = cli_run
    report = json.loads((out / "report.json").read_text())
    assert set(report) == {"forecast", "diagnostics", "forecasters", "forecast_comparison",
                           "model_confidence_set", "strategies", "spa", "folds", "run",
                           "config"}
    assert report["forecasters"]["lstm"]["BTC/USDT"]["mse"] == report["forecast"]["BTC/USDT"]["mse"]
    assert set(report["forecast_comparison"]["BTC/USDT"]["diebold_mariano"]) == {"lstm",
                                                                                "persistence"}
    assert set(report["model_confidence_set"]["BTC/USDT"]) <= {"lstm", "persistence"}
    assert report["spa"]["BTC/USDT"]["benchmark"] == "buy_and_hold"
    assert 0 <= report["spa"]["BTC/USDT"]["p_value"] <= 1
    for symbol in ("BTC/USDT", "ETH/USDT"):
        f = report["forecast"][symbol]
        assert f["n"] == 400 - 250  # targets inside the data: bars 250..399
        for key in ("mse", "rmse", "mae", "mape", "directional_accuracy"):
            assert isinstance(f[key], float) and f[key] >= 0
        assert set(f["persistence"]) == {"mse", "rmse", "mae", "mape", "directional_accuracy"}
    pairs = {(s["name"], s["symbol"]) for s in report["strategies"]}
    assert pairs == {(n, s) for n in ("lstm_signal", "buy_and_hold", "sma_cross")
                     for s in ("BTC/USDT", "ETH/USDT")}
    for entry in report["strategies"]:
        assert {"total_return", "cagr", "sharpe", "sortino", "max_drawdown", "n_trades",
                "win_rate", "exposure", "fees_paid", "final_equity", "volatility", "calmar",
                "profit_factor", "expectancy", "avg_bars_held", "best_trade", "worst_trade",
                "alpha", "beta", "information_ratio"} <= set(entry)
    # Re-fits at bars 250, 300, 350 and 400: the last one, at the end of the data, only
    # forecasts the bar after it (what a live trader acts on next).
    assert [f["forecasts"] for f in report["folds"]] == [50, 50, 50, 1]
    assert {"train_start", "train_end", "forecast_start", "forecast_end", "epochs",
            "final_loss", "seconds", "reused", "store_key"} <= set(report["folds"][0])
    run_info = report["run"]
    assert (run_info["folds_trained"], run_info["folds_reused"]) == (4, 0)
    assert run_info["config_hash"] and run_info["device"].startswith("tensorflow on")
    assert set(run_info["seconds"]) == {"data", "training", "backtest", "total"}
    assert run_info["data"]["bars"] == 400 and run_info["versions"]["backtrader"]


def test_charts_are_real_pngs(cli_run):
    _, out, _ = cli_run
    for name in ("equity.png", "forecast.png", "folds.png", "diagnostics.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(out / name)
        assert image.shape[0] > 300 and image.shape[1] > 500
        assert image.std() > 0.01  # something was drawn


def test_predictions_csv(cli_run):
    _, out, _ = cli_run
    table = pd.read_csv(out / "predictions.csv")
    assert list(table.columns) == ["timestamp", "symbol", "actual_close", "predicted_close",
                                   "fold"]
    assert len(table) == 2 * 151  # 150 scored bars + the forecast past the data, per symbol
    assert table["actual_close"].isna().sum() == 2
    assert table["fold"].tolist()[:51] == [0] * 50 + [1]


def test_html_report_is_self_contained(cli_run):
    _, out, _ = cli_run
    page = (out / "report.html").read_text()
    assert page.count('<img alt=') == 1  # folds.png; the rest is plotly
    # markets, months, scatters, each symbol's gains against persistence
    assert page.count('class="plotly-graph-div"') == 2 + 6 + 2 + 2
    assert "src=\"http" not in page and "src='http" not in page and "lstm_signal" in page
    assert (out / "comparison.md").read_text().startswith("| strategy | symbol |")


def test_summary_is_printed(cli_run):
    _, out, proc = cli_run
    assert "Forecast error (next close) beside persistence" in proc.stdout
    assert "buy_and_hold" in proc.stdout and f"Written to {out}/" in proc.stdout


def test_persistence_mse_on_exactly_the_forecast_bars(cli_run, served):
    _, out, _ = cli_run
    _, candles = served
    report = json.loads((out / "report.json").read_text())
    predictions = pd.read_csv(out / "predictions.csv", parse_dates=["timestamp"])
    window = report["config"]["model"]["window_len"]
    for symbol, frame in candles.items():
        close = frame["close"].to_numpy()
        scored = predictions[(predictions.symbol == symbol) & predictions.actual_close.notna()]
        bars = frame.index.get_indexer(pd.DatetimeIndex(scored["timestamp"]))
        base = close[bars - window]  # first close of the window ending the bar before
        naive = np.mean((close[bars - 1] / base - close[bars] / base) ** 2)
        assert report["forecast"][symbol]["n"] == len(scored)
        assert report["forecast"][symbol]["persistence"]["mse"] == pytest.approx(naive, rel=1e-9)
        rmse = np.sqrt(np.mean((scored["predicted_close"] - scored["actual_close"]) ** 2))
        assert report["forecast"][symbol]["rmse"] == pytest.approx(rmse, rel=1e-6)


def test_same_seed_same_report_in_and_out_of_process(cli_run):
    config, out, _ = cli_run
    cfg = load_config(config, {"output_dir": str(out.parent / "again")})
    again = run(cfg, progress=False, retrain=True)  # trained again, not taken from the store
    assert again.walkforward.folds_reused == 0
    first = json.loads((out / "report.json").read_text())
    second = json.loads((again.output_dir / "report.json").read_text())
    assert strip(first)["forecast"] == strip(second)["forecast"]
    assert strip(first)["strategies"] == strip(second)["strategies"]
    assert [f["final_loss"] for f in first["folds"]] == [f["final_loss"] for f in second["folds"]]


def test_future_bars_change_no_earlier_trade(tmp_path):
    frames = {"BTC/USDT": make_ohlcv(300, seed=7, price=10_000.0),
              "ETH/USDT": make_ohlcv(300, seed=8, price=200.0)}
    changed = {s: f.copy() for s, f in frames.items()}
    cut = 260
    for f in changed.values():
        f.iloc[cut:, :] *= 0.7
    fills = []
    for data in (frames, changed):
        paths = {}
        for symbol, frame in data.items():
            path = tmp_path / f"{len(fills)}_{symbol.replace('/', '-')}.csv"
            frame.rename_axis("timestamp").reset_index().to_csv(path, index=False)
            paths[symbol] = str(path)
        raw = config_dict(tmp_path, data={"csv": paths, "end": "2021-12-31"}, **{
            **TINY, "walkforward": {"train_bars": 200, "retrain_every": 40,
                                    "finetune_epochs": 1}})
        cfg = validate_config(raw)
        market = load_market_data(cfg.data, progress=False)
        wf = run_walkforward(market.frames, cfg.model, cfg.walkforward, None, progress=False)
        runs = run_strategies(cfg, market, wf)
        fills.append({(r.label, r.symbol): r.fills for r in runs})
    boundary = frames["BTC/USDT"].index[cut]
    for key, before in fills[0].items():
        after = fills[1][key]
        # Decisions at bars < cut fill at bars <= cut, at the open of bar ``cut`` at the latest
        # (an open that was rewritten too), so compare fills strictly before the boundary.
        early = before[before["time"] < boundary].reset_index(drop=True)
        pd.testing.assert_frame_equal(early, after[after["time"] < boundary]
                                      .reset_index(drop=True))
        assert len(early) > 0, key


def test_failed_run_keeps_the_previous_output(cli_run, tmp_path):
    config, out, _ = cli_run
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    raw = json.loads(json.dumps(config_dict(tmp_path, data={"end": "2021-02-03"}, **TINY)))
    raw["data"]["api_url"] = load_config(config).data.api_url
    raw["walkforward"]["train_bars"] = 5000  # fails after the data is loaded
    bad = write_config(tmp_path, raw)
    proc = subprocess.run([sys.executable, "-m", "engine.backtest", str(bad), "--output",
                           str(out), "--no-progress"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: walkforward.train_bars = 5000 leaves no bars to forecast: the data has 400 bars "
        "(2020-01-01 .. 2021-02-03); train on fewer bars or load more data"]
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not list(out.parent.glob(".run.*"))


def test_seed_2018_config_has_the_tutorial_hyperparameters():
    cfg = load_config(REPO / "configs" / "seed_2018.yaml")
    m = cfg.model
    assert (m.layers, m.units, m.dropout, m.activation, m.loss, m.optimizer, m.batch_size,
            m.epochs, m.window_len) == (3, 512, 0.25, "tanh", "mse", "adam", 12, 53, 7)
    assert m.features == ("close", "volume") and cfg.data.symbols == ("BTC/USDT", "ETH/USDT")


def test_compare_config_runs_on_the_loopback_exchange(served, tmp_path):
    """configs/compare.yaml as shipped, with only the data source and sizes made tiny."""
    import yaml

    exchange, _ = served
    raw = yaml.safe_load((REPO / "configs" / "compare.yaml").read_text())
    raw["data"].update(api_url=exchange.url, cache_dir=str(tmp_path / "cache"), start="2020-01-01",
                       end="2021-02-03", exchange_options={"enableRateLimit": False})
    raw["model"].update(TINY["model"])
    raw["walkforward"].update(TINY["walkforward"])
    raw["output_dir"] = str(tmp_path / "compare")
    result = run(validate_config(raw), progress=False)
    labels = {(s["strategy"], s["symbol"]) for s in result.report["strategies"]}
    assert len(labels) == 5 * 2
    table = pd.read_csv(result.output_dir / "comparison.csv")
    assert list(table["sharpe"].dropna()) == sorted(table["sharpe"].dropna(), reverse=True)


def test_output_dir_with_foreign_files_is_refused_before_any_work(tmp_path):
    from engine.errors import ConfigError
    from engine.pipeline import check_output_dir

    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.txt").write_text("do not delete me")
    raw = config_dict(tmp_path, data={"csv": {"BTC/USDT": str(tmp_path / "absent.csv")},
                                      "symbols": ["BTC/USDT"]})
    raw["output_dir"] = str(mine)
    with pytest.raises(ConfigError, match="holds files but no earlier run"):
        run(validate_config(raw), progress=False)  # before the (missing) data is read
    assert (mine / "thesis.txt").read_text() == "do not delete me"
    with pytest.raises(ConfigError, match="holds files but no earlier run"):
        check_output_dir(Path("."))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_output_dir(tmp_path / "file")


def test_interrupted_swap_is_undone(tmp_path):
    from engine.pipeline import check_output_dir

    parked = tmp_path / ".run.old"
    parked.mkdir()
    (parked / "report.json").write_text("{}")
    assert check_output_dir(tmp_path / "run") == (tmp_path / "run").resolve()
    assert (tmp_path / "run" / "report.json").is_file() and not parked.exists()
