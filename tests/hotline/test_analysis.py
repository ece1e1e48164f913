"""Hotspots, recurring problems and the sentiment index, on tickets written straight into the database.

The clock stands at Monday 2026-03-02 17:00 in Beijing; the last complete ISO week is 2026-W09 (23 February to
1 March) and its baseline the 8 weeks from 29 December 2025.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tongban.core.clock import FixedClock
from tongban.core.errors import InvalidInput
from tongban.hotline import analysis, synthetic
from tongban.hotline.models import Snapshot, Ticket
from tongban.hotline.vocab import CHINA

WEEK = "2026-W09"
WEEK_START = dt.date(2026, 2, 23)
#: A grid cell in Chaoyang (39.9225, 116.4875).
CELL = "g:7984:23297"
WATER = "城乡建设/供水排水/停水"
NOISE = "环境保护/噪声污染/施工噪音"
ROADS = "城乡建设/市政设施/道路维修"
LIGHTS = "城乡建设/市政设施/路灯照明"

_seq = iter(range(1, 10**9))


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=CHINA)


def ticket(
    day: dt.date,
    *,
    region: str | None = "110105",
    path: str = ROADS,
    place: str = "",
    status: str = "closed",
    satisfaction: int | None = None,
    resolved: bool | None = None,
    hour: int = 10,
) -> Ticket:
    created = at(day, hour)
    return Ticket(
        ref=f"T{next(_seq):09d}",
        channel="phone",
        body="测试用的诉求",
        region_code=region,
        place_key=place,
        category_path=path,
        status=status,
        satisfaction=satisfaction,
        resolved=resolved,
        created_at=created,
        updated_at=created,
    )


def add(session: Session, tickets: Iterable[Ticket]) -> None:
    session.add_all(list(tickets))
    session.flush()


def weeks_back(n: int) -> dt.date:
    """The Monday ``n`` weeks before the analysed week (0: the week itself)."""
    return WEEK_START - dt.timedelta(weeks=n)


CELLS = [(r, p) for r in ("110101", "110105", "110108") for p in (WATER, NOISE, ROADS)]


def flat(session: Session, per_week: int = 10, weeks: int = 9) -> None:
    """Every district × topic cell gets ``per_week`` tickets in each of the last ``weeks`` weeks, spread
    over the days, each cell at a place of its own."""
    rows = []
    for w in range(weeks):
        monday = weeks_back(w)
        for c, (region, path) in enumerate(CELLS):
            rows += [
                ticket(
                    monday + dt.timedelta(days=i % 7), region=region, path=path, place=f"a:路{c}", hour=8 + i
                )
                for i in range(per_week)
            ]
    add(session, rows)


# --- periods -----------------------------------------------------------------------------------------------


def test_periods_parse_to_city_days_and_bad_ones_are_invalid_input() -> None:
    week = analysis.parse_period("2026-w09")
    assert (week.text, week.granularity, week.first, week.end) == (
        "2026-W09",
        "week",
        WEEK_START,
        dt.date(2026, 3, 2),
    )
    assert week.start_utc == dt.datetime(2026, 2, 22, 16, 0, tzinfo=dt.UTC)
    month = analysis.parse_period("2024-02")
    assert (month.first, month.end, month.days) == (dt.date(2024, 2, 1), dt.date(2024, 3, 1), 29)
    assert month.shifted(-2).text == "2023-12"
    assert analysis.parse_period("2026-03-01").shifted(-1).text == "2026-02-28"
    assert analysis.parse_period("2021-W01").shifted(-1).text == "2020-W53"
    for bad in ("", "2026", "2026-13", "2026-02-30", "2026-W54", "2025-W53", "2026-W9", "26-02", "x" * 30):
        with pytest.raises(InvalidInput):
            analysis.parse_period(bad)


def test_default_period_is_the_last_complete_one(clock: FixedClock) -> None:
    assert analysis.default_period(clock) == WEEK
    assert analysis.default_period(clock, "day") == "2026-03-01"
    assert analysis.default_period(clock, "month") == "2026-02"


def test_periods_not_begun_or_without_baseline_are_refused(session: Session, clock: FixedClock) -> None:
    add(session, [ticket(WEEK_START)])
    with pytest.raises(InvalidInput, match="not begun"):
        analysis.run_hotspots(session, period="2026-W11", clock=clock)
    with pytest.raises(InvalidInput, match="no baseline"):
        analysis.run_index(session, period=WEEK, clock=clock)
    with pytest.raises(InvalidInput):
        analysis.run_hotspots(session, period="2026-13", clock=clock)


# --- statistics ---------------------------------------------------------------------------------------------


def test_statistics_on_known_values() -> None:
    p = analysis.upper_tail(np.array([3.0, 0.0, 5.0]), np.array([1.0, 2.0, 5.0]), np.array([1.0, 1.0, 1.0]))
    assert p[0] == pytest.approx(1 - math.exp(-1) * (1 + 1 + 0.5))
    assert p[1] == 1.0
    # Overdispersion widens the tail: the same count is less surprising.
    wide = analysis.upper_tail(np.array([10.0]), np.array([4.0]), np.array([3.0]))
    narrow = analysis.upper_tail(np.array([10.0]), np.array([4.0]), np.array([1.0]))
    assert wide[0] > narrow[0]
    q = analysis.benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5]))
    assert q == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert analysis.shrunk(1, 1, 0.1, 20) == pytest.approx(3 / 21)
    assert analysis.shrunk(0, 0, 0.1, 20) == pytest.approx(0.1)
    assert analysis.shrunk(3, 4, None, 20) == pytest.approx(0.75)


# --- hotspots -----------------------------------------------------------------------------------------------


def test_a_planted_burst_is_detected_and_ranked_first(session: Session, clock: FixedClock) -> None:
    flat(session)
    # 30 more water outages in Chaoyang in the analysed week, at one grid cell.
    add(
        session,
        [
            ticket(WEEK_START + dt.timedelta(days=2 + i % 3), path=WATER, place=CELL, hour=7 + i % 12)
            for i in range(30)
        ],
    )
    snap = analysis.run_hotspots(session, period=WEEK, clock=clock)
    families = snap.result["families"]
    top = families["region_topic"]["top"]
    assert top[0]["key"] == "110105|城乡建设/供水排水"
    assert top[0]["flag"] == "burst"
    assert top[0]["count"] == 40
    assert top[0]["expected"] == pytest.approx((8 * 10 + 0.5) / 8, abs=1e-3)
    assert top[0]["series"] == [10] * 8 + [40]
    assert all(i["flag"] == "" for i in top[1:]), "the flat cells are not flagged"
    assert families["region_topic"]["bursts"] == 1
    assert families["topic2"]["top"][0]["key"] == "城乡建设/供水排水"
    assert families["topic2"]["top"][0]["flag"] == "burst"
    assert families["region"]["top"][0]["key"] == "110105"
    place = families["place"]["top"][0]
    assert place["key"] == CELL
    assert place["flag"] == "burst"
    assert place["region"] == "110105"
    assert place["topics"] == [{"topic": "城乡建设/供水排水", "count": 30}]
    assert place["place"] == "39.9225, 116.4875"
    assert snap.params["window"][0] == "2026-W01"
    assert snap.params["window"][-1] == WEEK
    assert snap.params["baseline_used"] == 8
    assert snap.result["city"]["series"] == [90] * 8 + [120]


def test_a_flat_series_is_not_flagged(session: Session, clock: FixedClock) -> None:
    flat(session)
    snap = analysis.run_hotspots(session, period=WEEK, clock=clock)
    for name, family in snap.result["families"].items():
        assert family["tested"] > 0, name
        assert family["bursts"] == 0, name
        assert family["rising"] == 0, name
    ratios = {i["ratio"] for i in snap.result["families"]["region_topic"]["top"]}
    assert ratios == {round(10 / 10.0625, 3)}


def test_a_steady_rise_is_flagged_rising_not_burst(session: Session, clock: FixedClock) -> None:
    rows = []
    for w, n in enumerate([40, 40, 40, 40, 20, 20, 20, 20, 20]):  # newest first: up a step a month ago
        rows += [
            ticket(weeks_back(w) + dt.timedelta(days=i % 7), path=NOISE, hour=8 + i % 10) for i in range(n)
        ]
    add(session, rows)
    item = analysis.run_hotspots(session, period=WEEK, clock=clock).result["families"]["topic2"]["top"][0]
    assert item["flag"] == "rising"
    assert item["trend"] > 1.2
    assert item["trend_z"] >= 3


def test_days_are_compared_with_the_weekday_pattern(session: Session, clock: FixedClock) -> None:
    rows = []
    for d in range(29):
        day = dt.date(2026, 3, 1) - dt.timedelta(days=d)
        n = 20 if day.weekday() == 0 else 4
        rows += [ticket(day, path=NOISE, place="a:街", hour=8 + i % 12) for i in range(n)]
    add(session, rows)
    monday = analysis.run_hotspots(session, period="2026-02-23", clock=clock)
    item = monday.result["families"]["topic1"]["top"][0]
    assert item["count"] == 20
    assert item["expected"] == pytest.approx(20, rel=0.01)
    assert item["flag"] == ""
    assert monday.params["granularity"] == "day"
    assert monday.result["exposure"][-1] > 2.5  # a Monday has more calls than the mean day


def test_recurring_problems_per_place_and_level2_topic(session: Session, clock: FixedClock) -> None:
    rows = []
    # Roads, then lights (the same level 2: 市政设施) at one place, in 5 of the last 8 weeks.
    for w in (0, 1, 3, 5, 7):
        rows.append(
            ticket(weeks_back(w) + dt.timedelta(days=1), path=ROADS if w % 2 else LIGHTS, place="g:1:1")
        )
    # Another place in only 3 weeks; the same place but another topic in 2.
    rows += [ticket(weeks_back(w), path=WATER, region="110108", place="a:学院路") for w in (0, 2, 4)]
    rows += [ticket(weeks_back(w), path=NOISE, place="g:1:1") for w in (2, 4)]
    add(session, [*rows, ticket(weeks_back(8))])  # the data start before the window
    recurring = analysis.run_hotspots(session, period=WEEK, clock=clock).result["recurring"]
    assert recurring["found"] == 1
    (found,) = recurring["top"]
    assert found["key"] == "g:1:1|城乡建设/市政设施"
    assert found["weeks_with_tickets"] == 5
    assert found["tickets"] == 5
    assert found["series"] == [1, 0, 1, 0, 1, 0, 1, 1]
    assert found["region"] == "110105"
    assert (recurring["from"], recurring["to"]) == ("2026-01-05", "2026-03-01")


def test_rerun_replaces_the_snapshot_and_gives_the_same_result(session: Session, clock: FixedClock) -> None:
    flat(session)
    first = analysis.run_hotspots(session, period=WEEK, clock=clock)
    result, params = first.result, first.params
    clock.advance(dt.timedelta(hours=1))
    again = analysis.run_hotspots(session, period=WEEK, clock=clock)
    assert again.id == first.id
    assert again.result == result
    assert again.params == params
    assert again.computed_at == clock.now()
    count = session.scalar(
        select(func.count()).select_from(Snapshot).where(Snapshot.kind == "hotspots", Snapshot.period == WEEK)
    )
    assert count == 1


# --- the sentiment index ------------------------------------------------------------------------------------


def _index_data(session: Session) -> None:
    rows = []
    for w in range(1, 9):  # baseline: 10 tickets a week in each district
        for region in ("110101", "110105"):
            rows += [ticket(weeks_back(w) + dt.timedelta(days=i % 7), region=region) for i in range(10)]
    # The week: Chaoyang (110105) twice as many tickets, 10 rated (levels 1, 2 dissatisfied; 3 is not), 10
    # revisited with 1 unsolved; Dongcheng (110101) as usual and all well.
    sats = [1, 2, 3, 4, 5, 5, 5, 4, 4, 3]
    rows += [
        ticket(WEEK_START + dt.timedelta(days=i % 7), satisfaction=sats[i] if i < 10 else None,
               resolved=(i != 0) if i < 10 else None)
        for i in range(20)
    ]  # fmt: skip
    rows += [
        ticket(WEEK_START + dt.timedelta(days=i % 7), region="110101", satisfaction=5, resolved=True)
        for i in range(10)
    ]
    rows.append(ticket(WEEK_START, satisfaction=1, resolved=False, status="cancelled"))  # not counted
    add(session, rows)


def test_index_components_are_exact_on_small_data(session: Session, clock: FixedClock) -> None:
    _index_data(session)
    snap = analysis.run_index(session, period=WEEK, clock=clock)
    r = snap.result
    city, by_key = r["city"], {d["key"]: d for d in r["districts"]}
    assert (city["tickets"], city["expected"], city["volume_ratio"]) == (30, 20.0, 1.5)
    assert (city["rated"], city["dissatisfied"], city["revisited"], city["unresolved"]) == (20, 2, 20, 1)
    assert city["volume_score"] == pytest.approx(100 * (1 - math.log(1.5) / math.log(2)), abs=0.01)
    assert city["dissatisfaction_score"] == 80.0
    assert city["resolution_score"] == 90.0
    assert city["index"] == pytest.approx(0.3 * 41.5037 + 0.4 * 80 + 0.3 * 90, abs=0.01)

    cy = by_key["110105"]
    assert (cy["tickets"], cy["expected"], cy["volume_ratio"]) == (20, 10.0, 2.0)
    assert cy["volume_ratio_smoothed"] == pytest.approx((20 + 10 * 1.5) / (10 + 10))  # 1.75
    vol = 100 * (1 - math.log(1.75) / math.log(2))
    assert cy["volume_score"] == pytest.approx(vol, abs=0.01)
    assert (cy["rated"], cy["dissatisfied"], cy["dissatisfaction"]) == (10, 2, 0.2)
    assert cy["dissatisfaction_smoothed"] == pytest.approx((2 + 20 * 0.1) / 30, abs=1e-4)
    assert cy["dissatisfaction_score"] == pytest.approx(100 * (1 - 4 / 30 / 0.5), abs=0.01)
    assert (cy["revisited"], cy["unresolved"], cy["unresolved_share"]) == (10, 1, 0.1)
    assert cy["resolution_score"] == pytest.approx(100 * (1 - 2 / 30 / 0.5), abs=0.01)
    assert cy["index"] == pytest.approx(0.3 * vol + 0.4 * 73.3333 + 0.3 * 86.6667, abs=0.01)  # 61.11
    assert cy["index"] == pytest.approx(61.11, abs=0.01)
    assert cy["band"] == "watch"

    dc = by_key["110101"]
    assert dc["volume_ratio"] == 1.0
    assert dc["dissatisfaction"] == 0.0
    assert dc["index"] == pytest.approx(83.01, abs=0.01)
    assert dc["band"] == "good"
    (topic,) = r["topics"]
    assert topic["key"] == "城乡建设"
    assert topic["index"] == city["index"]
    assert {c["key"] for c in r["cells"]} == {"110101|城乡建设", "110105|城乡建设"}
    assert [s["tickets"] for s in r["series"]] == [20] * 8 + [30]
    assert snap.params["weights"] == {"volume": 0.3, "dissatisfaction": 0.4, "resolution": 0.3}
    assert snap.params["rate_prior"] == 20.0
    assert snap.params["dissatisfied_levels"] == [1, 2]


def test_index_weights_are_configurable_and_validated(session: Session, clock: FixedClock) -> None:
    _index_data(session)
    snap = analysis.run_index(session, period=WEEK, clock=clock, weights={"dissatisfaction": 2})
    assert snap.params["weights"] == {"volume": 0.0, "dissatisfaction": 1.0, "resolution": 0.0}
    for d in snap.result["districts"]:
        assert d["index"] == d["dissatisfaction_score"]
    for bad in ({"mood": 1}, {"volume": -1}, {"volume": 0}, {"volume": float("nan")}):
        with pytest.raises(InvalidInput):
            analysis.run_index(session, period=WEEK, clock=clock, weights=bad)
    with pytest.raises(InvalidInput):
        analysis.run_hotspots(session, period=WEEK, clock=clock, params={"min_count": 0})
    with pytest.raises(InvalidInput):
        analysis.run_hotspots(session, period=WEEK, clock=clock, params={"no_such": 1})


def test_small_areas_are_shrunk_toward_the_city(session: Session, clock: FixedClock) -> None:
    _index_data(session)
    # One ticket in Haidian all window long, rated very dissatisfied and unsolved.
    add(session, [ticket(WEEK_START, region="110108", satisfaction=1, resolved=False)])
    r = analysis.run_index(session, period=WEEK, clock=clock).result
    small = next(d for d in r["districts"] if d["key"] == "110108")
    city = r["city"]
    assert small["dissatisfaction"] == 1.0
    assert small["unresolved_share"] == 1.0
    d_city = city["dissatisfied"] / city["rated"]
    assert small["dissatisfaction_smoothed"] == pytest.approx((1 + 20 * d_city) / 21, abs=1e-4)
    assert small["dissatisfaction_smoothed"] < 0.2
    # No baseline: the volume ratio is unknown, and the smoothed one is the city's plus this ticket's weight.
    assert small["expected"] == 0.0
    assert small["volume_ratio"] is None
    assert small["volume_ratio_smoothed"] == pytest.approx(city["volume_ratio"] + 1 / 10, abs=1e-4)
    assert small["index"] is not None
    assert small["index"] > 30


def test_compute_needs_the_analyst_permission_and_keeps_a_history(
    session: Session, clock: FixedClock
) -> None:
    from tests.conftest import make_account
    from tongban.core.errors import Forbidden

    flat(session, weeks=12)
    analyst = make_account(session, clock, "ana.li", ["hotline_analyst"])
    operator = make_account(session, clock, "op.wu", ["hotline_operator"])
    with pytest.raises(Forbidden):
        analysis.compute(session, operator, kind="index", period=WEEK, clock=clock)
    analysis.compute(session, analyst, kind="index", period=WEEK, clock=clock, previous=2)
    history = analysis.index_history(session, analyst, period=WEEK)
    assert [p for p, _ in history] == ["2026-W07", "2026-W08", WEEK]
    assert all(v is not None for _, v in history)
    # Further back the history stops at the first week without a baseline (the data start 11 weeks back).
    analysis.compute(session, analyst, kind="index", period=WEEK, clock=clock, previous=12)
    assert len(analysis.index_history(session, analyst, period=WEEK)) == 11
    with pytest.raises(InvalidInput):
        analysis.compute(session, analyst, kind="index", period=WEEK, clock=clock, previous=13)
    with pytest.raises(InvalidInput):
        analysis.compute(session, analyst, kind="mood", period=WEEK, clock=clock)


# --- synthetic tickets --------------------------------------------------------------------------------------


def test_synthetic_tickets_are_marked_and_their_bursts_are_found(session: Session, clock: FixedClock) -> None:
    start = dt.date(2025, 12, 22)  # a Monday
    made = synthetic.generate_tickets(session, count=3000, start=start, days=70, seed=3, clock=clock)
    assert made.count == 3000
    assert made.first_ref == "S000000000001"
    assert made.last_ref == "S000000003000"
    rows = session.execute(
        select(func.count(), func.count(func.distinct(Ticket.ref)), func.min(Ticket.created_at)).where(
            Ticket.source_ref == "synthetic", Ticket.channel == "phone"
        )
    ).one()
    assert rows[0] == rows[1] == 3000
    assert rows[2] >= dt.datetime.combine(start, dt.time(), tzinfo=CHINA)
    assert len(made.bursts) == 3
    burst = made.bursts[0]
    week = analysis.period_of_day(dt.date.fromisoformat(burst["first_day"]), "week").text
    places = analysis.run_hotspots(session, period=week, clock=clock).result["families"]["place"]["top"]
    assert burst["place_key"] in {p["key"] for p in places if p["flag"] == "burst"}
    # A second batch continues the references.
    more = synthetic.generate_tickets(session, count=10, start=start, days=7, seed=4, clock=clock)
    assert more.first_ref == "S000000003001"
    assert more.bursts == []
    with pytest.raises(InvalidInput):
        synthetic.generate_tickets(session, count=10, start=dt.date(2026, 3, 1), days=7, seed=1, clock=clock)
