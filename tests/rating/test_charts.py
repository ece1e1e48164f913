"""The SVG charts: well-formed, proportional, escaped, accessible, CSP-safe and readable colours."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from importlib import resources

import pytest
from markupsafe import Markup

from tongban.core import charts
from tongban.core.charts import bar_chart, distribution_bar, line_chart, shares

NS = {"s": "http://www.w3.org/2000/svg"}
SVG = "{http://www.w3.org/2000/svg}"
DECORATIVE = {charts.BAND_FILL, charts.GRID, "#ffffff", "none"}


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def parse(markup: Markup) -> ET.Element:
    assert isinstance(markup, Markup)
    root = ET.fromstring(str(markup))  # noqa: S314 - our own output, the test is that it parses
    assert root.tag == f"{SVG}svg"
    return root


def by_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [el for el in root.iter(f"{SVG}{tag}") if cls in (el.get("class") or "").split()]


def texts(root: ET.Element) -> list[str]:
    return ["".join(el.itertext()) for el in root.iter(f"{SVG}text")]


def own_text(el: ET.Element) -> str:
    """A <text>'s shown text, without its <title> child."""
    return (el.text or "") + "".join(child.tail or "" for child in el)


# --- WCAG 2.2 contrast -----------------------------------------------------------------------------------


