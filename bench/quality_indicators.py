"""Service-quality indicators (质效监测) over a district-year of cases: generation, the indicator computation
in-process, where a dashboard request's time goes, and the dashboard and its JSON API under concurrent
analysts.

1. ``--database-url`` (PostgreSQL, a database named ``bench_*``; default ``bench_quality``) is dropped,
   created and migrated (``tongban.core.migrate.upgrade``), then filled **server-side**: one
   ``CREATE UNLOGGED TABLE ... AS SELECT ... FROM generate_series(...)`` draws ``--cases`` cases of one city
   district (110105 朝阳区) for ``--year`` from hashes of the row number (reproducible with ``--seed``), and
   three ``INSERT ... SELECT`` fill ``rating_case``, ``rating_rating`` and ``rating_rectification`` from it;
   then ``VACUUM ANALYZE``. The secondary indexes are dropped during the load and created again from their
   own definitions (``pg_indexes``) afterwards. Distributions: 45 departments (30 district bureaus, 15
   street offices) with Zipf-like volume, 900 items (Zipf, s = 1) each with its own time limit, materials,
   exemption, lateness and dissatisfaction propensity; kinds 70 % applications, 20 % hotline tickets, 7 %
   visits, 3 % consultations; closing days over the year by the official working-day calendar with weekday
   and month seasonality, ids in closing order; ~4 % late with a long tail; ~8 % supplements; ~40 % rated,
   ~85 % of ratings 非常满意 or 满意, ~2.5 % bad (more often when late, supplemented or visited twice);
   rectifications of every bad review (mostly rectified, mostly on time), some upheld appeals. The database
   is **kept** afterwards, so ``--skip-generate`` measures again on the same data.
2. In-process, on one connection: ``service.compute`` for the total and every ``group_by`` (department,
   item, region, month, kind, channel) over the whole year, one department (the busiest) and one month
   (June), and ``service.pain_points`` for the year; each ``--repeat`` times, median and max. The same-run
   baseline is ``count(*)`` of ``rating_case`` forced to a sequential scan. Then ``EXPLAIN (ANALYZE,
   BUFFERS)`` of every distinct statement the year's computations issue (captured from the engine).
3. One request each of ``/quality`` (year, busiest department) and the indicators API, in-process through
   a test client with the indicator cache emptied: every SQL statement timed, the slowest explained.
4. The real server, ``tongban serve`` (one uvicorn worker), an analyst account (``quality_analyst``) with a
   bearer token, and ``--clients`` keep-alive clients: ``GET /quality`` for the year and for the busiest
   department (the same URL each time) and over a different period each time (all left out when the page
   answers 404), ``GET /api/v1/quality/indicators?group_by=department`` for the year (the same URL: the
   service's short cache answers most) and over a different period each time (no cache hit), and
   ``GET /healthz`` (half before, half after) as the baseline. Each scenario sends
   ``--requests`` requests or stops starting new ones after ``--max-seconds``, whichever comes first.
   p50/p95/p99, requests/s, p95 ÷ healthz p95, CPU per request of the server and of PostgreSQL.

    .venv/bin/python bench/quality_indicators.py --clients 10 --requests 200 --max-seconds 90
    .venv/bin/python bench/quality_indicators.py --skip-generate --skip-http      # in-process only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import math
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

import chinese_calendar
import httpx
from _common import (
    CLOCK_TICK,
    free_port,
    machine,
    machine_cpu,
    percentile,
    platform_env,
    server_process,
    tongban_executable,
    wait_ready,
)
from sqlalchemy import Connection, Engine, event, make_url, select, text
from sqlalchemy.orm import Session

from tongban.core import auth, migrate
from tongban.core.clock import SystemClock
from tongban.core.config import Settings
from tongban.core.db import make_engine
from tongban.core.models import Account
from tongban.rating import service
from tongban.rating.schemas import Filters

try:  # the reason codes of bad reviews, when the domain ships them
    from tongban.rating.reasons import REASONS

    REASON_CODES = frozenset(r.code for r in REASONS)
except ImportError:  # pragma: no cover - an older checkout
    REASON_CODES = frozenset()

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_quality"
ANALYST = "bench.analyst"
PASSWORD = "bench password, not a secret"  # noqa: S105
GROUPS: tuple[str | None, ...] = (None, "department", "item", "region", "month", "kind", "channel")
TABLES = ("rating_case", "rating_rating", "rating_rectification")

# --- the district ----------------------------------------------------------------------------------------

DISTRICT_CODE, DISTRICT = "110105", "朝阳区"
PREFIX = "北京市朝阳区"
#: District bureaus in (rough) order of volume, each with the matters it handles (an indented line goes on
#: with the matters of the line above).
BUREAUS_TEXT = """
人力资源和社会保障局: 社会保障卡申领 失业保险金申领 就业登记
    职工退休申请 灵活就业人员参保登记 人才引进落户审核
市场监督管理局: 个体工商户登记 有限责任公司设立登记 食品经营许可
    企业变更登记 企业注销登记 特种设备使用登记
医疗保障局: 医保参保登记 异地就医备案 医疗费用手工报销
    门诊特殊病申请 生育津贴申领 医保关系转移接续
北京市公安局朝阳分局: 居住证办理 户口迁入 出生登记
    居民身份证换领 临时身份证明 无犯罪记录证明
国家税务总局北京市朝阳区税务局: 发票领用 税务登记 个人所得税汇算清缴
    增值税申报 完税证明开具 清税注销
民政局: 婚姻登记 最低生活保障审批 临时救助
    高龄津贴申领 残疾人两项补贴 社会组织登记
住房和城乡建设委员会: 公共租赁住房申请 住房租赁登记备案 建筑工程施工许可
    商品房预售许可 物业服务企业备案 既有住宅加装电梯
卫生健康委员会: 医疗机构执业登记 医师执业注册 护士执业注册
    生育登记 公共场所卫生许可 母婴保健技术服务许可
教育委员会: 义务教育入学登记 民办学校设立 教师资格认定
    校外培训机构审批 学籍转移 学生资助申请
城市管理委员会: 城市道路占用许可 户外广告设施设置许可 建筑垃圾处置核准
    燃气经营许可 环卫设施拆除审批 临时占道审批
北京市规划和自然资源委员会朝阳分局: 建设工程规划许可 建设用地规划许可 不动产登记
    临时建设规划许可 规划条件核实 地名核准
退役军人事务局: 优待证申领 退役士兵安置 伤残抚恤
    光荣牌悬挂 自主就业补助 烈属抚恤
残疾人联合会: 残疾人证办理 辅助器具申请 残疾人就业补贴
    托养服务补贴 康复救助 无障碍改造申请
交通委员会: 道路运输经营许可 出租汽车驾驶员从业资格 占道施工审批
    停车场备案 道路挖掘许可 网约车经营许可
生态环境局: 环境影响评价审批 排污许可 危险废物经营许可
    辐射安全许可 竣工环保验收备案 夜间施工许可
文化和旅游局: 营业性演出许可 娱乐场所经营许可 网吧经营许可
    旅行社设立许可 出版物经营许可 文物保护工程审批
司法局: 法律援助申请 人民调解申请 公证咨询
    律师事务所变更 基层法律服务 社区矫正报到
应急管理局: 危险化学品经营许可 安全生产许可 烟花爆竹经营许可
    应急预案备案 安全评价备案 特种作业操作证
商务局: 对外贸易经营者备案 单用途预付卡备案 报废机动车回收许可
    拍卖企业登记 成品油零售许可 再生资源回收备案
发展和改革委员会: 固定资产投资项目备案 节能审查 价格认定
    招标方案核准 企业投资项目核准 粮食收购许可
财政局: 政府采购备案 代理记账许可 会计人员信息采集
    非税收入退付 行政事业性收费备案 财政票据领用
水务局: 取水许可 排水许可 河道管理范围内建设审批
    节水设施验收 占用水域审批 供水设施改造审批
农业农村局: 动物防疫条件合格证 农药经营许可 兽药经营许可
    农村宅基地审批 种子生产经营许可 渔业捕捞许可
园林绿化局: 树木砍伐审批 临时占用绿地审批 林木采伐许可
    野生动物驯养许可 古树名木保护审批 绿地认建认养
体育局: 高危险性体育项目经营许可 体育类社会组织登记 健身设施申请
    体育赛事备案 社会体育指导员认定 游泳场所开放许可
科学技术和信息化局: 高新技术企业认定 科技型中小企业评价 技术合同登记
    专利资助 软件企业认定 研发费用补助
统计局: 统计调查项目审批 统计数据提供 统计登记
    统计报表报送 统计证明开具 统计执法检查
人民防空办公室: 人防工程建设审批 人防工程竣工验收 易地建设费减免
    人防工程使用证 拆除人防工程审批 人防警报设施审批
档案馆: 档案查阅 婚姻档案查询 知青档案查询
    档案寄存 档案证明出具 档案鉴定
政务服务管理局: 工程建设项目联合验收 一件事集成办理 证照联办
    企业开办一窗通 帮办代办 全程网办预约
