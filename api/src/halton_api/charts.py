"""Charts as server-rendered SVG: one definition for the pages and the PDFs (no JavaScript, nothing from a CDN).

Each function takes plain data and returns markup safe to drop into a template: a `<figure>` with an SVG that
scales to its container (viewBox), a `<title>`/`<desc>` for screen readers, the values of every mark in its
`<title>` (which `static/chart-tips.js` shows in a styled box on hover and keyboard focus; the browser's own
tooltip without it), and a legend in HTML. Colours come from `PALETTE` (the providers keep theirs everywhere).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape
from itertools import count

from markupsafe import Markup

PROVIDER_COLOURS = {"anthropic": "#c2613a", "openai": "#0f8a6c", "gemini": "#3b6fd8", "xai": "#4a4f57"}
PALETTE = ("#3b6fd8", "#0f8a6c", "#c2613a", "#8d5bc1", "#b8860b", "#2b8a9e", "#a8435f", "#5c6b7a")
INK, MUTED, GRID, BASELINE = "#1d232a", "#5b6570", "#e4e7eb", "#8a94a0"
WIDTH, HEIGHT = 760, 260
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 16, 12, 28
_ids = count(1)

Number = float | int | Decimal


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[Number]
    colour: str | None = None


def colour_for(name: str, index: int) -> str:
    return PROVIDER_COLOURS.get(name, PALETTE[index % len(PALETTE)])


def money(value: Number, *, cents: bool = True) -> str:
    """A total: $1,234.56 (or $1.2k on axes, where room is short); the page's one format for sums of money.
    Per-request figures use `unit_money`; CSV and JSON keep the warehouse's nine decimals."""
    v = float(value)
    if not cents:
        for limit, suffix in ((1e6, "M"), (1e3, "k")):
            if abs(v) >= limit:
                return f"${v / limit:,.1f}{suffix}".replace(".0" + suffix, suffix)
        return f"${v:,.0f}" if abs(v) >= 10 or v == 0 else f"${v:,.2f}"
    if v and abs(v) < 0.005:  # a real amount never reads as nothing
        return "-<$0.01" if v < 0 else "<$0.01"
    return f"-${-v:,.2f}" if v < 0 else f"${v:,.2f}"


def unit_money(value: Number, *, significant: int = 3) -> str:
    """One request's (or one call's) cost: cents would print most calls as $0.00, nine decimals are noise, so
    `significant` digits (at least cents, trailing zeros past the cents dropped): $0.0491, $0.000123, $1.27."""
    v = Decimal(str(value)) if not isinstance(value, Decimal) else value
    if not v or abs(v) >= 1:
        return money(v)
    decimals = max(2, significant - 1 - abs(v).adjusted())
    text = f"{abs(v):.{decimals}f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction[:2] + fraction[2:].rstrip("0")
    return f"{'-' if v < 0 else ''}${whole}.{fraction}"


def exact_money(value: Decimal) -> str:
    """Every significant digit of an amount (down to the nano-dollar the warehouse keeps), at least cents."""
    digits = max(2, -value.normalize().as_tuple().exponent) if value else 2
    return f"-${-value:,.{digits}f}" if value < 0 else f"${value:,.{digits}f}"


