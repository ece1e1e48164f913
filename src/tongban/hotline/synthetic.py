"""Synthetic hotline tickets for the demo and the benchmark of the analysis jobs (hotspots, the index).

A year of a big city's 12345 calls in a few minutes: Beijing's 16 districts (GB/T 2260 codes 110101 …
110119) weighted by size, a compact taxonomy (paths of the demo's, see ``data/demo_city.json``) with winter
heating and summer noise, a weekday rhythm and calls by hour, chronic problem spots (the same place and
topic every week: recurring problems), a few planted bursts (one topic at one place in one district for a
few days) and return visits whose resolution and satisfaction vary by topic and district.

Every synthetic ticket is marked: reference ``S`` + 12 digits, channel ``phone``, ``source_ref``
``synthetic``, anonymous, no contact data and no history events. The texts are written here. Rows go in
in batches of :data:`BATCH` (``COPY`` on PostgreSQL, one ``executemany`` on SQLite), not as ORM objects.
Deterministic for a seed (and the tickets already there).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from sqlalchemy import JSON, Boolean, Table, func, insert, select, text
from sqlalchemy.orm import Session

from tongban.core.clock import Clock
from tongban.core.db import UTCDateTime
from tongban.core.errors import InvalidInput
from tongban.hotline import service
from tongban.hotline.models import Ticket
from tongban.hotline.vocab import CHINA

SOURCE = "synthetic"
PREFIX = "S"
BATCH = 5000
MAX_COUNT = 50_000_000
MAX_DAYS = 3660

#: ``(code, name, English name, latitude, longitude, share of the calls)``.
DISTRICTS: tuple[tuple[str, str, str, float, float, float], ...] = (
    ("110101", "东城区", "Dongcheng", 39.928, 116.416, 0.05),
    ("110102", "西城区", "Xicheng", 39.912, 116.366, 0.06),
    ("110105", "朝阳区", "Chaoyang", 39.921, 116.486, 0.16),
    ("110106", "丰台区", "Fengtai", 39.858, 116.287, 0.09),
    ("110107", "石景山区", "Shijingshan", 39.906, 116.223, 0.03),
    ("110108", "海淀区", "Haidian", 39.959, 116.298, 0.13),
    ("110109", "门头沟区", "Mentougou", 39.940, 116.102, 0.02),
    ("110111", "房山区", "Fangshan", 39.736, 116.143, 0.05),
    ("110112", "通州区", "Tongzhou", 39.902, 116.657, 0.08),
    ("110113", "顺义区", "Shunyi", 40.130, 116.654, 0.06),
    ("110114", "昌平区", "Changping", 40.218, 116.231, 0.09),
    ("110115", "大兴区", "Daxing", 39.727, 116.338, 0.08),
    ("110116", "怀柔区", "Huairou", 40.316, 116.632, 0.02),
    ("110117", "平谷区", "Pinggu", 40.144, 117.112, 0.02),
    ("110118", "密云区", "Miyun", 40.377, 116.843, 0.03),
    ("110119", "延庆区", "Yanqing", 40.465, 115.985, 0.03),
)
DISTRICT_NAMES = {code: (zh, en) for code, zh, en, *_ in DISTRICTS}

#: Roads of each district the addresses use.
ROADS: dict[str, tuple[str, ...]] = {
    "110101": ("东直门内大街", "和平里东街", "崇文门外大街"),
    "110102": ("西直门内大街", "广安门内大街", "德胜门外大街"),
    "110105": ("建国路", "朝阳北路", "望京街"),
    "110106": ("丰台北路", "南三环西路", "方庄路"),
    "110107": ("石景山路", "鲁谷路", "古城大街"),
    "110108": ("中关村大街", "学院路", "万泉河路"),
    "110109": ("新桥大街", "滨河路"),
    "110111": ("良乡大街", "长虹西路"),
    "110112": ("新华大街", "运河西大街", "九棵树西路"),
    "110113": ("府前街", "新顺南大街"),
    "110114": ("回龙观西大街", "府学路", "天通苑北街"),
    "110115": ("兴丰大街", "黄村西大街"),
    "110116": ("青春路", "府前街"),
    "110117": ("府前街", "新平北路"),
    "110118": ("鼓楼大街", "滨河路"),
    "110119": ("妫水北街", "高塔街"),
}

#: ``(path, English label, share, season, unresolved share, subject, body)``; the season multiplies the
#: share: ``winter`` (November to March ×3), ``summer`` (June to August ×2), ``new_year`` (January and
#: February ×2: wages before the Spring Festival). ``{place}`` is the district and road.
TOPICS: tuple[tuple[str, str, float, str, float, str, str], ...] = (
    ("城乡建设/市政设施/道路维修", "Roads: repair", 6, "", 0.15, "道路破损",
     "{place}路面坑洼不平，车辆经过颠簸，下雨天积水严重，请尽快修补。"),
    ("城乡建设/市政设施/路灯照明", "Street lighting", 4, "winter", 0.10, "路灯不亮",
     "{place}有一段路灯晚上不亮，行人走夜路不安全，希望尽快维修。"),
    ("城乡建设/市政设施/井盖缺损", "Missing manhole covers", 2, "", 0.08, "井盖破损",
     "{place}人行道上的井盖破损松动，存在安全隐患，请相关部门处理。"),
    ("城乡建设/供水排水/停水", "Water outage", 4, "summer", 0.12, "小区停水",
     "{place}附近小区突然停水，事先没有通知，居民生活受到影响，请问什么时候恢复供水。"),
    ("城乡建设/供电供气/停电", "Power outage", 3, "summer", 0.10, "突然停电",
     "{place}一带突然停电，家里有老人需要用电，请尽快抢修。"),
    ("城乡建设/供热/暖气不热", "Heating not warm", 5, "winter", 0.25, "暖气不热",
     "{place}小区暖气温度偏低，室内只有十几度，请供热单位上门检查。"),
    ("城乡建设/物业管理/物业服务", "Property management service", 8, "", 0.35, "物业不作为",
     "{place}小区物业对楼道堆物和设施损坏长期不处理，业主意见很大。"),
    ("城乡建设/物业管理/电梯故障", "Lift faults", 3, "", 0.20, "电梯故障",
     "{place}小区单元电梯经常停运，高层住户上下楼困难，请督促物业维修。"),
    ("城乡建设/违法建设/私搭乱建", "Illegal construction", 3, "", 0.40, "私搭乱建",
     "{place}有住户在公共区域私自搭建棚子，占用消防通道，请核查处理。"),
    ("环境保护/噪声污染/施工噪音", "Construction noise", 5, "summer", 0.30, "夜间施工扰民",
     "{place}附近工地夜间施工噪音很大，影响周边居民休息，请依法查处。"),
    ("环境保护/噪声污染/社会生活噪音", "Neighbourhood noise", 4, "summer", 0.30, "广场舞噪音",
     "{place}附近广场每天晚上音响声音很大，一直持续到很晚，希望加强管理。"),
    ("环境保护/大气污染/烧烤油烟", "Barbecue fumes", 2, "summer", 0.25, "露天烧烤油烟",
     "{place}路边露天烧烤油烟很重，楼上住户无法开窗通风。"),
    ("环境保护/市容环卫/垃圾清运", "Rubbish collection", 4, "", 0.10, "垃圾未及时清运",
     "{place}垃圾桶满了好几天没人清运，气味难闻，请安排清运。"),
    ("交通运输/公共交通/公交线路", "Bus routes", 3, "", 0.30, "公交班次少",
     "{place}公交站候车时间太长，早高峰经常挤不上车，建议增加班次。"),
    ("交通运输/停车管理/违章停车", "Illegal parking", 5, "", 0.20, "违章停车",
     "{place}路边长期有车辆违停，堵住了消防通道和人行道，请交管部门处理。"),
    ("教育文体/学前教育/入园难", "Kindergarten places", 2, "", 0.35, "幼儿园入园难",
     "{place}附近普惠性幼儿园名额不够，孩子入园困难，咨询有关政策。"),
    ("劳动和社会保障/工资福利/拖欠工资", "Unpaid wages", 4, "new_year", 0.30, "拖欠工资",
     "在{place}附近的工地务工，用工单位拖欠工资两个月，请帮助讨要。"),
    ("劳动和社会保障/社会保险/医保报销", "Medical insurance reimbursement", 3, "", 0.10, "医保报销咨询",
     "咨询在{place}附近医院就诊后医保报销的比例和办理流程。"),
    ("商贸旅游/市场监管/食品安全", "Food safety", 3, "summer", 0.20, "食品安全问题",
     "在{place}一家餐馆吃饭后身体不适，怀疑食品不卫生，请市场监管部门检查。"),
    ("商贸旅游/消费维权/预付卡退费", "Prepaid card refunds", 3, "", 0.45, "预付卡退费难",
     "{place}一家健身房突然停业，预付卡里的余额退不回来，请帮助维权。"),
    ("卫生计生/医疗服务/挂号难", "Getting an appointment", 2, "", 0.30, "挂号难",
     "{place}附近医院的专家号很难挂到，希望改进预约挂号的方式。"),
    ("企业服务/营商环境/政策兑现", "Business policy benefits", 2, "", 0.30, "企业政策兑现",
     "我公司位于{place}，申请的扶持资金一直没有兑现，请帮助协调。"),
)  # fmt: skip

#: Topics a planted burst may be about (an outage, a building site, a missed collection, cold flats).
BURST_TOPICS = ("城乡建设/供水排水/停水", "城乡建设/供电供气/停电", "环境保护/噪声污染/施工噪音",
                "环境保护/市容环卫/垃圾清运", "城乡建设/供热/暖气不热")  # fmt: skip

#: Calls by weekday (Monday first) and by hour of the day (relative).
WEEKDAY = (1.15, 1.1, 1.05, 1.05, 1.0, 0.85, 0.8)
HOURLY = (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.5, 3.5, 6, 7, 7, 6.5, 5.5, 5.5, 6, 6, 5.5, 5, 4.5, 4.5, 4, 3, 2, 1.5)
REQUEST_TYPES = (("complaint", 35), ("request", 40), ("consultation", 15), ("suggestion", 5),
                 ("report", 3), ("praise", 2))  # fmt: skip
#: Satisfaction 5 … 1 on the return visit of resolved and of unresolved tickets.
SATISFACTION_RESOLVED = (0.58, 0.27, 0.1, 0.03, 0.02)
SATISFACTION_UNRESOLVED = (0.04, 0.08, 0.23, 0.33, 0.32)
#: Share of the calls from chronic problem spots, how many spots, and how many bursts are planted.
CHRONIC_SHARE = 0.04
CHRONIC_SPOTS = 30
BURSTS = 3


@dataclass
class Generated:
    """What :func:`generate_tickets` added: the count, the first and last reference, the planted bursts."""

    count: int
    first_ref: str
    last_ref: str
    bursts: list[dict[str, Any]] = field(default_factory=list)


def _season(kind: str, month: int) -> float:
    if kind == "winter":
        return 3.0 if month in (11, 12, 1, 2, 3) else 1.0
    if kind == "summer":
        return 2.0 if month in (6, 7, 8) else 1.0
    if kind == "new_year":
        return 2.0 if month in (1, 2) else 1.0
    return 1.0


def _next_number(session: Session) -> int:
    last = session.scalar(
        select(func.max(Ticket.ref)).where(Ticket.source_ref == SOURCE, Ticket.ref.like(PREFIX + "%"))
    )
    if not last:
        return 1
    try:
        return int(str(last)[len(PREFIX) :]) + 1
    except ValueError:
        return 1


def ensure_taxonomy(session: Session, *, clock: Clock) -> None:
    """The synthetic topics in the taxonomy (idempotent)."""
    rows = []
    for path, label_en, *_ in TOPICS:
        l1, l2, l3 = path.split("/")
        rows.append({"level1": l1, "level2": l2, "level3": l3, "label_en": label_en})
    service.import_taxonomy(session, rows, clock=clock)


def _point(rng: np.random.Generator, district: int, spread: float = 0.03) -> tuple[float, float]:
    _, _, _, lat, lon, _ = DISTRICTS[district]
    return float(lat + rng.normal(0, spread)), float(lon + rng.normal(0, spread * 1.3))


def generate_tickets(
    session: Session,
    *,
    count: int,
    start: dt.date,
    days: int,
    seed: int,
    clock: Clock,
) -> Generated:
    """Insert ``count`` synthetic tickets received from the city day ``start`` over ``days`` days (not after
    the clock's today), with the statuses their age allows at the clock's time."""
    if not 1 <= count <= MAX_COUNT:
        raise InvalidInput(f"count: from 1 to {MAX_COUNT}")
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days: from 1 to {MAX_DAYS}")
    now = clock.now()
    if start + dt.timedelta(days=days) > now.astimezone(CHINA).date() + dt.timedelta(days=1):
        raise InvalidInput("the synthetic tickets must not be received after today")
    ensure_taxonomy(session, clock=clock)
    rng = np.random.default_rng(seed)
    n_topics, n_districts = len(TOPICS), len(DISTRICTS)

    # Planted bursts: one topic at one spot of one district for 3-5 days (only when the span allows).
    planned: list[tuple[int, int, float, float, int, int, int]] = []
    burst_size = max(30, round(count * 0.003))
    if days >= 14 and count >= 20 * burst_size:
        for _ in range(BURSTS):
            b_district = int(rng.integers(n_districts))
            b_topic = [t[0] for t in TOPICS].index(BURST_TOPICS[int(rng.integers(len(BURST_TOPICS)))])
            b_lat, b_lon = _point(rng, b_district)
            b_first = int(rng.integers(int(days * 0.2), max(int(days * 0.2) + 1, days - 5)))
            b_length = min(int(rng.integers(3, 6)), days - b_first)
            planned.append((b_district, b_topic, b_lat, b_lon, b_first, b_length, burst_size))
    burst_total = sum(p[-1] for p in planned)
    normal = count - burst_total

    # Day of each call: weekday rhythm; then the hour and the second.
    day_dates = [start + dt.timedelta(days=i) for i in range(days)]
    day_w = np.array([WEEKDAY[d.weekday()] for d in day_dates])
    day = rng.choice(days, size=normal, p=day_w / day_w.sum())
    # District and topic (topics by the season of the call's month).
    shares = np.array([d[5] for d in DISTRICTS])
    district = rng.choice(n_districts, size=normal, p=shares / shares.sum())
    months = np.array([d.month for d in day_dates])[day]
    topic = np.empty(normal, dtype=np.int64)
    for month in np.unique(months):
        where = np.flatnonzero(months == month)
        w = np.array([t[2] * _season(t[3], int(month)) for t in TOPICS])
        topic[where] = rng.choice(n_topics, size=len(where), p=w / w.sum())
    lat = np.array([d[3] for d in DISTRICTS])[district] + rng.normal(0, 0.03, normal)
    lon = np.array([d[4] for d in DISTRICTS])[district] + rng.normal(0, 0.04, normal)
    # Chronic spots: the same place and topic all year.
    spots = [(int(rng.integers(n_districts)), int(rng.integers(n_topics))) for _ in range(CHRONIC_SPOTS)]
    spot_points = [_point(rng, d) for d, _ in spots]
    chronic = np.flatnonzero(rng.random(normal) < CHRONIC_SHARE)
    pinned = np.zeros(normal, dtype=bool)
    pinned[chronic] = True
    which = rng.integers(CHRONIC_SPOTS, size=len(chronic))
    district[chronic] = [spots[i][0] for i in which]
    topic[chronic] = [spots[i][1] for i in which]
    lat[chronic] = [spot_points[i][0] for i in which]
    lon[chronic] = [spot_points[i][1] for i in which]
    # Bursts appended.
    burst_rows: list[dict[str, Any]] = []
    extra_day, extra_district, extra_topic, extra_lat, extra_lon = [], [], [], [], []
    for d, t, blat, blon, first, length, size in planned:
        extra_day.append(first + rng.integers(length, size=size))
        extra_district.append(np.full(size, d))
        extra_topic.append(np.full(size, t))
        extra_lat.append(np.full(size, blat) + rng.normal(0, 0.0005, size))
        extra_lon.append(np.full(size, blon) + rng.normal(0, 0.0005, size))
        burst_rows.append(
            {
                "region": DISTRICTS[d][0],
                "topic": TOPICS[t][0],
                "place_key": f"g:{math.floor(blat / 0.005)}:{math.floor(blon / 0.005)}",
                "first_day": (start + dt.timedelta(days=first)).isoformat(),
                "days": length,
                "tickets": size,
            }
        )
    is_burst = np.concatenate([np.zeros(normal, dtype=bool), np.ones(burst_total, dtype=bool)])
    pinned = np.concatenate([pinned, np.ones(burst_total, dtype=bool)])
    if planned:
        day = np.concatenate([day, *extra_day])
        district = np.concatenate([district, *extra_district])
        topic = np.concatenate([topic, *extra_topic])
        lat = np.concatenate([lat, *extra_lat])
        lon = np.concatenate([lon, *extra_lon])
    total = len(day)
    hour_w = np.array(HOURLY)
    seconds = rng.choice(24, size=total, p=hour_w / hour_w.sum()) * 3600 + rng.integers(3600, size=total)
    # Order by time, so references follow the order of receipt.
    order = np.lexsort((seconds, day))
    day, district, topic, seconds = day[order], district[order], topic[order], seconds[order]
    lat, lon, is_burst, pinned = lat[order], lon[order], is_burst[order], pinned[order]
    # A fifth of the calls give an address only (their place is the road); chronic spots and bursts are
    # pinned to their coordinates.
    address_only = (rng.random(total) < 0.2) & ~pinned
    road_pick = rng.integers(0, 6, size=total)
    number = rng.integers(1, 300, size=total)
    types = rng.choice(len(REQUEST_TYPES), size=total, p=_p([w for _, w in REQUEST_TYPES]))
    # Outcomes: statuses by age, resolution by topic and district, satisfaction by resolution.
    quality = rng.uniform(0.7, 1.4, n_districts)
    unresolved_p = np.clip(np.array([t[4] for t in TOPICS])[topic] * quality[district], 0, 0.9)
    unresolved_p = np.where(is_burst, np.clip(unresolved_p * 1.5, 0, 0.9), unresolved_p)
    resolved = rng.random(total) >= unresolved_p
    sat_ok = 5 - rng.choice(5, size=total, p=_p(SATISFACTION_RESOLVED))
    sat_bad = 5 - rng.choice(5, size=total, p=_p(SATISFACTION_UNRESOLVED))
    satisfaction = np.where(resolved, sat_ok, sat_bad)
    revisit_p, rated_p = rng.random(total), rng.random(total)
    delays = rng.random((total, 5))

    start_utc = dt.datetime.combine(start, dt.time(), tzinfo=CHINA).astimezone(dt.UTC)
    first_number = _next_number(session)
    names = {code: zh for code, zh, *_ in DISTRICTS}
    place_of_road: dict[str, str] = {}
    write: Callable[[list[dict[str, Any]]], None] | None = None
    batch: list[dict[str, Any]] = []
    columns = (day, district, topic, lat, lon, seconds, address_only, road_pick, number, types)
    lists = [a.tolist() for a in columns]
    outcome = [a.tolist() for a in (resolved, satisfaction, revisit_p, rated_p)]
    delay_rows = delays.tolist()
    for i in range(total):
        d_i, dist_i, top_i, lat_i, lon_i, sec_i, addr_only, road_i, num_i, type_i = (col[i] for col in lists)
        code = DISTRICTS[dist_i][0]
        roads = ROADS[code]
        road = roads[road_i % len(roads)]
        place_text = f"{names[code]}{road}"
        address = f"北京市{place_text}{num_i}号"
        created = start_utc + dt.timedelta(days=d_i, seconds=sec_i)
        path, _, _, _, _, subject, body = TOPICS[top_i]
        if addr_only:
            key = place_of_road.get(place_text)
            if key is None:
                key = place_of_road[place_text] = service.place_key(f"北京市{place_text}", None, None)
            lat_v: float | None = None
            lon_v: float | None = None
        else:
            lat_v, lon_v = round(lat_i, 6), round(lon_i, 6)
            key = f"g:{math.floor(lat_v / 0.005)}:{math.floor(lon_v / 0.005)}"
        row = _outcome(
            created,
            now,
            utility=path.startswith(("城乡建设/供水", "城乡建设/供电", "城乡建设/供热")),
            resolved=outcome[0][i],
            satisfaction=outcome[1][i],
            revisit=outcome[2][i] < 0.9,
            rated=outcome[3][i] < 0.92,
            delays=delay_rows[i],
            unit=f"d{code}",
        )
        enterprise = path.startswith("企业服务")
        batch.append(
            {
                "ref": f"{PREFIX}{first_number + i:012d}",
                "channel": "phone",
                "request_type": REQUEST_TYPES[type_i][0],
                "requester_account_id": None,
                "contact_sealed": "",
                "contact_hint": "",
                "phone_digest": None,
                "anonymous": True,
                "enterprise": enterprise,
                "enterprise_name": "某科技有限公司" if enterprise else "",
                "subject": subject,
                "body": body.format(place=place_text),
                "address": address,
                "lat": lat_v,
                "lon": lon_v,
                "region_code": code,
                "place_key": key,
                "service_code": None,
                "attributes": {},
                "media_url": "",
                "category_path": path,
                "category_confirmed": True,
                "suggested_path": "",
                "suggested_confidence": None,
                "urgency": "ordinary",
                "helper_units": [],
                "reopen_count": 0,
                "warned_at": None,
                "escalated_at": None,
                "merged_into_id": None,
                "token": None,
                "api_key_id": None,
                "lead_unit": None,
                "source_ref": SOURCE,
                "created_at": created,
                "version": 1,
                **row,
            }
        )
        if len(batch) >= BATCH:
            write = write or _writer(session, list(batch[0]))
            write(batch)
            batch = []
    if batch:
        (write or _writer(session, list(batch[0])))(batch)
    session.flush()
    if session.connection().dialect.name == "postgresql":
        # The planner's statistics, so the analysis jobs right after a big load get hash joins.
        session.execute(text("ANALYZE hotline_ticket"))
    return Generated(
        count=total,
        first_ref=f"{PREFIX}{first_number:012d}",
        last_ref=f"{PREFIX}{first_number + total - 1:012d}",
        bursts=burst_rows,
    )


def _sqlite_time(value: dt.datetime | None) -> str | None:
    """A timestamp as SQLAlchemy stores it in SQLite: UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _converters(columns: Sequence[str], *, sqlite: bool) -> list[tuple[int, Callable[[Any], Any]]]:
    """``(position, converter)`` of the columns whose values the driver cannot take as they are."""
    table = cast(Table, Ticket.__table__)
    out: list[tuple[int, Callable[[Any], Any]]] = []
    for i, name in enumerate(columns):
        kind = table.c[name].type
        if isinstance(kind, JSON):
            out.append((i, _json_text))
        elif sqlite and isinstance(kind, UTCDateTime):
            out.append((i, _sqlite_time))
        elif sqlite and isinstance(kind, Boolean):
            out.append((i, _sqlite_bool))
    return out


def _writer(session: Session, columns: Sequence[str]) -> Callable[[list[dict[str, Any]]], None]:
    """How a batch of rows goes in on the session's connection (inside its transaction): ``COPY`` on
    PostgreSQL with psycopg, one ``executemany`` on SQLite (values as SQLAlchemy would store them), else a
    Core ``INSERT`` (executemany)."""
    connection = session.connection()
    raw: Any = connection.connection.driver_connection
    names = ", ".join(columns)
    dialect = connection.dialect.name
    fast = (dialect == "postgresql" and connection.dialect.driver == "psycopg") or dialect == "sqlite"
    if not fast:
        table = cast(Table, Ticket.__table__)

        def core(rows: list[dict[str, Any]]) -> None:
            session.execute(insert(table), rows)

        return core
    converters = _converters(columns, sqlite=dialect == "sqlite")

    def values(row: dict[str, Any]) -> list[Any]:
        out = [row[c] for c in columns]
        for i, convert in converters:
            out[i] = convert(out[i])
        return out

    if dialect == "postgresql":
        copy_sql = f"COPY hotline_ticket ({names}) FROM STDIN"

        def copy(rows: list[dict[str, Any]]) -> None:
            with raw.cursor() as cursor, cursor.copy(copy_sql) as out:
                for row in rows:
                    out.write_row(values(row))

        return copy
    marks = ", ".join("?" for _ in columns)
    insert_sql = f"INSERT INTO hotline_ticket ({names}) VALUES ({marks})"  # noqa: S608 - our column names

    def many(rows: list[dict[str, Any]]) -> None:
        cursor = raw.cursor()
        try:
            cursor.executemany(insert_sql, [values(row) for row in rows])
        finally:
            cursor.close()

    return many


def _p(weights: Sequence[float]) -> Any:
    w = np.array(weights, dtype=np.float64)
    return w / w.sum()


def _outcome(
    created: dt.datetime,
    now: dt.datetime,
    *,
    utility: bool,
    resolved: bool,
    satisfaction: int,
    revisit: bool,
    rated: bool,
    delays: Sequence[float],
    unit: str,
) -> dict[str, Any]:
    """Status and timestamps of a ticket received at ``created``, as far as ``now`` allows."""
    hours = 24.0 if utility else 168.0
    dispatched = created + dt.timedelta(minutes=5 + 55 * delays[0])
    signed = dispatched + dt.timedelta(hours=0.5 + 5.5 * delays[1])
    replied = created + dt.timedelta(hours=hours * (0.1 + 1.0 * delays[2]))
    revisited = replied + dt.timedelta(hours=4 + 44 * delays[3])
    due = created + dt.timedelta(hours=hours)
    respond_by = created + dt.timedelta(hours=2 if utility else 24)
    row: dict[str, Any] = {
        "deadline_class": "utility" if utility else "ordinary",
        "status": "received",
        "dispatch_count": 0,
        "dispatched_at": None,
        "respond_by": None,
        "due_at": None,
        "signed_at": None,
        "responded_at": None,
        "responded_on_time": None,
        "replied_on_time": None,
        "replied_at": None,
        "reply": "",
        "replied_by_unit": None,
        "revisited_at": None,
        "resolved": None,
        "satisfaction": None,
        "closed_at": None,
        "updated_at": created,
    }
    if dispatched > now:
        return row
    row.update(
        status="dispatched",
        dispatch_count=1,
        dispatched_at=dispatched,
        respond_by=respond_by,
        due_at=due,
        updated_at=dispatched,
    )
    if signed > now:
        return row
    row.update(
        status="signed",
        signed_at=signed,
        responded_at=signed,
        responded_on_time=signed <= respond_by,
        updated_at=signed,
    )
    if replied > now:
        return row
    row.update(
        status="replied",
        replied_at=replied,
        replied_on_time=replied <= due,
        reply="已联系诉求人并到现场核实，问题已按规定处理，感谢您的反映。",
        replied_by_unit=unit,
        updated_at=replied,
    )
    if revisited > now:
        return row
    if delays[4] < 0.01:
        row.update(status="cancelled", closed_at=revisited, updated_at=revisited)
        return row
    row.update(status="closed", closed_at=revisited, updated_at=revisited)
    if revisit:
        row.update(
            revisited_at=revisited,
            resolved=bool(resolved),
            satisfaction=int(satisfaction) if rated else None,
        )
    return row
