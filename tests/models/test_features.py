"""Windows normalised by their first row; targets from the next close; no future rows."""

from __future__ import annotations

import numpy as np
import pytest

from models.features import close_matrix, feature_matrix, make_windows, to_prices
from tests.conftest import make_ohlcv


def test_window_is_normalised_by_its_first_row_and_target_is_next_close():
    values = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, 10.0], [8.0, 40.0]])
    closes = values[:, :1]
    w = make_windows(values, closes, window_len=2)
    assert w.end.tolist() == [1, 2, 3]
    np.testing.assert_allclose(w.X[0], [[0, 0], [1, 1]])  # rows / first row - 1
    np.testing.assert_allclose(w.X[1], [[0, 0], [1, -0.5]])
    # target: next close over the window's first close, minus 1
    np.testing.assert_allclose(w.y[:2, 0], [4 / 1 - 1, 8 / 2 - 1])
    assert np.isnan(w.y[2, 0])  # the last window's next bar is not in the data
    np.testing.assert_allclose(w.base[:, 0], [1, 2, 4])
    np.testing.assert_allclose(w.last[:, 0], [2, 4, 8])


def test_zero_first_row_reads_zero_not_inf():
    values = np.array([[1.0, 0.0], [2.0, 5.0], [3.0, 6.0]])
    w = make_windows(values, values[:, :1], window_len=3)
    assert np.isfinite(w.X).all()
    np.testing.assert_allclose(w.X[0, :, 1], [0, 0, 0])


def test_windows_never_read_future_rows():
    frame = make_ohlcv(50)
    values, _ = feature_matrix({"BTC/USDT": frame}, ("close", "volume"))
    closes = close_matrix({"BTC/USDT": frame}, ["BTC/USDT"])
    full = make_windows(values, closes, 7)
    changed = values.copy()
    changed[30:] *= 3.0  # rewrite the future from bar 30 on
    cut = make_windows(changed, closes, 7)
    upto = full.end < 30
    np.testing.assert_array_equal(full.X[upto], cut.X[upto])


def test_feature_order_is_symbol_major():
    frames = {"BTC/USDT": make_ohlcv(10, seed=1), "ETH/USDT": make_ohlcv(10, seed=2)}
    values, names = feature_matrix(frames, ("close", "volume"))
    assert names == ["BTC/USDT:close", "BTC/USDT:volume", "ETH/USDT:close", "ETH/USDT:volume"]
    np.testing.assert_array_equal(values[:, 2], frames["ETH/USDT"]["close"].to_numpy())


def test_prices_follow_from_the_target():
    values = np.array([[100.0], [110.0], [121.0]])
    w = make_windows(values, values, window_len=2)
    close, ret = to_prices(w, np.array([[0.21], [0.21]]))
    assert close[0, 0] == pytest.approx(121.0)
    assert ret[0, 0] == pytest.approx(0.1)