"""


def _bureaus() -> tuple[tuple[str, tuple[str, ...]], ...]:
    out: list[tuple[str, list[str]]] = []
    for line in BUREAUS_TEXT.strip().splitlines():
        if line.startswith(" "):
            out[-1][1].extend(line.split())
        else:
            name, matters = line.split(":", 1)
            out.append((name, matters.split()))
    return tuple((name, tuple(matters)) for name, matters in out)


BUREAUS = _bureaus()
#: Street offices (街道办事处), each its own region; they handle the same community matters.
STREETS = ("望京", "双井", "劲松", "潘家园", "八里庄", "呼家楼", "建外", "朝外", "三里屯", "团结湖", "亚运村",
           "安贞", "小关", "酒仙桥", "麦子店")  # fmt: skip
STREET_MATTERS = ("居住登记", "老年人优待卡申领", "城乡居民养老保险登记", "低保申请受理", "临时救助受理",
                  "计划生育服务证明", "残疾人证申请受理", "灵活就业登记")  # fmt: skip
SUFFIXES = (
    "",
    "（新办）",
    "（变更）",
    "（补办）",
    "（注销）",
    "（延续）",
    "（换领）",
    "（个人）",
    "（企业）",
    "（线上）",
)
#: 12345 hotline ticket categories (tickets carry no item code), Zipf-ranked.
TICKET_CATEGORIES = ("噪声扰民", "物业管理", "供暖问题", "停车管理", "市容环境", "拖欠工资", "房屋租赁纠纷",
                     "消费维权", "道路维修", "违法建设", "垃圾分类", "占道经营", "供水问题", "燃气安全",
                     "电梯安全", "小区绿化", "社保咨询", "户籍咨询", "入学咨询", "医疗服务")  # fmt: skip
#: Consultation agents (a consultation's item name is its agent's code).
AGENTS = ("social_security", "household", "business", "housing", "medical_insurance", "tax", "education",
          "civil_affairs")  # fmt: skip
#: What a bad review of each reason says (the first reason decides the text).
REASON_TEXT = {
    "slow": "办理时间太长，超过承诺时限还没有办完",
    "repeat_materials": "材料要求太多，补正了好几次",
    "repeat_visits": "来回跑了好几趟才办成",
    "attitude": "窗口工作人员态度不好，不耐烦",
    "guide_inaccurate": "办事指南写的和窗口说的不一样",
    "system": "网上系统老是出错，提交不了",
    "result": "问题没有解决，结果不满意",
    "fees": "收费不清楚，多收了费用",
    "queue": "排队时间太长",
    "no_reply": "反映的问题一直没有回复",
    "other": "不满意",
}
#: Reasons that are not tied to a case fact, by cumulative share: applications/visits and tickets.
GENERAL_REASONS = (("attitude", 0.20), ("guide_inaccurate", 0.36), ("system", 0.50), ("slow", 0.64),
                   ("queue", 0.74), ("result", 0.84), ("no_reply", 0.88), ("fees", 0.91),
                   ("other", 1.0))  # fmt: skip
TICKET_REASONS = (("no_reply", 0.25), ("result", 0.50), ("attitude", 0.70), ("slow", 0.85), ("other", 1.0))
PRAISE = ("办事效率高，很满意", "工作人员很耐心", "网上就办好了，很方便")
ITEMS = 900
DAY_SLOTS = 10_000
TICKET_SLOTS = 1_000


@dataclass(frozen=True)
class Department:
    id: int
    name: str
    region: str
    region_code: str
    matters: tuple[str, ...]


def departments() -> list[Department]:
    """45 departments in order of volume: the bureaus with a street office after every second one from
    the fifth place on."""
    bureaus = [
        (name if name.startswith(("北京", "国家")) else PREFIX + name, DISTRICT, DISTRICT_CODE, matters)
        for name, matters in BUREAUS
    ]
    streets = [
        (f"{PREFIX}{s}街道办事处", f"{s}街道", f"{DISTRICT_CODE}{n:03d}", STREET_MATTERS)
        for n, s in enumerate(STREETS, 1)
    ]
    ordered: list[tuple[str, str, str, tuple[str, ...]]] = bureaus[:5]
    rest_b, rest_s = bureaus[5:], list(streets)
    while rest_b or rest_s:
        for _ in range(2):
            if rest_b:
                ordered.append(rest_b.pop(0))
        if rest_s:
            ordered.append(rest_s.pop(0))
    return [Department(i, *d) for i, d in enumerate(ordered, 1)]


@dataclass(frozen=True)
class Item:
    rank: int
    code: str
    name: str
    dept: int
    limit_days: int
    materials: int
    exempt_rate: float
    late_rate: float
    bad_mult: float
    online: bool


def items(depts: Sequence[Department], rng: random.Random) -> list[Item]:
    """900 items ranked by volume (weight 1/rank); each goes to the department furthest below its share
    (department weight 1/rank^0.9), so department volumes are skewed too."""
    item_w = [1 / k for k in range(1, ITEMS + 1)]
    dept_w = [1 / d.id**0.9 for d in depts]
    total_i, total_d = sum(item_w), sum(dept_w)
    assigned = [0.0] * len(depts)
    used: Counter[int] = Counter()
    out: list[Item] = []
    late_raw, bad_raw = [], []
    for k, w in enumerate(item_w, 1):
        d = max(range(len(depts)), key=lambda j: dept_w[j] / total_d - assigned[j])
        assigned[d] += w / total_i
        dept = depts[d]
        n = used[d]
        used[d] += 1
        base = dept.matters[n % len(dept.matters)]
        round_ = n // len(dept.matters)
        suffix = SUFFIXES[round_] if round_ < len(SUFFIXES) else f"（{round_}）"
        late_raw.append(min(0.4, rng.lognormvariate(math.log(0.03), 0.8)))
        bad_raw.append(rng.lognormvariate(0.0, 0.6))
        out.append(
            Item(
                rank=k,
                code=f"BQ{DISTRICT_CODE}{k:04d}",
                name=base + suffix,
                dept=dept.id,
                limit_days=rng.choices((1, 3, 5, 7, 10, 15, 20), (20, 15, 20, 10, 12, 13, 10))[0],
                materials=rng.choices(range(1, 13), (3, 6, 9, 10, 9, 8, 6, 5, 4, 3, 2, 1))[0],
                exempt_rate=rng.betavariate(1.2, 3.0) * 0.8,
                late_rate=0.0,
                bad_mult=0.0,
                online=rng.random() < 0.92,
            )
        )
    # Scale lateness to a volume-weighted 4 % and the dissatisfaction multiplier to a weighted mean of 1.
    late_scale = 0.04 / (sum(w * r for w, r in zip(item_w, late_raw, strict=True)) / total_i)
    bad_scale = 1.0 / (sum(w * r for w, r in zip(item_w, bad_raw, strict=True)) / total_i)
    return [
        dataclasses.replace(i, late_rate=min(0.5, r * late_scale), bad_mult=b * bad_scale)
        for i, r, b in zip(out, late_raw, bad_raw, strict=True)
    ]


def is_workday(day: dt.date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # a year the package does not know yet: Monday to Friday
        return day.weekday() < 5


MONTH_FACTOR = (1.0, 0.75, 1.1, 1.05, 1.0, 1.05, 1.1, 1.0, 1.05, 0.9, 1.05, 1.15)
WEEKDAY_FACTOR = (1.2, 1.05, 1.0, 1.0, 0.9, 0.08, 0.05)


def day_slots(year: int) -> list[dt.date]:
    """``DAY_SLOTS`` closing days in calendar order, each day taking slots in proportion to its weight:
    working days by weekday (Monday busiest) and month (Spring Festival low, December high); weekends and
    holidays a few (online approvals)."""
    days: list[dt.date] = []
    weights: list[float] = []
    day = dt.date(year, 1, 1)
    while day.year == year:
        w = MONTH_FACTOR[day.month - 1]
        w *= WEEKDAY_FACTOR[day.weekday()] if is_workday(day) else 0.05
        if is_workday(day) and day.weekday() >= 5:  # a working Saturday or Sunday (调休)
            w = MONTH_FACTOR[day.month - 1] * 0.95
        days.append(day)
        weights.append(w)
        day += dt.timedelta(days=1)
    total = sum(weights)
    cum, slots = 0.0, list[dt.date]()
    for d, w in zip(days, weights, strict=True):
        cum += w
        slots.extend([d] * (round(cum / total * DAY_SLOTS) - len(slots)))
    return slots


def ticket_slots(depts: Sequence[Department]) -> list[int]:
    """Departments of hotline tickets: 70 % the street offices (Zipf), 30 % a few bureaus."""
    streets = [d.id for d in depts if d.region_code != DISTRICT_CODE]
    busy = ("城市管理委员会", "住房和城乡建设委员会", "市场监督管理局", "人力资源和社会保障局", "交通委员会",
            "生态环境局", "卫生健康委员会", "教育委员会")  # fmt: skip
    bureaus = [d.id for d in depts if d.name.endswith(busy)]
    weights = [0.7 / (i + 1) for i in range(len(streets))] + [0.3 / (i + 1) for i in range(len(bureaus))]
    ids = streets + bureaus
    s_total = sum(weights[: len(streets)])
    b_total = sum(weights[len(streets) :])
    weights = [w / s_total * 0.7 for w in weights[: len(streets)]] + [
        w / b_total * 0.3 for w in weights[len(streets) :]
    ]
    cum, out = 0.0, list[int]()
    for d, w in zip(ids, weights, strict=True):
        cum += w
        out.extend([d] * (round(cum * TICKET_SLOTS) - len(out)))
    return out


# --- generation SQL --------------------------------------------------------------------------------------


def u(k: int, seed: int) -> str:
    """A uniform in [0, 1) from 53 bits of ``hashint8extended(g, salt)``: reproducible, one per draw."""
    return (
        f"(((hashint8extended(g, {seed * 1000 + k}) >> 11) & 9007199254740991)::float8 / 9007199254740992.0)"
    )


def cum_case(var: str, table: Sequence[tuple[str, float]]) -> str:
    parts = " ".join(f"WHEN {var} < {p} THEN '{code}'" for code, p in table[:-1])
    return f"CASE {parts} ELSE '{table[-1][0]}' END"


def text_case(var: str, mapping: dict[str, str]) -> str:
    return "CASE " + " ".join(f"WHEN {var} = '{k}' THEN '{v}'" for k, v in mapping.items()) + " ELSE '' END"


def generation_sql(n: int, year: int, seed: int) -> str:
    """The one statement that draws every case (``bench_gen``); row ``g`` closes on the ``g``-th quantile
    of the year's closing days, so ids follow the closing order as they do when cases register on closing."""
    draws = {
        "u_kind": 1, "u_item": 2, "u_tslot": 3, "u_cat": 4, "u_agent": 5, "u_channel": 6, "u_time": 7,
        "u_late": 8, "u_tail": 9, "u_work": 10, "u_vis": 11, "u_mat": 12, "u_pre": 13, "u_sup": 14,
        "u_rated": 15, "u_bad": 16, "u_level": 17, "u_rect": 18, "u_ontime": 19, "u_follow": 20,
        "u_flevel": 21, "u_reason": 22, "u_reason2": 23, "u_reason3": 24, "u_rdelay": 25, "u_outcome": 26,
        "u_anon": 27, "u_dims": 28, "u_steps": 29, "u_rectday": 30, "u_appeal": 31, "u_text": 32,
    }  # fmt: skip
    cols = ",\n        ".join(f"{u(k, seed)} AS {name}" for name, k in draws.items())
    general = cum_case("u_reason2", GENERAL_REASONS)
    ticket = cum_case("u_reason2", TICKET_REASONS)
    second = cum_case("(u_reason3 / 0.3)", GENERAL_REASONS)
    return f"""
CREATE UNLOGGED TABLE bench_gen AS
WITH a AS (
    SELECT g,
        {cols},
        ((g - 1) * {DAY_SLOTS} / {n})::int AS day_slot
    FROM generate_series(1, {n}::bigint) AS g
), b AS (
    SELECT a.*,
        CASE WHEN u_kind < 0.70 THEN 'application' WHEN u_kind < 0.90 THEN 'ticket'
             WHEN u_kind < 0.97 THEN 'visit' ELSE 'consultation' END AS kind,
        least({ITEMS}, floor(power({ITEMS} + 1.0, u_item)))::int AS item_rank,
        least({len(TICKET_CATEGORIES)}, floor(power({len(TICKET_CATEGORIES)} + 1.0, u_cat)))::int AS cat_rank,
        1 + floor(u_agent * {len(AGENTS)})::int AS agent_rank,
        floor(u_tslot * {TICKET_SLOTS})::int AS tslot
    FROM a
), c AS (
    SELECT b.*, i.*, dy.dy_date, ct.ct_name, ct.ct_bad, ag.ag_name,
        CASE b.kind WHEN 'ticket' THEN td.td_dept WHEN 'consultation' THEN NULL ELSE i.it_dept END AS dept_id
    FROM b
    JOIN bench_item i ON i.it_rank = b.item_rank
    JOIN bench_day dy ON dy.dy_slot = b.day_slot
    JOIN bench_tdept td ON td.td_slot = b.tslot
    JOIN bench_cat ct ON ct.ct_rank = b.cat_rank
    JOIN bench_agent ag ON ag.ag_rank = b.agent_rank
), d AS (
    SELECT c.*, dp.dp_name, dp.dp_region, dp.dp_region_code,
        CASE c.kind
            WHEN 'application' THEN CASE WHEN NOT it_online THEN 'window' WHEN u_channel < 0.80 THEN 'online'
                                         WHEN u_channel < 0.89 THEN 'app' ELSE 'window' END
            WHEN 'ticket' THEN CASE WHEN u_channel < 0.82 THEN 'phone' WHEN u_channel < 0.94 THEN 'online'
                                    ELSE 'app' END
            WHEN 'visit' THEN 'window'
            ELSE CASE WHEN u_channel < 0.85 THEN 'online' ELSE 'app' END
        END AS channel,
        c.kind = 'application' AND u_late < it_late AS late,
        CASE WHEN c.kind = 'application' THEN CASE WHEN u_pre < 0.06 THEN 1 WHEN u_pre < 0.09 THEN 2
                                                   WHEN u_pre < 0.10 THEN 3 ELSE 0 END ELSE 0 END AS findings,
        CASE WHEN c.kind = 'application' THEN CASE WHEN u_sup < 0.065 THEN 1 WHEN u_sup < 0.078 THEN 2
                                                   WHEN u_sup < 0.08 THEN 3 ELSE 0 END
             ELSE 0 END AS supplements
    FROM c LEFT JOIN bench_dept dp ON dp.dp_id = c.dept_id
), e AS (
    SELECT d.*,
        CASE WHEN kind = 'application' THEN it_limit END AS limit_days,
        CASE kind
            WHEN 'application' THEN CASE WHEN late
                THEN it_limit + 1 + floor(-ln(1 - u_tail) * greatest(2, it_limit * 0.5))::int
                ELSE least(it_limit, floor((it_limit + 1) * power(u_work, 1.3))::int) END
            WHEN 'ticket' THEN least(30, floor(-ln(1 - u_work) * 3))::int
        END AS work_days,
        CASE kind
            WHEN 'application' THEN CASE WHEN channel = 'window'
                THEN CASE WHEN u_vis < 0.72 THEN 1 WHEN u_vis < 0.93 THEN 2 ELSE 3 END
                ELSE CASE WHEN u_vis < 0.88 THEN 0 WHEN u_vis < 0.975 THEN 1 WHEN u_vis < 0.995 THEN 2
                          ELSE 3 END
            END
            WHEN 'visit' THEN 1 ELSE 0
        END AS visits,
        (dy_date + make_interval(secs => CASE kind
            WHEN 'ticket' THEN 8 * 3600 + u_time * 14 * 3600
            WHEN 'consultation' THEN 7 * 3600 + u_time * 16 * 3600
            ELSE 9 * 3600 + u_time * 8.5 * 3600 END)) AT TIME ZONE 'Asia/Shanghai' AS closed_at
    FROM d
), f AS (
    SELECT e.*,
        u_rated < CASE kind WHEN 'application' THEN 0.40 WHEN 'ticket' THEN 0.45 WHEN 'visit' THEN 0.38
                            ELSE 0.25 END AS rated,
        0.02 * CASE kind WHEN 'ticket' THEN ct_bad * 1.6 WHEN 'consultation' THEN 1.3
                         WHEN 'visit' THEN it_bad * 0.6 ELSE it_bad END
             * CASE WHEN late THEN 4 ELSE 1 END * CASE WHEN supplements > 0 THEN 2 ELSE 1 END
             * CASE WHEN visits >= 2 THEN 1.8 ELSE 1 END AS p_bad
    FROM e
), h AS (
    SELECT f.*, rated AND u_bad < p_bad AS bad FROM f
), k AS (
    SELECT h.*,
        CASE WHEN NOT rated THEN NULL WHEN bad THEN CASE WHEN u_level < 0.35 THEN 1 ELSE 2 END
             WHEN u_level < 0.70 THEN 5 WHEN u_level < 0.875 THEN 4 ELSE 3 END AS orig_level,
        CASE WHEN NOT bad THEN NULL WHEN u_rect < 0.03 THEN 'void' WHEN u_rect < 0.08 THEN 'open'
             WHEN u_rect < 0.12 THEN 'contacted' ELSE 'rectified' END AS rect_state,
        CASE WHEN NOT rated THEN NULL WHEN kind = 'visit' THEN make_interval(secs => 60 + u_rdelay * 3600)
             ELSE make_interval(secs => least(14.5 * 86400, -ln(1 - u_rdelay) * 2 * 86400)) END AS rate_delay,
        u_anon < 0.1 AS anon,
        CASE WHEN late AND u_reason < 0.7 THEN 'slow'
             WHEN supplements > 0 AND u_reason < 0.6 THEN 'repeat_materials'
             WHEN visits >= 2 AND u_reason < 0.6 THEN 'repeat_visits'
             WHEN kind = 'ticket' THEN {ticket} ELSE {general} END AS reason1,
        CASE WHEN u_reason3 < 0.3 THEN {second} END AS reason2
    FROM h
)
SELECT k.*,
    closed_at + rate_delay AS rated_at,
    coalesce(rect_state = 'rectified', false) AND u_ontime < 0.78 AS rect_on_time,
    coalesce(rect_state = 'rectified', false) AND u_follow < 0.45 AS follow,
    CASE WHEN u_flevel < 0.32 THEN 5 WHEN u_flevel < 0.62 THEN 4 WHEN u_flevel < 0.82 THEN 3
         WHEN u_flevel < 0.93 THEN 2 ELSE 1 END AS follow_level,
    CASE WHEN rect_state = 'void' THEN 'upheld'
         WHEN rect_state IS NOT NULL AND u_appeal < 0.03 THEN 'rejected' ELSE 'none' END AS appeal
FROM k
"""  # noqa: S608 - every value is a number or a constant of this file


