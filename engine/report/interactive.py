"""Interactive plotly figures for report.html (the page inlines plotly's JavaScript).

Figures are keyed on (strategy label, symbol): a symbol without a price series (a
portfolio) gets its equity and drawdown panels without the price panel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.report.charts import BENCHMARK, wants_log

CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": True}
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
        fig.add_trace(go.Scatter(x=close.index, y=close.to_numpy(), name="close",
                                 line={"color": "#444", "width": 1.2}), row=1, col=1)
        if forecast is not None:
            fig.add_trace(go.Scatter(x=forecast.index, y=forecast.to_numpy(),
                                     name="forecast (next close)",
                                     line={"color": "#ff9f1c", "width": 1.1}), row=1, col=1)
        for label, part in fills.items():
            _add_fills(fig, label, part, colors[label])
        if wants_log([close]):
            fig.update_yaxes(type="log", row=1, col=1)
    top = len(rows) - 1
    for label, equity in curves.items():
        style = _line(label, colors[label])
        fig.add_trace(go.Scatter(x=equity.index, y=equity.to_numpy(), name=label,
                                 legendgroup=label, line=style), row=top, col=1)
        drawdown = 100 * (equity / equity.cummax() - 1)
        fig.add_trace(go.Scatter(x=drawdown.index, y=drawdown.to_numpy(), name=label,
                                 legendgroup=label, showlegend=False, line=style),
                      row=top + 1, col=1)
    if wants_log(curves.values()):
        fig.update_yaxes(type="log", row=top, col=1)
    for i, title in enumerate(rows, start=1):
        fig.update_yaxes(title_text=title, row=i, col=1)
    fig.update_layout(title=f"{symbol}: price, trades and forecast; equity; drawdown",
                      height=720, template="plotly_white", legend=_LEGEND,
                      hovermode="x unified", margin={"l": 60, "r": 20, "t": 50, "b": 40})
    return fig


def _add_fills(fig: go.Figure, label: str, fills: pd.DataFrame, color: str) -> None:
    for side, symbol in (("buy", "triangle-up"), ("sell", "triangle-down")):
        part = fills[fills["side"] == side]
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=pd.DatetimeIndex(part["time"]), y=part["price"].to_numpy(), mode="markers",
            name=f"{label} {side}", legendgroup=label,
            marker={"symbol": symbol, "size": 9, "color": color,
                    "line": {"color": "white", "width": 0.6}},
            hovertemplate=f"{label} {side} %{{y:,.2f}}<extra></extra>"), row=1, col=1)


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Calendar-month returns as a years x months table (the first month from the start)."""
    month_end = equity.groupby([equity.index.year, equity.index.month]).last()
    previous = month_end.shift(1)
    previous.iloc[0] = equity.iloc[0]
    returns = month_end / previous - 1
    table = returns.unstack()
    return table.reindex(columns=range(1, 13))


def monthly_heatmap(label: str, symbol: str, equity: pd.Series) -> go.Figure:
    """Monthly returns of one (strategy, symbol), green up and red down."""
    table = monthly_returns(equity)
    values = 100 * table.to_numpy(dtype=float)
    text = [[f"{v:.1f}" if np.isfinite(v) else "" for v in row] for row in values]
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    fig = go.Figure(go.Heatmap(
        z=values, x=MONTHS, y=[str(y) for y in table.index], text=text,
        texttemplate="%{text}", colorscale="RdYlGn", zmid=0, zmin=-limit, zmax=limit,
        colorbar={"title": "%"}, hovertemplate="%{y} %{x}: %{z:.2f}%<extra></extra>"))
    fig.update_layout(title=f"{label} on {symbol}: monthly returns (%)", template="plotly_white",
                      height=120 + 32 * len(table), yaxis={"autorange": "reversed"},
                      margin={"l": 60, "r": 20, "t": 50, "b": 30})
    return fig


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
