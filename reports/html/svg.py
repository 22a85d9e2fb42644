"""Chart primitives: each function returns one inline ``<svg>`` element as text.

Every chart is ``<svg data-chart="NAME" role="img" aria-label="TITLE">`` with a
``<title>``, its axis labels (``<text class="axis-label">``) and one element per datum
with ``class="datum"``, ``data-label`` (and ``data-series`` where there are several)
and ``data-value``: the exact number behind the mark (``repr`` of a float, so that
``float(data-value)`` is the reader's value), beside the text shown, which is formatted
for the reader's locale by the caller. Every text that reaches the markup goes through
:func:`esc`; labels come from data (campaigns, breakdown values, coupon codes), which is
user input.

No script and no external resource: the page stays self-contained.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Final

WIDTH: Final = 760
FONT: Final = 12
CHAR: Final = 0.6 * FONT  # the average advance of a character, for layout only
MAX_LABEL: Final = 34  # characters of a category label drawn; the full text is in <title>
PALETTE: Final = (
    # Okabe-Ito: told apart with every common colour-vision deficiency.
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#999999",
    "#000000",
)

Formatter = Callable[[float], str]


def esc(text: object) -> str:
    """Text for an element or a quoted attribute: ``& < > " '`` escaped."""
    return escape(str(text), quote=True)


def num(value: float) -> str:
    """A ``data-value``: exact for ints, ``repr`` (shortest round trip) for floats."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _f(x: float) -> str:
    """A coordinate."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def short(text: str, limit: int = MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def text_width(text: str, size: float = FONT) -> float:
    return len(text) * size * 0.6


@dataclass(frozen=True, slots=True)
class Datum:
    """One mark: its category label, the exact value and the text shown for it."""

    label: str
    value: float
    text: str
    attrs: Mapping[str, str] = field(default_factory=dict)  # more data-* attributes