CASE_COLUMNS = (
    "id, kind, ref, parent_ref, owner_account_id, item_code, item_name, department, region, region_code, "
    "channel, opened_at, closed_at, closed_on, closed_month, outcome, limit_days, work_days, on_time, "
    "visits, materials_total, materials_exempted, precheck_findings, supplements, first_pass, longest_step, "
    "longest_step_hours, steps, rate_until, invited_at, reminders, reminded_at, level, first_level, "
    "rated_at, rectification, rectified_on_time, created_at, updated_at"
)


def case_insert_sql() -> str:
    steps_total = "(coalesce(work_days, 0) * 8 + 1)"
    h_first = f"floor({steps_total} * (0.08 + 0.15 * u_steps))::int"
    h_second = f"floor({steps_total} * (0.40 + 0.35 * ((u_steps * 7) - floor(u_steps * 7))))::int"
    h_sup = "(48 * supplements)"
    return f"""
INSERT INTO rating_case ({CASE_COLUMNS})
SELECT g,
    kind,
    CASE kind WHEN 'application' THEN 'A' WHEN 'ticket' THEN 'T' WHEN 'visit' THEN 'V' ELSE 'C' END
        || to_char(dy_date, 'YYYYMMDD') || lpad(g::text, 8, '0'),
    NULL, NULL,
    CASE WHEN kind IN ('application', 'visit') THEN it_code END,
    CASE kind WHEN 'ticket' THEN ct_name WHEN 'consultation' THEN ag_name ELSE it_name END,
    coalesce(dp_name, ''), coalesce(dp_region, '{DISTRICT}'), coalesce(dp_region_code, '{DISTRICT_CODE}'),
    channel,
    closed_at - CASE kind
        WHEN 'visit' THEN make_interval(mins => 10 + (u_time * 50)::int)
        WHEN 'consultation' THEN make_interval(mins => 2 + (u_time * 20)::int)
        ELSE make_interval(secs => (coalesce(work_days, 0) * 1.45 * 86400 + u_work * 8 * 3600)::int) END,
    closed_at, dy_date, to_char(dy_date, 'YYYY-MM'),
    CASE kind
        WHEN 'application' THEN CASE WHEN u_outcome < 0.03 THEN 'not_accepted' WHEN u_outcome < 0.05
                                     THEN 'refused' ELSE 'approved' END
        WHEN 'ticket' THEN CASE WHEN u_outcome < 0.75 THEN 'solved' ELSE 'answered' END
        WHEN 'visit' THEN 'served' ELSE 'answered' END,
    limit_days, work_days, CASE WHEN limit_days IS NOT NULL THEN work_days <= limit_days END,
    visits,
    CASE WHEN kind = 'application' THEN it_materials ELSE 0 END,
    CASE WHEN kind = 'application' THEN least(it_materials, floor(it_materials * it_exempt + u_mat)::int)
         ELSE 0 END,
    findings, supplements,
    CASE WHEN kind = 'application' THEN findings = 0 AND supplements = 0 END,
    CASE kind
        WHEN 'application' THEN CASE
            WHEN supplements > 0 AND {h_sup} >= greatest({h_first}, {h_second},
                {steps_total} - {h_first} - {h_second}) THEN 'supplement_accept'
            WHEN {h_second} >= greatest({h_first}, {steps_total} - {h_first} - {h_second}) THEN 'review'
            WHEN {h_first} >= {steps_total} - {h_first} - {h_second} THEN 'accept'
            ELSE 'decide' END
        WHEN 'ticket' THEN CASE WHEN {h_second} >= greatest({h_first}, {steps_total} - {h_first} - {h_second})
            THEN 'handle' WHEN {h_first} >= {steps_total} - {h_first} - {h_second} THEN 'dispatch'
            ELSE 'callback' END
        ELSE '' END,
    CASE WHEN kind IN ('application', 'ticket') THEN greatest({h_first}, {h_second},
        {steps_total} - {h_first} - {h_second}, CASE WHEN supplements > 0 THEN {h_sup} ELSE 0 END) END,
    CASE kind
        WHEN 'application' THEN
            jsonb_build_array(jsonb_build_object('step', 'accept', 'hours', {h_first}))
            || CASE WHEN supplements > 0
                    THEN jsonb_build_array(jsonb_build_object('step', 'supplement_accept', 'hours', {h_sup}))
                    ELSE '[]'::jsonb END
            || jsonb_build_array(jsonb_build_object('step', 'review', 'hours', {h_second}),
                                 jsonb_build_object('step', 'decide', 'hours',
                                                    {steps_total} - {h_first} - {h_second}))
        WHEN 'ticket' THEN jsonb_build_array(
            jsonb_build_object('step', 'dispatch', 'hours', {h_first}),
            jsonb_build_object('step', 'handle', 'hours', {h_second}),
            jsonb_build_object('step', 'callback', 'hours', {steps_total} - {h_first} - {h_second}))
        ELSE '[]'::jsonb END,
    closed_at + CASE WHEN kind = 'visit' THEN interval '1 day' ELSE interval '15 days' END,
    CASE WHEN kind = 'application' THEN closed_at + interval '1 minute' END,
    CASE WHEN kind = 'application' AND (NOT rated OR rate_delay > interval '3 days') THEN 1 ELSE 0 END,
    CASE WHEN kind = 'application' AND (NOT rated OR rate_delay > interval '3 days')
         THEN closed_at + interval '3 days' END,
    CASE WHEN rect_state = 'void' THEN NULL WHEN follow THEN follow_level ELSE orig_level END,
    CASE WHEN rect_state = 'void' THEN NULL ELSE orig_level END,
    rated_at,
    CASE rect_state WHEN 'contacted' THEN 'open' ELSE rect_state END,
    CASE WHEN rect_state = 'rectified' THEN rect_on_time END,
    closed_at,
    coalesce(rated_at, closed_at)
FROM bench_gen
ORDER BY g
"""  # noqa: S608


