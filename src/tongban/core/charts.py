"""Server-rendered SVG charts for the quality dashboards and the public results page.

No JavaScript, no external files and nothing the Content-Security-Policy forbids: no ``style``
attribute and no ``<style>`` element; the charts use SVG presentation attributes and the classes of
``web/static/rating.css``. Each chart is a visual aid beside a table of the same numbers: every value is
printed as text, so nothing is told by colour alone, and every colour used for text or marks meets WCAG
2.2 AA contrast against white (4.5:1 for text, 3:1 for marks; ``tests/rating/test_charts.py`` checks the
palette, a darkened Okabe–Ito set that stays apart for colour-blind readers).

Each function returns one complete ``<svg role="img">`` whose ``aria-labelledby`` names its ``<title>``
and ``<desc>``. The ids start with a prefix hashed from the chart's kind, texts and data, so charts with
different content never clash on one page and the same input always gives the same output; pass
``chart_id`` when one page shows two identical charts. Sizes follow the content (rows, points, widths
of the labels); the ``width``/``height`` attributes are the size it is shown at (``rating.css`` does not
shrink it, so text stays 14px; wrap it in ``<figure class="chart-figure">``, which scrolls sideways).

Texts the charts add themselves ("No data", the target legend, the totals) are English message ids;
pass ``gettext=lang.gettext`` to translate them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

__all__ = [
    "BAND_EDGE",
    "BAND_FILL",
    "GRID",
    "MARK",
    "MUTED",
    "SEGMENT_COLOURS",
    "TEXT",
    "bar_chart",
    "distribution_bar",
    "line_chart",
    "shares",
    "text_width",
]

# --- palette (contrast against white in brackets; see the module docstring) ---------------------------
#: Text (17.2:1).
TEXT = "#1b1b1b"
#: Secondary text: axis values, the "no value" dash (8.9:1).
MUTED = "#4a4a4a"
#: Bars, the line and its markers: Okabe–Ito blue (5.2:1).
MARK = "#0072b2"
#: The edges of a target band (8.6:1) and its fill, a background tint that text and marks stay readable on.
BAND_EDGE = "#1e5631"
BAND_FILL = "#e8f1ea"
#: Gridlines: decoration only (the values are printed), so they need no contrast.
GRID = "#d0d0d0"
#: Segments of a distribution, in order; dark enough for white text inside them (all >= 4.5:1): blue,
#: bluish green, grey, ochre, vermillion, reddish purple (Okabe–Ito, darkened where needed).
SEGMENT_COLOURS = ("#0072b2", "#007a5a", "#6b6b6b", "#996100", "#c04e00", "#a8507f")
#: Text drawn on a segment.
ON_SEGMENT = "#ffffff"

SVG_NS = "http://www.w3.org/2000/svg"
FONT = 14  # px; all chart text is at least this (12px is the floor)
PAD = 8
DASH = "—"
ELLIPSIS = "…"

_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def _identity(message: str) -> str:
    return message


# --- small helpers ---------------------------------------------------------------------------------------


def _num(x: float) -> str:
    """A coordinate: at most two decimals, no trailing zeros, never ``-0``."""
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _attrs(attrs: dict[str, object]) -> str:
    parts = []
    for key, value in attrs.items():
        if value is None:
            continue
        text = _num(value) if isinstance(value, float) else str(value)
        parts.append(f' {key}="{escape(text)}"')
    return "".join(parts)


def _el(tag: str, attrs: dict[str, object], *children: str) -> str:
    if not children:
        return f"<{tag}{_attrs(attrs)}/>"
    return f"<{tag}{_attrs(attrs)}>{''.join(children)}</{tag}>"


def _text(x: float, y: float, content: str, **attrs: object) -> str:
    """A ``<text>``; keyword ``anchor``, ``fill``, ``cls`` and ``title`` (a hover text) are understood."""
    title = attrs.pop("title", None)
    base: dict[str, object] = {
        "x": float(x),
        "y": float(y),
        "font-size": attrs.pop("size", FONT),
        "fill": attrs.pop("fill", TEXT),
        "text-anchor": attrs.pop("anchor", None),
        "class": attrs.pop("cls", None),
    }
    base.update(attrs)
    children = [str(escape(content))]
    if title is not None:
        children.insert(0, _el("title", {}, str(escape(str(title)))))
    return _el("text", base, *children)


def _halo() -> dict[str, object]:
    """A white outline under a text, so it stays readable where it crosses a line or the band."""
    return {"stroke": "#ffffff", "stroke-width": 3, "stroke-linejoin": "round", "paint-order": "stroke"}


def _char_em(ch: str) -> float:
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return 1.0
    if ch in "iljI.,:;|!'` ":
        return 0.32
    if ch in "mwMW%@":
        return 0.9
    return 0.62


def text_width(text: str, size: float = FONT) -> float:
    """An estimate of the rendered width of ``text`` (CJK full width, Latin about 0.6 em), rounded up."""
    return math.ceil(sum(_char_em(ch) for ch in text) * size)


def _truncate(text: str, max_width: float, size: float = FONT) -> str:
    if text_width(text, size) <= max_width:
        return text
    out = ""
    for ch in text:
        if text_width(out + ch + ELLIPSIS, size) > max_width:
            break
        out += ch
    return out.rstrip() + ELLIPSIS


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _prefix(kind: str, chart_id: str | None, payload: object) -> str:
    if chart_id is not None:
        if not _ID_RE.match(chart_id):
            raise ValueError(f"chart_id must be an XML name of letters, digits, '-' and '_': {chart_id!r}")
        return chart_id
    raw = json.dumps([kind, payload], ensure_ascii=False, sort_keys=True, default=str)
    return f"chart-{kind}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def _svg(
    kind: str, prefix: str, width: float, height: float, title: str, description: str, body: str
) -> Markup:
    width, height = math.ceil(width), math.ceil(height)
    head = _el("title", {"id": f"{prefix}-title"}, str(escape(title))) + _el(
        "desc", {"id": f"{prefix}-desc"}, str(escape(description))
    )
    attrs: dict[str, object] = {
        "xmlns": SVG_NS,
        "id": prefix,
        "class": f"chart chart-{kind}",
        # A chart with drill-down links is a group of links to assistive technology, not one picture
        # (an image's children are hidden, and links inside it are nested interactive content).
        "role": "group" if "<a " in body else "img",
        "aria-labelledby": f"{prefix}-title {prefix}-desc",
        "width": width,
        "height": height,
        "viewBox": f"0 0 {width} {height}",
    }
    return Markup(_el("svg", attrs, head, body))  # noqa: S704 - every piece above is escaped


def _band(
    band: tuple[float | None, float | None] | None,
) -> tuple[float | None, float | None] | None:
    if band is None:
        return None
    low, high = _finite(band[0]), _finite(band[1])
    if low is None and high is None:
        return None
    if low is not None and high is not None and low > high:
        raise ValueError(f"band low {low} is above band high {high}")
    return low, high


def _band_text(
    band: tuple[float | None, float | None],
    value_format: Callable[[float], str],
    gettext: Callable[[str], str],
) -> str:
    low, high = band
    if low is not None and high is not None:
        return gettext("Shaded: target {low} to {high}").format(
            low=value_format(low), high=value_format(high)
        )
    if low is not None:
        return gettext("Shaded: target at least {low}").format(low=value_format(low))
    if high is not None:
        return gettext("Shaded: target at most {high}").format(high=value_format(high))
    raise ValueError("a band needs at least one end")


def _band_legend(x: float, y: float, text: str) -> str:
    """A swatch like the band and its text; ``y`` is the top of the line."""
    swatch = _el(
        "rect",
        {
            "x": float(x),
            "y": float(y + 2),
            "width": 18,
            "height": FONT,
            "fill": BAND_FILL,
            "stroke": BAND_EDGE,
            "stroke-width": 1.5,
            "stroke-dasharray": "4 3",
        },
    )
    return _el("g", {"class": "chart-legend"}, swatch, _text(x + 26, y + FONT + 1, text))


def _no_data(width: float, height: float, gettext: Callable[[str], str]) -> str:
    return _text(width / 2, height / 2 + FONT / 3, gettext("No data"), anchor="middle", cls="chart-empty")


# --- bar chart -------------------------------------------------------------------------------------------

ROW_H = 28
BAR_H = 18
PLOT_W = 360
LABEL_MAX_W = 240


def bar_chart(
    rows: Sequence[tuple[str, float | None]],
    *,
    title: str,
    description: str,
    value_format: Callable[[float], str],
    max_value: float | None = None,
    band: tuple[float | None, float | None] | None = None,
    href: Callable[[str], str] | None = None,
    gettext: Callable[[str], str] = _identity,
    chart_id: str | None = None,
) -> Markup:
    """Horizontal bars, one per ``(label, value)``, each value printed after its bar.

    A ``None`` (or non-finite) value shows "—" and no bar. Bars are scaled to ``max_value`` (default: the
    largest value or band bound); values above it are drawn full length, values below zero as zero, and
    their printed value stays the true one. ``band`` = ``(low, high)``, either end open with ``None``,
    shades the target range with dashed edges and adds a legend line. ``href(label)`` wraps each row in a
    link (drill-down). Labels longer than the label column end in "…"; the full label is the hover text.
    """
    values = [(str(label), _finite(value)) for label, value in rows]
    target = _band(band)
    formatted = [(label, None if value is None else value_format(value)) for label, value in values]
    payload = {
        "rows": formatted,
        "max": max_value,
        "band": target,
        "links": [href(label) for label, _ in values] if href else None,
        "title": title,
        "desc": description,
    }
    prefix = _prefix("bar", chart_id, payload)

    candidates = [v for _, v in values if v is not None]
    if target is not None:
        candidates += [b for b in target if b is not None]
    top = _finite(max_value)
    if top is None or top <= 0:
        top = max([v for v in candidates if v > 0], default=1.0)

    label_w = min(LABEL_MAX_W, max((text_width(label) for label, _ in values), default=0))
    value_w = max((text_width(text or DASH) for _, text in formatted), default=0)
    plot_x = PAD + label_w + 10
    width = plot_x + PLOT_W + 8 + value_w + PAD
    rows_h = max(len(values), 1) * ROW_H
    legend_y = PAD + rows_h + 8
    height = legend_y + (FONT + 12 if target is not None else 0) + PAD
    band_text = _band_text(target, value_format, gettext) if target is not None else None
    if band_text is not None:
        width = max(width, plot_x + 26 + text_width(band_text) + PAD)

    def x_of(value: float) -> float:
        return plot_x + max(0.0, min(value, top)) / top * PLOT_W

    parts: list[str] = []
    if not values:
        return _empty_box("bar", prefix, title, description, gettext)

    if target is not None:
        low, high = target
        x0 = x_of(low) if low is not None else plot_x
        x1 = x_of(high) if high is not None else plot_x + PLOT_W
        shade = _el(
            "rect",
            {
                "x": x0,
                "y": float(PAD),
                "width": max(x1 - x0, 0.0),
                "height": float(rows_h),
                "fill": BAND_FILL,
            },
        )
        edges = [
            _el(
                "line",
                {
                    "x1": x,
                    "y1": float(PAD),
                    "x2": x,
                    "y2": float(PAD + rows_h),
                    "stroke": BAND_EDGE,
                    "stroke-width": 1.5,
                    "stroke-dasharray": "4 3",
                },
            )
            for bound, x in ((low, x0), (high, x1))
            if bound is not None
        ]
        parts.append(_el("g", {"class": "chart-band"}, shade, *edges))

    for index, ((label, value), (_, shown)) in enumerate(zip(values, formatted, strict=True)):
        y = PAD + index * ROW_H
        mid = y + ROW_H / 2
        baseline = mid + FONT / 3
        cells: list[str] = []
        shown_label = _truncate(label, label_w)
        cells.append(
            _text(
                plot_x - 10,
                baseline,
                shown_label,
                anchor="end",
                cls="chart-label",
                title=label if shown_label != label else None,
            )
        )
        if value is None:
            cells.append(_text(plot_x + 6, baseline, DASH, fill=MUTED, cls="chart-value chart-none"))
        else:
            end = x_of(value)
            cells.append(
                _el(
                    "rect",
                    {
                        "class": "chart-bar",
                        "x": float(plot_x),
                        "y": mid - BAR_H / 2,
                        "width": end - plot_x,
                        "height": float(BAR_H),
                        "fill": MARK,
                    },
                )
            )
            cells.append(_text(end + 6, baseline, shown or "", cls="chart-value", **_halo()))
        if href is not None:
            hit = _el(
                "rect",
                {
                    "class": "chart-hit",
                    "x": float(PAD / 2),
                    "y": float(y + 1),
                    "width": width - PAD,
                    "height": float(ROW_H - 2),
                    "fill": "none",
                    "pointer-events": "all",
                },
            )
            name = f"{label}: {shown}" if shown is not None else f"{label}: {DASH}"
            parts.append(
                _el("a", {"class": "chart-row", "href": href(label), "aria-label": name}, hit, *cells)
            )
        else:
            parts.append(_el("g", {"class": "chart-row"}, *cells))

    parts.append(
        _el(
            "line",
            {
                "class": "chart-axis",
                "x1": float(plot_x),
                "y1": float(PAD),
                "x2": float(plot_x),
                "y2": float(PAD + rows_h),
                "stroke": MUTED,
                "stroke-width": 1,
            },
        )
    )
    if band_text is not None:
        parts.append(_band_legend(plot_x, legend_y, band_text))
    return _svg("bar", prefix, width, height, title, description, "".join(parts))


# --- line chart ------------------------------------------------------------------------------------------

PLOT_H = 200
MIN_STEP = 56
MIN_PLOT_W = 280


def _nice_step(span: float) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) cutting ``span`` into at most four intervals."""
    raw = span / 4
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if factor * magnitude >= raw * (1 - 1e-9):
            return factor * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _range(
    values: list[float],
    band: tuple[float | None, float | None] | None,
    y_min: float | None,
    y_max: float | None,
) -> tuple[float, float, float]:
    """The y axis: ``(low, high, tick step)``; open ends widened to round numbers around data and band."""
    seen = list(values)
    if band is not None:
        seen += [b for b in band if b is not None]
    lo, hi = _finite(y_min), _finite(y_max)
    if lo is not None and hi is not None:
        if hi <= lo:
            raise ValueError(f"y_max {hi} must be above y_min {lo}")
        return lo, hi, _nice_step(hi - lo)
    data_lo = lo if lo is not None else min(seen, default=0.0)
    data_hi = hi if hi is not None else max(seen, default=1.0)
    if data_hi <= data_lo:  # one value, or a given end beyond all the data
        delta = abs(data_lo if hi is None else data_hi) * 0.1 or 1.0
        if hi is None:
            data_hi = data_lo + delta
        if lo is None:
            data_lo = data_hi - (delta if hi is not None else 2 * delta)
    step = _nice_step(data_hi - data_lo)
    if lo is None:
        lo = round(math.floor(data_lo / step + 1e-9) * step, 12)
        if lo < 0 <= min(seen, default=0.0):
            lo = 0.0
    if hi is None:
        hi = round(math.ceil(data_hi / step - 1e-9) * step, 12)
    return lo, hi, step


