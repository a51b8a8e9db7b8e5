"""Forecast and trading metrics: the numbers behind report.json.

Every field written here is documented in README.md ("What the report says"). Years are
365 days of bars (crypto never closes) for annualising; CAGR counts the test period's
calendar length in years of 365.25 days.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from engine.report.statistics import diebold_mariano, directional_test, hit_rate_by_strength
from engine.simulation import StrategyRun

BENCHMARK = "buy_and_hold"


# --- forecasts ------------------------------------------------------------------------

def scored_forecasts(table: pd.DataFrame, closes: pd.Series,
                     target: str = "window_ratio") -> pd.DataFrame:
    """The forecasts whose target bar is inside the data, with what happened.

    Args:
        table: One symbol's forecasts (``engine.walkforward``), indexed by decision bar.
        closes: That symbol's closes over all bars.
        target: The forecaster's target, whose scale ``model_error`` and
            ``persistence_error`` are on. Defaults to ``window_ratio``.

    Returns:
        Columns ``pred_return`` / ``true_return`` (next close over this close, minus 1),
        ``model_error`` / ``persistence_error`` (on the target's scale: next close over the
        window's first close for ``window_ratio``, the log return for ``log_return``, the
        simple return for ``direction``), ``return_error`` (predicted minus realised
        return: the scale every forecaster is compared on), and the prices
        ``pred_close``, ``actual``, ``last``; indexed by decision bar.
    """
    scored = table[table["target"].isin(closes.index)]
    actual = closes.reindex(scored["target"]).to_numpy()
    last = closes.reindex(scored.index).to_numpy()
    base = scored["base_close"].to_numpy()
    pred_close = scored["pred_close"].to_numpy()
    pred_return, true_return = pred_close / last - 1, actual / last - 1
    if target == "window_ratio":
        model = scored["pred_target"].to_numpy() - (actual / base - 1)
        naive = last / base - actual / base
    elif target == "log_return":
        model = scored["pred_target"].to_numpy() - np.log(actual / last)
        naive = -np.log(actual / last)
    else:
        model, naive = pred_return - true_return, -true_return
    return pd.DataFrame({
        "pred_return": pred_return, "true_return": true_return, "model_error": model,
        "persistence_error": naive, "return_error": pred_return - true_return,
        "pred_close": pred_close, "actual": actual, "last": last}, index=scored.index)


def forecast_metrics(table: pd.DataFrame, closes: pd.Series,
                     target: str = "window_ratio") -> dict[str, Any]:
    """Model vs persistence ("next close = this close") on exactly the forecast bars.

    Args:
        table: One symbol's forecasts (``engine.walkforward``), indexed by decision bar.
        closes: That symbol's closes over all bars.
        target: The forecaster's target (see ``scored_forecasts``). Defaults to
            ``window_ratio``.

    Returns:
        ``{n, mse, rmse, mae, mape, directional_accuracy, mse_ratio, persistence: {...},
        up_share}`` over the forecasts whose target bar is inside the data.
    """
    s = scored_forecasts(table, closes, target)
    model = _errors(s["model_error"], s["pred_close"], s, directional=True)
    naive = _errors(s["persistence_error"], s["last"], s, directional=False)
    ratio = model["mse"] / naive["mse"] if naive["mse"] else None
    return {"n": int(len(s)), **model, "mse_ratio": ratio, "persistence": naive,
            "up_share": float(np.mean(s["actual"] > s["last"])) if len(s) else None}


def _errors(target_error, price_pred, s: pd.DataFrame, directional: bool) -> dict:
    if len(s) == 0:
        return {k: None for k in ("mse", "rmse", "mae", "mape", "directional_accuracy")}
    err = np.asarray(price_pred) - s["actual"].to_numpy()
    return {
        "mse": float(np.mean(np.asarray(target_error) ** 2)),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "mape": float(np.mean(np.abs(err) / s["actual"].to_numpy())),
        "directional_accuracy": float(np.mean(_hits(s))) if directional else None,
    }


def _hits(s: pd.DataFrame) -> np.ndarray:
    """Predicted close on the same side of the last close as the actual one."""
    return (np.sign(s["pred_close"] - s["last"]) == np.sign(s["actual"] - s["last"])).to_numpy()


def forecast_diagnostics(table: pd.DataFrame, closes: pd.Series,
                         target: str = "window_ratio") -> dict[str, Any]:
    """Is the forecaster's edge more than chance? (README: "forecast diagnostics").

    Returns:
        ``{diebold_mariano: {...}, directional: {...}, by_strength: [...]}``: the
        Diebold-Mariano test of squared errors against persistence (HLN-corrected), the
        binomial test of directional accuracy, and hit rates by quintile of the
        predicted move's size.
    """
    s = scored_forecasts(table, closes, target)
    hits = _hits(s)
    return {
        "diebold_mariano": diebold_mariano(s["model_error"].to_numpy(),
                                           s["persistence_error"].to_numpy()),
        "directional": directional_test(int(hits.sum()), len(s),
                                        float(np.mean(s["actual"] > s["last"]))
                                        if len(s) else 0.5),
        "by_strength": hit_rate_by_strength(s["pred_return"].to_numpy(),
                                            s["true_return"].to_numpy(), hits),
    }


def fold_metrics(table: pd.DataFrame, closes: pd.Series,
                 target: str = "window_ratio") -> pd.DataFrame:
    """Model and persistence MSE (target scale) for each fold of one symbol."""
    rows = []
    for fold, part in table.groupby("fold"):
        metrics = forecast_metrics(part, closes, target)
        if metrics["n"]:
            rows.append({"fold": int(fold), "n": metrics["n"], "mse": metrics["mse"],
                         "persistence_mse": metrics["persistence"]["mse"]})
    return pd.DataFrame(rows, columns=["fold", "n", "mse", "persistence_mse"])


# --- trading --------------------------------------------------------------------------

def trading_metrics(run: StrategyRun, bars_per_year: float,
                    benchmark: pd.Series | None = None,
                    trades: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Return, risk, trade and benchmark-relative figures of one run (see README).

    Args:
        run: One (strategy, symbol) run.
        bars_per_year: Bars in 365 days of the run's timeframe.
        benchmark: Buy-and-hold equity (or price) on the same bars; None leaves alpha,
            beta and information ratio empty.
        trades: Round trips in ``engine.report.trades`` form. Defaults to ``run``'s.
    """
    equity = run.equity
    returns = equity.pct_change().dropna()
    total = equity.iloc[-1] / equity.iloc[0] - 1
    years = (equity.index[-1] - equity.index[0]) / pd.Timedelta(days=365.25)
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0) ** 2))) if len(returns) else 0.0
    std = float(returns.std(ddof=1)) if len(returns) > 1 else 0.0
    cagr = float((1 + total) ** (1 / years) - 1) if years > 0 and total > -1 else None
    max_dd = float((1 - equity / equity.cummax()).max())
    if trades is None:
        from engine.report.trades import trade_records

        trades = trade_records(run)
    return {
        "total_return": float(total),
        "cagr": cagr,
        "volatility": std * math.sqrt(bars_per_year) if std > 0 else None,
        "sharpe": float(returns.mean() / std * math.sqrt(bars_per_year)) if std > 0 else None,
        "sortino": float(returns.mean() / downside * math.sqrt(bars_per_year))
        if downside > 0 else None,
        "max_drawdown": max_dd,
        "calmar": cagr / max_dd if cagr is not None and max_dd > 0 else None,
        **trade_metrics(trades),
        "exposure": _exposure_share(run.position),
        "fees_paid": float(run.fees),
        "final_equity": float(equity.iloc[-1]),
        **relative_metrics(returns, benchmark, bars_per_year),
    }