def rectified_at_sql() -> str:
    """When a rectified bad review was put right: within its 21 days when on time, up to 15 days late else."""
    return (
        "CASE WHEN rect_on_time THEN rated_at + make_interval(secs => (1 + u_rectday * 19) * 86400) "
        "ELSE ((((rated_at AT TIME ZONE 'Asia/Shanghai')::date + 22 + floor(u_rectday * 15)::int) "
        "+ time '10:00') AT TIME ZONE 'Asia/Shanghai') END"
    )


def rating_insert_sql(n: int) -> str:
    dims = (
        "CASE WHEN u_dims < 0.6 THEN jsonb_build_object("
        "'efficiency', greatest(1, least(5, orig_level + floor(u_dims * 3)::int - 1)), "
        "'guide', greatest(1, least(5, orig_level + floor(u_dims * 9)::int % 3 - 1)), "
        "'convenience', greatest(1, least(5, orig_level + floor(u_dims * 27)::int % 3 - 1)), "
        "'attitude', greatest(1, least(5, orig_level + floor(u_dims * 81)::int % 3 - 1))) "
        "ELSE '{}'::jsonb END"
    )
    praise = " ".join(f"WHEN u_text < {0.05 * (i + 1)} THEN '{p}'" for i, p in enumerate(PRAISE))
    channel = (
        "CASE channel WHEN 'online' THEN 'web' WHEN 'app' THEN 'app' WHEN 'window' THEN 'terminal' "
        "ELSE CASE WHEN u_text < 0.5 THEN 'sms' ELSE 'phone' END END"
    )
    return f"""
INSERT INTO rating_rating (id, case_id, round, level, dimensions, text, reasons, anonymous, rater_account_id,
                           channel, excluded, created_at)
SELECT g, g, 'initial', orig_level, {dims},
    CASE WHEN bad THEN {text_case("reason1", REASON_TEXT)} ELSE CASE {praise} ELSE '' END END,
    CASE WHEN NOT bad THEN '[]'::jsonb
         WHEN reason2 IS NULL OR reason2 = reason1 THEN jsonb_build_array(reason1)
         ELSE jsonb_build_array(reason1, reason2) END,
    anon, NULL::int, {channel}, rect_state IS NOT DISTINCT FROM 'void', rated_at
FROM bench_gen WHERE rated
UNION ALL
SELECT {n} + g, g, 'follow_up', follow_level, '{{}}'::jsonb, '', '[]'::jsonb, anon, NULL::int, {channel},
    false,
    {rectified_at_sql()} + make_interval(secs => (1 + u_flevel * 10) * 86400)
FROM bench_gen WHERE follow
ORDER BY 1
"""  # noqa: S608