def line_chart(
    points: Sequence[tuple[str, float | None]],
    *,
    title: str,
    description: str,
    value_format: Callable[[float], str],
    band: tuple[float | None, float | None] | None = None,
    y_min: float | None = None,
    y_max: float | None = None,
    gettext: Callable[[str], str] = _identity,
    chart_id: str | None = None,
) -> Markup:
    """A time series: x labels in order (``"2026-01"``), a marker and the printed value at each point.

    The line breaks at ``None`` values, which show "—" above their x label. The y axis runs from
    ``y_min`` to ``y_max`` (default: round numbers around the data and band, not below zero when no
    value is); values outside a given range are drawn at its edge and printed as they are. ``band`` as
    in :func:`bar_chart`. With no value at all the chart says "No data".
    """
    series = [(str(label), _finite(value)) for label, value in points]
    target = _band(band)
    formatted = [(label, None if value is None else value_format(value)) for label, value in series]
    payload = {
        "points": formatted,
        "band": target,
        "y": [y_min, y_max],
        "title": title,
        "desc": description,
    }
    prefix = _prefix("line", chart_id, payload)
    known = [v for _, v in series if v is not None]
    if not known:
        return _empty_box("line", prefix, title, description, gettext)
    lo, hi, tick_step = _range(known, target, y_min, y_max)
    first = math.ceil(lo / tick_step - 1e-9)
    last = math.floor(hi / tick_step + 1e-9)
    ticks = [round(k * tick_step, 12) for k in range(first, last + 1)]
    tick_text = [value_format(t) for t in ticks]

    axis_w = max((text_width(t) for t in tick_text), default=0)
    step = max(
        MIN_STEP,
        math.ceil(MIN_PLOT_W / len(series)),
        max(text_width(label) for label, _ in series) + 16,
        max(text_width(text) for _, text in formatted if text is not None) + 12,
    )
    plot_x = PAD + axis_w + 10
    plot_top = PAD + FONT + 12
    plot_w = step * len(series)
    plot_bottom = plot_top + PLOT_H
    legend_y = plot_bottom + FONT + 16
    width = plot_x + plot_w + PAD
    height = legend_y + (FONT + 12 if target is not None else 0) + PAD
    band_text = _band_text(target, value_format, gettext) if target is not None else None
    if band_text is not None:
        width = max(width, plot_x + 26 + text_width(band_text) + PAD)

    def y_of(value: float) -> float:
        clamped = max(lo, min(value, hi))
        return plot_bottom - (clamped - lo) / (hi - lo) * PLOT_H

    def x_of(index: int) -> float:
        return plot_x + step * index + step / 2

    parts: list[str] = []
    grid = []
    for tick, text in zip(ticks, tick_text, strict=True):
        y = y_of(tick)
        grid.append(
            _el(
                "line",
                {"x1": float(plot_x), "y1": y, "x2": float(plot_x + plot_w), "y2": y, "stroke": GRID},
            )
        )
        grid.append(_text(plot_x - 8, y + FONT / 3, text, anchor="end", fill=MUTED, cls="chart-tick"))
    parts.append(_el("g", {"class": "chart-grid"}, *grid))

    if target is not None:
        low, high = target
        y_top = y_of(high) if high is not None else float(plot_top)
        y_bottom = y_of(low) if low is not None else float(plot_bottom)
        shade = _el(
            "rect",
            {
                "x": float(plot_x),
                "y": y_top,
                "width": float(plot_w),
                "height": max(y_bottom - y_top, 0.0),
                "fill": BAND_FILL,
            },
        )
        edges = [
            _el(
                "line",
                {
                    "x1": float(plot_x),
                    "y1": y,
                    "x2": float(plot_x + plot_w),
                    "y2": y,
                    "stroke": BAND_EDGE,
                    "stroke-width": 1.5,
                    "stroke-dasharray": "4 3",
                },
            )
            for bound, y in ((high, y_top), (low, y_bottom))
            if bound is not None
        ]
        parts.append(_el("g", {"class": "chart-band"}, shade, *edges))

    parts.append(
        _el(
            "line",
            {
                "class": "chart-axis",
                "x1": float(plot_x),
                "y1": float(plot_bottom),
                "x2": float(plot_x + plot_w),
                "y2": float(plot_bottom),
                "stroke": MUTED,
            },
        )
    )

    # The line: one sub-path per run of known values.
    path: list[str] = []
    pen_down = False
    for index, (_, value) in enumerate(series):
        if value is None:
            pen_down = False
            continue
        path.append(f"{'L' if pen_down else 'M'}{_num(x_of(index))} {_num(y_of(value))}")
        pen_down = True
    parts.append(
        _el(
            "path",
            {
                "class": "chart-line",
                "d": " ".join(path),
                "fill": "none",
                "stroke": MARK,
                "stroke-width": 2.5,
                "stroke-linejoin": "round",
            },
        )
    )

    for index, ((label, value), (_, shown)) in enumerate(zip(series, formatted, strict=True)):
        x = x_of(index)
        cells = [_text(x, plot_bottom + FONT + 6, label, anchor="middle", cls="chart-label")]
        if value is None or shown is None:
            cells.append(
                _text(x, plot_bottom - 8, DASH, anchor="middle", fill=MUTED, cls="chart-value chart-none")
            )
        else:
            y = y_of(value)
            cells.append(
                _el(
                    "circle",
                    {"class": "chart-marker", "cx": x, "cy": y, "r": 4.5, "fill": MARK, "stroke": "#ffffff"},
                    _el("title", {}, str(escape(f"{label}: {shown}"))),
                )
            )
            # Above the marker, unless the point is a dip (below its neighbours) and there is room below.
            near = [
                v
                for v in (
                    series[index - 1][1] if index else None,
                    series[index + 1][1] if index + 1 < len(series) else None,
                )
                if v is not None
            ]
            dip = bool(near) and value < sum(near) / len(near)
            label_y = y + FONT + 8 if dip and y + FONT + 8 <= plot_bottom - 4 else y - 10
            cells.append(_text(x, label_y, shown, anchor="middle", cls="chart-value", **_halo()))
        parts.append(_el("g", {"class": "chart-point"}, *cells))

    if band_text is not None:
        parts.append(_band_legend(plot_x, legend_y, band_text))
    return _svg("line", prefix, width, height, title, description, "".join(parts))