def trade_metrics(trades: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Round-trip figures; a trade still open at the end counts, marked at the last close."""
    pnl = np.array([t["pnl"] for t in trades], dtype="float64")
    held = [t["bars_held"] for t in trades if t.get("bars_held") is not None]
    losses = -pnl[pnl < 0].sum()
    return {
        "n_trades": len(trades),
        "win_rate": float(np.mean(pnl > 0)) if len(pnl) else None,
        "profit_factor": float(pnl[pnl > 0].sum() / losses) if losses > 0 else None,
        "expectancy": float(pnl.mean()) if len(pnl) else None,
        "avg_bars_held": float(np.mean(held)) if held else None,
        "best_trade": float(pnl.max()) if len(pnl) else None,
        "worst_trade": float(pnl.min()) if len(pnl) else None,
    }


def relative_metrics(returns: pd.Series, benchmark: pd.Series | None,
                     bars_per_year: float) -> dict[str, Any]:
    """Alpha (annualised), beta and information ratio against a benchmark's returns.

    ``beta`` = cov(r, b) / var(b); ``alpha`` = (mean r - beta mean b) x bars per year (no
    risk-free rate); ``information_ratio`` = mean(r - b) / std(r - b) x sqrt(bars per year).
    """
    empty = {"alpha": None, "beta": None, "information_ratio": None}
    if benchmark is None:
        return empty
    bench = benchmark.pct_change().reindex(returns.index)
    both = pd.DataFrame({"r": returns, "b": bench}).dropna()
    if len(both) < 3 or both["b"].var(ddof=1) == 0:
        return empty
    r, b = both["r"].to_numpy(), both["b"].to_numpy()
    beta = float(np.cov(r, b, ddof=1)[0, 1] / np.var(b, ddof=1))
    active = r - b
    spread = float(np.std(active, ddof=1))
    return {"alpha": float((r.mean() - beta * b.mean()) * bars_per_year), "beta": beta,
            "information_ratio": float(active.mean() / spread * math.sqrt(bars_per_year))
            if spread > 1e-12 else None}


def benchmarks(runs: Sequence[StrategyRun],
               closes: Mapping[str, pd.Series]) -> dict[str, pd.Series]:
    """Per symbol, the buy-and-hold equity to measure against.

    The configured buy-and-hold run on that symbol (same costs) when there is one, else
    the symbol's closes; a symbol with neither (e.g. a portfolio without a buy-and-hold
    run) has no benchmark.
    """
    found = {s: c for s, c in closes.items()}
    for run in runs:
        if run.label.split("(")[0] == BENCHMARK:
            found[run.symbol] = run.equity
    return found


def _exposure_share(position: pd.DataFrame) -> float:
    """Share of the recorded closes at which any position was held."""
    return float((position != 0).any(axis=1).mean()) if len(position) else math.nan
