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


# --- several forecasters and strategies, judged together -------------------------------------

#: Seed of the bootstraps below, so a report is the same every time it is made.
BOOTSTRAP_SEED = 0
BOOTSTRAP_REPS = 1000


def diebold_mariano_matrix(errors: pd.DataFrame) -> dict[str, dict[str, dict[str, Any]]]:
    """Diebold-Mariano (HLN) tests of every pair of columns of ``errors``, Holm-adjusted.

    Args:
        errors: Forecast errors on the same bars, one column per forecaster (persistence
            among them).

    Returns:
        ``{row: {column: {statistic, p_value, p_holm}}}`` for every ordered pair: a
        negative statistic means the row's squared errors are smaller; ``p_value`` is
        two-sided, ``p_holm`` the same after Holm's correction over all distinct pairs.
        Diagonal entries are omitted.
    """
    from statsmodels.stats.multitest import multipletests

    names = list(errors.columns)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    tests = {pair: diebold_mariano(errors[pair[0]].to_numpy(), errors[pair[1]].to_numpy())
             for pair in pairs}
    known = [pair for pair in pairs if tests[pair]["p_value_two_sided"] is not None]
    adjusted = dict(zip(known, multipletests(
        [tests[p]["p_value_two_sided"] for p in known], method="holm")[1], strict=True)) \
        if known else {}
    matrix: dict[str, dict[str, dict[str, Any]]] = {a: {} for a in names}
    for (a, b), test in tests.items():
        stat, p = test["statistic"], test["p_value_two_sided"]
        holm = float(adjusted[(a, b)]) if (a, b) in adjusted else None
        matrix[a][b] = {"statistic": stat, "p_value": p, "p_holm": holm}
        matrix[b][a] = {"statistic": None if stat is None else -stat, "p_value": p,
                        "p_holm": holm}
    return matrix


def model_confidence_set(losses: pd.DataFrame, size: float = 0.10) -> dict[str, Any]:
    """The model confidence set of Hansen, Lunde and Nason (2011), with ``arch``.

    Args:
        losses: Per-bar losses (squared errors), one column per forecaster.
        size: The test size: the set holds the best forecaster with probability at least
            1 - size. Defaults to 0.10.

    Returns:
        ``{included: [...], pvalues: {name: p}, size}``: the names in the set (in column
        order) and each forecaster's MCS p-value (it is in the set when p >= size).
    """
    from arch.bootstrap import MCS

    mcs = MCS(losses, size=size, reps=BOOTSTRAP_REPS, method="R", bootstrap="stationary",
              seed=BOOTSTRAP_SEED)
    mcs.compute()
    pvalues = mcs.pvalues["Pvalue"].to_dict()
    included = [name for name in losses.columns if name in set(mcs.included)]
    return {"included": included, "pvalues": {k: float(v) for k, v in pvalues.items()},
            "size": size}


def superior_predictive_ability(benchmark: pd.Series, strategies: pd.DataFrame) -> dict[str, Any]:
    """Hansen's test for superior predictive ability: does any strategy beat the benchmark?

    Losses are negative per-bar returns, so the null is "no strategy has a higher mean
    return than the benchmark"; a small p-value says the best one beat it even after
    accounting for having tried them all (data snooping).

    Args:
        benchmark: The benchmark's per-bar returns (buy-and-hold).
        strategies: The other strategies' per-bar returns on the same bars, one column each.

    Returns:
        ``{best, best_mean_return, benchmark_mean_return, p_value, p_value_lower,
        p_value_upper, n}``; ``p_value`` is the consistent p-value (arch's ``SPA``).
    """
    from arch.bootstrap import SPA

    spa = SPA(-benchmark, -strategies, reps=BOOTSTRAP_REPS, bootstrap="stationary",
              studentize=True, seed=BOOTSTRAP_SEED)
    spa.compute()
    means = strategies.mean()
    return {"best": str(means.idxmax()), "best_mean_return": float(means.max()),
            "benchmark_mean_return": float(benchmark.mean()),
            "p_value": float(spa.pvalues["consistent"]),
            "p_value_lower": float(spa.pvalues["lower"]),
            "p_value_upper": float(spa.pvalues["upper"]), "n": int(len(benchmark))}
