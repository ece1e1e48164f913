"""Hotspots, trends and the city sentiment index (民情指数) of the hotline.

Two jobs, each storing one :class:`~tongban.hotline.models.Snapshot` per period (run again: replaced):

* :func:`run_hotspots` finds **rising topics and places**: the tickets of a period per level-1 topic,
  level-2 topic, district, district × level-2 topic and place (a ~500 m grid cell or a road) against a
  baseline of the preceding periods (28 days, 8 weeks or 6 months), with a negative-binomial upper-tail
  p-value, Benjamini–Hochberg false-discovery control and an EWMA trend; and **recurring problems**: the
  same place × level-2 topic with tickets in at least 4 of the last 8 weeks.
* :func:`run_index` computes the **sentiment index** (0–100, higher = calmer and better served) per
  district, per level-1 topic, per district × topic and for the city, from three components shown beside
  it: volume against the area's own baseline, dissatisfaction on the return visit and unresolved tickets,
  small areas shrunk toward the city's value.

The database does the heavy lifting: one grouped aggregate per question over the tickets of the window
(``repository`` ``# --- analysis ---``), the same SQL on SQLite and PostgreSQL; the statistics run in numpy on
the aggregated counts. Every parameter is stored in the snapshot's ``params``: the same tickets and
parameters give the same result. The method, the formulas and how to reproduce a published number are in
``docs/hotline-index.md``.

Periods are the city's (UTC+8): ``YYYY-MM-DD`` a day, ``YYYY-Www`` an ISO week, ``YYYY-MM`` a month.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from tongban.core import audit
from tongban.core.auth import Principal
from tongban.core.clock import Clock
from tongban.core.errors import InvalidInput, NotFound
from tongban.hotline import repository as repo
from tongban.hotline.models import Snapshot
from tongban.hotline.vocab import ANALYSE, CHINA

#: Version of the method; stored in every snapshot's params.
METHOD_VERSION = 1
KINDS = ("hotspots", "index")
GRANULARITIES = ("day", "week", "month")
#: Length of a period's text by granularity (also how stored snapshots are told apart).
PERIOD_LENGTH = {"day": 10, "week": 8, "month": 7}

Floats = NDArray[np.float64]

# --- periods ---------------------------------------------------------------------------------------------

_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-[Ww](\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEARS = (1970, 9998)


def _city_start(day: dt.date) -> dt.datetime:
    """The first instant of a city day, in UTC."""
    return dt.datetime.combine(day, dt.time(), tzinfo=CHINA).astimezone(dt.UTC)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    """A day, an ISO week or a month of the city: ``first`` to ``end`` (exclusive), city days."""

    text: str
    granularity: str
    first: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.first).days

    @property
    def start_utc(self) -> dt.datetime:
        return _city_start(self.first)

    @property
    def end_utc(self) -> dt.datetime:
        return _city_start(self.end)

    def shifted(self, n: int) -> Period:
        """The period ``n`` periods later (earlier when negative)."""
        if self.granularity == "day":
            return period_of_day(self.first + dt.timedelta(days=n), "day")
        if self.granularity == "week":
            return period_of_day(self.first + dt.timedelta(weeks=n), "week")
        return period_of_day(_add_months(self.first, n), "month")


def period_of_day(day: dt.date, granularity: str) -> Period:
    """The period of ``granularity`` containing the city day ``day``."""
    if granularity == "day":
        return Period(day.isoformat(), "day", day, day + dt.timedelta(days=1))
    if granularity == "week":
        year, week, weekday = day.isocalendar()
        first = day - dt.timedelta(days=weekday - 1)
        return Period(f"{year:04d}-W{week:02d}", "week", first, first + dt.timedelta(days=7))
    if granularity == "month":
        first = day.replace(day=1)
        return Period(f"{day.year:04d}-{day.month:02d}", "month", first, _add_months(first, 1))
    raise InvalidInput(f"granularity: one of {', '.join(GRANULARITIES)} (not {granularity!r})")


def parse_period(text: str) -> Period:
    """``YYYY-MM-DD`` (a day), ``YYYY-Www`` (an ISO week) or ``YYYY-MM`` (a month) of the city; anything else
    is :class:`InvalidInput`."""
    raw = (text or "").strip()
    try:
        if m := _DAY.match(raw):
            day = dt.date(int(m[1]), int(m[2]), int(m[3]))
            granularity = "day"
        elif m := _WEEK.match(raw):
            day = dt.date.fromisocalendar(int(m[1]), int(m[2]), 1)
            granularity = "week"
        elif m := _MONTH.match(raw):
            day = dt.date(int(m[1]), int(m[2]), 1)
            granularity = "month"
        else:
            raise ValueError("not a period")
    except ValueError:
        raise InvalidInput(
            f"period: a day (YYYY-MM-DD), an ISO week (YYYY-Www) or a month (YYYY-MM), not {raw[:20]!r}"
        ) from None
    if not _YEARS[0] <= day.year <= _YEARS[1]:
        raise InvalidInput(f"period: a year from {_YEARS[0]} to {_YEARS[1]}")
    return period_of_day(day, granularity)


def today(clock: Clock) -> dt.date:
    return clock.now().astimezone(CHINA).date()


def default_period(clock: Clock, granularity: str = "week") -> str:
    """The last complete period of ``granularity`` (yesterday, last week, last month)."""
    return period_of_day(today(clock), granularity).shifted(-1).text


def _window(session: Session, period: Period, baseline: int) -> list[Period]:
    """The ``baseline`` periods before ``period``, then ``period``; baseline periods that begin before the
    first ticket was received (before the data starts) are left out."""
    periods = [period.shifted(k) for k in range(-baseline, 1)]
    first = repo.analysis_first_received(session)
    if first is None:
        return periods
    start = first.astimezone(CHINA).date()
    kept = [p for p in periods[:-1] if p.first >= start]
    if not kept:
        raise InvalidInput(
            f"period {period.text}: no baseline before it (the tickets start on {start.isoformat()}); "
            "analyse a later period"
        )
    return [*kept, period]


def _bounds(periods: Sequence[Period]) -> list[dt.datetime]:
    return [p.start_utc for p in periods] + [periods[-1].end_utc]


def _elapsed(period: Period, clock: Clock) -> float:
    """The share of the period that has passed (1 for a past period); a period not begun is refused."""
    now = clock.now()
    if now < period.start_utc:
        raise InvalidInput(f"period {period.text} has not begun")
    if now >= period.end_utc:
        return 1.0
    span = (period.end_utc - period.start_utc).total_seconds()
    return max((now - period.start_utc).total_seconds() / span, 1e-3)


# --- parameters ------------------------------------------------------------------------------------------

#: Baseline periods before the analysed one, by granularity.
BASELINE = {"day": 28, "week": 8, "month": 6}

HOTSPOT_DEFAULTS: dict[str, Any] = {
    "baseline": BASELINE,
    #: Only items with at least this many tickets in the period are tested (and can be flagged).
    "min_count": 5,
    #: A burst needs at least this ratio of tickets to the expected count ...
    "min_ratio": 1.5,
    #: ... and a Benjamini–Hochberg adjusted p-value (q) at most this, within its family.
    "fdr": 0.05,
    #: Added to each item's baseline total, so an item never seen before has a small positive rate.
    "pseudo_count": 0.5,
    #: Upper bound of the estimated overdispersion (variance / mean).
    "dispersion_max": 10.0,
    #: Weight of the newest period in the EWMA trend; ``rising`` needs its z at least ``trend_z`` and the
    #: smoothed level at least ``trend_min_ratio`` times the window's mean.
    "trend_weight": 0.3,
    "trend_z": 3.0,
    "trend_min_ratio": 1.2,
    #: Recurring problems: tickets at the same place × level-2 topic in at least ``recurring_min_weeks``
    #: of the last ``recurring_weeks`` weeks (7-day blocks ending with the period).
    "recurring_weeks": 8,
    "recurring_min_weeks": 4,
    #: Items kept per family (ranked), recurring problems kept.
    "top": 50,
    "recurring_top": 100,
    #: Days: scale each day's expectation by the city's weekday pattern in the baseline.
    "weekday_adjust": True,
    "excluded_statuses": ["cancelled"],
}

INDEX_DEFAULTS: dict[str, Any] = {
    "baseline": BASELINE,
    #: Weights of the components (normalised to sum to 1).
    "weights": {"volume": 0.3, "dissatisfaction": 0.4, "resolution": 0.3},
    #: Volume ratio (tickets / expected) at which the volume score reaches 0 (log scale from 1 to it).
    "volume_cap": 2.0,
    #: Share dissatisfied (resp. unresolved) at which that score reaches 0 (linear from 0).
    "dissatisfaction_cap": 0.5,
    "unresolved_cap": 0.5,
    #: Shrinkage toward the city: pseudo expected tickets for the volume ratio, pseudo return visits for
    #: the two shares.
    "volume_prior": 10.0,
    "rate_prior": 20.0,
    #: Satisfaction levels counted as dissatisfied (不满意, 非常不满意).
    "dissatisfied_levels": [1, 2],
    #: An index at least ``good`` is "good", at least ``watch`` "watch", else "attention".
    "bands": {"good": 80.0, "watch": 60.0},
    "weekday_adjust": True,
    "excluded_statuses": ["cancelled"],
}

COMPONENTS = ("volume", "dissatisfaction", "resolution")


def _number(params: Mapping[str, Any], name: str, low: float, high: float, *, whole: bool = False) -> None:
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{name}: a number")
    if whole and int(value) != value:
        raise InvalidInput(f"{name}: a whole number")
    if not low <= value <= high:
        raise InvalidInput(f"{name}: from {low:g} to {high:g}")


def _baseline_of(params: Mapping[str, Any], granularity: str) -> int:
    raw = params["baseline"]
    value = raw.get(granularity) if isinstance(raw, Mapping) else raw
    if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 366:
        raise InvalidInput("baseline: a whole number of periods from 2 to 366")
    return int(value)


def _merge(defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in (overrides or {}).items():
        if key not in defaults:
            raise InvalidInput(f"unknown parameter {key!r}; known: {', '.join(sorted(defaults))}")
        merged[key] = value
    statuses = merged["excluded_statuses"]
    if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses):
        raise InvalidInput("excluded_statuses: a list of statuses")
    if not isinstance(merged["weekday_adjust"], bool):
        raise InvalidInput("weekday_adjust: true or false")
    return merged


def hotspot_params(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The defaults with ``overrides`` applied, validated."""
    p = _merge(HOTSPOT_DEFAULTS, overrides)
    _number(p, "min_count", 1, 1_000_000, whole=True)
    _number(p, "min_ratio", 1, 1000)
    _number(p, "fdr", 1e-9, 1)
    _number(p, "pseudo_count", 1e-6, 100)
    _number(p, "dispersion_max", 1, 1000)
    _number(p, "trend_weight", 0.01, 1)
    _number(p, "trend_z", 0, 100)
    _number(p, "trend_min_ratio", 1, 1000)
    _number(p, "recurring_weeks", 2, 52, whole=True)
    _number(p, "recurring_min_weeks", 2, 52, whole=True)
    _number(p, "top", 1, 1000, whole=True)
    _number(p, "recurring_top", 1, 10_000, whole=True)
    if p["recurring_min_weeks"] > p["recurring_weeks"]:
        raise InvalidInput("recurring_min_weeks: at most recurring_weeks")
    return p


