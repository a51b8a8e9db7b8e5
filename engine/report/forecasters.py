"""Several forecasters judged together, and the strategies judged against buy-and-hold.

- ``forecaster_sections``: each forecaster's metrics and diagnostics per symbol (on its own
  target's scale, beside persistence), with each seed's metrics when it has several;
- ``comparison``: per symbol, every forecaster and persistence on one scale (the squared
  error of the predicted next-bar return; persistence predicts no move): pairwise
  Diebold-Mariano tests with Holm-adjusted p-values, the model confidence set at 10%,
  and the cumulative squared-error difference against persistence over time;
- ``spa``: per account, Hansen's SPA test of every strategy against buy-and-hold;
- ``verdicts``: one plain sentence per symbol for the terminal summary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from engine.report.metrics import (
    BENCHMARK,
    forecast_diagnostics,
    forecast_metrics,
    scored_forecasts,
)
from engine.report.statistics import (
    diebold_mariano_matrix,
    model_confidence_set,
    superior_predictive_ability,
)

PERSISTENCE = "persistence"
MCS_SIZE = 0.10  # the model confidence set holds the best forecaster with 90% probability
SIGNIFICANCE = 0.05  # "beats persistence" in the summary's sentences


def forecaster_sections(wf: Any, closes: Mapping[str, pd.Series]) -> dict[str, Any]:
    """``{name: {symbol: {...forecast metrics, diagnostics, members}}}`` (report.json's
    ``forecasters``)."""
    sections: dict[str, Any] = {}
    for name, result in wf.by_name.items():
        per_symbol = {}
        for symbol, table in result.forecasts.items():
            entry = forecast_metrics(table, closes[symbol], result.target)
            entry["diagnostics"] = forecast_diagnostics(table, closes[symbol], result.target)
            entry["kind"], entry["target"] = result.kind, result.target
            if result.members:
                entry["members"] = [_member_metrics(m[symbol], closes[symbol], result.target)
                                    for m in result.members]
            per_symbol[symbol] = entry
        sections[name] = per_symbol
    return sections


def _member_metrics(table: pd.DataFrame, closes: pd.Series, target: str) -> dict[str, Any]:
    metrics = forecast_metrics(table, closes, target)
    dm = forecast_diagnostics(table, closes, target)["diebold_mariano"]
    return {"mse": metrics["mse"], "mse_ratio": metrics["mse_ratio"],
            "directional_accuracy": metrics["directional_accuracy"],
            "dm_p_better": dm["p_value_model_better"]}


def return_errors(wf: Any, closes: Mapping[str, pd.Series], symbol: str) -> pd.DataFrame:
    """Predicted minus realised next-bar return of every forecaster and of persistence,
    on the bars every forecaster forecast (one column each, persistence last)."""
    columns = {}
    truth = None
    for name, result in wf.by_name.items():
        scored = scored_forecasts(result.forecasts[symbol], closes[symbol], result.target)
        columns[name] = scored["return_error"]
        truth = scored["true_return"] if truth is None else truth
    frame = pd.DataFrame(columns).dropna()
    frame[PERSISTENCE] = -truth.reindex(frame.index)
    return frame


def comparison(wf: Any, closes: Mapping[str, pd.Series]) -> dict[str, Any]:
    """Per symbol: the forecasters and persistence on one scale (report.json's
    ``forecast_comparison``); empty when no forecaster ran."""
    if not wf.by_name:
        return {}
    result = {}
    for symbol in next(iter(wf.by_name.values())).forecasts:
        errors = return_errors(wf, closes, symbol)
        losses = errors**2
        mse = losses.mean()
        mcs = model_confidence_set(losses, MCS_SIZE) if len(errors) > 10 else None
        result[symbol] = {
            "n": int(len(errors)),
            "mse": {k: float(v) for k, v in mse.items()},
            "mse_ratio": {k: float(v / mse[PERSISTENCE]) if mse[PERSISTENCE] else None
                          for k, v in mse.items()},
            "diebold_mariano": diebold_mariano_matrix(errors),
            "model_confidence_set": mcs}
    return result


def cumulative_gain(errors: pd.DataFrame) -> pd.DataFrame:
    """Running sum of persistence's squared error minus each forecaster's: rising where
    the forecaster beats persistence, falling where it loses."""
    losses = errors**2
    return losses.drop(columns=PERSISTENCE).rsub(losses[PERSISTENCE], axis=0).cumsum()


def spa(runs: Sequence[Any]) -> dict[str, Any]:
    """Per account (symbol or portfolio): SPA of every strategy against buy-and-hold.

    Accounts without a buy-and-hold run, or with no other strategy, are left out.
    """
    result = {}
    for account in dict.fromkeys(r.symbol for r in runs):
        mine = [r for r in runs if r.symbol == account]
        bench = next((r for r in mine if r.label.split("(")[0] == BENCHMARK), None)
        others = [r for r in mine if r is not bench]
        if bench is None or not others:
            continue
        returns = pd.DataFrame({r.label: r.equity.pct_change() for r in others}).iloc[1:]
        base = bench.equity.pct_change().iloc[1:]
        both = returns.join(base.rename("__benchmark__"), how="inner").dropna()
        if len(both) < 10:
            continue
        test = superior_predictive_ability(both.pop("__benchmark__"), both)
        result[account] = {"benchmark": bench.label, **test}
    return result


def verdicts(report: Mapping[str, Any]) -> list[str]:
    """One sentence per symbol: the best forecaster, and whether anything beats
    persistence at 5% (one-sided Diebold-Mariano, Holm-adjusted over the forecasters)."""
    from statsmodels.stats.multitest import multipletests

    lines = []
    for symbol, entry in report.get("forecast_comparison", {}).items():
        ratios = {k: v for k, v in entry["mse_ratio"].items() if k != PERSISTENCE}
        best = min(ratios, key=lambda k: ratios[k] if ratios[k] is not None else np.inf)
        one_sided = {}
        for name in ratios:
            test = entry["diebold_mariano"][name][PERSISTENCE]
            if test["statistic"] is not None:  # H1: this forecaster's errors are smaller
                one_sided[name] = _one_sided(test["statistic"], test["p_value"])
        winners = []
        if one_sided:
            adjusted = multipletests(list(one_sided.values()), method="holm")[1]
            winners = [n for n, p in zip(one_sided, adjusted, strict=True)
                       if p < SIGNIFICANCE]
        verdict = (f"{', '.join(winners)} beat{'s' if len(winners) == 1 else ''} persistence "
                   f"at {SIGNIFICANCE:.0%}" if winners else
                   f"nothing beats persistence at {SIGNIFICANCE:.0%}")
        lines.append(f"{symbol}: the best forecaster is {best} (MSE {ratios[best]:.3f} x "
                     f"persistence's on the next-bar return); {verdict} (Diebold-Mariano, "
                     "Holm-adjusted).")
    return lines


def _one_sided(statistic: float, two_sided: float) -> float:
    """The one-sided p-value of "the row is better" from a two-sided one."""
    return two_sided / 2 if statistic < 0 else 1 - two_sided / 2