def _empty_box(kind: str, prefix: str, title: str, description: str, gettext: Callable[[str], str]) -> Markup:
    """A dashed outline saying "No data"."""
    width, height = float(DIST_W + 2 * PAD), float(DIST_BAR_H + 2 * PAD)
    box = _el(
        "rect",
        {
            "x": float(PAD),
            "y": float(PAD),
            "width": float(DIST_W),
            "height": float(DIST_BAR_H),
            "fill": "none",
            "stroke": MUTED,
            "stroke-dasharray": "4 3",
        },
    )
    return _svg(kind, prefix, width, height, title, description, box + _no_data(width, height, gettext))


# --- distribution ----------------------------------------------------------------------------------------

DIST_W = 480
DIST_BAR_H = 32
SWATCH = 14


def shares(counts: Sequence[int]) -> list[int]:
    """Each count's share of the total in tenths of a percent, summing to exactly 1000 (largest remainder).

    All zeros for a zero total.
    """
    total = sum(counts)
    if total == 0:
        return [0 for _ in counts]
    exact = [c * 1000 / total for c in counts]
    floors = [math.floor(e) for e in exact]
    left = 1000 - sum(floors)
    order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return floors


def _share_text(tenths: int) -> str:
    return f"{tenths // 10}.{tenths % 10}%"


