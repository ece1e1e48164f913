"""The analysts' pages of the hotline: hotspots (``/hotline/analysis``) and the sentiment index
(``/hotline/analysis/index``), their CSV exports, and the JSON API under ``/api/v1/hotline/analysis``.

Everything needs ``hotline:analyse``. The pages show the stored result of a period (see
:mod:`tongban.hotline.analysis`); "Compute now" (a CSRF-checked form) runs the job for the period and comes
back to the page. Periods are picked with a GET form. Every chart stands beside a table of the same
numbers; the tables are also CSV files (UTF-8 with BOM).

Two routers: :data:`router` (pages and CSV files) and :data:`api_router` (JSON).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from babel.numbers import format_decimal, format_percent
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from tongban.core import auth, charts
from tongban.core.clock import Clock
from tongban.core.errors import DomainError, InvalidInput
from tongban.core.http import ClockDep, DbSession, LanguageDep, csrf_form, posted_form, render_page, require
from tongban.core.i18n import Language
from tongban.core.messages import N_
from tongban.hotline import analysis, service
from tongban.hotline.models import Snapshot
from tongban.hotline.synthetic import DISTRICT_NAMES
from tongban.hotline.vocab import ANALYSE

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/v1/hotline/analysis", tags=["hotline"])
Analyst = Annotated[auth.Principal, Depends(require(ANALYSE))]
PeriodQuery = Annotated[str, Query(max_length=20)]

DASH = "—"
HOTSPOTS = "/hotline/analysis"
INDEX = "/hotline/analysis/index"
#: Rows of each hotspot family shown on the page (the CSV has all that were kept).
SHOWN = 20

FAMILY_TEXT = {
    "region_topic": N_("Topics in districts"),
    "topic2": N_("Topics (level 2)"),
    "topic1": N_("Topics (level 1)"),
    "region": N_("Districts"),
    "place": N_("Places"),
}
FLAG_TEXT = {"burst": N_("Burst"), "rising": N_("Rising")}
BAND_TEXT = {"good": N_("Good"), "watch": N_("Watch"), "attention": N_("Needs attention")}
GRANULARITY_TEXT = {"day": N_("Day"), "week": N_("Week"), "month": N_("Month")}
TABLES = ("city", "districts", "topics", "cells")


# --- words and numbers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Words:
    """Names of districts, topics, places, flags and bands in the page's language."""

    lang: Language
    districts: Mapping[str, tuple[str, str]]

    def district(self, code: str) -> str:
        if not code:
            return self.lang.gettext("District unknown")
        zh, en = self.districts.get(code, ("", ""))
        if self.lang.code == "en":
            return en or zh or code
        return zh or en or code

    def topic(self, key: str) -> str:
        return key.replace("/", " / ") if key else self.lang.gettext("Unclassified")

    def flag(self, flag: str) -> str:
        text = FLAG_TEXT.get(flag)
        return self.lang.gettext(text) if text else DASH

    def band(self, band: str) -> str:
        text = BAND_TEXT.get(band)
        return self.lang.gettext(text) if text else DASH

    def family(self, family: str) -> str:
        return self.lang.gettext(FAMILY_TEXT.get(family, family))

    def granularity(self, granularity: str) -> str:
        return self.lang.gettext(GRANULARITY_TEXT.get(granularity, granularity))


def district_names(session: Session) -> dict[str, tuple[str, str]]:
    """District code → (Chinese, English) name: the hotline's district units, else Beijing's."""
    names = dict(DISTRICT_NAMES)
    for u in service.units(session):
        if u.kind == "district" and u.region_code:
            names[u.region_code] = (u.name, u.name_en or names.get(u.region_code, ("", ""))[1])
    return names


@dataclass(frozen=True)
class Numbers:
    lang: Language

    def count(self, n: int | float | None) -> str:
        return DASH if n is None else format_decimal(n, "#,##0", locale=self.lang.babel)

    def decimal(self, v: float | None, pattern: str = "#,##0.0") -> str:
        if v is None or not math.isfinite(v):
            return DASH
        return format_decimal(v, pattern, locale=self.lang.babel)

    def pct(self, v: float | None) -> str:
        if v is None or not math.isfinite(v):
            return DASH
        return format_percent(v, "#,##0.0%", locale=self.lang.babel)

    def ratio(self, v: float | None) -> str:
        return DASH if v is None else "×" + self.decimal(v, "#,##0.00")

    def p(self, v: float | None) -> str:
        if v is None:
            return DASH
        if v < 1e-4:
            return "< " + format_decimal(0.0001, "0.0000", locale=self.lang.babel)
        return format_decimal(v, "0.0000", locale=self.lang.babel)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# --- the period ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Picked:
    """The period asked for: as typed, the parsed period (None when it is not valid) and the problem."""

    typed: str
    period: analysis.Period | None
    problem: str | None