def rectification_insert_sql(n: int) -> str:
    rectified_at = rectified_at_sql()
    rated_day = "(rated_at AT TIME ZONE 'Asia/Shanghai')::date"
    return f"""
INSERT INTO rating_rectification (id, case_id, rating_id, unit, state, opened_at, contact_due, rectify_due,
    contacted_at, contact_note, rectified_at, rectify_note, follow_up_until, closed_at, appeal, appeal_reason,
    appeal_by, appeal_at, appeal_decided_by, appeal_decided_at, appeal_note, contact_escalated_at,
    rectify_escalated_at, version)
SELECT g, g, g, coalesce(nullif(dp_name, ''), '—'),
    CASE rect_state WHEN 'rectified' THEN 'closed' ELSE rect_state END,
    rated_at,
    CASE WHEN NOT anon THEN {rated_day} + 1 END,
    {rated_day} + 21,
    CASE WHEN NOT anon AND rect_state IN ('contacted', 'rectified')
         THEN rated_at + make_interval(secs => (2 + u_rectday * 20) * 3600) END,
    CASE WHEN NOT anon AND rect_state IN ('contacted', 'rectified') THEN '已电话回访，说明情况并致歉'
         ELSE '' END,
    CASE WHEN rect_state = 'rectified' THEN {rectified_at} END,
    CASE WHEN rect_state = 'rectified' THEN '已整改：优化流程，加强培训' ELSE '' END,
    CASE WHEN rect_state = 'rectified' THEN {rectified_at} + interval '15 days' END,
    CASE WHEN rect_state = 'rectified' AND follow
             THEN {rectified_at} + make_interval(secs => (1 + u_flevel * 10) * 86400)
         WHEN rect_state = 'rectified' THEN {rectified_at} + interval '15 days'
         WHEN rect_state = 'void' THEN rated_at + interval '3 days' END,
    appeal,
    CASE WHEN appeal <> 'none' THEN '评价与办件事实不符，申请复核' ELSE '' END,
    CASE WHEN appeal <> 'none' THEN 'bench.unit' END,
    CASE WHEN appeal <> 'none' THEN rated_at + interval '1 day' END,
    CASE WHEN appeal <> 'none' THEN 'bench.supervisor' END,
    CASE WHEN appeal <> 'none' THEN rated_at + interval '3 days' END,
    CASE appeal WHEN 'upheld' THEN '核实属实，剔除该评价' WHEN 'rejected' THEN '申诉理由不成立' ELSE '' END,
    CASE WHEN NOT anon AND rect_state = 'open' THEN rated_at + interval '2 days' END,
    CASE WHEN rect_state IN ('open', 'contacted') OR (rect_state = 'rectified' AND NOT rect_on_time)
         THEN ({rated_day} + 22 + time '01:00') AT TIME ZONE 'Asia/Shanghai' END,
    1 + CASE WHEN rect_state IN ('contacted', 'rectified') AND NOT anon THEN 1 ELSE 0 END
      + CASE WHEN rect_state = 'rectified' THEN 1 ELSE 0 END
      + CASE WHEN follow THEN 1 ELSE 0 END
      + CASE WHEN appeal <> 'none' THEN 2 ELSE 0 END
FROM bench_gen WHERE bad
ORDER BY g
"""  # noqa: S608


# --- generation ------------------------------------------------------------------------------------------


@dataclass
class Generation:
    seconds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    sizes: list[tuple[str, int, int, int]] = field(default_factory=list)
    shares: dict[str, float] = field(default_factory=dict)
    busiest_department: str = ""
    department_share: float = 0.0
    month_cases: int = 0


def _lookups(conn: Connection, year: int, seed: int) -> None:
    rng = random.Random(seed)
    depts = departments()
    its = items(depts, rng)
    conn.execute(
        text("DROP TABLE IF EXISTS bench_dept, bench_item, bench_day, bench_tdept, bench_cat, bench_agent")
    )
    conn.execute(text("CREATE UNLOGGED TABLE bench_dept (dp_id int PRIMARY KEY, dp_name text, "
                      "dp_region text, dp_region_code text)"))  # fmt: skip
    conn.execute(
        text("INSERT INTO bench_dept VALUES (:i, :n, :r, :c)"),
        [{"i": d.id, "n": d.name, "r": d.region, "c": d.region_code} for d in depts],
    )
    conn.execute(text("CREATE UNLOGGED TABLE bench_item (it_rank int PRIMARY KEY, it_code text, "
                      "it_name text, it_dept int, it_limit int, it_materials int, it_exempt float8, "
                      "it_late float8, it_bad float8, it_online boolean)"))  # fmt: skip
    conn.execute(
        text("INSERT INTO bench_item VALUES (:rank, :code, :name, :dept, :limit_days, :materials, "
             ":exempt_rate, :late_rate, :bad_mult, :online)"),
        [dataclasses.asdict(i) for i in its],
    )  # fmt: skip
    conn.execute(text("CREATE UNLOGGED TABLE bench_day (dy_slot int PRIMARY KEY, dy_date date)"))
    conn.execute(
        text("INSERT INTO bench_day SELECT * FROM unnest(CAST(:s AS int[]), CAST(:d AS date[]))"),
        {"s": list(range(DAY_SLOTS)), "d": day_slots(year)},
    )
    conn.execute(text("CREATE UNLOGGED TABLE bench_tdept (td_slot int PRIMARY KEY, td_dept int)"))
    conn.execute(
        text("INSERT INTO bench_tdept SELECT * FROM unnest(CAST(:s AS int[]), CAST(:d AS int[]))"),
        {"s": list(range(TICKET_SLOTS)), "d": ticket_slots(depts)},
    )
    cat_bad = [rng.lognormvariate(0.0, 0.5) for _ in TICKET_CATEGORIES]
    conn.execute(
        text("CREATE UNLOGGED TABLE bench_cat (ct_rank int PRIMARY KEY, ct_name text, ct_bad float8)")
    )
    conn.execute(
        text("INSERT INTO bench_cat VALUES (:r, :n, :b)"),
        [
            {"r": k, "n": c, "b": b}
            for k, (c, b) in enumerate(zip(TICKET_CATEGORIES, cat_bad, strict=True), 1)
        ],
    )
    conn.execute(text("CREATE UNLOGGED TABLE bench_agent (ag_rank int PRIMARY KEY, ag_name text)"))
    conn.execute(
        text("INSERT INTO bench_agent VALUES (:r, :n)"), [{"r": k, "n": a} for k, a in enumerate(AGENTS, 1)]
    )


def _secondary_indexes(conn: Connection) -> list[tuple[str, str]]:
    """Indexes of the three tables that no constraint owns: ``(name, CREATE INDEX ...)``."""
    rows = conn.execute(
        text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = ANY(:t) AND indexname NOT IN (SELECT conname FROM pg_constraint) ORDER BY 1"
        ),
        {"t": list(TABLES)},
    )
    return [(str(n), str(d)) for n, d in rows]


def generate(engine: Engine, n: int, year: int, seed: int) -> Generation:
    report = Generation()

    def step(name: str, conn: Connection, sql: str, params: dict[str, Any] | None = None) -> int:
        started = time.perf_counter()
        result = conn.execute(text(sql), params or {})
        report.seconds[name] = time.perf_counter() - started
        print(f"  {name}: {report.seconds[name]:.1f} s", file=sys.stderr, flush=True)
        return int(result.rowcount or 0)

    total0 = time.perf_counter()
    with engine.begin() as conn:
        started = time.perf_counter()
        _lookups(conn, year, seed)
        report.seconds["lookup tables (Python)"] = time.perf_counter() - started
        conn.execute(text("DROP TABLE IF EXISTS bench_gen"))
        step(
            "draw the cases (CREATE UNLOGGED TABLE bench_gen AS SELECT)", conn, generation_sql(n, year, seed)
        )
        indexes = _secondary_indexes(conn)
        for name, _ in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
        report.rows["rating_case"] = step("INSERT rating_case", conn, case_insert_sql())
        report.rows["rating_rating"] = step("INSERT rating_rating", conn, rating_insert_sql(n))
        report.rows["rating_rectification"] = step(
            "INSERT rating_rectification", conn, rectification_insert_sql(n)
        )
        started = time.perf_counter()
        for _, definition in indexes:
            conn.execute(text(definition))
        report.seconds[f"CREATE the {len(indexes)} secondary indexes"] = time.perf_counter() - started
        for table in TABLES:
            conn.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")  # noqa: S608
            )
        conn.execute(text("DROP TABLE bench_gen, bench_dept, bench_item, bench_day, bench_tdept, bench_cat, "
                          "bench_agent"))  # fmt: skip
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        step("VACUUM ANALYZE", conn, "VACUUM (ANALYZE) rating_case, rating_rating, rating_rectification")
    report.seconds["total"] = time.perf_counter() - total0
    return report


def describe(engine: Engine, report: Generation, year: int) -> None:
    """Sizes, the realised distributions, consistency checks, the busiest department and June's volume."""
    with engine.connect() as conn:
        for table in TABLES:
            rows = int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608
            heap, total, idx = conn.execute(
                text(
                    f"SELECT pg_table_size('{table}'), pg_total_relation_size('{table}'), "
                    f"pg_indexes_size('{table}')"
                )
            ).one()
            report.rows[table] = rows
            report.sizes.append((table, int(heap), int(idx), int(total)))
        row = conn.execute(
            text("""
            SELECT count(*) AS cases,
                avg((kind = 'application')::int) AS application,
                avg((kind = 'ticket')::int) AS ticket,
                avg((kind = 'visit')::int) AS visit,
                avg((kind = 'consultation')::int) AS consultation,
                avg((channel IN ('online', 'app'))::int) FILTER (WHERE kind = 'application') AS online_share,
                avg((NOT on_time)::int) FILTER (WHERE on_time IS NOT NULL) AS late_share,
                max(work_days - limit_days) FILTER (WHERE NOT on_time) AS max_overrun_days,
                avg((supplements > 0)::int) FILTER (WHERE kind = 'application') AS supplemented,
                avg((precheck_findings > 0)::int) FILTER (WHERE kind = 'application') AS with_findings,
                avg(visits) FILTER (WHERE kind = 'application') AS visits_per_application,
                sum(materials_exempted)::float8 / nullif(sum(materials_total), 0) AS exempted_share,
                avg((rated_at IS NOT NULL)::int) AS rated_share,
                avg((first_level >= 4)::int) FILTER (WHERE first_level IS NOT NULL) AS satisfied_45,
                avg((first_level <= 2)::int) FILTER (WHERE first_level IS NOT NULL) AS bad_share,
                avg((rectification = 'rectified')::int) FILTER (WHERE first_level <= 2) AS rectified_share,
                avg((rectified_on_time)::int) FILTER (WHERE rectification = 'rectified')
                    AS on_time_of_rectified,
                avg((rectification = 'void')::int) FILTER (WHERE rectification IS NOT NULL) AS void_share,
                count(*) FILTER (WHERE closed_on <> (closed_at AT TIME ZONE 'Asia/Shanghai')::date
                                    OR closed_month <> to_char(closed_on, 'YYYY-MM')) AS inconsistent_days,
                count(*) FILTER (WHERE closed_on < make_date(CAST(:y AS int), 1, 1)
                                    OR closed_on > make_date(CAST(:y AS int), 12, 31))
                    AS outside_year,
                count(DISTINCT department) AS departments,
                count(DISTINCT item_code) AS items,
                count(DISTINCT region_code) AS regions
            FROM rating_case
            """),
            {"y": year},
        ).one()
        report.shares = {k: float(v) if v is not None else math.nan for k, v in row._mapping.items()}
        dept, cases = conn.execute(
            text("SELECT department, count(*) FROM rating_case WHERE department <> '' "
                 "GROUP BY department ORDER BY 2 DESC LIMIT 1")
        ).one()  # fmt: skip
        report.busiest_department = str(dept)
        report.department_share = int(cases) / max(1, report.rows["rating_case"])
        report.month_cases = int(
            conn.execute(
                text("SELECT count(*) FROM rating_case WHERE closed_month = :m"), {"m": f"{year}-06"}
            ).scalar_one()
        )


