"""Significance tests for forecasts, written on scipy and tested on worked examples.

- ``diebold_mariano``: do the model's squared errors differ from a benchmark's by more
  than chance? (Diebold & Mariano 1995, with the small-sample correction of Harvey,
  Leybourne & Newbold 1997.)
- ``directional_test``: is the share of right directions above what always calling the
  more frequent direction would get? (exact binomial test)
- ``hit_rate_by_strength``: is the model right more often when it predicts a bigger move?
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


def diebold_mariano(model_errors: np.ndarray, benchmark_errors: np.ndarray,
                    horizon: int = 1) -> dict[str, Any]:
    """Diebold-Mariano test on squared-error loss with the HLN correction.

    With ``d_t = e_model,t^2 - e_bench,t^2``, mean ``d``, and ``V`` the long-run variance
    of ``d`` from its autocovariances up to lag ``horizon - 1``:
    ``DM = d / sqrt(V / n)``, ``DM* = DM x sqrt((n + 1 - 2h + h(h - 1) / n) / n)``,
    compared with Student's t with ``n - 1`` degrees of freedom.

    Args:
        model_errors: Forecast errors of the model.
        benchmark_errors: Errors of the benchmark (persistence) on the same targets.
        horizon: Forecast horizon ``h`` in bars. Defaults to 1 (next bar).

    Returns:
        ``{n, mean_loss_difference, statistic, p_value_model_better, p_value_two_sided}``:
        ``p_value_model_better`` is one-sided (H1: the model's expected squared error is
        smaller); all None when fewer than 3 pairs or the differences do not vary.
    """
    d = np.asarray(model_errors, float) ** 2 - np.asarray(benchmark_errors, float) ** 2
    n = len(d)
    result: dict[str, Any] = {"n": n, "mean_loss_difference": float(d.mean()) if n else None,
                              "statistic": None, "p_value_model_better": None,
                              "p_value_two_sided": None}
    centred = d - d.mean() if n else d
    variance = sum((2 if k else 1) * float(np.dot(centred[k:], centred[:n - k])) / n
                   for k in range(min(horizon, n)))
    if n < 3 or variance <= 0:
        return result
    dm = d.mean() / math.sqrt(variance / n)
    correction = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    statistic = float(dm * correction)
    result.update(statistic=statistic,
                  p_value_model_better=float(stats.t.cdf(statistic, df=n - 1)),
                  p_value_two_sided=float(2 * stats.t.sf(abs(statistic), df=n - 1)))
    return result


def directional_test(hits: int, n: int, up_share: float) -> dict[str, Any]:
    """Exact one-sided binomial test of directional accuracy against a naive baseline.

    The baseline is the accuracy of always calling the direction that was more frequent
    over the same bars, ``max(up_share, 1 - up_share)``; beating 50% on a trending market
    proves nothing.

    Returns:
        ``{hits, n, accuracy, baseline, p_value}``; ``p_value`` is P(at least ``hits``
        right | each call right with probability ``baseline``), None when ``n`` is 0.
    """
    baseline = max(up_share, 1 - up_share)
    if n == 0:
        return {"hits": 0, "n": 0, "accuracy": None, "baseline": baseline, "p_value": None}
    test = stats.binomtest(hits, n, baseline, alternative="greater")
    return {"hits": hits, "n": n, "accuracy": hits / n, "baseline": baseline,
            "p_value": float(test.pvalue)}


def hit_rate_by_strength(pred_return: np.ndarray, true_return: np.ndarray,
                         hits: np.ndarray, groups: int = 5) -> list[dict[str, Any]]:
    """Hit rate per quintile of the predicted move's size ``|pred_return|``.

    Returns:
        One record per group, weakest first: ``quintile`` (1 = smallest predicted moves),
        ``n``, ``min_abs_pred`` / ``max_abs_pred``, ``hit_rate``, and ``mean_signed_return``
        (the realised return in the predicted direction: what trading every call earned
        per bar before costs). Equal sizes are split by order of time; empty when there
        are fewer forecasts than groups.
    """
    size = np.abs(np.asarray(pred_return, float))
    if len(size) < groups:
        return []
    bins = pd.qcut(pd.Series(size).rank(method="first"), groups, labels=False)
    signed = np.sign(np.asarray(pred_return, float)) * np.asarray(true_return, float)
    frame = pd.DataFrame({"bin": bins.to_numpy(), "size": size, "hit": hits, "signed": signed})
    return [{"quintile": int(b) + 1, "n": int(len(part)),
             "min_abs_pred": float(part["size"].min()), "max_abs_pred": float(part["size"].max()),
             "hit_rate": float(part["hit"].mean()),
             "mean_signed_return": float(part["signed"].mean())}
            for b, part in frame.groupby("bin", sort=True)]