def pick(raw: str, clock: Clock, lang: Language) -> Picked:
    typed = raw.strip() or analysis.default_period(clock)
    try:
        return Picked(typed, analysis.parse_period(typed), None)
    except InvalidInput as exc:
        return Picked(typed, None, f"{lang.gettext('Invalid input')}: {exc.detail}")


def _quick_links(clock: Clock, lang: Language, path: str) -> list[tuple[str, str]]:
    return [
        (lang.gettext("Yesterday"), f"{path}?period={analysis.default_period(clock, 'day')}"),
        (lang.gettext("Last week"), f"{path}?period={analysis.default_period(clock, 'week')}"),
        (lang.gettext("Last month"), f"{path}?period={analysis.default_period(clock, 'month')}"),
    ]


def _recent(session: Session, principal: auth.Principal, kind: str) -> list[str]:
    return [s.period for s in analysis.computed_periods(session, principal, kind=kind, limit=12)]


def _base_context(
    session: Session,
    principal: auth.Principal,
    clock: Clock,
    lang: Language,
    picked: Picked,
    kind: str,
    path: str,
) -> dict[str, Any]:
    return {
        "picked": picked,
        "kind": kind,
        "path": path,
        "quick": _quick_links(clock, lang, path),
        "recent": _recent(session, principal, kind),
        "granularity": Words(lang, {}).granularity(picked.period.granularity) if picked.period else "",
        "may_run": principal.can(ANALYSE),
        "max_previous": analysis.MAX_PREVIOUS,
    }


