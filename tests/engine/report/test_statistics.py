"""Significance tests against worked examples computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.report.statistics import diebold_mariano, directional_test, hit_rate_by_strength


def test_diebold_mariano_hln_worked_example():
    # Loss differentials d = e_model^2 - e_bench^2 = [-1, -3, 1, -1]:
    #   mean d = -1; deviations 0, -2, 2, 0; gamma_0 = 8 / 4 = 2
    #   DM  = -1 / sqrt(2 / 4) = -sqrt(2)
    #   HLN = sqrt((n + 1 - 2h + h(h-1)/n) / n) = sqrt(3 / 4)  ->  DM* = -sqrt(1.5)
    # Student's t with 3 degrees of freedom has the closed-form CDF
    #   F(t) = 1/2 + (1/pi) (t / (sqrt(3) (1 + t^2/3)) + atan(t / sqrt(3)))
    # so F(-sqrt(1.5)) = 1/2 + (1/pi) (-sqrt(0.5) / 1.5 + atan(-sqrt(0.5))) = 0.15403.
    model = np.array([0.0, 0.0, math.sqrt(2.0), 0.0])
    bench = np.array([1.0, math.sqrt(3.0), 1.0, 1.0])
    result = diebold_mariano(model, bench)
    expected_p = 0.5 + (-math.sqrt(0.5) / 1.5 + math.atan(-math.sqrt(0.5))) / math.pi
    assert result["n"] == 4
    assert result["mean_loss_difference"] == pytest.approx(-1.0)
    assert result["statistic"] == pytest.approx(-math.sqrt(1.5))
    assert result["p_value_model_better"] == pytest.approx(expected_p, abs=1e-12)
    assert result["p_value_model_better"] == pytest.approx(0.15403, abs=5e-6)
    assert result["p_value_two_sided"] == pytest.approx(2 * expected_p, abs=1e-12)


def test_diebold_mariano_sees_a_clearly_better_model():
    rng = np.random.default_rng(0)
    bench = rng.normal(0, 1.0, 500)
    model = rng.normal(0, 0.5, 500)
    result = diebold_mariano(model, bench)
    assert result["statistic"] < -5
    assert result["p_value_model_better"] < 1e-6
    worse = diebold_mariano(bench, model)
    assert worse["p_value_model_better"] > 0.999999


def test_diebold_mariano_longer_horizon_uses_autocovariances():
    # d = [1, -1, 1, -1, 2]: mean 0.4; centred c = [.6, -1.4, .6, -1.4, 1.6]
    # gamma_0 = (0.36 + 1.96 + 0.36 + 1.96 + 2.56) / 5 = 1.44
    # gamma_1 = (-0.84 - 0.84 - 0.84 - 2.24) / 5 = -0.952
    # V = gamma_0 + 2 gamma_1 = -0.464 < 0: no valid variance, so no statistic
    d_model = np.sqrt(np.array([1, 0, 1, 0, 2.0]))
    d_bench = np.sqrt(np.array([0, 1, 0, 1, 0.0]))
    assert diebold_mariano(d_model, d_bench, horizon=2)["statistic"] is None
    one = diebold_mariano(d_model, d_bench, horizon=1)
    # h = 1: DM = 0.4 / sqrt(1.44 / 5); HLN factor sqrt(4 / 5)
    assert one["statistic"] == pytest.approx(0.4 / math.sqrt(1.44 / 5) * math.sqrt(0.8))


def test_diebold_mariano_degenerate_inputs_give_nulls():
    assert diebold_mariano(np.ones(10), np.ones(10))["statistic"] is None
    assert diebold_mariano(np.array([1.0]), np.array([0.0]))["p_value_two_sided"] is None


def test_directional_test_binomial_against_majority_direction():
    # 7 right out of 10 with 40% up bars: the baseline is 60% (always "down").
    # P(X >= 7 | n=10, p=0.6) = sum_{k=7..10} C(10,k) 0.6^k 0.4^(10-k) = 0.3822806016
    result = directional_test(7, 10, up_share=0.4)
    assert result["baseline"] == pytest.approx(0.6)
    assert result["accuracy"] == pytest.approx(0.7)
    assert result["p_value"] == pytest.approx(0.3822806016, abs=1e-9)
    assert directional_test(0, 0, 0.5)["p_value"] is None


def test_hit_rate_by_strength_quintiles():
    pred = np.array([0.01, -0.02, 0.03, -0.04, 0.05, 0.06, -0.07, 0.08, 0.09, -0.10])
    true = np.array([-0.01, 0.01, 0.02, -0.01, 0.03, -0.02, -0.01, 0.05, 0.01, -0.02])
    hits = np.sign(pred) == np.sign(true)
    table = hit_rate_by_strength(pred, true, hits)
    assert [row["quintile"] for row in table] == [1, 2, 3, 4, 5]
    assert [row["n"] for row in table] == [2] * 5
    assert [row["hit_rate"] for row in table] == [0.0, 1.0, 0.5, 1.0, 1.0]
    assert table[0]["min_abs_pred"] == pytest.approx(0.01)
    assert table[4]["max_abs_pred"] == pytest.approx(0.10)
    # quintile 1: (+1)(-0.01) and (-1)(0.01) -> mean -0.01
    assert table[0]["mean_signed_return"] == pytest.approx(-0.01)
    assert hit_rate_by_strength(pred[:3], true[:3], hits[:3]) == []