def normalise_weights(weights: Mapping[str, Any] | None) -> dict[str, float]:
    """The component weights (``volume``, ``dissatisfaction``, ``resolution``; a left-out one weighs 0),
    non-negative, normalised to sum to 1."""
    raw = dict(INDEX_DEFAULTS["weights"]) if weights is None else dict(weights)
    unknown = sorted(set(raw) - set(COMPONENTS))
    if unknown:
        raise InvalidInput(f"weights: unknown component {unknown[0]!r}; use {', '.join(COMPONENTS)}")
    values: dict[str, float] = {}
    for name in COMPONENTS:
        value = raw.get(name, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidInput(f"weights.{name}: a number")
        if value < 0:
            raise InvalidInput(f"weights.{name}: not negative")
        values[name] = float(value)
    total = sum(values.values())
    if total <= 0:
        raise InvalidInput("weights: at least one component must weigh more than 0")
    return {k: round(v / total, 6) for k, v in values.items()}


def index_params(
    overrides: Mapping[str, Any] | None = None, weights: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    p = _merge(INDEX_DEFAULTS, overrides)
    p["weights"] = normalise_weights(weights if weights is not None else p["weights"])
    _number(p, "volume_cap", 1.01, 1000)
    _number(p, "dissatisfaction_cap", 0.01, 1)
    _number(p, "unresolved_cap", 0.01, 1)
    _number(p, "volume_prior", 0, 1e6)
    _number(p, "rate_prior", 0, 1e6)
    levels = p["dissatisfied_levels"]
    if not isinstance(levels, list) or not all(isinstance(v, int) and 1 <= v <= 5 for v in levels):
        raise InvalidInput("dissatisfied_levels: satisfaction levels from 1 to 5")
    bands = p["bands"]
    if (
        not isinstance(bands, Mapping)
        or set(bands) != {"good", "watch"}
        or not all(isinstance(v, int | float) and 0 <= v <= 100 for v in bands.values())
        or bands["watch"] > bands["good"]
    ):
        raise InvalidInput("bands: {'good': x, 'watch': y} with 0 <= y <= x <= 100")
    return p


# --- statistics on counts ----------------------------------------------------------------------------------


def benjamini_hochberg(p: Floats) -> Floats:
    """Benjamini–Hochberg adjusted p-values (q-values) of ``p``."""
    m = len(p)
    if m == 0:
        return np.zeros(0)
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(adjusted, 1.0)
    return q


def upper_tail(count: Floats, mean: Floats, dispersion: Floats) -> Floats:
    """P(X >= count) for X negative binomial with this mean and variance ``dispersion × mean`` (Poisson
    where the dispersion is 1)."""
    from scipy import stats  # type: ignore[import-untyped]

    k = count - 1
    poisson = stats.poisson.sf(k, mean)
    over = dispersion > 1 + 1e-9
    size = np.where(over, mean / np.maximum(dispersion - 1, 1e-12), 1.0)
    negbin = stats.nbinom.sf(k, size, 1 / dispersion)
    p = np.where(over, negbin, poisson)
    return np.asarray(np.clip(np.where(count <= 0, 1.0, p), 0.0, 1.0), dtype=np.float64)


def z_of(p: Floats) -> Floats:
    """The standard normal quantile with upper tail ``p`` (a readable scale of surprise), -10 to 37."""
    from scipy import special

    return np.asarray(np.clip(-special.ndtri(np.clip(p, 1e-300, 1.0)), -10.0, 37.0), dtype=np.float64)


@dataclass
class Bursts:
    """Per item (rows of the counts): expected count, its ratio, dispersion, p, z, EWMA trend and its z."""

    expected: Floats
    ratio: Floats
    dispersion: Floats
    p: Floats
    z: Floats
    trend: Floats
    trend_z: Floats


def burst_statistics(
    counts: Floats,
    exposure: Floats,
    *,
    pseudo_count: float,
    dispersion_max: float,
    trend_weight: float,
) -> Bursts:
    """Compare the last column of ``counts`` (items × periods) with the columns before it.

    ``exposure[b]`` is how many tickets period ``b`` would get at rate 1 (1 a week, the weekday factor of a
    day, the days of a month, times the elapsed share of a running period). Per item the baseline rate is
    ``λ = (Σ baseline counts + pseudo_count) / Σ baseline exposure``, the expected count ``μ = λ ×
    exposure[current]``. The dispersion ``φ`` (variance / mean) comes from the successive differences of the
    baseline rates ``y = count / exposure`` (von Neumann), so that a steady trend is not taken for noise:
    ``φ = mean over b of (y_b - y_{b-1})² / (λ (1/e_b + 1/e_{b-1}))``, between 1 and ``dispersion_max``
    (1 with a single baseline period). ``p = P(X >= count)`` for X negative binomial with mean μ and
    variance φμ (Poisson when φ is 1). The trend is an EWMA of the rates ``count / exposure`` over the window,
    started at λ, divided by λ; its z divides ``EWMA - λ`` by its standard deviation under a constant rate.
    """
    periods = counts.shape[1]
    base, current = counts[:, :-1], counts[:, -1]
    e_base, e_current = exposure[:-1], float(exposure[-1])
    lam = (base.sum(axis=1) + pseudo_count) / float(e_base.sum())
    expected = lam * e_current
    if periods > 2:
        y = base / e_base[None, :]
        steps = (np.diff(y, axis=1) ** 2) / (lam[:, None] * (1 / e_base[1:] + 1 / e_base[:-1])[None, :])
        dispersion = np.clip(steps.mean(axis=1), 1.0, dispersion_max)
    else:
        dispersion = np.ones(len(counts))
    p = upper_tail(current, expected, dispersion)
    # EWMA of the rates, started at λ; weights of the periods b = 0..B are a(1-a)^(B-b).
    a = trend_weight
    powers = (1 - a) ** np.arange(periods - 1, -1, -1, dtype=np.float64)
    weights = a * powers
    rates = counts / exposure[None, :]
    smoothed = rates @ weights + lam * (1 - a) ** periods
    variance = (dispersion * lam)[:, None] * (weights**2 / exposure)[None, :]
    spread = np.sqrt(variance.sum(axis=1))
    return Bursts(
        expected=expected,
        ratio=current / expected,
        dispersion=dispersion,
        p=p,
        z=z_of(p),
        trend=smoothed / lam,
        trend_z=(smoothed - lam) / spread,
    )


def weekday_factors(periods: Sequence[Period], city: Floats) -> Floats:
    """Days: each day's share of the city's mean daily volume by weekday, estimated on the baseline days
    (1 where a weekday has no baseline day or no ticket)."""
    base = city[:-1]
    mean = float(base.mean()) if len(base) else 0.0
    factors = np.ones(len(periods))
    if mean <= 0:
        return factors
    weekdays = np.array([p.first.weekday() for p in periods])
    for w in range(7):
        seen = base[weekdays[:-1] == w]
        if len(seen) and seen.mean() > 0:
            factors[weekdays == w] = float(seen.mean()) / mean
    return factors


def _exposure(periods: Sequence[Period], city: Floats, *, weekday_adjust: bool, elapsed: float) -> Floats:
    granularity = periods[-1].granularity
    if granularity == "day" and weekday_adjust:
        exposure = weekday_factors(periods, city)
    elif granularity == "month":
        exposure = np.array([float(p.days) for p in periods])
    else:
        exposure = np.ones(len(periods))
    exposure[-1] *= elapsed
    return exposure


def shrunk(events: float, trials: float, prior: float | None, strength: float) -> float | None:
    """``(events + strength × prior) / (trials + strength)``: the share pulled toward ``prior`` the fewer the
    trials (a beta prior of ``strength`` pseudo trials); None without a prior or any trial."""
    if prior is None:
        return None if trials <= 0 else events / trials
    if trials + strength <= 0:
        return prior
    return (events + strength * prior) / (trials + strength)


# --- the window ------------------------------------------------------------------------------------------


def level1(path: str) -> str:
    return path.split("/", 1)[0] if path else ""


def level2(path: str) -> str:
    return "/".join(path.split("/")[:2]) if path else ""


def place_label(key: str) -> str:
    """A place key in words: the grid cell's centre (latitude, longitude) or the road."""
    if key.startswith("g:"):
        try:
            _, lat, lon = key.split(":")
            return f"{(int(lat) + 0.5) * 0.005:.4f}, {(int(lon) + 0.5) * 0.005:.4f}"
        except ValueError:
            return key
    return key.removeprefix("a:")


def _f(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


@dataclass
class _Window:
    """The grouped counts of a window, as arrays over the aggregated rows (not over tickets)."""

    periods: list[Period]
    regions: list[str]
    paths: list[str]
    region: NDArray[np.int64]
    path: NDArray[np.int64]
    period: NDArray[np.int64]
    values: NDArray[np.int64]  # rows × (tickets, rated, dissatisfied, revisited, unresolved)

    def matrix(self, keys: NDArray[np.int64], size: int, column: int = 0) -> Floats:
        out = np.zeros((size, len(self.periods)))
        np.add.at(out, (keys, self.period), self.values[:, column])
        return out

    def city(self, column: int = 0) -> Floats:
        row: Floats = self.matrix(np.zeros(len(self.region), dtype=np.int64), 1, column)[0]
        return row


def _load_window(
    session: Session, periods: list[Period], params: Mapping[str, Any], levels: Sequence[int]
) -> _Window:
    rows = repo.analysis_window_counts(
        session,
        _bounds(periods),
        excluded_statuses=params["excluded_statuses"],
        dissatisfied_levels=levels,
    )
    regions = sorted({r.region for r in rows})
    paths = sorted({r.path for r in rows})
    region_at = {k: i for i, k in enumerate(regions)}
    path_at = {k: i for i, k in enumerate(paths)}
    return _Window(
        periods=periods,
        regions=regions,
        paths=paths,
        region=np.array([region_at[r.region] for r in rows], dtype=np.int64),
        path=np.array([path_at[r.path] for r in rows], dtype=np.int64),
        period=np.array([r.period for r in rows], dtype=np.int64),
        values=np.array(
            [(r.tickets, r.rated, r.dissatisfied, r.revisited, r.unresolved) for r in rows], dtype=np.int64
        ).reshape(-1, 5),
    )


def _codes(labels: Sequence[str]) -> tuple[list[str], NDArray[np.int64]]:
    """The distinct labels (sorted) and each label's index among them."""
    keys = sorted(set(labels))
    at = {k: i for i, k in enumerate(keys)}
    return keys, np.array([at[label] for label in labels], dtype=np.int64)


# --- hotspots --------------------------------------------------------------------------------------------

#: Families of hotspot items: what an item is.
FAMILIES = ("topic1", "topic2", "region", "region_topic", "place")


def _rank(
    keys: Sequence[str],
    counts: Floats,
    exposure: Floats,
    params: Mapping[str, Any],
    describe: Any,
) -> dict[str, Any]:
    """Test the items with at least ``min_count`` tickets in the period and rank them by z."""
    current = counts[:, -1] if len(keys) else np.zeros(0)
    tested = np.flatnonzero(current >= params["min_count"])
    out: dict[str, Any] = {
        "items": len(keys),
        "tested": len(tested),
        "bursts": 0,
        "rising": 0,
        "top": [],
    }
    if not len(tested):
        return out
    b = burst_statistics(
        counts[tested],
        exposure,
        pseudo_count=float(params["pseudo_count"]),
        dispersion_max=float(params["dispersion_max"]),
        trend_weight=float(params["trend_weight"]),
    )
    q = benjamini_hochberg(b.p)
    burst = (q <= params["fdr"]) & (b.ratio >= params["min_ratio"])
    rising = ~burst & (b.trend_z >= params["trend_z"]) & (b.trend >= params["trend_min_ratio"])
    order = sorted(
        range(len(tested)), key=lambda i: (-b.z[i], -b.ratio[i], -current[tested[i]], keys[int(tested[i])])
    )
    top = []
    for rank, i in enumerate(order[: int(params["top"])], start=1):
        row = int(tested[i])
        top.append(
            {
                "rank": rank,
                "key": keys[row],
                **describe(row),
                "count": int(current[row]),
                "expected": _f(b.expected[i], 3),
                "ratio": _f(b.ratio[i], 3),
                "dispersion": _f(b.dispersion[i], 3),
                "p": float(f"{b.p[i]:.4g}"),
                "q": float(f"{q[i]:.4g}"),
                "z": _f(b.z[i], 2),
                "trend": _f(b.trend[i], 3),
                "trend_z": _f(b.trend_z[i], 2),
                "flag": "burst" if burst[i] else "rising" if rising[i] else "",
                "series": [int(v) for v in counts[row]],
            }
        )
    out.update({"bursts": int(burst.sum()), "rising": int(rising.sum()), "top": top})
    return out


def _topic_families(w: _Window, exposure: Floats, params: Mapping[str, Any]) -> dict[str, Any]:
    l1_keys, l1_of_path = _codes([level1(p) for p in w.paths])
    l2_keys, l2_of_path = _codes([level2(p) for p in w.paths])
    row_l1, row_l2 = l1_of_path[w.path], l2_of_path[w.path]
    pair = w.region * len(l2_keys) + row_l2
    pair_ids, pair_row = np.unique(pair, return_inverse=True)
    pair_keys = [f"{w.regions[int(i) // len(l2_keys)]}|{l2_keys[int(i) % len(l2_keys)]}" for i in pair_ids]
    families: dict[str, Any] = {
        "topic1": _rank(
            l1_keys, w.matrix(row_l1, len(l1_keys)), exposure, params, lambda i: {"topic": l1_keys[i]}
        ),
        "topic2": _rank(
            l2_keys, w.matrix(row_l2, len(l2_keys)), exposure, params, lambda i: {"topic": l2_keys[i]}
        ),
        "region": _rank(
            w.regions,
            w.matrix(w.region, len(w.regions)),
            exposure,
            params,
            lambda i: {"region": w.regions[i]},
        ),
        "region_topic": _rank(
            pair_keys,
            w.matrix(pair_row.astype(np.int64), len(pair_keys)),
            exposure,
            params,
            lambda i: dict(zip(("region", "topic"), pair_keys[i].split("|", 1), strict=True)),
        ),
    }
    return families


def _place_family(
    session: Session, periods: list[Period], exposure: Floats, params: Mapping[str, Any]
) -> dict[str, Any]:
    rows = repo.analysis_place_counts(
        session,
        _bounds(periods),
        excluded_statuses=params["excluded_statuses"],
        min_count=int(params["min_count"]),
    )
    places, place_row = _codes([r[0] for r in rows])
    regions, region_row = _codes([r[1] for r in rows])
    counts = np.zeros((len(places), len(periods)))
    np.add.at(counts, (place_row, np.array([r[2] for r in rows], dtype=np.int64)), [r[3] for r in rows])
    by_region = np.zeros((len(places), max(len(regions), 1)))
    np.add.at(by_region, (place_row, region_row), [r[3] for r in rows])
    # The district of a place: where most of its tickets of the window are (ties: the smaller code).
    home = [regions[int(np.argmax(by_region[i]))] if regions else "" for i in range(len(places))]
    family = _rank(
        places,
        counts,
        exposure,
        params,
        lambda i: {"region": home[i], "place": place_label(places[i])},
    )
    top = family["top"]
    current = periods[-1]
    found = repo.analysis_place_topics(
        session,
        current.start_utc,
        current.end_utc,
        [t["key"] for t in top],
        excluded_statuses=params["excluded_statuses"],
    )
    topics: dict[str, dict[str, int]] = {}
    for place, path, n in found:
        bucket = topics.setdefault(place, {})
        bucket[level2(path)] = bucket.get(level2(path), 0) + n
    for t in top:
        ranked = sorted(topics.get(t["key"], {}).items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        t["topics"] = [{"topic": k, "count": n} for k, n in ranked]
    return family


def _recurring(session: Session, period: Period, params: Mapping[str, Any]) -> dict[str, Any]:
    weeks = int(params["recurring_weeks"])
    need = int(params["recurring_min_weeks"])
    bounds = [_city_start(period.end - dt.timedelta(days=7 * (weeks - k))) for k in range(weeks + 1)]
    rows = repo.analysis_recurring_counts(
        session, bounds, excluded_statuses=params["excluded_statuses"], min_weeks=need
    )
    out: dict[str, Any] = {
        "weeks": weeks,
        "min_weeks": need,
        "from": (period.end - dt.timedelta(days=7 * weeks)).isoformat(),
        "to": (period.end - dt.timedelta(days=1)).isoformat(),
        "found": 0,
        "top": [],
    }
    if not rows:
        return out
    places, place_row = _codes([r[0] for r in rows])
    topics, topic_row = _codes([level2(r[1]) for r in rows])
    regions, region_row = _codes([r[2] for r in rows])
    week = np.array([r[3] for r in rows], dtype=np.int64)
    n = np.array([r[4] for r in rows], dtype=np.float64)
    pair_ids, pair_row = np.unique(place_row * len(topics) + topic_row, return_inverse=True)
    matrix = np.zeros((len(pair_ids), weeks))
    np.add.at(matrix, (pair_row, week), n)
    by_region = np.zeros((len(places), len(regions)))
    np.add.at(by_region, (place_row, region_row), n)
    active = (matrix > 0).sum(axis=1)
    chosen = np.flatnonzero(active >= need)
    found: list[dict[str, Any]] = []
    for i in chosen:
        place = places[int(pair_ids[i]) // len(topics)]
        topic = topics[int(pair_ids[i]) % len(topics)]
        found.append(
            {
                "key": f"{place}|{topic}",
                "place_key": place,
                "place": place_label(place),
                "topic": topic,
                "region": regions[int(np.argmax(by_region[int(pair_ids[i]) // len(topics)]))],
                "weeks_with_tickets": int(active[i]),
                "tickets": int(matrix[i].sum()),
                "latest_week": int(matrix[i, -1]),
                "series": [int(v) for v in matrix[i]],
            }
        )
    found.sort(key=lambda r: (-r["weeks_with_tickets"], -r["tickets"], r["key"]))
    for rank, r in enumerate(found, start=1):
        r["rank"] = rank
    out.update({"found": len(found), "top": found[: int(params["recurring_top"])]})
    return out


def _period_params(period: Period, periods: Sequence[Period], elapsed: float, clock: Clock) -> dict[str, Any]:
    params: dict[str, Any] = {
        "period": period.text,
        "granularity": period.granularity,
        "from": period.first.isoformat(),
        "to": (period.end - dt.timedelta(days=1)).isoformat(),
        "window": [p.text for p in periods],
        "baseline_used": len(periods) - 1,
        "window_start_utc": periods[0].start_utc.isoformat(),
        "window_end_utc": periods[-1].end_utc.isoformat(),
        "timezone": "UTC+08:00",
        "method_version": METHOD_VERSION,
    }
    if elapsed < 1.0:
        params["partial"] = {
            "as_of": clock.now().astimezone(dt.UTC).isoformat(),
            "elapsed": round(elapsed, 6),
        }
    return params


def run_hotspots(
    session: Session, *, period: str, clock: Clock, params: Mapping[str, Any] | None = None
) -> Snapshot:
    """Compute the hotspots of ``period`` and store them (replacing an earlier run for the period)."""
    started = time.perf_counter()
    p = parse_period(period)
    settings = hotspot_params(params)
    baseline = _baseline_of(settings, p.granularity)
    periods = _window(session, p, baseline)
    elapsed = _elapsed(p, clock)
    w = _load_window(session, periods, settings, [1, 2])
    city = w.city()
    exposure = _exposure(periods, city, weekday_adjust=bool(settings["weekday_adjust"]), elapsed=elapsed)
    families = _topic_families(w, exposure, settings)
    families["place"] = _place_family(session, periods, exposure, settings)
    result = {
        "city": {
            "count": int(city[-1]),
            "baseline_mean": _f(float(city[:-1].mean()), 3),
            "series": [int(v) for v in city],
        },
        "exposure": [_f(v, 6) for v in exposure],
        "families": families,
        "recurring": _recurring(session, p, settings),
    }
    stored = {**settings, "baseline": baseline, **_period_params(p, periods, elapsed, clock)}
    return repo.save_snapshot(
        session,
        kind="hotspots",
        period=p.text,
        params=stored,
        result=result,
        computed_at=clock.now(),
        seconds=round(time.perf_counter() - started, 4),
    )


# --- the sentiment index ---------------------------------------------------------------------------------


def _band(index: float | None, bands: Mapping[str, float]) -> str:
    if index is None:
        return ""
    if index >= bands["good"]:
        return "good"
    if index >= bands["watch"]:
        return "watch"
    return "attention"


@dataclass(frozen=True)
class CityValues:
    """The city's volume ratio, dissatisfied share and unresolved share in the period (the values small
    areas are pulled toward); None where unknown."""

    ratio: float | None
    dissatisfaction: float | None
    unresolved: float | None


def index_entry(
    counts: Sequence[float], expected: float, city: CityValues, params: Mapping[str, Any]
) -> dict[str, Any]:
    """One area's index and its components from its counts in the period ``(tickets, rated, dissatisfied,
    revisited, unresolved)``, its expected tickets and the city's values (see docs/hotline-index.md)."""
    tickets, rated, dissatisfied, revisited, unresolved = (float(c) for c in counts)
    ratio = tickets / expected if expected > 0 else None
    ratio_s = (
        None if city.ratio is None else shrunk(tickets, expected, city.ratio, float(params["volume_prior"]))
    )
    k = float(params["rate_prior"])
    dis = dissatisfied / rated if rated else None
    dis_s = shrunk(dissatisfied, rated, city.dissatisfaction, k) if city.dissatisfaction is not None else None
    unres = unresolved / revisited if revisited else None
    unres_s = shrunk(unresolved, revisited, city.unresolved, k) if city.unresolved is not None else None
    scores: dict[str, float | None] = {
        "volume": None
        if ratio_s is None
        else 100 * min(1.0, max(0.0, 1 - math.log(max(ratio_s, 1e-12)) / math.log(params["volume_cap"]))),
        "dissatisfaction": None
        if dis_s is None
        else 100 * min(1.0, max(0.0, 1 - dis_s / params["dissatisfaction_cap"])),
        "resolution": None
        if unres_s is None
        else 100 * min(1.0, max(0.0, 1 - unres_s / params["unresolved_cap"])),
    }
    weights = params["weights"]
    known = {c: s for c, s in scores.items() if s is not None and weights[c] > 0}
    index = None
    if known:
        index = sum(weights[c] * s for c, s in known.items()) / sum(weights[c] for c in known)
    return {
        "tickets": int(tickets),
        "expected": _f(expected, 3),
        "volume_ratio": _f(ratio),
        "volume_ratio_smoothed": _f(ratio_s),
        "volume_score": _f(scores["volume"], 2),
        "rated": int(rated),
        "dissatisfied": int(dissatisfied),
        "dissatisfaction": _f(dis),
        "dissatisfaction_smoothed": _f(dis_s),
        "dissatisfaction_score": _f(scores["dissatisfaction"], 2),
        "revisited": int(revisited),
        "unresolved": int(unresolved),
        "unresolved_share": _f(unres),
        "unresolved_smoothed": _f(unres_s),
        "resolution_score": _f(scores["resolution"], 2),
        "index": _f(index, 2),
        "band": _band(_f(index, 2), params["bands"]),
    }


def _entries(
    w: _Window,
    keys: NDArray[np.int64],
    labels: Sequence[str],
    exposure: Floats,
    city: CityValues,
    params: Mapping[str, Any],
) -> list[dict[str, Any]]:
    volume = w.matrix(keys, len(labels), 0)
    current = np.stack([w.matrix(keys, len(labels), c)[:, -1] for c in range(5)], axis=1)
    expected = volume[:, :-1].sum(axis=1) / float(exposure[:-1].sum()) * float(exposure[-1])
    return [
        {"key": labels[i], **index_entry(current[i], float(expected[i]), city, params)}
        for i in range(len(labels))
    ]


def run_index(
    session: Session,
    *,
    period: str,
    clock: Clock,
    weights: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Snapshot:
    """Compute the sentiment index of ``period`` per district, topic, district × topic and for the city,
    and store it (replacing an earlier run for the period). ``weights``: of ``volume``, ``dissatisfaction``
    and ``resolution`` (normalised; default 0.3, 0.4, 0.3)."""
    started = time.perf_counter()
    p = parse_period(period)
    settings = index_params(params, weights)
    baseline = _baseline_of(settings, p.granularity)
    periods = _window(session, p, baseline)
    elapsed = _elapsed(p, clock)
    w = _load_window(session, periods, settings, settings["dissatisfied_levels"])
    city_counts = np.stack([w.city(c) for c in range(5)], axis=1)  # periods × 5
    exposure = _exposure(
        periods, city_counts[:, 0], weekday_adjust=bool(settings["weekday_adjust"]), elapsed=elapsed
    )
    expected_city = float(city_counts[:-1, 0].sum() / exposure[:-1].sum() * exposure[-1])
    t, rated, dis, rev, unres = (float(v) for v in city_counts[-1])
    city = CityValues(
        ratio=t / expected_city if expected_city > 0 else None,
        dissatisfaction=dis / rated if rated else None,
        unresolved=unres / rev if rev else None,
    )
    l1_keys, l1_of_path = _codes([level1(path) for path in w.paths])
    row_l1 = l1_of_path[w.path]
    cells, cell_row = np.unique(w.region * max(len(l1_keys), 1) + row_l1, return_inverse=True)
    cell_labels = [
        f"{w.regions[int(c) // max(len(l1_keys), 1)]}|{l1_keys[int(c) % max(len(l1_keys), 1)]}" for c in cells
    ]
    cell_entries = _entries(w, cell_row.astype(np.int64), cell_labels, exposure, city, settings)
    for e in cell_entries:
        e["region"], e["topic"] = e["key"].split("|", 1)
    result = {
        "city": {"key": "", **index_entry(city_counts[-1], expected_city, city, settings)},
        "districts": _entries(w, w.region, w.regions, exposure, city, settings),
        "topics": _entries(w, row_l1, l1_keys, exposure, city, settings),
        "cells": cell_entries,
        "series": [
            {
                "period": periods[i].text,
                "tickets": int(city_counts[i, 0]),
                "rated": int(city_counts[i, 1]),
                "dissatisfied": int(city_counts[i, 2]),
                "revisited": int(city_counts[i, 3]),
                "unresolved": int(city_counts[i, 4]),
            }
            for i in range(len(periods))
        ],
        "exposure": [_f(v, 6) for v in exposure],
    }
    stored = {**settings, "baseline": baseline, **_period_params(p, periods, elapsed, clock)}
    return repo.save_snapshot(
        session,
        kind="index",
        period=p.text,
        params=stored,
        result=result,
        computed_at=clock.now(),
        seconds=round(time.perf_counter() - started, 4),
    )


# --- for pages, the API and the command line ---------------------------------------------------------------


def run(
    session: Session,
    *,
    kind: str,
    period: str,
    clock: Clock,
    weights: Mapping[str, Any] | None = None,
) -> Snapshot:
    if kind == "hotspots":
        if weights is not None:
            raise InvalidInput("weights: only for the index")
        return run_hotspots(session, period=period, clock=clock)
    if kind == "index":
        return run_index(session, period=period, clock=clock, weights=weights)
    raise InvalidInput(f"kind: one of {', '.join(KINDS)} (not {kind!r})")


#: The most earlier periods one request may compute besides the asked one.
MAX_PREVIOUS = 12


def compute(
    session: Session,
    principal: Principal,
    *,
    kind: str,
    period: str,
    clock: Clock,
    weights: Mapping[str, Any] | None = None,
    previous: int = 0,
) -> Snapshot:
    """Compute ``kind`` for ``period`` now (and for up to ``previous`` periods before it, so the index has a
    history; it stops at the first one without a baseline); analysts only, recorded in the audit log.
    Returns the snapshot of ``period``."""
    principal.require(ANALYSE)
    if not 0 <= previous <= MAX_PREVIOUS:
        raise InvalidInput(f"previous: from 0 to {MAX_PREVIOUS}")
    p = parse_period(period)
    snap = run(session, kind=kind, period=p.text, clock=clock, weights=weights)
    for k in range(1, previous + 1):
        try:  # the history is best effort: the earliest periods may have no baseline
            run(session, kind=kind, period=p.shifted(-k).text, clock=clock, weights=weights)
        except InvalidInput:
            break
    audit.record(
        session,
        actor=principal,
        action="hotline.analysis",
        target_type="hotline_snapshot",
        target_id=f"{kind}:{p.text}",
        clock=clock,
        detail={"previous": previous, "weights": snap.params.get("weights"), "seconds": snap.seconds},
    )
    return snap


def snapshot(session: Session, principal: Principal, *, kind: str, period: str) -> Snapshot | None:
    """The stored result of ``kind`` for ``period`` (None when not computed); analysts only."""
    principal.require(ANALYSE)
    if kind not in KINDS:
        raise InvalidInput(f"kind: one of {', '.join(KINDS)}")
    return repo.snapshot(session, kind, parse_period(period).text)


def require_snapshot(session: Session, principal: Principal, *, kind: str, period: str) -> Snapshot:
    found = snapshot(session, principal, kind=kind, period=period)
    if found is None:
        raise NotFound(f"no {kind} computed for {parse_period(period).text}; compute it first")
    return found


def computed_periods(
    session: Session, principal: Principal, *, kind: str, granularity: str | None = None, limit: int = 50
) -> list[Snapshot]:
    """The stored snapshots of ``kind`` (of one granularity, or all), newest period first."""
    principal.require(ANALYSE)
    if granularity is None:
        return repo.snapshots(session, kind, limit=limit)
    if granularity not in PERIOD_LENGTH:
        raise InvalidInput(f"granularity: one of {', '.join(GRANULARITIES)}")
    return repo.snapshots_of_length(session, kind, PERIOD_LENGTH[granularity], limit=limit)


def index_history(
    session: Session, principal: Principal, *, period: str, limit: int = 12
) -> list[tuple[str, float | None]]:
    """The city's index in the stored snapshots of ``period``'s granularity up to it, oldest first."""
    principal.require(ANALYSE)
    p = parse_period(period)
    rows = repo.snapshots_of_length(session, "index", PERIOD_LENGTH[p.granularity], until=p.text, limit=limit)
    out: list[tuple[str, float | None]] = []
    for s in reversed(rows):
        city = s.result.get("city") if isinstance(s.result, dict) else None
        value = city.get("index") if isinstance(city, dict) else None
        out.append((s.period, float(value) if isinstance(value, int | float) else None))
    return out


def snapshot_out(s: Snapshot) -> dict[str, Any]:
    """A snapshot as the API returns it."""
    return {
        "kind": s.kind,
        "period": s.period,
        "params": s.params,
        "result": s.result,
        "computed_at": s.computed_at.astimezone(dt.UTC).isoformat() if s.computed_at else None,
        "seconds": s.seconds,
    }


def summary(s: Snapshot, top: int = 3) -> dict[str, Any]:
    """A short account of a stored result (for the command line): per hotspot family the counts and the
    first items; for the index the city's and the lowest districts' values."""
    out: dict[str, Any] = {"kind": s.kind, "period": s.period, "seconds": s.seconds}
    result = s.result if isinstance(s.result, dict) else {}
    if s.kind == "hotspots":
        for name, family in (result.get("families") or {}).items():
            out[name] = {
                "tested": family.get("tested"),
                "bursts": family.get("bursts"),
                "rising": family.get("rising"),
                "top": [
                    {k: item.get(k) for k in ("key", "count", "expected", "z", "flag")}
                    for item in (family.get("top") or [])[:top]
                ],
            }
        recurring = result.get("recurring") or {}
        out["recurring"] = {
            "found": recurring.get("found"),
            "top": [
                {k: item.get(k) for k in ("key", "weeks_with_tickets", "tickets")}
                for item in (recurring.get("top") or [])[:top]
            ],
        }
    else:
        city = result.get("city") or {}
        shown = ("index", "band", "tickets", "volume_ratio", "dissatisfaction")
        out["city"] = {k: city.get(k) for k in shown}
        districts = sorted(
            (d for d in result.get("districts") or [] if d.get("index") is not None),
            key=lambda d: (d["index"], d["key"]),
        )
        out["lowest_districts"] = [{k: d.get(k) for k in ("key", "index", "band")} for d in districts[:top]]
    return out