@dataclass(frozen=True, slots=True)
class Series:
    """A named sequence of values, one per category (None: no value there)."""

    name: str
    values: Sequence[Datum | None]


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate with its interval; ``low``/``high`` may be infinite (unbounded)."""

    label: str
    estimate: float
    low: float
    high: float
    text: str
    series: str = ""
    attrs: Mapping[str, str] = field(default_factory=dict)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (steps of 1, 2, 2.5 or 5 x 10^k)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("ticks need a finite range")
    if high < low:
        low, high = high, low
    if high == low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks = []
    tick = first
    while tick < high + step * 0.999:
        ticks.append(0.0 if abs(tick) < step * 1e-9 else round(tick, 12))
        tick += step
    return ticks


def _attrs(attrs: Mapping[str, str]) -> str:
    return "".join(f' data-{esc(k)}="{esc(v)}"' for k, v in attrs.items())


def _open(name: str, title: str, height: float, width: float = WIDTH) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{esc(name)}" '
        f'role="img" aria-label="{esc(title)}" viewBox="0 0 {_f(width)} {_f(height)}" '
        f'width="{_f(width)}" height="{_f(height)}" font-size="{FONT}">',
        f"<title>{esc(title)}</title>",
        f'<text class="chart-title" x="0" y="16" font-size="14" font-weight="600">'
        f"{esc(title)}</text>",
    ]


def _axis_label(axis: str, text: str, x: float, y: float, vertical: bool = False) -> str:
    rotate = f' transform="rotate(-90 {_f(x)} {_f(y)})"' if vertical else ""
    return (
        f'<text class="axis-label" data-axis="{axis}" x="{_f(x)}" y="{_f(y)}" '
        f'text-anchor="middle"{rotate}>{esc(text)}</text>'
    )


def _legend(
    series: Sequence[str], y: float, x0: float = 0, colors: Sequence[str] = PALETTE
) -> list[str]:
    out = ['<g class="legend">']
    x = x0
    for i, name in enumerate(series):
        color = colors[i % len(colors)]
        out.append(
            f'<rect x="{_f(x)}" y="{_f(y - 9)}" width="10" height="10" fill="{color}"/>'
            f'<text class="legend-item" x="{_f(x + 14)}" y="{_f(y)}">{esc(short(name))}</text>'
        )
        x += 14 + text_width(short(name)) + 16
        if x > WIDTH - 120 and i < len(series) - 1:
            x, y = x0, y + 16
    out.append("</g>")
    return out


def _legend_height(series: Sequence[str], x0: float = 0) -> float:
    if len(series) <= 1:
        return 0
    rows, x = 1, x0
    for i, name in enumerate(series):
        x += 14 + text_width(short(name)) + 16
        if x > WIDTH - 120 and i < len(series) - 1:
            rows, x = rows + 1, x0
    return rows * 16 + 6


def _scale(lo: float, hi: float, a: float, b: float) -> Callable[[float], float]:
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _domain(values: Sequence[float]) -> tuple[list[float], float, float]:
    """Ticks from 0 (or the smallest value) to the largest, and their ends."""
    finite = [v for v in values if math.isfinite(v)]
    lo = min([0.0, *finite])
    hi = max([0.0, *finite])
    ticks = nice_ticks(lo, hi if hi > lo else lo + 1)
    return ticks, ticks[0], ticks[-1]


def _datum(
    shape: str, d: Datum, series: str = "", title: str | None = None, **geometry: str
) -> str:
    attrs = " ".join(f'{k.replace("_", "-")}="{v}"' for k, v in geometry.items())
    data = f' data-series="{esc(series)}"' if series else ""
    tip = title if title is not None else f"{d.label}: {d.text}"
    return (
        f'<{shape} class="datum" data-label="{esc(d.label)}"{data} data-value="{num(d.value)}"'
        f"{_attrs(d.attrs)} {attrs}><title>{esc(tip)}</title></{shape}>"
    )


# -- bar charts ---------------------------------------------------------------------------


def bar_chart(
    name: str,
    title: str,
    data: Sequence[Datum],
    *,
    x_label: str,
    y_label: str,
    tick: Formatter,
    horizontal: bool = False,
    color: str = PALETTE[0],
) -> str:
    """One bar per datum: columns (categories along x) or, ``horizontal``, rows (for long
    labels). The value's text is written at the end of each bar."""
    return grouped_bar_chart(
        name,
        title,
        [d.label for d in data],
        [Series("", list(data))],
        x_label=x_label,
        y_label=y_label,
        tick=tick,
        horizontal=horizontal,
        colors=(color,),
    )