def _csv(rows: Sequence[Sequence[Any]], name: str) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return Response(
        "\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _link(path: str, **params: object) -> str:
    return f"{path}?{urlencode({k: v for k, v in params.items() if v not in (None, '')})}"


# --- hotspots -------------------------------------------------------------------------------------------


@dataclass
class HotRow:
    rank: int
    label: str
    label_lang: str | None
    district: str
    count: str
    expected: str
    ratio: str
    p: str
    q: str
    z: str
    trend: str
    flag: str
    flagged: bool
    topics: str


def _item_label(family: str, item: Mapping[str, Any], words: Words) -> tuple[str, str | None]:
    """The item in words and the language of those words (topics and roads are Chinese)."""
    key = str(item.get("key", ""))
    if family in ("topic1", "topic2"):
        return words.topic(key), "zh-Hans"
    if family == "region":
        return words.district(key), None
    if family == "region_topic":
        return words.topic(str(item.get("topic", ""))), "zh-Hans"
    return str(item.get("place") or analysis.place_label(key)), "zh-Hans" if key.startswith("a:") else None


def hot_rows(family: str, items: Sequence[Any], num: Numbers, words: Words) -> list[HotRow]:
    rows = []
    for raw in items:
        item = _dict(raw)
        label, label_lang = _item_label(family, item, words)
        topics = ", ".join(
            f"{words.topic(str(_dict(t).get('topic', '')))} ({num.count(_num(_dict(t).get('count')))})"
            for t in _list(item.get("topics"))
        )
        flag = str(item.get("flag") or "")
        rows.append(
            HotRow(
                rank=int(item.get("rank") or 0),
                label=label,
                label_lang=label_lang,
                district=words.district(str(item.get("region") or "")) if "region" in item else "",
                count=num.count(_num(item.get("count"))),
                expected=num.decimal(_num(item.get("expected"))),
                ratio=num.ratio(_num(item.get("ratio"))),
                p=num.p(_num(item.get("p"))),
                q=num.p(_num(item.get("q"))),
                z=num.decimal(_num(item.get("z")), "#,##0.00"),
                trend=num.ratio(_num(item.get("trend"))),
                flag=words.flag(flag),
                flagged=bool(flag),
                topics=topics,
            )
        )
    return rows


def _hotspot_charts(snap: Snapshot, num: Numbers, words: Words) -> dict[str, Markup]:
    lang = words.lang
    result, params = _dict(snap.result), _dict(snap.params)
    families = _dict(result.get("families"))
    top = [_dict(i) for i in _list(_dict(families.get("region_topic")).get("top"))[:10]]
    bars = [
        (
            f"{words.district(str(i.get('region', '')))} · {words.topic(str(i.get('topic', '')))}",
            _num(i.get("ratio")),
        )
        for i in top
    ]
    window = [str(w) for w in _list(params.get("window"))]
    series = [_num(v) for v in _list(_dict(result.get("city")).get("series"))]
    return {
        "ratios": charts.bar_chart(
            bars,
            title=lang.gettext("Tickets against the expected number: topics in districts"),
            description=lang.gettext(
                "The ten highest-ranked topics in districts: tickets of the period divided by the number "
                "expected from the baseline (×1.00 = as usual)."
            ),
            value_format=num.ratio,
            gettext=lang.gettext,
        ),
        "city": charts.line_chart(
            list(zip(window, series, strict=False)),
            title=lang.gettext("Tickets of the city per period"),
            description=lang.gettext("The baseline periods and, last, the period analysed."),
            value_format=lambda v: num.count(round(v)),
            y_min=0.0,
            gettext=lang.gettext,
        ),
    }


def _recurring_rows(items: Sequence[Any], num: Numbers, words: Words) -> list[dict[str, Any]]:
    rows = []
    for raw in items:
        r = _dict(raw)
        key = str(r.get("place_key", ""))
        rows.append(
            {
                "rank": int(r.get("rank") or 0),
                "place": str(r.get("place") or analysis.place_label(key)),
                "place_lang": "zh-Hans" if key.startswith("a:") else None,
                "topic": words.topic(str(r.get("topic", ""))),
                "district": words.district(str(r.get("region", ""))),
                "weeks": num.count(_num(r.get("weeks_with_tickets"))),
                "tickets": num.count(_num(r.get("tickets"))),
                "latest": num.count(_num(r.get("latest_week"))),
            }
        )
    return rows


def _hotspots_page(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    clock: Clock,
    picked: Picked,
    *,
    problem: str | None = None,
    status: int = 200,
    done: bool = False,
) -> Response:
    num, words = Numbers(lang), Words(lang, district_names(session))
    context = _base_context(session, principal, clock, lang, picked, "hotspots", HOTSPOTS)
    context.update({"problem": problem or picked.problem, "done": done, "words": words, "num": num})
    if picked.period is None:
        return render_page(request, lang, "hotline/analysis_hotspots.html", context, status=422)
    snap = analysis.snapshot(session, principal, kind="hotspots", period=picked.period.text)
    if snap is not None:
        result, params = _dict(snap.result), _dict(snap.params)
        families = _dict(result.get("families"))
        context.update(
            {
                "snap": snap,
                "params": params,
                "city": _dict(result.get("city")),
                "families": [
                    {
                        "code": code,
                        "title": words.family(code),
                        "total": int(_dict(families.get(code)).get("items") or 0),
                        "tested": int(_dict(families.get(code)).get("tested") or 0),
                        "bursts": int(_dict(families.get(code)).get("bursts") or 0),
                        "rising": int(_dict(families.get(code)).get("rising") or 0),
                        "rows": hot_rows(
                            code, _list(_dict(families.get(code)).get("top"))[:SHOWN], num, words
                        ),
                    }
                    for code in FAMILY_TEXT
                ],
                "recurring": _dict(result.get("recurring")),
                "recurring_rows": _recurring_rows(
                    _list(_dict(result.get("recurring")).get("top"))[:SHOWN], num, words
                ),
                "charts": _hotspot_charts(snap, num, words),
                "csv": _link(f"{HOTSPOTS}/hotspots.csv", period=snap.period),
                "recurring_csv": _link(f"{HOTSPOTS}/recurring.csv", period=snap.period),
            }
        )
    return render_page(request, lang, "hotline/analysis_hotspots.html", context, status=status)


@router.get(HOTSPOTS)
def hotspots_page(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Analyst,
    clock: ClockDep,
    period: PeriodQuery = "",
    done: Annotated[int, Query(ge=0, le=1)] = 0,
) -> Response:
    """Rising topics and places of a period against their baseline, and recurring problems."""
    return _hotspots_page(
        request, lang, session, principal, clock, pick(period, clock, lang), done=bool(done)
    )


HOTSPOT_CSV_HEAD = [
    "period", "family", "rank", "key", "region", "region_name", "topic", "place", "count", "expected",
    "ratio", "dispersion", "p", "q", "z", "trend", "trend_z", "flag",
]  # fmt: skip


@router.get(f"{HOTSPOTS}/hotspots.csv")
def hotspots_csv(
    session: DbSession,
    lang: LanguageDep,
    principal: Analyst,
    clock: ClockDep,
    period: PeriodQuery = "",
    family: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """The ranked items of every family (or of ``family``) as CSV; ratios and p-values as numbers."""
    picked = pick(period, clock, lang)
    if picked.period is None:
        raise InvalidInput(picked.problem or "period")
    if family and family not in analysis.FAMILIES:
        raise InvalidInput(f"family: one of {', '.join(analysis.FAMILIES)}")
    snap = analysis.require_snapshot(session, principal, kind="hotspots", period=picked.period.text)
    names = district_names(session)
    families = _dict(_dict(snap.result).get("families"))
    rows: list[list[Any]] = [HOTSPOT_CSV_HEAD]
    for code in analysis.FAMILIES:
        if family and code != family:
            continue
        for raw in _list(_dict(families.get(code)).get("top")):
            i = _dict(raw)
            region = str(i.get("region", "")) if "region" in i else ""
            rows.append(
                [
                    snap.period,
                    code,
                    i.get("rank"),
                    i.get("key"),
                    region,
                    names.get(region, ("", ""))[0] if region else "",
                    i.get("topic", ""),
                    i.get("place", ""),
                    i.get("count"),
                    i.get("expected"),
                    i.get("ratio"),
                    i.get("dispersion"),
                    i.get("p"),
                    i.get("q"),
                    i.get("z"),
                    i.get("trend"),
                    i.get("trend_z"),
                    i.get("flag", ""),
                ]
            )
    return _csv(rows, f"hotline-hotspots-{snap.period}{'-' + family if family else ''}.csv")


@router.get(f"{HOTSPOTS}/recurring.csv")
def recurring_csv(
    session: DbSession, lang: LanguageDep, principal: Analyst, clock: ClockDep, period: PeriodQuery = ""
) -> Response:
    """Recurring problems (place × level-2 topic with tickets in many of the last weeks) as CSV."""
    picked = pick(period, clock, lang)
    if picked.period is None:
        raise InvalidInput(picked.problem or "period")
    snap = analysis.require_snapshot(session, principal, kind="hotspots", period=picked.period.text)
    names = district_names(session)
    recurring = _dict(_dict(snap.result).get("recurring"))
    weeks = int(recurring.get("weeks") or 0)
    head = ["period", "rank", "place_key", "place", "region", "region_name", "topic", "weeks_with_tickets"]
    head += ["tickets", "latest_week", *(f"week_{k}" for k in range(1, weeks + 1))]
    rows: list[list[Any]] = [head]
    for raw in _list(recurring.get("top")):
        r = _dict(raw)
        region = str(r.get("region", ""))
        rows.append(
            [
                snap.period,
                r.get("rank"),
                r.get("place_key"),
                r.get("place"),
                region,
                names.get(region, ("", ""))[0],
                r.get("topic"),
                r.get("weeks_with_tickets"),
                r.get("tickets"),
                r.get("latest_week"),
                *_list(r.get("series")),
            ]
        )
    return _csv(rows, f"hotline-recurring-{snap.period}.csv")


# --- the index -------------------------------------------------------------------------------------------


@dataclass
class IndexRow:
    key: str
    label: str
    label_lang: str | None
    index: str
    band: str
    band_code: str
    tickets: str
    expected: str
    volume_ratio: str
    volume_ratio_smoothed: str
    volume_score: str
    rated: str
    dissatisfaction: str
    dissatisfaction_smoothed: str
    dissatisfaction_score: str
    revisited: str
    unresolved_share: str
    unresolved_smoothed: str
    resolution_score: str


def index_rows(
    entries: Sequence[Any], label: Any, num: Numbers, words: Words, label_lang: str | None = None
) -> list[IndexRow]:
    rows = []
    for raw in entries:
        e = _dict(raw)
        rows.append(
            IndexRow(
                key=str(e.get("key", "")),
                label=label(e),
                label_lang=label_lang,
                index=num.decimal(_num(e.get("index"))),
                band=words.band(str(e.get("band") or "")),
                band_code=str(e.get("band") or ""),
                tickets=num.count(_num(e.get("tickets"))),
                expected=num.decimal(_num(e.get("expected"))),
                volume_ratio=num.ratio(_num(e.get("volume_ratio"))),
                volume_ratio_smoothed=num.ratio(_num(e.get("volume_ratio_smoothed"))),
                volume_score=num.decimal(_num(e.get("volume_score"))),
                rated=num.count(_num(e.get("rated"))),
                dissatisfaction=num.pct(_num(e.get("dissatisfaction"))),
                dissatisfaction_smoothed=num.pct(_num(e.get("dissatisfaction_smoothed"))),
                dissatisfaction_score=num.decimal(_num(e.get("dissatisfaction_score"))),
                revisited=num.count(_num(e.get("revisited"))),
                unresolved_share=num.pct(_num(e.get("unresolved_share"))),
                unresolved_smoothed=num.pct(_num(e.get("unresolved_smoothed"))),
                resolution_score=num.decimal(_num(e.get("resolution_score"))),
            )
        )
    return rows


def _worst_first(entries: Sequence[Any]) -> list[dict[str, Any]]:
    """Lowest index first (areas needing attention on top); no index last; then by key."""
    items = [_dict(e) for e in entries]
    return sorted(
        items,
        key=lambda e: (_num(e.get("index")) is None, _num(e.get("index")) or 0.0, str(e.get("key", ""))),
    )


def _index_page(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    clock: Clock,
    picked: Picked,
    *,
    problem: str | None = None,
    status: int = 200,
    done: bool = False,
    posted: Mapping[str, str] | None = None,
) -> Response:
    num, words = Numbers(lang), Words(lang, district_names(session))
    context = _base_context(session, principal, clock, lang, picked, "index", INDEX)
    weights = dict(analysis.INDEX_DEFAULTS["weights"])
    context.update({"problem": problem or picked.problem, "done": done, "words": words, "num": num})
    if picked.period is None:
        context["weights"] = {k: (posted or {}).get(f"w_{k}", str(v)) for k, v in weights.items()}
        return render_page(request, lang, "hotline/analysis_index.html", context, status=422)
    snap = analysis.snapshot(session, principal, kind="index", period=picked.period.text)
    if snap is not None:
        result, params = _dict(snap.result), _dict(snap.params)
        weights = {k: _num(v) or 0.0 for k, v in _dict(params.get("weights")).items()} or weights
        districts = _worst_first(_list(result.get("districts")))
        topics = _worst_first(_list(result.get("topics")))
        cells = _worst_first(_list(result.get("cells")))
        history = analysis.index_history(session, principal, period=snap.period)
        series = [_dict(s) for s in _list(result.get("series"))]
        context.update(
            {
                "snap": snap,
                "params": params,
                "city_row": index_rows(
                    [_dict(result.get("city"))], lambda e: lang.gettext("The city"), num, words
                )[0],
                "district_rows": index_rows(
                    districts, lambda e: words.district(str(e.get("key"))), num, words
                ),
                "topic_rows": index_rows(
                    topics, lambda e: words.topic(str(e.get("key"))), num, words, "zh-Hans"
                ),
                "cell_rows": index_rows(
                    cells,
                    lambda e: (
                        f"{words.district(str(e.get('region', '')))} · {words.topic(str(e.get('topic', '')))}"
                    ),
                    num,
                    words,
                ),
                "charts": {
                    "districts": charts.bar_chart(
                        [
                            (words.district(str(e.get("key"))), _num(e.get("index")))
                            for e in sorted(districts, key=lambda e: str(e.get("key", "")))
                        ],
                        title=lang.gettext("Sentiment index by district"),
                        description=lang.gettext(
                            "The index of each district in the period, 0 to 100; higher is calmer and better "
                            "served. The components are in the table below."
                        ),
                        value_format=lambda v: num.decimal(v),
                        max_value=100.0,
                        band=(_num(_dict(params.get("bands")).get("good")), None),
                        gettext=lang.gettext,
                    ),
                    "history": charts.line_chart(
                        history,
                        title=lang.gettext("Sentiment index of the city over the periods computed"),
                        description=lang.gettext(
                            "The city's index in each stored period of this kind, up to the one shown."
                        ),
                        value_format=lambda v: num.decimal(v),
                        y_min=0.0,
                        y_max=100.0,
                        gettext=lang.gettext,
                    ),
                    "dissatisfaction": charts.line_chart(
                        [
                            (
                                str(s.get("period", "")),
                                (_num(s.get("dissatisfied")) or 0.0) / (_num(s.get("rated")) or 1.0)
                                if _num(s.get("rated"))
                                else None,
                            )
                            for s in series
                        ],
                        title=lang.gettext("Dissatisfied share of the city per period"),
                        description=lang.gettext(
                            "Return visits rated dissatisfied or very dissatisfied among the rated ones, for "
                            "the tickets of each period of the window."
                        ),
                        value_format=num.pct,
                        y_min=0.0,
                        gettext=lang.gettext,
                    ),
                },
                "csv": {t: _link(f"{INDEX}.csv", period=snap.period, table=t) for t in TABLES},
            }
        )
    shown = {k: (posted or {}).get(f"w_{k}", num.decimal(v, "0.###")) for k, v in weights.items()}
    context["weights"] = shown
    return render_page(request, lang, "hotline/analysis_index.html", context, status=status)


@router.get(INDEX)
def index_page(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Analyst,
    clock: ClockDep,
    period: PeriodQuery = "",
    done: Annotated[int, Query(ge=0, le=1)] = 0,
) -> Response:
    """The sentiment index of a period per district, topic and district × topic, with its components."""
    return _index_page(request, lang, session, principal, clock, pick(period, clock, lang), done=bool(done))


INDEX_CSV_FIELDS = [
    "tickets", "expected", "volume_ratio", "volume_ratio_smoothed", "volume_score", "rated", "dissatisfied",
    "dissatisfaction", "dissatisfaction_smoothed", "dissatisfaction_score", "revisited", "unresolved",
    "unresolved_share", "unresolved_smoothed", "resolution_score", "index", "band",
]  # fmt: skip


@router.get(f"{INDEX}.csv")
def index_csv(
    session: DbSession,
    lang: LanguageDep,
    principal: Analyst,
    clock: ClockDep,
    period: PeriodQuery = "",
    table: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """The index with every component as CSV: the city, the districts, the topics and the district × topic
    cells (or one ``table`` of them); shares as fractions 0–1, scores and the index 0–100."""
    picked = pick(period, clock, lang)
    if picked.period is None:
        raise InvalidInput(picked.problem or "period")
    if table and table not in TABLES:
        raise InvalidInput(f"table: one of {', '.join(TABLES)}")
    snap = analysis.require_snapshot(session, principal, kind="index", period=picked.period.text)
    names = district_names(session)
    result = _dict(snap.result)
    rows: list[list[Any]] = [["period", "table", "key", "region", "region_name", "topic", *INDEX_CSV_FIELDS]]
    for name in TABLES:
        if table and name != table:
            continue
        entries = (
            [_dict(result.get("city"))] if name == "city" else [_dict(e) for e in _list(result.get(name))]
        )
        for e in entries:
            key = str(e.get("key", ""))
            region = key if name == "districts" else str(e.get("region", ""))
            topic = key if name == "topics" else str(e.get("topic", ""))
            rows.append(
                [
                    snap.period,
                    name,
                    key,
                    region,
                    names.get(region, ("", ""))[0] if region else "",
                    topic,
                    *(e.get(f) for f in INDEX_CSV_FIELDS),
                ]
            )
    return _csv(rows, f"hotline-index-{snap.period}{'-' + table if table else ''}.csv")


# --- compute now -----------------------------------------------------------------------------------------


Posted = Annotated[FormData, Depends(posted_form)]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip()[:40] if isinstance(value, str) else ""


def _weights(posted: Mapping[str, str]) -> dict[str, float] | None:
    texts = {k: posted.get(f"w_{k}", "") for k in analysis.COMPONENTS}
    if not any(texts.values()):
        return None
    out: dict[str, float] = {}
    for k, text in texts.items():
        try:
            out[k] = float(text.replace(",", ".")) if text else 0.0
        except ValueError:
            raise InvalidInput(f"weights.{k}: a number, not {text!r}") from None
    return out


@router.post(f"{HOTSPOTS}/run", dependencies=[Depends(csrf_form)])
def run_now(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Analyst,
    clock: ClockDep,
    form: Posted,
) -> Response:
    """Compute the hotspots or the index of a period now (and optionally the periods before it), then show
    it; the page again with the reason when the period or the weights are not valid."""
    posted = {
        k: _text(form, k) for k in ("kind", "period", "previous", *(f"w_{c}" for c in analysis.COMPONENTS))
    }
    kind = posted["kind"] if posted["kind"] in analysis.KINDS else "hotspots"
    picked = pick(posted["period"], clock, lang)
    path = HOTSPOTS if kind == "hotspots" else INDEX
    try:
        if posted["kind"] not in analysis.KINDS:
            raise InvalidInput(f"kind: one of {', '.join(analysis.KINDS)}")
        if picked.period is None:
            raise InvalidInput(picked.problem or "period")
        previous_text = posted["previous"] or "0"
        if not previous_text.isdigit():
            raise InvalidInput("previous: a whole number")
        with session.begin_nested():
            analysis.compute(
                session,
                principal,
                kind=kind,
                period=picked.period.text,
                clock=clock,
                weights=_weights(posted) if kind == "index" else None,
                previous=int(previous_text),
            )
    except DomainError as exc:
        text = f"{lang.gettext(exc.title)}: {exc.detail}"
        page = _hotspots_page if kind == "hotspots" else _index_page
        if page is _index_page:
            return _index_page(
                request,
                lang,
                session,
                principal,
                clock,
                picked,
                problem=text,
                status=exc.status,
                posted=posted,
            )
        return _hotspots_page(
            request, lang, session, principal, clock, picked, problem=text, status=exc.status
        )
    assert picked.period is not None  # noqa: S101 - checked above
    return RedirectResponse(_link(path, period=picked.period.text, done=1), status_code=303)


# --- JSON API --------------------------------------------------------------------------------------------


class RunWrite(BaseModel):
    """Compute an analysis now."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["hotspots", "index"]
    #: ``YYYY-MM-DD``, ``YYYY-Www`` or ``YYYY-MM`` (city time).
    period: str = Field(min_length=7, max_length=10)
    #: The index's component weights (``volume``, ``dissatisfaction``, ``resolution``; normalised).
    weights: dict[str, float] | None = None
    #: Also compute this many periods before it (a history for the index's chart).
    previous: int = Field(default=0, ge=0, le=analysis.MAX_PREVIOUS)


class SnapshotOut(BaseModel):
    """A stored analysis: its parameters (everything needed to reproduce it) and its result."""

    kind: str
    period: str
    params: dict[str, Any]
    result: dict[str, Any]
    computed_at: dt.datetime
    seconds: float


class SnapshotSummary(BaseModel):
    kind: str
    period: str
    computed_at: dt.datetime
    seconds: float


def _out(s: Snapshot) -> SnapshotOut:
    return SnapshotOut(
        kind=s.kind,
        period=s.period,
        params=s.params,
        result=s.result,
        computed_at=s.computed_at,
        seconds=s.seconds,
    )


@api_router.get("/hotspots", response_model=SnapshotOut)
def api_hotspots(session: DbSession, principal: Analyst, period: Annotated[str, Query(max_length=20)]) -> Any:
    """The stored hotspots of ``period`` (404 when not computed: ``POST .../run``)."""
    return _out(analysis.require_snapshot(session, principal, kind="hotspots", period=period))


@api_router.get("/index", response_model=SnapshotOut)
def api_index(session: DbSession, principal: Analyst, period: Annotated[str, Query(max_length=20)]) -> Any:
    """The stored sentiment index of ``period`` (404 when not computed: ``POST .../run``)."""
    return _out(analysis.require_snapshot(session, principal, kind="index", period=period))


@api_router.get("/snapshots", response_model=list[SnapshotSummary])
def api_snapshots(
    session: DbSession,
    principal: Analyst,
    kind: Literal["hotspots", "index"],
    granularity: Literal["day", "week", "month"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    """The periods computed, newest first."""
    return [
        SnapshotSummary(kind=s.kind, period=s.period, computed_at=s.computed_at, seconds=s.seconds)
        for s in analysis.computed_periods(
            session, principal, kind=kind, granularity=granularity, limit=limit
        )
    ]


@api_router.post("/run", response_model=SnapshotOut)
def api_run(body: RunWrite, session: DbSession, principal: Analyst, clock: ClockDep) -> Any:
    """Compute the hotspots or the index of a period now, replacing a stored result; idempotent (the same
    tickets and parameters give the same result)."""
    snap = analysis.compute(
        session,
        principal,
        kind=body.kind,
        period=body.period,
        clock=clock,
        weights=body.weights,
        previous=body.previous,
    )
    return _out(snap)
