"""PSR, DSR and PBO against examples worked by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.sweep.stats import (
    deflated_sharpe,
    expected_max_sharpe,
    moments,
    pbo_cscv,
    probabilistic_sharpe,
)


def test_psr_normal_returns():
    # SR = 0.1, skew 0, raw kurtosis 3, n = 101, SR* = 0:
    # variance term 1 - 0*0.1 + (3-1)/4 * 0.01 = 1.005; z = 0.1 * sqrt(100) / sqrt(1.005)
    # = 1 / 1.0024969 = 0.9975093; Phi(0.9975093) = 0.8407413.
    assert probabilistic_sharpe(0.1, 0.0, 3.0, 101) == pytest.approx(0.8407413, abs=1e-7)


def test_psr_fat_left_tail_lowers_confidence():
    # skew -1, raw kurtosis 6: 1 + 1*0.1 + (6-1)/4 * 0.01 = 1.1125; z = 1 / sqrt(1.1125)
    # = 1 / 1.0547512 = 0.9480909; Phi(0.9480909) = 0.8284584.
    assert probabilistic_sharpe(0.1, -1.0, 6.0, 101) == pytest.approx(0.8284584, abs=1e-7)


def test_psr_from_returns_uses_raw_kurtosis():
    # 100 returns alternating 0.02, 0.00: mean 0.01, sample std 0.01 * sqrt(100/99), so
    # SR = sqrt(0.99) = 0.9949874; skew 0; raw kurtosis of a two-point law = 1 (excess -2).
    # Against SR* = 0.9: variance term 1 - 0 + (1-1)/4 * SR^2 = 1;
    # z = (0.9949874 - 0.9) * sqrt(99) = 0.0949874 * 9.9498744 = 0.9451131;
    # Phi(0.9451131) = 0.8276994. With excess kurtosis (-2) instead, the term would be
    # 1 - 3/4 * 0.99 = 0.2575 and PSR = Phi(1.8625) = 0.969: the known mistake.
    m = moments(np.array([0.02, 0.0] * 50))
    assert m.sharpe == pytest.approx(math.sqrt(0.99), abs=1e-12)
    assert m.skew == pytest.approx(0.0, abs=1e-12)
    assert m.kurtosis == pytest.approx(1.0, abs=1e-12)
    psr = probabilistic_sharpe(m.sharpe, m.skew, m.kurtosis, m.n, sr_star=0.9)
    assert psr == pytest.approx(0.8276994, abs=1e-7)


def test_expected_max_sharpe_and_dsr():
    # N = 10 trials, variance of their Sharpe ratios V = 0.01 (sqrt 0.1), gamma = 0.5772157:
    # Phi^-1(1 - 1/10) = 1.2815516; Phi^-1(1 - 1/(10e)) = Phi^-1(0.9632121) = 1.7892418;
    # SR* = 0.1 * (0.4227843 * 1.2815516 + 0.5772157 * 1.7892418)
    #     = 0.1 * (0.5418209 + 1.0327773) = 0.1574598.
    sr_star = expected_max_sharpe(10, 0.01)
    assert sr_star == pytest.approx(0.1574598, abs=1e-7)
    # DSR of SR = 0.2 (skew 0, kurtosis 3, n = 101) = PSR against SR*:
    # term 1 + 2/4 * 0.04 = 1.02; z = 0.0425402 * 10 / 1.0099505 = 0.4212012;
    # Phi(0.4212012) = 0.6631993.
    assert probabilistic_sharpe(0.2, 0.0, 3.0, 101, sr_star) == pytest.approx(0.6631993, abs=1e-7)


def test_one_trial_is_not_deflated():
    # Nothing was selected from a single trial: SR* = 0 and DSR = PSR.
    returns = np.random.default_rng(0).normal(0.001, 0.01, 200)
    result = deflated_sharpe(returns, np.array([0.1]))
    assert result["sr_star"] == 0.0 and result["dsr"] == result["psr"]


def test_more_trials_deflate_more():
    returns = np.random.default_rng(1).normal(0.002, 0.01, 300)
    sharpes = np.random.default_rng(2).normal(0.0, 0.05, 100)
    few = deflated_sharpe(returns, sharpes[:5])
    many = deflated_sharpe(returns, sharpes)
    assert many["n_trials"] == 100 and few["n_trials"] == 5
    assert many["dsr"] < few["dsr"] < few["psr"]


def _blocks(means: list[list[float]], length: int = 10) -> np.ndarray:
    """Bars x trials: in block b, trial i returns means[i][b] plus a shared +-1% pattern.

    The pattern's standard deviation (~1%) dwarfs the differences in means (<= 0.03%), so
    on any set of blocks the Sharpe ratios order the trials like their mean returns do.
    """
    pattern = np.array([0.01, -0.01] * (length // 2))
    columns = [np.concatenate([m + pattern for m in row]) for row in means]
    return np.column_stack(columns)


def test_pbo_zero_when_one_trial_dominates_everywhere():
    # Trial A beats B in every block: A is picked in sample and is best out of sample
    # (rank 2 of 2, w = 2/3, logit ln 2 > 0) in every split: PBO = 0.
    matrix = _blocks([[3e-4, 3e-4, 3e-4, 3e-4], [1e-4, 1e-4, 1e-4, 1e-4]])
    result = pbo_cscv(matrix, blocks=4)
    assert result.n_splits == 6  # C(4, 2)
    assert result.pbo == 0.0
    assert np.allclose(result.logits, math.log(2))


def test_pbo_one_when_the_winner_always_reverses():
    # S = 2: A is best in block 0 and worst in block 1, B the opposite. Training on one
    # block picks the trial that is worst on the other (rank 1 of 2, w = 1/3, logit
    # ln 0.5 < 0) in both splits: PBO = 1.
    matrix = _blocks([[3e-4, -3e-4], [-3e-4, 3e-4]])
    result = pbo_cscv(matrix, blocks=2)
    assert result.n_splits == 2 and result.pbo == 1.0
    assert np.allclose(result.logits, math.log(0.5))


def test_pbo_worked_example_one_third():
    # Block means (x 1e-4):   b0   b1   b2   b3
    #                    A:    3    3   -1   -1
    #                    B:   -1   -1    3    3
    #                    C:  1.5  1.5  1.5  1.5
    # In-sample halves (6 splits) and the winner's out-of-sample rank among 3:
    #   {0,1}: A=3, B=-1, C=1.5 -> A; out {2,3}: A=-1 lowest -> w=1/4, logit<0
    #   {2,3}: B wins; out {0,1}: B=-1 lowest              -> w=1/4, logit<0
    #   {0,2},{0,3},{1,2},{1,3}: A=1, B=1, C=1.5 -> C; out: again A=1, B=1, C=1.5 ->
    #          C ranks 3 of 3 -> w=3/4, logit>0
    # PBO = 2/6 = 1/3.
    matrix = _blocks([[3e-4, 3e-4, -1e-4, -1e-4], [-1e-4, -1e-4, 3e-4, 3e-4],
                      [1.5e-4] * 4])
    result = pbo_cscv(matrix, blocks=4)
    assert result.pbo == pytest.approx(1 / 3)
    assert sorted(np.round(result.logits, 6)) == [round(math.log(1 / 3), 6)] * 2 + \
        [round(math.log(3), 6)] * 4


def test_pbo_drops_leading_rows_and_checks_shape():
    matrix = _blocks([[3e-4] * 4, [1e-4] * 4])
    padded = np.vstack([np.full((3, 2), 0.5), matrix])  # 3 extra rows, dropped first
    assert pbo_cscv(padded, blocks=4).pbo == 0.0
    with pytest.raises(ValueError, match="at least 2 trials"):
        pbo_cscv(matrix[:, :1], blocks=4)
    with pytest.raises(ValueError, match="even number"):
        pbo_cscv(matrix, blocks=3)
    with pytest.raises(ValueError, match="needs at least 32 bars"):
        pbo_cscv(matrix[:20], blocks=16)