def grouped_bar_chart(
    name: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    tick: Formatter,
    horizontal: bool = False,
    colors: Sequence[str] = PALETTE,
) -> str:
    """For each category a bar per series (a legend names the series when there are
    several). ``x_label`` names the categories, ``y_label`` the values."""
    values = [d.value for s in series for d in s.values if d is not None]
    ticks, lo, hi = _domain(values)
    names = [s.name for s in series]
    legend_h = _legend_height(names)
    top = 30 + legend_h
    n, k = len(categories), max(len(series), 1)
    out: list[str]
    if horizontal:
        label_w = min(max((text_width(short(c)) for c in categories), default=40), 260) + 12
        left, right = label_w + 24, 70
        # Tall enough for the rotated name of the categories beside them.
        band = max(14 * k + 8, 24, (text_width(x_label) + 12) / max(n, 1))
        height = top + n * band + 52
        out = _open(name, title, height)
        if len(series) > 1:
            out += _legend(names, 30 + 12, colors=colors)
        x = _scale(lo, hi, left, WIDTH - right)
        bottom = top + n * band
        out.append('<g class="grid">')
        for t in ticks:
            out.append(
                f'<line x1="{_f(x(t))}" x2="{_f(x(t))}" y1="{_f(top)}" y2="{_f(bottom)}" '
                f'stroke="#ddd"/><text class="tick" x="{_f(x(t))}" y="{_f(bottom + 14)}" '
                f'text-anchor="middle">{esc(tick(t))}</text>'
            )
        out.append("</g>")
        bar_h = (band - 8) / k
        for i, category in enumerate(categories):
            y0 = top + i * band + 4
            out.append(
                f'<text class="category" x="{_f(left - 8)}" y="{_f(y0 + (band - 8) / 2 + 4)}" '
                f'text-anchor="end">{esc(short(category))}</text>'
            )
            for j, s in enumerate(series):
                d = s.values[i] if i < len(s.values) else None
                if d is None:
                    continue
                a, b = sorted((x(0.0), x(d.value)))
                y = y0 + j * bar_h
                out.append(
                    _datum(
                        "rect",
                        d,
                        s.name,
                        title=f"{category}{' · ' + s.name if s.name else ''}: {d.text}",
                        x=_f(a),
                        y=_f(y),
                        width=_f(max(b - a, 0.5)),
                        height=_f(bar_h - 1),
                        fill=colors[j % len(colors)],
                    )
                )
                out.append(
                    f'<text class="value" x="{_f(b + 4)}" y="{_f(y + bar_h / 2 + 4)}">'
                    f"{esc(d.text)}</text>"
                )
        out.append(_axis_label("x", y_label, (left + WIDTH - right) / 2, bottom + 34))
        out.append(_axis_label("y", x_label, 12, (top + bottom) / 2, vertical=True))
    else:
        longest = max((text_width(short(c, 18)) for c in categories), default=0)
        slanted = n * longest > (WIDTH - 120) * 0.9
        label_h = (min(longest, 130) * 0.71 + 10) if slanted else 18
        left = max(text_width(tick(t)) for t in ticks) + 34
        right = 10
        plot_h = 220
        height = top + plot_h + label_h + 40
        out = _open(name, title, height)
        if len(series) > 1:
            out += _legend(names, 30 + 12, colors=colors)
        bottom = top + plot_h
        sy = _scale(lo, hi, bottom, top + 14)
        out.append('<g class="grid">')
        for t in ticks:
            out.append(
                f'<line x1="{_f(left)}" x2="{_f(WIDTH - right)}" y1="{_f(sy(t))}" '
                f'y2="{_f(sy(t))}" stroke="#ddd"/><text class="tick" x="{_f(left - 6)}" '
                f'y="{_f(sy(t) + 4)}" text-anchor="end">{esc(tick(t))}</text>'
            )
        out.append("</g>")
        column = (WIDTH - right - left) / max(n, 1)
        bar_w = min((column * 0.8) / k, 60)
        for i, category in enumerate(categories):
            cx = left + (i + 0.5) * column
            if slanted:
                out.append(
                    f'<text class="category" x="{_f(cx)}" y="{_f(bottom + 12)}" '
                    f'text-anchor="end" transform="rotate(-45 {_f(cx)} {_f(bottom + 12)})">'
                    f"{esc(short(category, 18))}</text>"
                )
            else:
                out.append(
                    f'<text class="category" x="{_f(cx)}" y="{_f(bottom + 14)}" '
                    f'text-anchor="middle">{esc(short(category, 18))}</text>'
                )
            x0 = cx - bar_w * k / 2
            for j, s in enumerate(series):
                d = s.values[i] if i < len(s.values) else None
                if d is None:
                    continue
                a, b = sorted((sy(0.0), sy(d.value)))
                out.append(
                    _datum(
                        "rect",
                        d,
                        s.name,
                        title=f"{category}{' · ' + s.name if s.name else ''}: {d.text}",
                        x=_f(x0 + j * bar_w),
                        y=_f(a),
                        width=_f(bar_w - 1),
                        height=_f(max(b - a, 0.5)),
                        fill=colors[j % len(colors)],
                    )
                )
                if k == 1:
                    out.append(
                        f'<text class="value" x="{_f(cx)}" y="{_f(a - 4)}" '
                        f'text-anchor="middle">{esc(d.text)}</text>'
                    )
        out.append(_axis_label("x", x_label, (left + WIDTH - right) / 2, height - 6))
        out.append(_axis_label("y", y_label, 12, (top + bottom) / 2, vertical=True))
    out.append("</svg>")
    return "\n".join(out)