# --- in-process timings ----------------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def max(self) -> float:
        return max(self.seconds)


def timed(name: str, repeat: int, fn: Callable[[], object]) -> Timing:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    print(f"  {name}: median {statistics.median(out) * 1000:.0f} ms", file=sys.stderr, flush=True)
    return Timing(name, out)


def seq_count(session: Session) -> int:
    """``count(*)`` of the fact table by a sequential scan (index-only scans switched off for it)."""
    session.execute(text("SET LOCAL enable_indexonlyscan = off"))
    session.execute(text("SET LOCAL enable_indexscan = off"))
    session.execute(text("SET LOCAL enable_bitmapscan = off"))
    count = int(session.execute(text("SELECT count(*) FROM rating_case")).scalar_one())
    session.rollback()
    return count


def scopes(year: int, department: str) -> dict[str, Filters]:
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    return {
        "year": Filters(date_from=first, date_to=last),
        "department": Filters(date_from=first, date_to=last, department=department),
        "month": Filters(date_from=dt.date(year, 6, 1), date_to=dt.date(year, 6, 30)),
    }


@dataclass
class Explained:
    what: str
    execution_ms: float
    planning_ms: float
    jit_ms: float
    plan: str


@dataclass
class InProcess:
    baseline: Timing
    calls: dict[str, list[Timing]]
    pain: Timing
    explained: list[Explained]

    def all_seven(self, scope: str) -> Timing:
        """The seven calls of a scope as one set, repetition by repetition."""
        calls = self.calls[scope]
        return Timing("all", [sum(t.seconds[k] for t in calls) for k in range(len(calls[0].seconds))])


def in_process(
    engine: Engine, principal: auth.Principal, year: int, department: str, repeat: int
) -> InProcess:
    with Session(engine) as session:

        def one(f: Filters, g: str | None) -> None:
            forget()
            service.compute(session, f, g)
            session.rollback()

        def pain_points(f: Filters) -> None:
            forget()
            service.pain_points(session, principal, f)
            session.rollback()

        seq_count(session)  # warm the cache
        baseline = timed("SELECT count(*) (seq scan)", max(5, repeat), partial(seq_count, session))
        calls: dict[str, list[Timing]] = {}
        for scope, filters in scopes(year, department).items():
            calls[scope] = [
                timed(f"{scope} {g or 'total'}", repeat, partial(one, filters, g)) for g in GROUPS
            ]
        year_filters = scopes(year, department)["year"]
        pain = timed("pain points, year", repeat, partial(pain_points, year_filters))
    return InProcess(baseline, calls, pain, explain_year(engine, year_filters))


def summarise(statement: str) -> str:
    """A statement in one short line: what it selects (cut), its conditions beyond the date range,
    grouping, order and limit; bound values shown as ``?``."""
    flat = re.sub(r"%\(\w+\)s", "?", " ".join(statement.split())).replace("rating_case.", "")
    flat = re.sub(r" AS \w+|::[A-Z]+", "", flat)
    m = re.match(r"SELECT (.*?) FROM (.*?)(?: WHERE (.*?))?(?: GROUP BY (.*?))?(?: ORDER BY (.*?))?"
                 r"(?: LIMIT (.*?))?(?: OFFSET .*)?$", flat)  # fmt: skip
    if m is None:
        return flat[:100]
    columns, source, where, group, order, limit = m.groups()
    standard = ("closed_on IS NOT NULL", "closed_on >= ?", "closed_on <= ?")
    extra = [c for c in (where or "").split(" AND ") if c and c not in standard]
    parts = [f"SELECT {columns[:40]}{'…' if len(columns) > 40 else ''} FROM {source[:40]}"]  # noqa: S608 - a label, not a query
    if extra:
        parts.append("WHERE … AND " + " AND ".join(extra)[:90])
    if group:
        parts.append(f"GROUP BY {group}")
    if order:
        parts.append(f"ORDER BY {order}")
    if limit:
        parts.append(f"LIMIT {limit}")
    return " ".join(parts)


def explain(conn: Connection, statement: str, parameters: Any, what: str) -> Explained:
    lines = [
        str(x) for x in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).scalars()
    ]
    numbers = {"Execution Time:": 0.0, "Planning Time:": 0.0, "Timing:": 0.0}
    for line in lines:
        for label in numbers:
            if line.strip().startswith(label):
                # "Execution Time: 384.362 ms"; JIT's "Timing: Generation 5.2 ms, ..., Total 81.8 ms"
                numbers[label] = float(line.rsplit(" ms", 1)[0].rsplit(" ", 1)[1])
    return Explained(
        what, numbers["Execution Time:"], numbers["Planning Time:"], numbers["Timing:"], "\n".join(lines)
    )


def explain_year(engine: Engine, filters: Filters) -> list[Explained]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of every distinct statement the year's seven computations issue
    (captured from the engine), slowest first."""
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "rating_case" in statement:
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with Session(engine) as session:
            for g in GROUPS:
                service.compute(session, filters, g)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    out = []
    seen: set[str] = set()
    with engine.connect() as conn:
        for statement, parameters in captured:
            if (key := f"{statement}{parameters!r}") in seen:
                continue
            seen.add(key)
            out.append(explain(conn, statement, parameters, summarise(statement)))
        conn.rollback()
    out.sort(key=lambda r: -r.execution_ms)
    return out


# --- where a request's time goes -------------------------------------------------------------------------


@dataclass
class Profile:
    path: str
    status: int
    seconds: float
    #: (summary, executions, seconds) per distinct statement text, slowest first.
    statements: list[tuple[str, int, float]]
    explained: Explained | None


def forget() -> None:
    """Empty the rating service's short result cache, where there is one: every measure is a computation."""
    clear = getattr(service, "clear_cache", None)
    if clear is not None:
        clear()