def quantity(value: Number) -> str:
    v = float(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= limit:
            return f"{v / limit:,.1f}{suffix}".replace(".0" + suffix, suffix)
    return f"{v:,.0f}"


def nice_ticks(maximum: float, count_: int = 4) -> list[float]:
    """0 and up to `count_` round steps covering `maximum` (1, 2, 2.5 or 5 times a power of ten)."""
    if maximum <= 0:
        return [0.0, 1.0]
    raw = maximum / count_
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    top = math.ceil(maximum / step - 1e-9) * step
    return [i * step for i in range(round(top / step) + 1)]


CHAR_PX = 6.6  # a DejaVu Sans character at font-size 11, a little generous
LABEL_GAP_PX = 14


def _thin(labels: Sequence[str], width: float) -> list[tuple[int, str]]:
    """Which x labels to print in `width` pixels so none collides with the next: every k-th label, k from
    the longest label's width; the last always shows, replacing the one before it when they would touch."""
    if not labels:
        return []
    longest = max(len(label) for label in labels) * CHAR_PX + LABEL_GAP_PX
    room = max(1, int(width // longest))
    every = max(1, math.ceil(len(labels) / room))
    picked = [(i, label) for i, label in enumerate(labels) if i % every == 0]
    last = len(labels) - 1
    if picked[-1][0] != last:
        if last - picked[-1][0] < every and len(picked) > 1:
            picked.pop()
        picked.append((last, labels[-1]))
    return picked


class _Plot:
    """Coordinates of a plot area: x by bucket index, y by value."""

    def __init__(self, buckets: int, top: float, *, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.width, self.height = width, height
        self.buckets = max(buckets, 1)
        self.top = top or 1.0
        self.inner_w = width - PAD_LEFT - PAD_RIGHT
        self.inner_h = height - PAD_TOP - PAD_BOTTOM

    def x(self, index: float) -> float:
        if self.buckets == 1:
            return PAD_LEFT + self.inner_w / 2
        return PAD_LEFT + self.inner_w * index / (self.buckets - 1)

    def band(self, index: int) -> tuple[float, float]:
        """Left edge and width of bucket `index` for bar charts."""
        width = self.inner_w / self.buckets
        return PAD_LEFT + index * width, width

    def y(self, value: float) -> float:
        return PAD_TOP + self.inner_h * (1 - value / self.top)


def _axes(
    plot: _Plot, ticks: Sequence[float], labels: Sequence[str], fmt, *, bands: bool = False
) -> list[str]:
    out = []
    for tick in ticks:
        y = plot.y(tick)
        out.append(
            f'<line x1="{PAD_LEFT}" x2="{plot.width - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        out.append(
            f'<text x="{PAD_LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" fill="{MUTED}" font-size="11">{escape(fmt(tick))}</text>'
        )
    for index, label in _thin(labels, plot.inner_w):
        if bands:
            left, width = plot.band(index)
            x = left + width / 2
        else:
            x = plot.x(index)
        anchor = "middle"
        # The first label is centred on its point while half of it fits in the left padding: anchored at its
        # start it would reach half a label further right, towards the next one.
        if not bands and index == 0 and len(label) * CHAR_PX / 2 > PAD_LEFT - 4:
            anchor = "start"
        elif not bands and index == len(labels) - 1 and len(labels) > 1:
            anchor = "end"
        out.append(
            f'<text x="{x:.1f}" y="{plot.height - 8}" text-anchor="{anchor}" fill="{MUTED}" font-size="11">{escape(label)}</text>'
        )
    return out


def _swatch(colour: str, kind: str) -> str:
    """A legend key drawn in SVG: its colour is an attribute, not a style, so the pages' Content-Security-Policy
    (no inline styles) lets it through."""
    if kind in ("dashed", "line"):
        dashes = ' stroke-dasharray="3 2"' if kind == "dashed" else ""
        mark = f'<line x1="0" y1="2" x2="12" y2="2" stroke="{colour}" stroke-width="1.5"{dashes}/>'
        box = "0 0 12 4"
    else:
        mark, box = f'<rect width="10" height="10" rx="2" fill="{colour}"/>', "0 0 10 10"
    return f'<svg class="swatch {kind}" viewBox="{box}" aria-hidden="true">{mark}</svg>'


def _figure(svg_body: list[str], *, title: str, desc: str, legend: list[tuple[str, str, str]], plot: _Plot,
            css_class: str = "chart") -> Markup:  # fmt: skip
    ident = f"chart{next(_ids)}"
    legend_html = "".join(f"<li>{_swatch(colour, kind)}{escape(name)}</li>" for name, colour, kind in legend)
    return Markup(
        f'<figure class="{css_class}">'
        f'<svg viewBox="0 0 {plot.width} {plot.height}" role="img" aria-labelledby="{ident}-t {ident}-d" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg" font-family="DejaVu Sans, system-ui, sans-serif">'
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(desc)}</desc>'
        + "".join(svg_body)
        + "</svg>"
        + (f'<ul class="legend">{legend_html}</ul>' if legend_html else "")
        + "</figure>"
    )


def stacked_area(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    baseline: Series | None = None,
    hrefs: Sequence[str | None] | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """Spend per bucket stacked by series (providers), with an optional dashed baseline (previous period);
    `hrefs` makes each bucket a link (to its requests)."""
    n = len(labels)
    totals = [sum(float(s.values[i]) for s in series) for i in range(n)]
    peak = max(totals + [float(v) for v in (baseline.values if baseline else [])] + [0.0])
    ticks = nice_ticks(peak)
    plot = _Plot(n, ticks[-1], width=width, height=height)
    body = _axes(plot, ticks, labels, lambda v: money(v, cents=False))
    below = [0.0] * n
    legend = []
    for index, s in enumerate(series):
        colour = s.colour or colour_for(s.name, index)
        above = [below[i] + float(s.values[i]) for i in range(n)]
        if n == 1:
            left, w = plot.band(0)
            body.append(
                f'<rect x="{left + w * 0.3:.1f}" y="{plot.y(above[0]):.1f}" width="{w * 0.4:.1f}" '
                f'height="{plot.y(below[0]) - plot.y(above[0]):.1f}" fill="{colour}"/>'
            )
        else:
            top_edge = " ".join(f"{plot.x(i):.1f},{plot.y(above[i]):.1f}" for i in range(n))
            bottom_edge = " ".join(f"{plot.x(i):.1f},{plot.y(below[i]):.1f}" for i in reversed(range(n)))
            body.append(
                f'<polygon points="{top_edge} {bottom_edge}" fill="{colour}" fill-opacity="0.82" stroke="{colour}" stroke-width="1">'
                f"<title>{escape(s.name)}: {escape(money(sum(float(v) for v in s.values)))} in the period</title></polygon>"
            )
        legend.append((s.name, colour, "area"))
        below = above
    if baseline is not None and n > 1:
        points = " ".join(
            f"{plot.x(i):.1f},{plot.y(float(v)):.1f}" for i, v in enumerate(baseline.values[:n])
        )
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{BASELINE}" stroke-width="2" stroke-dasharray="5 4">'
            f"<title>{escape(baseline.name)}: {escape(money(sum(float(v) for v in baseline.values)))}</title></polyline>"
        )
        legend.append((baseline.name, BASELINE, "dashed"))
    for i in range(n):  # invisible hit areas: a tooltip per bucket with its total and each series' part
        left, w = plot.band(i) if n > 1 else plot.band(0)
        x = plot.x(i) - w / 2 if n > 1 else left
        parts = "; ".join(f"{s.name} {money(s.values[i])}" for s in series if float(s.values[i]))
        tip = f"{labels[i]}: {money(totals[i])}" + (f" ({parts})" if parts and len(series) > 1 else "")
        body.append(
            _linked(
                f'<rect class="hit" x="{x:.1f}" y="{PAD_TOP}" width="{w:.1f}" height="{plot.inner_h}" '
                f'fill="transparent" data-value="{totals[i]:.2f}"><title>{escape(tip)}</title></rect>',
                hrefs[i] if hrefs else None,
            )
        )
    desc = f"{title}. Total {money(sum(totals))} over {n} points" + (
        f"; {baseline.name} {money(sum(float(v) for v in baseline.values))}." if baseline else "."
    )
    return _figure(body, title=title, desc=desc, legend=legend, plot=plot)


def columns(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    line: Series | None = None,
    line_money: bool = True,
    bars_money: bool = True,
    hrefs: Sequence[str | None] | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """Stacked columns per bucket; `line` (e.g. cost over request volume) is drawn on its own right axis;
    `hrefs` makes each column a link (to its requests)."""
    n = len(labels)
    totals = [sum(float(s.values[i]) for s in series) for i in range(n)]
    ticks = nice_ticks(max([*totals, 0.0]))
    plot = _Plot(n, ticks[-1], width=width, height=height)
    bar_fmt = (lambda v: money(v, cents=False)) if bars_money else quantity
    body = _axes(plot, ticks, labels, bar_fmt, bands=True)
    legend = []
    below = [0.0] * n
    for index, s in enumerate(series):
        colour = s.colour or colour_for(s.name, index)
        for i in range(n):
            value = float(s.values[i])
            if value <= 0:
                continue
            left, w = plot.band(i)
            gap = min(w * 0.18, 6)
            y_top, y_bottom = plot.y(below[i] + value), plot.y(below[i])
            shown = bar_fmt(value) if not bars_money else money(value)
            body.append(
                _linked(
                    f'<rect x="{left + gap / 2:.1f}" y="{y_top:.1f}" width="{max(w - gap, 1):.1f}" '
                    f'height="{max(y_bottom - y_top, 0.5):.1f}" fill="{colour}" data-value="{value:.2f}">'
                    f"<title>{escape(labels[i])} · {escape(s.name)}: {escape(shown)}</title></rect>",
                    hrefs[i] if hrefs else None,
                )
            )
            below[i] += value
        legend.append((s.name, colour, "bar"))
    if line is not None and n:
        line_values = [float(v) for v in line.values[:n]]
        line_ticks = nice_ticks(max([*line_values, 0.0]))
        right = _Plot(n, line_ticks[-1], width=width, height=height)
        fmt = (lambda v: money(v, cents=False)) if line_money else quantity
        points = []
        for i, value in enumerate(line_values):
            left, w = plot.band(i)
            points.append(f"{left + w / 2:.1f},{right.y(value):.1f}")
        body.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{INK}" stroke-width="2"/>')
        for i, value in enumerate(line_values):
            left, w = plot.band(i)
            body.append(
                f'<circle cx="{left + w / 2:.1f}" cy="{right.y(value):.1f}" r="2.5" fill="{INK}">'
                f"<title>{escape(labels[i])} · {escape(line.name)}: {escape(money(value) if line_money else quantity(value))}</title></circle>"
            )
        for tick in line_ticks:
            body.append(
                f'<text x="{width - 2}" y="{right.y(tick) + 4:.1f}" text-anchor="end" fill="{INK}" font-size="10">{escape(fmt(tick))}</text>'
            )
        legend.append((line.name, INK, "line"))
    desc = f"{title}. {n} columns, total {bar_fmt(sum(totals)) if not bars_money else money(sum(totals))}."
    return _figure(body, title=title, desc=desc, legend=legend, plot=plot)


def share_bars(items: Sequence[tuple[str, Number]], *, title: str, total: Number | None = None) -> Markup:
    """Horizontal bars for a ranking (label, spend), each with its share of `total` (or of their sum)."""
    whole = float(total if total is not None else sum(float(v) for _, v in items)) or 1.0
    row_h, label_w, value_w = 26, 200, 150
    width = WIDTH
    height = max(row_h * len(items) + 8, row_h)
    plot = _Plot(1, 1.0, width=width, height=height)
    bar_w = width - label_w - value_w
    peak = max([float(v) for _, v in items] + [0.0]) or 1.0
    body = []
    for i, (label, value) in enumerate(items):
        y = 4 + i * row_h
        length = bar_w * float(value) / peak
        share = float(value) / whole * 100
        body.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" fill="{INK}" font-size="12">{escape(_clip(label, 28))}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{max(length, 1):.1f}" height="{row_h - 10}" rx="2" fill="{PALETTE[0]}">'
            f"<title>{escape(label)}: {escape(money(value))} ({share:.1f}%)</title></rect>"
            f'<text x="{label_w + max(length, 1) + 6:.1f}" y="{y + 16}" fill="{MUTED}" font-size="12">{escape(money(value))} · {share:.1f}%</text>'
        )
    desc = f"{title}: " + "; ".join(f"{label} {money(value)}" for label, value in items) + "."
    return _figure(body, title=title, desc=desc, legend=[], plot=plot, css_class="chart bars")


def _linked(mark: str, href: str | None) -> str:
    """A mark that opens `href` when clicked (an SVG link: keyboard-focusable, no script needed)."""
    return f'<a href="{escape(href)}">{mark}</a>' if href else mark


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"