# -- line chart ---------------------------------------------------------------------------


def line_chart(
    name: str,
    title: str,
    x_values: Sequence[str],
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    tick: Formatter,
) -> str:
    """One line per series over the categories ``x_values`` (time buckets, in order), a
    point per value; a missing value breaks the line."""
    values = [d.value for s in series for d in s.values if d is not None]
    ticks, lo, hi = _domain(values)
    names = [s.name for s in series]
    legend_h = _legend_height(names)
    top = 30 + legend_h
    left = max(text_width(tick(t)) for t in ticks) + 34
    right = 16
    plot_h = 220
    height = top + plot_h + 64
    out = _open(name, title, height)
    if len(series) > 1:
        out += _legend(names, 30 + 12)
    bottom = top + plot_h
    y = _scale(lo, hi, bottom, top + 10)
    n = len(x_values)
    x = _scale(0, max(n - 1, 1), left + 8, WIDTH - right - 8)
    out.append('<g class="grid">')
    for t in ticks:
        out.append(
            f'<line x1="{_f(left)}" x2="{_f(WIDTH - right)}" y1="{_f(y(t))}" y2="{_f(y(t))}" '
            f'stroke="#ddd"/><text class="tick" x="{_f(left - 6)}" y="{_f(y(t) + 4)}" '
            f'text-anchor="end">{esc(tick(t))}</text>'
        )
    every = max(1, math.ceil(n / max(1, int((WIDTH - left - right) / 90))))
    for i, label in enumerate(x_values):
        if i % every == 0:
            out.append(
                f'<text class="category" x="{_f(x(i))}" y="{_f(bottom + 16)}" '
                f'text-anchor="middle">{esc(short(label, 16))}</text>'
            )
    out.append("</g>")
    for j, s in enumerate(series):
        color = PALETTE[j % len(PALETTE)]
        runs: list[list[tuple[float, float]]] = [[]]
        for i, d in enumerate(s.values):
            if d is None:
                runs.append([])
            else:
                runs[-1].append((x(i), y(d.value)))
        for run in runs:
            if len(run) >= 2:
                points = " ".join(f"{_f(px)},{_f(py)}" for px, py in run)
                out.append(
                    f'<polyline class="line" data-series="{esc(s.name)}" points="{points}" '
                    f'fill="none" stroke="{color}" stroke-width="2"/>'
                )
        for i, d in enumerate(s.values):
            if d is None:
                continue
            out.append(
                _datum(
                    "circle",
                    d,
                    s.name,
                    title=f"{x_values[i]}{' · ' + s.name if s.name else ''}: {d.text}",
                    cx=_f(x(i)),
                    cy=_f(y(d.value)),
                    r="3",
                    fill=color,
                )
            )
    out.append(_axis_label("x", x_label, (left + WIDTH - right) / 2, height - 10))
    out.append(_axis_label("y", y_label, 12, (top + bottom) / 2, vertical=True))
    out.append("</svg>")
    return "\n".join(out)


# -- heatmap ------------------------------------------------------------------------------