def luminance(colour: str) -> float:
    hex_ = colour.lstrip("#")
    assert len(hex_) == 6, colour
    channels = [int(hex_[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str = "#ffffff") -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_formula_matches_known_values() -> None:
    assert contrast("#000000") == pytest.approx(21.0)
    assert contrast("#ffffff") == pytest.approx(1.0)
    assert contrast("#767676") == pytest.approx(4.54, abs=0.01)  # the lightest grey that passes for text
    assert contrast("#777777") < 4.5


def test_palette_meets_wcag_aa() -> None:
    for text_colour in (charts.TEXT, charts.MUTED):
        assert contrast(text_colour) >= 4.5, text_colour
        # Value labels can sit on the target band's tint.
        assert contrast(text_colour, charts.BAND_FILL) >= 4.5, text_colour
    for mark in (charts.MARK, charts.BAND_EDGE):
        assert contrast(mark) >= 3.0, mark
        assert contrast(mark, charts.BAND_FILL) >= 3.0, mark
    assert len(set(charts.SEGMENT_COLOURS)) == len(charts.SEGMENT_COLOURS)
    for segment in charts.SEGMENT_COLOURS:
        # A mark on white, and the background of the white share text printed inside it.
        assert contrast(segment) >= 4.5, segment
        assert contrast(charts.ON_SEGMENT, segment) >= 4.5, segment


def test_stylesheet_colours_meet_wcag_aa() -> None:
    css = (resources.files("tongban") / "web" / "static" / "rating.css").read_text("utf-8")
    assert "url(" not in css
    assert "@import" not in css
    colours = re.findall(r"#[0-9a-fA-F]{6}\b", css)
    assert colours
    for colour in colours:
        assert contrast(colour) >= 3.0, colour
    # Link labels are text.
    link_colours = re.findall(r"\.chart-label\s*\{[^}]*fill:[^;}]*?(#[0-9a-fA-F]{6})", css)
    assert link_colours
    for colour in link_colours:
        assert contrast(colour) >= 4.5, colour


def sample_charts() -> list[Markup]:
    return [
        bar_chart(
            [("甲", 0.97), ("乙", None), ("丙", 0.5)],
            title="bars",
            description="d",
            value_format=pct,
            band=(0.9, 1.0),
            href=lambda label: f"/d/{label}",
        ),
        line_chart(
            [("2026-01", 0.9), ("2026-02", None), ("2026-03", 0.99)],
            title="line",
            description="d",
            value_format=pct,
            band=(0.95, None),
        ),
        distribution_bar(
            [(str(i), 10 * (i + 1)) for i in range(len(charts.SEGMENT_COLOURS) + 1)],
            title="dist",
            description="d",
        ),
        distribution_bar([("a", 0)], title="empty", description="d"),
    ]


def test_every_colour_drawn_is_in_the_checked_palette() -> None:
    checked_text = {charts.TEXT, charts.MUTED, charts.ON_SEGMENT}
    checked_marks = {charts.MARK, charts.BAND_EDGE, charts.MUTED, *charts.SEGMENT_COLOURS}
    for markup in sample_charts():
        root = parse(markup)
        for el in root.iter():
            tag = el.tag.removeprefix(SVG)
            for attr in ("fill", "stroke"):
                colour = el.get(attr)
                if colour is None:
                    continue
                if tag == "text":
                    if attr == "fill":
                        assert colour in checked_text, colour
                    else:
                        assert colour == "#ffffff"  # the halo under a label
                else:
                    assert colour in checked_marks | DECORATIVE, (tag, attr, colour)
        # Text of the share on a segment is white; elsewhere text is dark.
        for el in root.iter(f"{SVG}text"):
            if el.get("fill") == charts.ON_SEGMENT:
                assert "chart-share" in (el.get("class") or "")


# --- structure and accessibility -------------------------------------------------------------------------


def test_accessible_name_and_text_size() -> None:
    for markup in sample_charts():
        root = parse(markup)
        links = list(root.iter(f"{SVG}a"))
        # a picture, or (with drill-down links) a group whose links stay reachable
        assert root.get("role") == ("group" if links else "img")
        ids = {el.get("id") for el in root.iter() if el.get("id")}
        labelled = (root.get("aria-labelledby") or "").split()
        assert len(labelled) == 2
        assert set(labelled) <= ids
        title = root.find("s:title", NS)
        desc = root.find("s:desc", NS)
        assert title is not None
        assert desc is not None
        assert labelled == [title.get("id"), desc.get("id")]
        assert list(root)[:2] == [title, desc]
        for el in root.iter(f"{SVG}text"):
            assert float(el.get("font-size", "0")) >= 12
        width, height = int(root.get("width", "0")), int(root.get("height", "0"))
        assert root.get("viewBox") == f"0 0 {width} {height}"
        # Every text lies inside the drawing.
        for el in root.iter(f"{SVG}text"):
            assert 0 <= float(el.get("x", "-1")) <= width
            assert 0 <= float(el.get("y", "-1")) <= height


def test_no_inline_style_or_script() -> None:
    for markup in sample_charts():
        root = parse(markup)
        for el in root.iter():
            assert el.tag not in (f"{SVG}style", f"{SVG}script", f"{SVG}foreignObject")
            assert "style" not in el.attrib
            assert not any(name.startswith("on") for name in el.attrib)
        assert "style=" not in str(markup)
        assert "<style" not in str(markup)


def test_ids_are_unique_across_charts_and_output_is_deterministic() -> None:
    def chart(value: float) -> Markup:
        return bar_chart([("a", value)], title="Same title", description="Same", value_format=pct)

    first, second = chart(0.5), chart(0.6)
    ids_first = {el.get("id") for el in parse(first).iter() if el.get("id")}
    ids_second = {el.get("id") for el in parse(second).iter() if el.get("id")}
    assert len(ids_first) == 3
    assert len(ids_second) == 3
    assert not ids_first & ids_second
    # Different kinds with the same texts differ too.
    dist = parse(distribution_bar([("a", 1)], title="Same title", description="Same"))
    assert dist.get("id") not in ids_first
    # Same input, same output.
    assert chart(0.5) == first
    # An explicit id for two identical charts on one page.
    named = parse(
        bar_chart([("a", 0.5)], title="Same title", description="Same", value_format=pct, chart_id="q1")
    )
    assert named.get("id") == "q1"
    assert named.get("aria-labelledby") == "q1-title q1-desc"
    with pytest.raises(ValueError, match="chart_id"):
        bar_chart([], title="t", description="d", value_format=pct, chart_id='x" onload="y')


# --- bar chart -------------------------------------------------------------------------------------------


def bars(root: ET.Element) -> list[ET.Element]:
    return by_class(root, "rect", "chart-bar")


def test_bar_widths_are_proportional() -> None:
    root = parse(
        bar_chart(
            [("a", 40.0), ("b", 10.0), ("c", 30.0), ("d", 0.0)],
            title="t",
            description="d",
            value_format=lambda v: f"{v:g}",
        )
    )
    widths = [float(el.get("width", "nan")) for el in bars(root)]
    assert len(widths) == 4
    assert widths[0] > 0
    for width, value in zip(widths, (40, 10, 30, 0), strict=True):
        assert width == pytest.approx(widths[0] * value / 40, abs=0.02)
    # All bars start at the same baseline.
    assert len({el.get("x") for el in bars(root)}) == 1
    # Values are printed.
    assert {"40", "10", "30", "0"} <= set(texts(root))


def test_bar_max_value_scales_and_clamps() -> None:
    def widths(max_value: float | None) -> list[float]:
        root = parse(
            bar_chart(
                [("a", 50.0), ("b", 150.0), ("c", -5.0)],
                title="t",
                description="d",
                value_format=lambda v: f"{v:g}",
                max_value=max_value,
            )
        )
        return [float(el.get("width", "nan")) for el in bars(root)]

    full = widths(None)[1]  # the largest value fills the plot
    half, over, negative = widths(100.0)
    assert half == pytest.approx(full / 2, abs=0.02)
    assert over == pytest.approx(full, abs=0.02)  # drawn to the end, printed as it is
    assert negative == 0


def test_bar_none_values_show_a_dash_and_no_bar() -> None:
    nan = float("nan")
    root = parse(
        bar_chart(
            [("a", 1.0), ("b", None), ("c", nan), ("d", 2.0)],
            title="t",
            description="d",
            value_format=lambda v: f"{v:.1f}",
        )
    )
    assert len(bars(root)) == 2
    dashes = [el for el in by_class(root, "text", "chart-none")]
    assert [own_text(el) for el in dashes] == ["—", "—"]
    assert "nan" not in "".join(texts(root)).lower()
    rows = by_class(root, "g", "chart-row")
    assert len(rows) == 4
    for row, has_bar in zip(rows, (True, False, False, True), strict=True):
        assert bool(by_class(row, "rect", "chart-bar")) == has_bar


def test_bar_labels_are_escaped_and_long_ones_truncated() -> None:
    nasty = "A<b>&\"c'"
    long = "市场监督管理局行政审批服务科第二办事窗口" * 2
    markup = bar_chart(
        [(nasty, 1.0), (long, 2.0)],
        title='Title <script>&"',
        description="Desc <i>&",
        value_format=lambda v: f"<{v:g}>",
        href=lambda label: f"/drill?label={label}&x=1",
    )
    raw = str(markup)
    assert "<b>" not in raw
    assert "<script>" not in raw
    assert "<i>" not in raw
    assert "<1>" not in raw
    root = parse(markup)
    title = root.find("s:title", NS)
    desc = root.find("s:desc", NS)
    assert title is not None
    assert title.text == 'Title <script>&"'
    assert desc is not None
    assert desc.text == "Desc <i>&"
    labels = by_class(root, "text", "chart-label")
    assert own_text(labels[0]) == nasty
    assert {"<1>", "<2>"} <= set(texts(root))  # formatted values are escaped too
    shown = own_text(labels[1])
    assert shown.endswith("…")
    assert len(shown) < len(long)
    assert long.startswith(shown[:-1])
    hover = labels[1].find("s:title", NS)
    assert hover is not None
    assert hover.text == long
    assert labels[0].find("s:title", NS) is None  # short labels need no hover text
    links = root.findall(".//s:a", NS)
    assert [a.get("href") for a in links] == [f"/drill?label={nasty}&x=1", f"/drill?label={long}&x=1"]


def test_bar_href_wraps_each_row_in_a_link() -> None:
    rows = [("甲局", 0.9), ("乙局", None), ("丙局", 0.7)]
    root = parse(
        bar_chart(
            rows,
            title="t",
            description="d",
            value_format=pct,
            href=lambda label: f"/rating/departments/{label}",
        )
    )
    links = root.findall(".//s:a", NS)
    assert [a.get("href") for a in links] == [f"/rating/departments/{label}" for label, _ in rows]
    for link, (label, value) in zip(links, rows, strict=True):
        assert "chart-row" in (link.get("class") or "")
        assert own_text(by_class(link, "text", "chart-label")[0]) == label
        assert link.get("aria-label") == f"{label}: {pct(value) if value is not None else '—'}"
        assert by_class(link, "rect", "chart-hit")
    without = parse(bar_chart(rows, title="t", description="d", value_format=pct))
    assert without.findall(".//s:a", NS) == []


def test_bar_band_is_drawn_at_its_values_with_a_legend() -> None:
    root = parse(
        bar_chart(
            [("at low", 80.0), ("at high", 90.0), ("top", 100.0)],
            title="t",
            description="d",
            value_format=lambda v: f"{v:g} pts",
            band=(80.0, 90.0),
        )
    )
    band = by_class(root, "g", "chart-band")
    assert len(band) == 1
    shade = band[0].find("s:rect", NS)
    assert shade is not None
    assert shade.get("fill") == charts.BAND_FILL
    edges = band[0].findall("s:line", NS)
    assert len(edges) == 2
    bar_ends = [float(el.get("x", "0")) + float(el.get("width", "0")) for el in bars(root)]
    edge_x = sorted(float(el.get("x1", "0")) for el in edges)
    assert edge_x == pytest.approx(bar_ends[:2], abs=0.02)
    assert float(shade.get("x", "0")) == pytest.approx(edge_x[0], abs=0.02)
    assert float(shade.get("width", "0")) == pytest.approx(edge_x[1] - edge_x[0], abs=0.02)
    assert any("80 pts" in t and "90 pts" in t for t in texts(root))

    one_sided = parse(
        bar_chart([("a", 1.0)], title="t", description="d", value_format=pct, band=(0.95, None))
    )
    assert len(by_class(one_sided, "g", "chart-band")[0].findall("s:line", NS)) == 1
    assert any("at least 95.0%" in t for t in texts(one_sided))
    no_band = parse(bar_chart([("a", 1.0)], title="t", description="d", value_format=pct, band=(None, None)))
    assert by_class(no_band, "g", "chart-band") == []
    with pytest.raises(ValueError, match="band"):
        bar_chart([("a", 1.0)], title="t", description="d", value_format=pct, band=(2.0, 1.0))


def test_bar_size_follows_the_content() -> None:
    def size(rows: list[tuple[str, float | None]]) -> tuple[int, int]:
        root = parse(bar_chart(rows, title="t", description="d", value_format=pct))
        return int(root.get("width", "0")), int(root.get("height", "0"))

    few = size([("a", 0.5)])
    many = size([("a", 0.5)] * 10)
    wide = size([("一个较长的部门名称", 0.5)])
    assert many[1] > few[1]
    assert many[0] == few[0]
    assert wide[0] > few[0]
    capped = size([("很" * 100, 0.5)])
    assert capped[0] < few[0] + 300  # long labels are cut, not the chart stretched


def test_bar_empty_says_no_data() -> None:
    root = parse(bar_chart([], title="t", description="d", value_format=pct))
    assert "No data" in texts(root)
    assert bars(root) == []


# --- line chart ------------------------------------------------------------------------------------------

MONTHS = [f"2026-{m:02d}" for m in range(1, 9)]


def test_line_breaks_at_gaps_and_marks_every_value() -> None:
    values: list[float | None] = [0.9, 0.92, None, 0.95, None, None, 0.97, 0.99]
    root = parse(
        line_chart(list(zip(MONTHS, values, strict=True)), title="t", description="d", value_format=pct)
    )
    markers = by_class(root, "circle", "chart-marker")
    assert len(markers) == 5
    path = by_class(root, "path", "chart-line")[0].get("d", "")
    assert path.count("M") == 3  # runs: [0.9, 0.92], [0.95], [0.97, 0.99]
    assert path.count("L") == 2
    assert [own_text(el) for el in by_class(root, "text", "chart-none")] == ["—"] * 3
    assert [own_text(el) for el in by_class(root, "text", "chart-label")] == MONTHS
    shown = {own_text(el) for el in by_class(root, "text", "chart-value")}
    assert {pct(v) for v in values if v is not None} <= shown
    # Later months lie further right; higher values higher up.
    xs = [float(el.get("cx", "0")) for el in markers]
    ys = [float(el.get("cy", "0")) for el in markers]
    assert xs == sorted(xs)
    assert ys == sorted(ys, reverse=True)


def test_line_axis_range_and_band() -> None:
    root = parse(
        line_chart(
            [("2026-01", 0.0), ("2026-02", 0.5), ("2026-03", 1.0), ("2026-04", 1.5)],
            title="t",
            description="d",
            value_format=pct,
            band=(0.25, 0.75),
            y_min=0.0,
            y_max=1.0,
        )
    )
    cys = [float(el.get("cy", "0")) for el in by_class(root, "circle", "chart-marker")]
    bottom, middle, top, over = cys
    assert middle == pytest.approx((bottom + top) / 2, abs=0.02)
    assert over == pytest.approx(top, abs=0.02)  # above y_max: drawn at the edge
    assert "150.0%" in texts(root)  # … and printed as it is
    ticks = [own_text(el) for el in by_class(root, "text", "chart-tick")]
    assert ticks[0] == "0.0%"
    assert ticks[-1] == "100.0%"
    band = by_class(root, "g", "chart-band")[0]
    shade = band.find("s:rect", NS)
    assert shade is not None
    y0, h = float(shade.get("y", "0")), float(shade.get("height", "0"))
    span = bottom - top
    assert y0 == pytest.approx(top + span * 0.25, abs=0.02)
    assert h == pytest.approx(span * 0.5, abs=0.02)
    assert len(band.findall("s:line", NS)) == 2
    assert any("25.0%" in t and "75.0%" in t for t in texts(root))
    with pytest.raises(ValueError, match="y_max"):
        line_chart([("a", 1.0)], title="t", description="d", value_format=pct, y_min=1.0, y_max=1.0)


def test_line_default_axis_covers_data_and_band_with_round_ticks() -> None:
    root = parse(
        line_chart(
            [("2026-01", 3.2), ("2026-02", 4.7)],
            title="t",
            description="d",
            value_format=lambda v: f"{v:g}",
            band=(None, 6.0),
        )
    )
    ticks = [float(own_text(el)) for el in by_class(root, "text", "chart-tick")]
    assert min(ticks) <= 3.2
    assert max(ticks) >= 6.0
    assert min(ticks) >= 0
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    assert len(by_class(root, "g", "chart-band")[0].findall("s:line", NS)) == 1


def test_line_without_values_says_no_data() -> None:
    for points in ([], [("2026-01", None), ("2026-02", None)]):
        root = parse(line_chart(points, title="t", description="d", value_format=pct))
        assert "No data" in texts(root)
        assert by_class(root, "circle", "chart-marker") == []


def test_line_width_follows_points() -> None:
    def width(n: int) -> int:
        points = [(f"2026-{m:02d}", 0.5) for m in range(1, n + 1)]
        return int(parse(line_chart(points, title="t", description="d", value_format=pct)).get("width", "0"))

    assert width(12) > width(6) > 0


# --- distribution ----------------------------------------------------------------------------------------

LEVELS = ["非常满意", "满意", "基本满意", "不满意", "非常不满意"]


def share_texts(root: ET.Element) -> list[float]:
    found = []
    for el in by_class(root, "text", "chart-entry"):
        match = re.search(r"\((\d+\.\d)%\)$", own_text(el))
        assert match, own_text(el)
        found.append(float(match.group(1)))
    return found


@pytest.mark.parametrize(
    "counts",
    [[1, 1, 1, 0, 0], [812, 133, 31, 6, 2], [1, 2, 3, 4, 5], [0, 0, 7, 0, 0], [999, 1, 1, 1, 1]],
)
def test_distribution_shares_sum_to_100(counts: list[int]) -> None:
    root = parse(distribution_bar(list(zip(LEVELS, counts, strict=True)), title="t", description="d"))
    total = sum(counts)
    legend = share_texts(root)
    assert len(legend) == 5
    assert round(sum(legend), 1) == 100.0
    for share, count in zip(legend, counts, strict=True):
        assert abs(share - 100 * count / total) < 0.1  # each rounded to the nearest tenth, or next
    for el, (level, count) in zip(
        by_class(root, "text", "chart-entry"), zip(LEVELS, counts, strict=True), strict=True
    ):
        assert own_text(el).startswith(f"{level}: {count} (")
    assert f"Total: {total}" in texts(root)
    # Segments: zero counts are not drawn; widths proportional and filling the bar.
    segments = by_class(root, "rect", "chart-segment")
    drawn = [c for c in counts if c]
    assert [int(el.get("data-count", "-1")) for el in segments] == drawn
    widths = [float(el.get("width", "0")) for el in segments]
    full = sum(widths)
    for width, count in zip(widths, drawn, strict=True):
        assert width == pytest.approx(full * count / total, abs=0.02)
    xs = [float(el.get("x", "0")) for el in segments]
    for x, w, nxt in zip(xs, widths, xs[1:], strict=False):
        assert x + w == pytest.approx(nxt, abs=0.01)
    # Each segment's hover text names it.
    for el in segments:
        hover = el.find("s:title", NS)
        assert hover is not None
        assert hover.text is not None
        assert hover.text.endswith(f"({el.get('data-share')})")


def test_shares_largest_remainder() -> None:
    assert shares([1, 1, 1]) == [334, 333, 333]
    assert shares([0, 0]) == [0, 0]
    assert shares([2, 1]) == [667, 333]
    assert sum(shares([3, 7, 11, 13, 17, 19])) == 1000


def test_distribution_wide_segments_carry_their_share() -> None:
    root = parse(distribution_bar([("big", 90), ("tiny", 1), ("mid", 10)], title="t", description="d"))
    inside = [own_text(el) for el in by_class(root, "text", "chart-share")]
    assert "89.1%" in inside  # 90/101
    assert "1.0%" not in inside  # too narrow for its text; the legend has it
    assert 1.0 in share_texts(root)


def test_distribution_zero_total_says_no_data() -> None:
    root = parse(distribution_bar([(level, 0) for level in LEVELS], title="t", description="d"))
    assert "No data" in texts(root)
    assert by_class(root, "rect", "chart-segment") == []
    assert "%" not in "".join(texts(root))
    assert "No data" in texts(parse(distribution_bar([], title="t", description="d")))
    with pytest.raises(ValueError, match="negative"):
        distribution_bar([("a", -1)], title="t", description="d")


def test_legend_wraps_to_the_bar_width() -> None:
    many = [(f"Level with a long name {i}", i + 1) for i in range(8)]
    root = parse(distribution_bar(many, title="t", description="d"))
    width = int(root.get("width", "0"))
    for el in by_class(root, "text", "chart-entry"):
        assert float(el.get("x", "0")) + charts.text_width(own_text(el)) <= width
    rows = {el.get("y") for el in by_class(root, "text", "chart-entry")}
    assert len(rows) > 1


# --- translation -----------------------------------------------------------------------------------------


def test_texts_are_translated_through_gettext() -> None:
    table = {
        "No data": "暂无数据",
        "Shaded: target {low} to {high}": "阴影：目标 {low} 至 {high}",
        "{label}: {count} ({share})": "{label}：{count}（{share}）",
        "Total: {total}": "合计：{total}",
    }
    gettext: Callable[[str], str] = lambda message: table.get(message, message)  # noqa: E731
    empty = parse(distribution_bar([], title="t", description="d", gettext=gettext))
    assert "暂无数据" in texts(empty)
    dist = parse(distribution_bar([("满意", 3), ("不满意", 1)], title="t", description="d", gettext=gettext))
    assert "满意：3（75.0%）" in texts(dist)
    assert "合计：4" in texts(dist)
    bar = parse(
        bar_chart(
            [("a", 0.5)], title="t", description="d", value_format=pct, band=(0.4, 0.6), gettext=gettext
        )
    )
    assert "阴影：目标 40.0% 至 60.0%" in texts(bar)