def profile_requests(url: str, data_dir: Path, token: str, paths: Sequence[str]) -> list[Profile]:
    """Each path requested once, in-process (the app on the bench's database, no server, the indicator
    cache emptied first), timing every SQL statement it runs; the slowest statement explained."""
    with warnings.catch_warnings():  # starlette's note about its test client's httpx
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from tongban.web.app import create_app

    timings: list[tuple[str, Any, float]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        started = conn.info["bench_started"].pop()
        timings.append((statement, parameters, time.perf_counter() - started))

    app = create_app(Settings(data_dir=data_dir, database_url=url, log_level="WARNING"))
    client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    out = []
    try:
        for path in paths:
            forget()
            timings.clear()
            started = time.perf_counter()
            status = client.get(path).status_code
            seconds = time.perf_counter() - started
            by_text: dict[str, tuple[Any, int, float]] = {}
            for statement, parameters, took in timings:
                p, n, total = by_text.get(statement, (parameters, 0, 0.0))
                by_text[statement] = (p, n + 1, total + took)
            ranked = sorted(by_text.items(), key=lambda kv: -kv[1][2])
            explained = None
            if ranked and "rating_case" in ranked[0][0]:
                engine = make_engine(url)
                try:
                    with engine.connect() as conn:
                        statement, (parameters, _, _) = ranked[0]
                        explained = explain(conn, statement, parameters, summarise(statement))
                finally:
                    engine.dispose()
            statements = [(summarise(st), n, total) for st, (_, n, total) in ranked]
            out.append(Profile(path, status, seconds, statements, explained))
            print(f"  profile {path}: {status}, {seconds * 1000:.0f} ms", file=sys.stderr, flush=True)
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        event.remove(Engine, "after_cursor_execute", after)
        client.close()
    return out


def print_profiles(profiles: Sequence[Profile], top: int = 8) -> None:
    print(
        "\nWhere one request's time goes, in-process (the app on this database through a test client, the "
        "indicator cache emptied first; every SQL statement timed from the driver):"
    )
    for p in profiles:
        sql = sum(t for _, _, t in p.statements)
        print(
            f"\n`GET {urllib.parse.unquote(p.path)}` → {p.status} in **{p.seconds * 1000:.0f} ms**, "
            f"of which SQL {sql * 1000:.0f} ms in {sum(n for _, n, _ in p.statements)} statements "
            f"({len(p.statements)} distinct):\n"
        )
        print("| statement | runs | ms | share of the request |\n|---|---:|---:|---:|")
        for what, n, took in p.statements[:top]:
            print(f"| `{what}` | {n} | {took * 1000:.0f} | {took / p.seconds:.0%} |")
        rest = p.statements[top:]
        if rest:
            took, runs = sum(t for _, _, t in rest), sum(n for _, n, _ in rest)
            print(f"| {len(rest)} others | {runs} | {took * 1000:.0f} | {took / p.seconds:.0%} |")
        if p.explained is not None:
            e = p.explained
            print(
                f"\nIts slowest statement explained (execution {e.execution_ms:.0f} ms, planning "
                f"{e.planning_ms:.1f} ms, JIT {e.jit_ms:.0f} ms):\n\n```\n{e.plan}\n```"
            )


# --- the server ------------------------------------------------------------------------------------------


def analyst(engine: Engine) -> tuple[auth.Principal, str]:
    """The ``quality_analyst`` account (created on first use) and a fresh session token."""
    clock = SystemClock()
    with Session(engine) as session:
        account = session.scalars(select(Account).where(Account.username == ANALYST)).first()
        if account is None:
            account = auth.create_account(
                session, username=ANALYST, password=PASSWORD, roles=["quality_analyst"],
                display_name="Bench analyst", clock=clock,
            )  # fmt: skip
        token, _ = auth.start_session(session, account, clock=clock, hours=12)
        principal = auth.Principal(
            account_id=account.id,
            username=account.username,
            display_name=account.display_name,
            roles=tuple(account.roles),
            permissions=auth.permissions_for(account.roles),
        )
        session.commit()
    return principal, token


@contextlib.contextmanager
def running_server(env: dict[str, str], cwd: Path, log: IO[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    with server_process([tongban_executable(), "serve"], env, cwd, log) as proc:
        yield proc


def _stats() -> Iterator[tuple[int, str, list[str]]]:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        pid, comm = head.split(" (", 1)
        yield int(pid), comm, tail.split()


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (``/proc``)."""
    return sum((int(f[11]) + int(f[12])) / CLOCK_TICK for p, _, f in _stats() if pid in (p, int(f[1])))


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process, plus what the postmaster reaped from exited ones
    (parallel workers, closed connections)."""
    procs = [(p, f) for p, comm, f in _stats() if comm == "postgres"]
    pids = {p for p, _ in procs}
    total = 0.0
    for _, f in procs:
        total += (int(f[11]) + int(f[12])) / CLOCK_TICK
        if int(f[1]) not in pids:  # the postmaster
            total += (int(f[13]) + int(f[14])) / CLOCK_TICK
    return total


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    server_cpu: float = 0.0
    pg_cpu: float = 0.0
    loadgen_cpu: float = 0.0
    busy: float = 0.0
    capacity: float = 0.0
    cut_short: bool = False

    def merge(self, other: Result) -> None:
        self.latencies += other.latencies
        self.errors.update(other.errors)
        self.wall_s += other.wall_s
        self.server_cpu += other.server_cpu
        self.pg_cpu += other.pg_cpu
        self.loadgen_cpu += other.loadgen_cpu
        self.busy += other.busy
        self.capacity += other.capacity
        self.cut_short = self.cut_short or other.cut_short

    def ms(self, pct: float) -> float:
        return percentile(sorted(self.latencies), pct) * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s else math.nan


async def drive(
    name: str, clients: Sequence[httpx.AsyncClient], urls: Sequence[str], pid: int, max_seconds: float
) -> Result:
    """The clients share ``urls``: each takes the next one when its previous answer is in, until none is
    left or ``max_seconds`` have passed (requests already sent are still waited for)."""
    result = Result(name)
    pending = iter(urls)
    deadline = time.perf_counter() + max_seconds

    async def worker(client: httpx.AsyncClient) -> None:
        for url in pending:
            if time.perf_counter() > deadline:
                result.cut_short = True
                return
            started = time.perf_counter()
            try:
                response = await client.get(url)
                error = None if response.status_code == 200 else str(response.status_code)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:120]
            result.latencies.append(time.perf_counter() - started)
            if error is not None:
                result.errors[error] += 1

    server0, pg0, loadgen0, (busy0, total0) = (
        tree_cpu(pid),
        postgres_cpu(),
        time.process_time(),
        machine_cpu(),
    )
    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in clients))
    result.wall_s = time.perf_counter() - started
    busy1, total1 = machine_cpu()
    result.server_cpu = tree_cpu(pid) - server0
    result.pg_cpu = postgres_cpu() - pg0
    result.loadgen_cpu = time.process_time() - loadgen0
    result.busy, result.capacity = busy1 - busy0, total1 - total0
    print(
        f"    {name}: {len(result.latencies)} requests, {result.rate:.2f}/s, p95 {result.ms(95):.0f} ms, "
        f"errors {dict(result.errors)}",
        file=sys.stderr,
        flush=True,
    )
    return result


@dataclass
class Http:
    page_status: int
    results: list[Result]
    baseline: Result