def heatmap(
    name: str,
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    cells: Sequence[Sequence[Datum | None]],
    *,
    x_label: str,
    y_label: str,
    row_notes: Sequence[str] = (),
    full: float | None = None,
) -> str:
    """A cell per (row, column), shaded by its value from 0 (white) to ``full`` (default:
    the largest value; a larger one is shaded full too); a None cell is left blank (not a
    datum). ``row_notes`` are written right of each row (a cohort's size)."""
    finite = [d.value for row in cells for d in row if d is not None and math.isfinite(d.value)]
    top_value = full or max(finite, default=0.0) or 1.0
    label_w = min(max([text_width(y_label), *(text_width(short(r)) for r in rows)]), 200) + 4
    note_w = max((text_width(n) for n in row_notes), default=0) + (16 if row_notes else 0)
    left = label_w + 24
    usable = WIDTH - left - note_w - 4
    cell_w = min(usable / max(len(columns), 1), 64)
    cell_h = 22
    top = 52
    height = top + len(rows) * cell_h + 40
    out = _open(name, title, height)
    for c, label in enumerate(columns):
        out.append(
            f'<text class="category" x="{_f(left + (c + 0.5) * cell_w)}" y="{_f(top - 6)}" '
            f'text-anchor="middle">{esc(label)}</text>'
        )
    for r, label in enumerate(rows):
        y0 = top + r * cell_h
        out.append(
            f'<text class="category" x="{_f(left - 8)}" y="{_f(y0 + cell_h / 2 + 4)}" '
            f'text-anchor="end">{esc(short(label))}</text>'
        )
        row = cells[r] if r < len(cells) else []
        for c, d in enumerate(row):
            if d is None:
                continue
            share = max(0.0, min(1.0, d.value / top_value)) if math.isfinite(d.value) else 1.0
            fill = _shade(share)
            ink = "#fff" if share > 0.55 else "#222"
            x0 = left + c * cell_w
            out.append(
                _datum(
                    "rect",
                    d,
                    columns[c] if c < len(columns) else "",
                    title=f"{label} · {columns[c] if c < len(columns) else ''}: {d.text}",
                    x=_f(x0),
                    y=_f(y0),
                    width=_f(cell_w - 1),
                    height=_f(cell_h - 1),
                    fill=fill,
                )
            )
            if text_width(d.text, 10) < cell_w - 2:
                out.append(
                    f'<text class="cell" x="{_f(x0 + cell_w / 2)}" y="{_f(y0 + cell_h / 2 + 4)}" '
                    f'text-anchor="middle" font-size="10" fill="{ink}">{esc(d.text)}</text>'
                )
        if r < len(row_notes):
            out.append(
                f'<text class="note" x="{_f(left + len(columns) * cell_w + 8)}" '
                f'y="{_f(y0 + cell_h / 2 + 4)}">{esc(row_notes[r])}</text>'
            )
    out.append(
        _axis_label("x", x_label, left + len(columns) * cell_w / 2, top + len(rows) * cell_h + 24)
    )
    out.append(
        f'<text class="axis-label" data-axis="y" x="{_f(left - 8)}" y="{_f(top - 6)}" '
        f'text-anchor="end">{esc(y_label)}</text>'
    )
    out.append("</svg>")
    return "\n".join(out)


def _shade(share: float) -> str:
    """White to #0072B2."""
    r = round(255 + (0x00 - 255) * share)
    g = round(255 + (0x72 - 255) * share)
    b = round(255 + (0xB2 - 255) * share)
    return f"#{r:02x}{g:02x}{b:02x}"


# -- interval plot ------------------------------------------------------------------------


