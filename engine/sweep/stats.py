"""How much of a sweep's winner is luck: PSR, DSR and PBO.

* Probabilistic Sharpe Ratio (Bailey and Lopez de Prado, 2012): the probability that the
  true Sharpe ratio exceeds a benchmark ``sr_star``, given the observed per-period Sharpe
  ratio, its sample length and the returns' skewness and kurtosis::

      PSR = Phi( (SR - SR*) * sqrt(n - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR^2) )

  ``g4`` is the RAW kurtosis (3 for a normal distribution), not the excess kurtosis that
  ``scipy.stats.kurtosis`` returns by default; mixing the two is a known mistake.
* Deflated Sharpe Ratio (Bailey and Lopez de Prado, 2014): the PSR against the Sharpe
  ratio the best of ``N`` unskilled trials is expected to reach::

      SR* = sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))

  with ``V`` the variance of the trials' Sharpe ratios and ``gamma`` the Euler-Mascheroni
  constant.
* Probability of Backtest Overfitting by combinatorially symmetric cross-validation
  (Bailey, Borwein, Lopez de Prado and Zhu, 2015): split the trials-by-bars returns into
  ``S`` blocks; for each half of the blocks, pick the trial with the best in-sample
  Sharpe and find its relative rank out of sample; PBO is the share of splits where it
  falls in the bottom half (logit <= 0).

All Sharpe ratios here are per period (not annualised); a Sharpe ratio of returns that
do not vary is 0 (``engine.report.metrics.sharpe``, the report's own rule).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from engine.report.metrics import sharpe, spread

EULER_GAMMA = float(np.euler_gamma)  # 0.5772156649...


@dataclass(frozen=True)
class Moments:
    """The sample statistics PSR needs, from one return series."""

    sharpe: float  # per-period mean / standard deviation (ddof=1)
    skew: float  # third standardised moment
    kurtosis: float  # fourth standardised moment, RAW (normal = 3)
    n: int  # number of returns


def sharpe_ratio(returns: np.ndarray) -> float:
    """Per-period Sharpe ratio (mean over sample standard deviation); 0 when the returns
    do not vary."""
    return sharpe(np.asarray(returns, dtype="float64"))


def moments(returns: np.ndarray) -> Moments:
    """Sharpe ratio, skewness and raw kurtosis of a return series.

    Args:
        returns: Per-period simple returns (NaNs are dropped).

    Returns:
        The ``Moments``; skewness 0 and kurtosis 3 when the series has no variance.
    """
    x = np.asarray(returns, dtype="float64")
    x = x[np.isfinite(x)]
    if spread(x) == 0:
        return Moments(0.0, 0.0, 3.0, len(x))
    return Moments(sharpe_ratio(x), float(stats.skew(x)),
                   float(stats.kurtosis(x, fisher=False)), len(x))


def probabilistic_sharpe(sharpe: float, skew: float, kurtosis: float, n: int,
                         sr_star: float = 0.0) -> float:
    """Probability that the true per-period Sharpe ratio exceeds ``sr_star``.

    Args:
        sharpe: Observed per-period Sharpe ratio.
        skew: Skewness of the returns.
        kurtosis: RAW kurtosis of the returns (3 for normal returns).
        n: Number of returns the Sharpe ratio was measured on.
        sr_star: The benchmark Sharpe ratio, per period. Defaults to 0.

    Returns:
        PSR in [0, 1]; NaN when ``n < 2`` or the variance term is not positive.
    """
    variance = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if n < 2 or not variance > 0:
        return math.nan
    z = (sharpe - sr_star) * math.sqrt(n - 1) / math.sqrt(variance)
    return float(stats.norm.cdf(z))


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """The Sharpe ratio the best of ``n_trials`` skill-less trials is expected to reach.

    Args:
        n_trials: Number of independent trials (N).
        variance: Variance of the trials' per-period Sharpe ratios (V).

    Returns:
        ``sqrt(V) * ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)))``; 0 for a
        single trial (nothing was selected).
    """
    if n_trials < 2 or variance <= 0:
        return 0.0
    inv = stats.norm.ppf
    return math.sqrt(variance) * ((1 - EULER_GAMMA) * inv(1 - 1 / n_trials)
                                  + EULER_GAMMA * inv(1 - 1 / (n_trials * math.e)))


def deflated_sharpe(returns: np.ndarray, trial_sharpes: np.ndarray) -> dict[str, float]:
    """PSR (against 0) and DSR of the chosen trial's returns.

    Args:
        returns: The chosen trial's per-period returns.
        trial_sharpes: Per-period Sharpe ratio of every trial of the sweep (chosen included).

    Returns:
        ``{sharpe, skew, kurtosis, n, n_trials, sharpe_variance, sr_star, psr, dsr}``.
    """
    m = moments(returns)
    sharpes = np.asarray(trial_sharpes, dtype="float64")
    sharpes = sharpes[np.isfinite(sharpes)]
    variance = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
    sr_star = expected_max_sharpe(len(sharpes), variance)
    return {"sharpe": m.sharpe, "skew": m.skew, "kurtosis": m.kurtosis, "n": m.n,
            "n_trials": len(sharpes), "sharpe_variance": variance, "sr_star": sr_star,
            "psr": probabilistic_sharpe(m.sharpe, m.skew, m.kurtosis, m.n),
            "dsr": probabilistic_sharpe(m.sharpe, m.skew, m.kurtosis, m.n, sr_star)}


@dataclass(frozen=True)
class PBOResult:
    """The outcome of CSCV over a trials-by-bars return matrix."""

    pbo: float  # share of splits whose in-sample best ranks in the bottom half out of sample
    logits: np.ndarray  # logit of the out-of-sample relative rank, one per split
    n_splits: int  # C(S, S/2)
    blocks: int  # S


def pbo_cscv(returns: np.ndarray, blocks: int = 16) -> PBOResult:
    """Probability of Backtest Overfitting by combinatorially symmetric cross-validation.

    Args:
        returns: Matrix of per-bar returns, one row per bar and one column per trial
            (T x N). The first ``T mod S`` rows are dropped so the blocks are equal.
        blocks: Number of blocks S (even). Defaults to 16, as in the paper.

    Returns:
        The ``PBOResult``. Each split's performance is the per-period Sharpe ratio; the
        relative rank of the in-sample winner is ``rank / (N + 1)`` (ranks 1..N, ties
        averaged) and its logit ``ln(w / (1 - w))``.

    Raises:
        ValueError: Fewer than two trials, an odd S, or fewer bars than blocks.
    """
    m = np.nan_to_num(np.asarray(returns, dtype="float64"))
    n_bars, n_trials = m.shape
    if n_trials < 2:
        raise ValueError(f"PBO needs at least 2 trials, got {n_trials}")
    if blocks < 2 or blocks % 2:
        raise ValueError(f"PBO needs an even number of blocks >= 2, got {blocks}")
    size = n_bars // blocks
    if size < 2:
        raise ValueError(f"PBO with {blocks} blocks needs at least {2 * blocks} bars, "
                         f"got {n_bars}")
    m = m[n_bars - size * blocks:].reshape(blocks, size, n_trials)
    # Per-block sums let every split's Sharpe ratios come from a few additions.
    s1, s2 = m.sum(axis=1), (m**2).sum(axis=1)
    splits = np.array(list(itertools.combinations(range(blocks), blocks // 2)))
    rest = np.array([sorted(set(range(blocks)) - set(c)) for c in splits])
    half = blocks // 2 * size
    inside = _sharpe_from_sums(s1[splits].sum(axis=1), s2[splits].sum(axis=1), half)
    outside = _sharpe_from_sums(s1[rest].sum(axis=1), s2[rest].sum(axis=1), half)
    best = np.argmax(inside, axis=1)
    ranks = stats.rankdata(outside, axis=1)[np.arange(len(splits)), best]
    w = ranks / (n_trials + 1)
    logits = special.logit(w)
    return PBOResult(float(np.mean(logits <= 0)), logits, len(splits), blocks)


def _sharpe_from_sums(s1: np.ndarray, s2: np.ndarray, n: int) -> np.ndarray:
    mean = s1 / n
    var = np.maximum(s2 - n * mean**2, 0.0) / (n - 1)
    std = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(std > 1e-15, mean / std, 0.0)
    return out
