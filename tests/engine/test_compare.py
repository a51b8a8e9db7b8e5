"""``python -m engine.compare``: earlier runs side by side, mismatches flagged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from engine.cli import run_cli
from engine.compare import main as compare_main
from engine.config import validate_config
from engine.pipeline import run
from tests.conftest import config_dict, make_ohlcv

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    paths = {}
    for symbol, seed in (("BTC/USDT", 1), ("ETH/USDT", 2)):
        path = tmp / f"{symbol.replace('/', '-')}.csv"
        make_ohlcv(260, seed=seed).rename_axis("timestamp").reset_index().to_csv(path, index=False)
        paths[symbol] = str(path)
    dirs = []
    for name, commission in (("cheap", 0.001), ("dear", 0.004)):
        raw = config_dict(tmp, data={"csv": paths, "end": "2021-12-31"},
                          model={"window_len": 5, "layers": 1, "units": 4, "epochs": 1},
                          walkforward={"train_bars": 200, "retrain_every": 30,
                                       "finetune_epochs": 1},
                          strategies=["lstm_signal", "buy_and_hold"],
                          broker={"commission": commission})
        raw["output_dir"] = str(tmp / name)
        dirs.append(run(validate_config(raw), progress=False).output_dir)
    return tmp, dirs


def test_compare_table_flags_different_costs(two_runs, capsys):
    tmp, dirs = two_runs
    out = tmp / "cmp"
    assert run_cli(compare_main, [*map(str, dirs), "--output", str(out),
                                  "--sort-by", "total_return"]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "comparison.csv", keep_default_na=False)
    assert len(table) == 2 * 2 * 2  # runs x strategies x symbols
    assert set(table["run"]) == {"cheap", "dear"}
    assert (table[table.run == "dear"]["differs"] == "commission 0.004").all()
    assert (table[table.run == "cheap"]["differs"] == "").all()
    assert list(table["total_return"]) == sorted(table["total_return"], reverse=True)
    assert "4 row(s) differ from the first run (cheap)" in printed
    table_lines = printed.split("\n\n")[0].splitlines()
    assert table_lines[0].split()[:4] == ["run", "strategy", "symbol", "total_return"]
    assert "differs" in table_lines[0] and max(map(len, table_lines)) <= 120
    assert (out / "comparison.md").read_text().startswith("| run | strategy | symbol |")
    image = matplotlib.image.imread(out / "equity.png")
    assert image.shape[1] > 1000  # one panel per symbol


def test_compare_missing_run_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "engine.compare", str(tmp_path / "nope")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: no report.json here; pass directories written by "
        "python -m engine.backtest"]


def test_compare_rejects_a_foreign_report(tmp_path):
    (tmp_path / "report.json").write_text('{"hello": 1}')
    (tmp_path / "equity.csv").write_text("timestamp,strategy,symbol,equity\n")
    assert run_cli(compare_main, [str(tmp_path)]) == 2


def test_compare_opens_a_run_from_an_older_version(two_runs, capsys):
    import json
    import shutil

    tmp, dirs = two_runs
    old = tmp / "old"
    shutil.copytree(dirs[0], old)
    (old / "trades.csv").unlink()
    (old / "fills.csv").unlink()
    report = json.loads((old / "report.json").read_text())
    newer = ("volatility", "calmar", "profit_factor", "expectancy", "avg_bars_held",
             "best_trade", "worst_trade", "alpha", "beta", "information_ratio")
    report["strategies"] = [{k: v for k, v in s.items() if k not in newer}
                            for s in report["strategies"]]
    (old / "report.json").write_text(json.dumps(report))
    out = tmp / "cmp-old"
    assert run_cli(compare_main, [str(dirs[0]), str(old), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    notes = [line for line in printed.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: old was written by an older version and has no trades.csv; no fills.csv; no "
        "metrics calmar, volatility, profit_factor, alpha, beta, information_ratio (shown as "
        "'-'; re-run its backtest to fill them)"]
    table = pd.read_csv(out / "comparison.csv", keep_default_na=False)
    assert (table[table.run == "old"]["calmar"] == "").all()
    assert (table[table.run != "old"]["calmar"] != "").all()
    assert (out / "equity.png").stat().st_size > 0