def interval_plot(
    name: str,
    title: str,
    intervals: Sequence[Interval],
    *,
    x_label: str,
    y_label: str,
    tick: Formatter,
    clip: tuple[float, float] = (-1.0, 1.0),
    reference: float = 0.0,
) -> str:
    """A row per estimate: a point and its interval as a band, with a line at
    ``reference`` (no effect). Left of each row its label, and under it the text of the
    numbers. The axis spans the estimates and the finite bounds, at most ``clip``; a bound
    beyond it (or infinite) ends in an arrow at the edge. ``data-low`` / ``data-high``
    keep the exact bounds."""
    points = [reference]
    for iv in intervals:
        points += [v for v in (iv.estimate, iv.low, iv.high) if math.isfinite(v)]
    lo = max(min(points), clip[0])
    hi = min(max(points), clip[1])
    ticks = nice_ticks(lo, hi)
    lo, hi = ticks[0], ticks[-1]
    widest = max(
        (max(text_width(short(iv.label)), text_width(iv.text, 10)) for iv in intervals),
        default=40,
    )
    left, right = min(widest, 340) + 24, 24
    band = 40
    series_names = list(dict.fromkeys(iv.series for iv in intervals if iv.series))
    legend_h = _legend_height(series_names)
    top = 44 + legend_h
    bottom = top + len(intervals) * band
    height = bottom + 52
    out = _open(name, title, height)
    if len(series_names) > 1:
        out += _legend(series_names, 30 + 12)
    out.append(
        f'<text class="axis-label" data-axis="y" x="{_f(left - 8)}" y="{_f(top - 6)}" '
        f'text-anchor="end">{esc(y_label)}</text>'
    )
    x = _scale(lo, hi, left, WIDTH - right)
    out.append('<g class="grid">')
    for t in ticks:
        out.append(
            f'<line x1="{_f(x(t))}" x2="{_f(x(t))}" y1="{_f(top)}" y2="{_f(bottom)}" '
            f'stroke="#ddd"/><text class="tick" x="{_f(x(t))}" y="{_f(bottom + 14)}" '
            f'text-anchor="middle">{esc(tick(t))}</text>'
        )
    out.append("</g>")
    out.append(
        f'<line class="reference" x1="{_f(x(reference))}" x2="{_f(x(reference))}" '
        f'y1="{_f(top)}" y2="{_f(bottom)}" stroke="#444" stroke-dasharray="4 3"/>'
    )

    def place(v: float) -> float:
        return x(max(lo, min(hi, v)))

    for i, iv in enumerate(intervals):
        cy = top + i * band + band / 2
        color = PALETTE[series_names.index(iv.series) % len(PALETTE)] if iv.series else PALETTE[0]
        out.append(
            f'<text class="category" x="{_f(left - 8)}" y="{_f(cy - 2)}" text-anchor="end">'
            f"{esc(short(iv.label))}</text>"
            f'<text class="value" x="{_f(left - 8)}" y="{_f(cy + 11)}" text-anchor="end">'
            f"{esc(iv.text)}</text>"
        )
        a, b = place(iv.low), place(iv.high)
        data = f' data-series="{esc(iv.series)}"' if iv.series else ""
        out.append(
            f'<g class="datum" data-label="{esc(iv.label)}"{data} data-value="{num(iv.estimate)}" '
            f'data-low="{num(iv.low)}" data-high="{num(iv.high)}"{_attrs(iv.attrs)}>'
            f"<title>{esc(iv.label)}: {esc(iv.text)}</title>"
            f'<rect class="band" x="{_f(a)}" y="{_f(cy - 6)}" width="{_f(max(b - a, 1))}" '
            f'height="12" fill="{color}" fill-opacity="0.25" stroke="{color}"/>'
        )
        if iv.low < lo:
            out.append(_arrow(a, cy, -1, color))
        if iv.high > hi:
            out.append(_arrow(b, cy, 1, color))
        if math.isfinite(iv.estimate):
            out.append(
                f'<circle cx="{_f(place(iv.estimate))}" cy="{_f(cy)}" r="4.5" fill="{color}"/>'
            )
        out.append("</g>")
    out.append(_axis_label("x", x_label, (left + WIDTH - right) / 2, bottom + 34))
    out.append("</svg>")
    return "\n".join(out)


def _arrow(x: float, y: float, direction: int, color: str) -> str:
    tip = x + 6 * direction
    return (
        f'<path class="open-end" d="M{_f(x)},{_f(y - 6)} L{_f(tip)},{_f(y)} '
        f'L{_f(x)},{_f(y + 6)} Z" fill="{color}"/>'
    )