def distribution_bar(
    parts: Sequence[tuple[str, int]],
    *,
    title: str,
    description: str,
    gettext: Callable[[str], str] = _identity,
    chart_id: str | None = None,
) -> Markup:
    """One 100% stacked bar, a segment per ``(label, count)`` in order, and a legend with the counts.

    Segments wide enough carry their share; every share is in the legend ("label: count (share)") and in
    the segment's hover text. The shares are rounded to 0.1% by largest remainder, so they add up to
    exactly 100.0%. A zero total draws "No data". Negative counts are an error.
    """
    items = [(str(label), int(count)) for label, count in parts]
    if any(count < 0 for _, count in items):
        raise ValueError("counts must not be negative")
    prefix = _prefix("dist", chart_id, {"parts": items, "title": title, "desc": description})
    total = sum(count for _, count in items)
    if total == 0:
        return _empty_box("dist", prefix, title, description, gettext)

    tenths = shares([count for _, count in items])
    entry = gettext("{label}: {count} ({share})")
    texts = [
        entry.format(label=label, count=count, share=_share_text(share))
        for (label, count), share in zip(items, tenths, strict=True)
    ]
    total_text = gettext("Total: {total}").format(total=total)

    # Legend entries flow into lines no wider than the bar.
    entries = [*((t, i) for i, t in enumerate(texts)), (total_text, None)]
    inner = max(DIST_W, *(SWATCH + 6 + text_width(t) for t, _ in entries))
    line_h = FONT + 10
    placed: list[tuple[float, int, str, int | None]] = []  # x offset, line, text, colour index
    cursor, line = 0.0, 0
    for text, index in entries:
        w = (SWATCH + 6 if index is not None else 0) + text_width(text)
        if cursor > 0 and cursor + w > inner:
            cursor, line = 0.0, line + 1
        placed.append((cursor, line, text, index))
        cursor += w + 18
    legend_top = PAD + DIST_BAR_H + 12
    width = inner + 2 * PAD
    height = legend_top + (line + 1) * line_h + PAD

    # Segments: cumulative edges rounded once, so the widths add up to the bar exactly.
    running = 0
    edges = [float(PAD)]
    for _, count in items:
        running += count
        edges.append(PAD + round(running / total * inner, 2))
    segments: list[str] = []
    for index, ((_, count), share) in enumerate(zip(items, tenths, strict=True)):
        x0, x1 = edges[index], edges[index + 1]
        if count == 0:
            continue
        colour = SEGMENT_COLOURS[index % len(SEGMENT_COLOURS)]
        rect = _el(
            "rect",
            {
                "class": "chart-segment",
                "x": x0,
                "y": float(PAD),
                "width": x1 - x0,
                "height": float(DIST_BAR_H),
                "fill": colour,
                "stroke": "#ffffff",
                "stroke-width": 1.5,
                "data-count": count,
                "data-share": _share_text(share),
            },
            _el("title", {}, str(escape(texts[index]))),
        )
        cells = [rect]
        share_text = _share_text(share)
        if text_width(share_text) + 8 <= x1 - x0:
            cells.append(
                _text(
                    (x0 + x1) / 2,
                    PAD + DIST_BAR_H / 2 + FONT / 3,
                    share_text,
                    anchor="middle",
                    fill=ON_SEGMENT,
                    cls="chart-share",
                )
            )
        segments.append(_el("g", {"class": "chart-part"}, *cells))

    body: list[str] = list(segments)
    legend: list[str] = []
    for offset, row, text, index in placed:
        x = PAD + offset
        top = legend_top + row * line_h
        if index is None:
            legend.append(_text(x, top + FONT, text, cls="chart-total"))
            continue
        legend.append(
            _el(
                "rect",
                {
                    "x": x,
                    "y": top + 2.0,
                    "width": float(SWATCH),
                    "height": float(SWATCH),
                    "fill": SEGMENT_COLOURS[index % len(SEGMENT_COLOURS)],
                },
            )
        )
        legend.append(_text(x + SWATCH + 6, top + FONT, text, cls="chart-entry"))
    body.append(_el("g", {"class": "chart-legend"}, *legend))
    return _svg("dist", prefix, width, height, title, description, "".join(body))
