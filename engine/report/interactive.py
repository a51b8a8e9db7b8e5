"""Interactive plotly figures for report.html (the page inlines plotly's JavaScript).

Figures are keyed on (strategy label, symbol): a symbol without a price series (a
portfolio) gets its equity and drawdown panels without the price panel. Only scatter
traces are used, so the page can carry plotly's smallest ("basic") bundle.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.report.charts import BENCHMARK, tick_label, wants_log

CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": True}
MANY_FILLS = 60  # a strategy's fills in one panel beyond which markers are small and faint
_LEGEND = {"orientation": "h", "yanchor": "top", "y": -0.08, "xanchor": "left", "x": 0}
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _line(label: str, color: str) -> dict:
    return {"color": color, "width": 1.4, "dash": "dash" if BENCHMARK in label else "solid"}


def market_figure(symbol: str, curves: Mapping[str, pd.Series],
                  fills: Mapping[str, pd.DataFrame], colors: Mapping[str, str],
                  close: pd.Series | None = None,
                  forecast: pd.Series | None = None) -> go.Figure:
    """Price with every strategy's buys and sells and the forecast, above equity and
    drawdown panels that share its time axis (zooming one zooms all).

    Each strategy's fills have their own legend entry (click it to hide or show them);
    beyond ``MANY_FILLS`` they are drawn small and faint, and the close and forecast lines
    are drawn over them, so they stay readable however many trades there are.

    Args:
        symbol: The panel title.
        curves: ``{strategy label: equity}`` on this symbol.
        fills: ``{strategy label: fills}`` (``time``, ``side``, ``price``).
        colors: ``{strategy label: colour}``.
        close: The symbol's closes over the test period; None draws no price panel.
        forecast: Predicted close indexed by the bar it forecasts.
    """
    rows = ["price"] * (close is not None) + ["equity", "drawdown %"]
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        row_heights=[0.45, 0.35, 0.2][-len(rows):])
    if close is not None:
        for rank, (label, part) in enumerate(fills.items()):
            _add_fills(fig, label, part, colors[label], 100 + rank)
        fig.add_trace(go.Scatter(**x_axis(close.index), y=close.to_numpy(), name="close",
                                 legendrank=1, line={"color": "#444", "width": 1.2}),
                      row=1, col=1)
        if forecast is not None:
            fig.add_trace(go.Scatter(**x_axis(forecast.index), y=forecast.to_numpy(),
                                     name="forecast (next close)", legendrank=2,
                                     line={"color": "#ff9f1c", "width": 1.4}), row=1, col=1)
        if wants_log([close]):
            fig.update_yaxes(type="log", **log_ticks([close]), row=1, col=1)
    top = len(rows) - 1
    for rank, (label, equity) in enumerate(curves.items()):
        style = _line(label, colors[label])
        fig.add_trace(go.Scatter(**x_axis(equity.index), y=equity.to_numpy(), name=label,
                                 legendgroup=label, legendrank=10 + rank, line=style),
                      row=top, col=1)
        drawdown = 100 * (equity / equity.cummax() - 1)
        fig.add_trace(go.Scatter(**x_axis(drawdown.index), y=drawdown.to_numpy(), name=label,
                                 legendgroup=label, showlegend=False, line=style),
                      row=top + 1, col=1)
    if wants_log(curves.values()):
        fig.update_yaxes(type="log", **log_ticks(curves.values()), row=top, col=1)
    for i, title in enumerate(rows, start=1):
        fig.update_yaxes(title_text=title, row=i, col=1)
    fig.update_layout(title=f"{symbol}: price, trades and forecast; equity; drawdown",
                      height=720, template="plotly_white", legend=_LEGEND,
                      hovermode="x unified", margin={"l": 60, "r": 20, "t": 50, "b": 40})
    return fig


def _add_fills(fig: go.Figure, label: str, fills: pd.DataFrame, color: str,
               rank: int) -> None:
    """One legend entry per strategy for its buys (up) and sells (down)."""
    many = len(fills) > MANY_FILLS
    marker = {"size": 5, "opacity": 0.45, "line": {"width": 0}} if many else \
        {"size": 9, "opacity": 0.9, "line": {"color": "white", "width": 0.6}}
    first = True
    for side, symbol in (("buy", "triangle-up"), ("sell", "triangle-down")):
        part = fills[fills["side"] == side]
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=times(pd.DatetimeIndex(part["time"])), y=part["price"].to_numpy(), mode="markers",
            name=f"{label}: {len(fills)} fills", legendgroup=f"{label} fills",
            showlegend=first, legendrank=rank,
            marker={"symbol": symbol, "color": color, **marker},
            hovertemplate=f"{label} {side} %{{y:,.2f}}<extra></extra>"), row=1, col=1)
        first = False


def times(index: pd.DatetimeIndex) -> np.ndarray:
    """Bar times as short text for the page ("2024-01-31", or "2024-01-31 04:00" when any
    bar is not at midnight): half the size of plotly's own ISO form with its time zone,
    which is most of a long chart's data. The times are UTC."""
    index = pd.DatetimeIndex(index)
    daily = bool(len(index)) and bool((index == index.normalize()).all())
    return np.asarray(index.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M"))


def x_axis(index: pd.DatetimeIndex) -> dict:
    """A trace's times: its first bar and the bar length (``x0``, ``dx`` in ms) for bars on
    one regular grid, which is every aligned series of a run; else each bar's time."""
    index = pd.DatetimeIndex(index)
    steps = np.diff(index.as_unit("ns").asi8)
    if len(index) > 2 and (steps == steps[0]).all() and steps[0] > 0:
        return {"x0": times(index[:1])[0], "dx": int(steps[0] // 1_000_000)}
    return {"x": times(index)}


def log_ticks(series: Iterable[pd.Series]) -> dict:
    """Tick labels of a log axis at the decades and their halves only (1, 5, 10, 50, ...),
    faint unlabelled grid lines between them: the digits plotly writes at every minor
    tick of a short log axis read as noise."""
    values = np.concatenate([np.asarray(s, float) for s in series] or [np.array([1.0])])
    values = values[np.isfinite(values) & (values > 0)]
    if not len(values):
        return {}
    low, high = math.floor(math.log10(values.min())) - 1, math.ceil(math.log10(values.max())) + 1
    decades = [10.0 ** k for k in range(low, high + 1)]
    major = [v * m for v in decades for m in (1, 5)]
    minor = [v * m for v in decades for m in (2, 3, 4, 6, 7, 8, 9)]
    return {"tickvals": major, "ticktext": [tick_label(v) for v in major],
            "minor": {"tickvals": minor, "showgrid": True, "gridcolor": "#f2f2f2"}}


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Calendar-month returns as a years x months table (the first month from the start)."""
    month_end = equity.groupby([equity.index.year, equity.index.month]).last()
    previous = month_end.shift(1)
    previous.iloc[0] = equity.iloc[0]
    returns = month_end / previous - 1
    table = returns.unstack()
    return table.reindex(columns=range(1, 13))


def scatter_figure(symbol: str, pred_return: Sequence[float],
                   true_return: Sequence[float]) -> go.Figure:
    """Predicted vs realised next-bar return; points off the diagonal are errors."""
    pred, true = 100 * np.asarray(pred_return), 100 * np.asarray(true_return)
    reach = float(np.nanmax(np.abs(np.concatenate([pred, true, [1e-6]]))))
    fig = go.Figure([
        go.Scatter(x=pred, y=true, mode="markers", name="forecast bars",
                   marker={"size": 5, "opacity": 0.5, "color": "#1f77b4"},
                   hovertemplate="predicted %{x:.2f}%<br>realised %{y:.2f}%<extra></extra>"),
        go.Scatter(x=[-reach, reach], y=[-reach, reach], mode="lines", name="realised = predicted",
                   line={"color": "#999", "dash": "dot"}),
    ])
    fig.update_layout(title=f"{symbol}: predicted vs realised next-bar return (%)",
                      xaxis_title="predicted %", yaxis_title="realised %", height=480,
                      template="plotly_white", legend=_LEGEND,
                      margin={"l": 60, "r": 20, "t": 50, "b": 40})
    return fig