def varied_urls(path: str, year: int, lane: int, skip: int, n: int, **extra: str) -> list[str]:
    """``n`` addresses of ``path`` over the year cut short by a few days at either end, a different period
    each (1,600 of them per ``lane``; lanes never share one), so that no two meet in a cache."""
    out = []
    for k in range(skip, skip + n):
        first = dt.date(year, 1, 1) + dt.timedelta(days=k % 40)
        last = dt.date(year, 12, 31) - dt.timedelta(days=40 * lane + (k // 40) % 40)
        query = {"date_from": first.isoformat(), "date_to": last.isoformat(), **extra}
        out.append(f"{path}?{urllib.parse.urlencode(query)}")
    return out


async def measure_http(
    base_url: str, pid: int, token: str, *, year: int, department: str, clients_n: int, requests: int,
    warmup: int, max_seconds: float,
) -> Http:  # fmt: skip
    dates = {"date_from": f"{year}-01-01", "date_to": f"{year}-12-31"}
    page_year = "/quality?" + urllib.parse.urlencode(dates)
    page_dept = "/quality?" + urllib.parse.urlencode({**dates, "department": department})
    api_path = "/api/v1/quality/indicators"
    api = f"{api_path}?" + urllib.parse.urlencode({**dates, "group_by": "department"})
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=2.0)
    clients = [
        httpx.AsyncClient(
            base_url=base_url, limits=limits, timeout=httpx.Timeout(900.0),
            headers={"Authorization": f"Bearer {token}"},
        )
        for _ in range(clients_n)
    ]  # fmt: skip
    try:
        page_status = (await clients[0].get(page_year)).status_code
        api_status = (await clients[0].get(api)).status_code
        if api_status != 200:
            raise RuntimeError(f"{api} answered {api_status}")
        # (name, warm-up URLs, measured URLs)
        scenarios: list[tuple[str, list[str], list[str]]] = []
        if page_status != 404:
            scenarios += [
                ("/quality page, year, same URL", [page_year] * warmup, [page_year] * requests),
                ("/quality page, busiest department, same URL", [page_dept] * warmup, [page_dept] * requests),
                (
                    "/quality page, a different period each time",
                    varied_urls("/quality", year, 0, 0, warmup),
                    varied_urls("/quality", year, 0, warmup, requests),
                ),
            ]
        scenarios += [
            ("API by department, year, same URL", [api] * warmup, [api] * requests),
            (
                "API by department, a different period each time",
                varied_urls(api_path, year, 1, 0, warmup, group_by="department"),
                varied_urls(api_path, year, 1, warmup, requests, group_by="department"),
            ),
        ]
        for name, warm, _ in [("healthz", ["/healthz"] * warmup, []), *scenarios]:
            done = await drive(f"warm-up {name}", clients, warm, pid, max_seconds)
            if done.errors:
                raise RuntimeError(f"warm-up of {name} failed: {dict(done.errors)}")
        half = max(clients_n, requests // 2)
        baseline = await drive("healthz", clients, ["/healthz"] * half, pid, max_seconds)
        results = [await drive(name, clients, urls, pid, max_seconds) for name, _, urls in scenarios]
        baseline.merge(await drive("healthz", clients, ["/healthz"] * half, pid, max_seconds))
        return Http(page_status, results, baseline)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


# --- the database ----------------------------------------------------------------------------------------


def prepare_database(url_arg: str, skip_generate: bool) -> str:
    url = make_url(Settings(database_url=url_arg).database_url)
    name = url.database or ""
    if url.get_backend_name() != "postgresql" or not name.startswith("bench_"):
        raise SystemExit("--database-url: a PostgreSQL database whose name starts with bench_")
    if not skip_generate:
        admin = make_engine(url.set(database="postgres").render_as_string(hide_password=False))
        try:
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
    return url.render_as_string(hide_password=False)


def pg_settings(engine: Engine) -> str:
    names = ("shared_buffers", "work_mem", "max_parallel_workers_per_gather", "jit", "effective_cache_size")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(:n) ORDER BY 1"),
            {"n": list(names)},
        ).all()
    return ", ".join(f"{n} {v}" for n, v in rows)


# --- output ----------------------------------------------------------------------------------------------


def mib(n: int) -> str:
    return f"{n / 1024 / 1024:,.0f} MiB"


def print_generation(r: Generation, n: int | None) -> None:
    if n is None:
        print("Data generated by an earlier run (`--skip-generate`).")
    else:
        print(f"Generated {n:,} cases in **{r.seconds['total']:.0f} s**:\n")
        print("| step | seconds |\n|---|---:|")
        for name, seconds in r.seconds.items():
            if name != "total":
                print(f"| {name} | {seconds:.1f} |")
    print("\n| table | rows | heap + TOAST | indexes | total |\n|---|---:|---:|---:|---:|")
    for table, heap, idx, total in r.sizes:
        print(f"| {table} | {r.rows.get(table, 0):,} | {mib(heap)} | {mib(idx)} | {mib(total)} |")
    s = r.shares
    print(
        f"\nRealised: applications {s['application']:.1%}, tickets {s['ticket']:.1%}, "
        f"visits {s['visit']:.1%}, consultations {s['consultation']:.1%}; "
        f"online share of applications {s['online_share']:.1%}; "
        f"late {s['late_share']:.1%} (longest overrun {s['max_overrun_days']:.0f} working days); "
        f"supplemented {s['supplemented']:.1%}, pre-check findings {s['with_findings']:.1%}; visits per "
        f"application {s['visits_per_application']:.2f}; exempted materials {s['exempted_share']:.1%}; rated "
        f"{s['rated_share']:.1%}; first ratings 非常满意/满意 {s['satisfied_45']:.1%}, bad "
        f"{s['bad_share']:.2%}; bad reviews rectified {s['rectified_share']:.1%} (on time "
        f"{s['on_time_of_rectified']:.1%} of them), void after an upheld appeal {s['void_share']:.1%}; "
        f"{s['departments']:.0f} departments, {s['items']:.0f} items, {s['regions']:.0f} regions. Checks: "
        f"closed_on/closed_month inconsistent with closed_at (UTC+8) in {s['inconsistent_days']:.0f} rows, "
        f"outside the year in {s['outside_year']:.0f}."
    )


def print_in_process(r: InProcess, department: str, dept_share: float, month_cases: int, repeat: int) -> None:
    base = r.baseline.median
    print(
        f"\nIn-process, `service.compute` (median and max of {repeat}; a `group_by` call computes the total "
        f"too; the service's result cache emptied before each call). Baseline `count(*)` of rating_case by "
        f"sequential scan: median "
        f"**{base * 1000:.0f} ms** (max {r.baseline.max * 1000:.0f}). Scopes: the year; one department, "
        f"the busiest ({department}, {dept_share:.1%} of cases); one month (June, {month_cases:,} cases).\n"
    )
    print("| group_by | year ms (max) | ÷ count(*) | department ms (max) | month ms (max) |")
    print("|---|---:|---:|---:|---:|")
    for k, g in enumerate(GROUPS):
        y, d, m = r.calls["year"][k], r.calls["department"][k], r.calls["month"][k]
        print(
            f"| {g or 'total only'} | {y.median * 1000:.0f} ({y.max * 1000:.0f}) | {y.median / base:.1f}× "
            f"| {d.median * 1000:.0f} ({d.max * 1000:.0f}) | {m.median * 1000:.0f} ({m.max * 1000:.0f}) |"
        )
    y, d, m = (r.all_seven(s) for s in ("year", "department", "month"))
    print(
        f"| **all seven** | **{y.median * 1000:.0f}** ({y.max * 1000:.0f}) | **{y.median / base:.1f}×** "
        f"| **{d.median * 1000:.0f}** ({d.max * 1000:.0f}) | **{m.median * 1000:.0f}** ({m.max * 1000:.0f}) |"
    )
    print(
        f"\n`service.pain_points` for the year: median **{r.pain.median * 1000:.0f} ms** (max "
        f"{r.pain.max * 1000:.0f}), {r.pain.median / base:.1f}× the count(*)."
    )
    print(
        "\n`EXPLAIN (ANALYZE, BUFFERS)` of the statements of the year's seven computations "
        "(execution / planning / JIT ms):\n"
    )
    print("| statement (its grouping) | execution | planning | JIT |\n|---|---:|---:|---:|")
    for e in r.explained:
        print(f"| {e.what} | {e.execution_ms:.0f} | {e.planning_ms:.1f} | {e.jit_ms:.0f} |")
    if r.explained:
        print(f"\nThe slowest ({r.explained[0].what}):\n\n```\n{r.explained[0].plan}\n```")


def print_http(h: Http, clients: int, requests: int, max_seconds: float) -> None:
    print(
        f"\nHTTP, `tongban serve` (one uvicorn worker), {clients} clients, up to {requests} requests per "
        f"scenario or {max_seconds:.0f} s. `GET /quality` answered **{h.page_status}**"
        + (" — the page does not exist yet: only the API and healthz were measured." if h.page_status == 404
           else ".")
        + "\n"
    )  # fmt: skip
    print("| scenario | requests | errors | p50 ms | p95 ms | p99 ms | max ms | req/s | p95 ÷ healthz p95 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = h.baseline
    for r in (base, *h.results):
        detail = f" {dict(r.errors)}" if r.errors else ""
        short = " (time cap)" if r.cut_short else ""
        print(
            f"| {r.name} | {len(r.latencies)}{short} | {r.errors.total()}{detail} | {r.ms(50):.0f} | "
            f"{r.ms(95):.0f} | {r.ms(99):.0f} | {r.ms(100):.0f} | {r.rate:.2f} | "
            f"**{r.ms(95) / base.ms(95):.0f}×** |"
        )
    print(
        "\n| scenario | server CPU ms/req | PostgreSQL CPU ms/req | load gen. CPU ms/req | machine busy % |"
    )
    print("|---|---:|---:|---:|---:|")
    for r in (base, *h.results):
        n = max(1, len(r.latencies))
        busy = 100 * r.busy / r.capacity if r.capacity else math.nan
        print(
            f"| {r.name} | {1000 * r.server_cpu / n:.1f} | {1000 * r.pg_cpu / n:.1f} | "
            f"{1000 * r.loadgen_cpu / n:.1f} | {busy:.0f} |"
        )


# --- main ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default=DEFAULT_URL, help="a PostgreSQL database named bench_* (kept)"
    )
    parser.add_argument("--cases", type=int, default=1_000_000, help="cases to generate")
    parser.add_argument("--year", type=int, default=2025, help="the year the cases close in")
    parser.add_argument("--seed", type=int, default=6, help="seed of the generated data")
    parser.add_argument("--clients", type=int, default=20, help="concurrent HTTP clients")
    parser.add_argument("--requests", type=int, default=400, help="requests per HTTP scenario (at most)")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop starting requests after this")
    parser.add_argument(
        "--warmup", type=int, default=0, help="unmeasured requests per scenario (default clients)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each in-process measure")
    parser.add_argument("--skip-generate", action="store_true", help="reuse the data already in the database")
    parser.add_argument("--skip-http", action="store_true", help="no server (in-process only)")
    parser.add_argument("--ready-tries", type=int, default=300, help="/readyz polls, 0.2 s apart")
    args = parser.parse_args(argv)
    if args.cases < 1000 or args.clients < 1 or args.requests < 1 or args.repeat < 1:
        parser.error("--cases ≥ 1000, --clients ≥ 1, --requests ≥ 1, --repeat ≥ 1")

    url = prepare_database(args.database_url, args.skip_generate)
    host = machine(url.replace("postgresql+psycopg", "postgresql").rsplit("/", 1)[0])
    engine = make_engine(url)
    try:
        what = "the data already there" if args.skip_generate else f"{args.cases:,} cases generated"
        print(f"# Quality indicators — {DISTRICT_CODE} {DISTRICT}, {args.year}, {what}\n")
        print(host.markdown())
        print(f"- PostgreSQL settings: {pg_settings(engine)}\n")
        gen = Generation()
        if not args.skip_generate:
            migrate.upgrade(engine)
            gen = generate(engine, args.cases, args.year, args.seed)
        describe(engine, gen, args.year)
        print_generation(gen, None if args.skip_generate else args.cases)
        sys.stdout.flush()
        principal, token = analyst(engine)
        timings = in_process(engine, principal, args.year, gen.busiest_department, args.repeat)
        print_in_process(timings, gen.busiest_department, gen.department_share, gen.month_cases, args.repeat)
        sys.stdout.flush()
        with tempfile.TemporaryDirectory(prefix="tongban-quality-bench-") as tmp:
            data_dir = Path(tmp)
            (data_dir / "profile").mkdir()
            dates = {"date_from": f"{args.year}-01-01", "date_to": f"{args.year}-12-31"}
            paths = [
                "/quality?" + urllib.parse.urlencode(dates),
                "/quality?" + urllib.parse.urlencode({**dates, "department": gen.busiest_department}),
                "/api/v1/quality/indicators?" + urllib.parse.urlencode({**dates, "group_by": "department"}),
            ]
            print_profiles(profile_requests(url, data_dir / "profile", token, paths))
            sys.stdout.flush()
            if args.skip_http:
                return 0
            port = free_port()
            env = platform_env(
                data_dir, url, TONGBAN_HOST="127.0.0.1", TONGBAN_PORT=str(port), TONGBAN_LOG_LEVEL="WARNING"
            )
            base_url = f"http://127.0.0.1:{port}"
            log_path = data_dir / "server.log"
            with log_path.open("wb") as log, running_server(env, data_dir, log) as proc:
                try:
                    wait_ready(base_url, proc, args.ready_tries)
                    http = asyncio.run(
                        measure_http(
                            base_url, proc.pid, token, year=args.year, department=gen.busiest_department,
                            clients_n=args.clients, requests=args.requests,
                            warmup=args.warmup or args.clients, max_seconds=args.max_seconds,
                        )
                    )  # fmt: skip
                except Exception:
                    log.flush()
                    print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
                    raise
        print_http(http, args.clients, args.requests, args.max_seconds)
        failed = http.baseline.errors.total() + sum(r.errors.total() for r in http.results)
        if failed:
            print(f"\n{failed} request(s) failed", file=sys.stderr)
            return 1
        return 0
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
