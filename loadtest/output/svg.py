"""Inline SVG line charts for the HTML report: no JavaScript library, no network, nothing to load."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import msgspec

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")
W, H = 560, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 34, 46


class Series(msgspec.Struct, frozen=True):
    name: str
    xs: list[float]
    ys: list[float]
    step: bool = False
    """Draw as a staircase (empirical CDFs)."""
    color: int | None = None
    """Palette index (default: the series' position), so related series can share a colour."""
    dashed: bool = False


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = [round(first, 12)]
    while ticks[-1] < hi - step * 1e-9:  # the last tick is at or above the largest value
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def tick_format(ticks: Sequence[float]) -> str:
    """The fewest decimals that tell the ticks apart (0.05 steps need 2, 2.5 steps 1)."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = next((d for d in range(7) if abs(round(step, d) - step) < step * 1e-6), 6)
    return f",.{decimals}f"


def line_chart(title: str, x_label: str, y_label: str, series: Sequence[Series], *, y_min: float | None = 0.0,
               chart_id: str = "") -> str:
    pts = [(x, y) for s in series for x, y in zip(s.xs, s.ys, strict=True) if math.isfinite(x) and math.isfinite(y)]
    if not pts:
        return f'<div class="nodata">{escape(title)}: no samples</div>'
    xt = nice_ticks(min(p[0] for p in pts), max(p[0] for p in pts))
    lo_y = min(p[1] for p in pts) if y_min is None else min(y_min, min(p[1] for p in pts))
    yt = nice_ticks(lo_y, max(p[1] for p in pts))
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x0) / ((x1 - x0) or 1) * pw

    def sy(y: float) -> float:
        return TOP + ph - (y - y0) / ((y1 - y0) or 1) * ph

    out = [f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
           f'xmlns="http://www.w3.org/2000/svg" role="img"><title>{escape(title)}</title>',
           f'<text x="{W / 2}" y="18" class="title" text-anchor="middle">{escape(title)}</text>']
    xf, yf = tick_format(xt), tick_format(yt)
    for t in xt:
        out.append(f'<line x1="{sx(t):.1f}" y1="{TOP}" x2="{sx(t):.1f}" y2="{TOP + ph}" class="grid"/>'
                   f'<text x="{sx(t):.1f}" y="{TOP + ph + 16}" text-anchor="middle" class="tick">{t:{xf}}</text>')
    for t in yt:
        out.append(f'<line x1="{LEFT}" y1="{sy(t):.1f}" x2="{LEFT + pw}" y2="{sy(t):.1f}" class="grid"/>'
                   f'<text x="{LEFT - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" class="tick">{t:{yf}}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" class="frame"/>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 8}" text-anchor="middle" class="axis">{escape(x_label)}</text>')
    out.append(f'<text transform="translate(14 {TOP + ph / 2}) rotate(-90)" text-anchor="middle" class="axis">'
               f'{escape(y_label)}</text>')
    for i, s in enumerate(series):
        color = PALETTE[(i if s.color is None else s.color) % len(PALETTE)]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        xy = [(sx(x), sy(y)) for x, y in zip(s.xs, s.ys, strict=True) if math.isfinite(x) and math.isfinite(y)]
        if s.step:
            stepped: list[tuple[float, float]] = []
            for j, (px, py) in enumerate(xy):
                if j:
                    stepped.append((px, xy[j - 1][1]))
                stepped.append((px, py))
            xy = stepped
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in xy)
        out.append(f'<g class="series" data-series="{i}"><title>{escape(s.name)}</title>'
                   f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        if not s.step:
            out.extend(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}"/>' for px, py in xy)
        out.append("</g>")
    out.append("</svg>")
    legend = "".join(
        f'<span class="key" data-series="{i}"><i style="background:'
        f'{PALETTE[(i if s.color is None else s.color) % len(PALETTE)]}{";opacity:.6" if s.dashed else ""}"></i>'
        f"{escape(s.name)}</span>" for i, s in enumerate(series))
    return f'<figure class="plot">{"".join(out)}<figcaption class="legend">{legend}</figcaption></figure>'
