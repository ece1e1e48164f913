"""A synthetic city population for demos and benchmarks: persons and enterprises with the facts the
shipped rules read, drawn with realistic distributions, generated inside DuckDB in one statement per
table (millions of rows a second; deterministic for a seed, whatever the thread count).

Persons follow Beijing's 2020 census where it is public: the residents of the 16 districts (GB/T 2260
codes, population shares), the age structure (11.9 % under 15, 19.6 % aged 60 and over, ~3 % 80 and over),
~63 % with a Beijing household registration (户籍) and the rest registered in the provinces most migrants
come from; ~6 % hold a disability certificate (grades 1–4, the milder more common), ~0.5 % receive the
minimum living allowance, monthly incomes are log-normal (median ~7,000 yuan) with a tenth not on file.
Enterprises: industries (GB/T 4754 sections) in the shares of a services-heavy city, sizes mostly micro
(80 % micro, 15 % small, 4 % medium, 1 % large), employees and revenue log-normal by size with last year's
revenue and growth, registration dates over 30 years, tax credit grades A/B/M/C/D (10/60/20/7/3 %), and
12 months of social insurance payment, persistent (a firm that misses a month often misses the next).
Every fact is missing for a small share of rows (so results are sometimes undetermined, as in life).

Uniform draws are ``hash(id, column, seed)`` mapped to [0, 1): no state, so any slice can be regenerated.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

#: (GB/T 2260 code, residents in 10,000s, 2020 census)
DISTRICTS: tuple[tuple[str, float], ...] = (
    ("110101", 70.9),
    ("110102", 110.6),
    ("110105", 345.2),
    ("110106", 201.9),
    ("110107", 56.8),
    ("110108", 313.2),
    ("110109", 39.3),
    ("110111", 131.3),
    ("110112", 184.0),
    ("110113", 132.4),
    ("110114", 226.9),
    ("110115", 199.4),
    ("110116", 44.1),
    ("110117", 45.7),
    ("110118", 52.8),
    ("110119", 34.6),
)
#: Household registrations outside the city: (a county-level code, share among them)
ELSEWHERE: tuple[tuple[str, float], ...] = (
    ("130102", 0.22),  # 河北
    ("410102", 0.12),  # 河南
    ("370102", 0.10),  # 山东
    ("230102", 0.07),  # 黑龙江
    ("340102", 0.07),  # 安徽
    ("140105", 0.06),  # 山西
    ("220102", 0.05),  # 吉林
    ("210102", 0.05),  # 辽宁
    ("150102", 0.04),  # 内蒙古
    ("120101", 0.04),  # 天津
    ("420102", 0.06),  # 湖北
    ("510104", 0.06),  # 四川
    ("320102", 0.06),  # 江苏
)
#: Age bands (lowest age, highest age, share of residents)
AGES: tuple[tuple[int, int, float], ...] = (
    (0, 14, 0.119),
    (15, 29, 0.190),
    (30, 44, 0.260),
    (45, 59, 0.235),
    (60, 69, 0.100),
    (70, 79, 0.066),
    (80, 89, 0.026),
    (90, 104, 0.004),
)
#: (GB/T 4754 code, share of enterprises)
INDUSTRIES: tuple[tuple[str, float], ...] = (
    ("F5123", 0.24),  # 批发和零售
    ("M7320", 0.17),  # 科学研究和技术服务
    ("L7212", 0.15),  # 租赁和商务服务
    ("I6510", 0.11),  # 软件和信息技术服务
    ("E4710", 0.05),  # 建筑
    ("C3911", 0.05),  # 制造
    ("H6210", 0.06),  # 住宿和餐饮
    ("K7010", 0.05),  # 房地产
    ("R8610", 0.04),  # 文化、体育和娱乐
    ("O8010", 0.04),  # 居民服务
    ("A0111", 0.01),  # 农业
    ("G5430", 0.03),  # 交通运输
)
#: (size class, share, median employees, median revenue in yuan)
SIZES: tuple[tuple[str, float, int, int], ...] = (
    ("micro", 0.80, 4, 600_000),
    ("small", 0.15, 40, 12_000_000),
    ("medium", 0.04, 400, 300_000_000),
    ("large", 0.01, 3000, 5_000_000_000),
)
GRADES: tuple[tuple[str, float], ...] = (("A", 0.10), ("B", 0.60), ("M", 0.20), ("C", 0.07), ("D", 0.03))


def _u(column: str, seed: int) -> str:
    """A uniform draw in [0, 1) for the row ``i``, fixed by the column name and the seed."""
    return f"((hash(i, '{column}', {seed}) % 1000000007) / 1000000007.0)"


def _pick(u: str, choices: tuple[tuple[str, float], ...]) -> str:
    """A CASE picking a value by cumulative share (the shares are normalised)."""
    total = sum(share for _, share in choices)
    acc = 0.0
    parts = []
    for value, share in choices[:-1]:
        acc += share / total
        parts.append(f"WHEN {u} < {acc:.9f} THEN '{value}'")
    return f"CASE {' '.join(parts)} ELSE '{choices[-1][0]}' END"


def _missing(value: str, column: str, seed: int, share: float) -> str:
    return f"CASE WHEN {_u('miss_' + column, seed)} < {share} THEN NULL ELSE {value} END"


def _normal(column: str, seed: int) -> str:
    """A standard normal draw (Box–Muller from two uniform draws)."""
    u1 = f"GREATEST({_u(column + '_a', seed)}, 1e-12)"
    u2 = _u(column + "_b", seed)
    return f"(sqrt(-2 * ln({u1})) * cos(2 * pi() * {u2}))"


def persons_sql(n: int, ref_date: dt.date, seed: int = 0) -> str:
    """A ``SELECT`` of ``n`` synthetic persons (``id``, the facts of the shipped person rules)."""
    n, seed = int(n), int(seed)
    total = sum(a[2] for a in AGES)
    acc = 0.0
    age_cases = []
    for low, high, share in AGES:
        start = acc
        acc += share / total
        age_cases.append(
            f"WHEN {_u('age', seed)} < {acc:.9f} THEN {low} + CAST(floor(({_u('age', seed)} - {start:.9f}) "
            f"/ {share / total:.9f} * {high - low + 1}) AS INTEGER)"
        )
    age = f"CASE {' '.join(age_cases)} ELSE 90 END"
    residents = _pick(_u("district", seed), tuple((c, float(p)) for c, p in DISTRICTS))
    elsewhere = _pick(_u("elsewhere", seed), ELSEWHERE)
    hukou = f"CASE WHEN {_u('hukou', seed)} < 0.63 THEN {residents} ELSE {elsewhere} END"
    ref = ref_date.isoformat()
    day_of_year = f"CAST(floor({_u('birthday', seed)} * 365) AS INTEGER)"
    birth = f"(DATE '{ref}' - INTERVAL (age_years) YEAR - INTERVAL ({day_of_year}) DAY)"
    disability = (
        f"CASE WHEN {_u('disabled', seed)} < 0.06 THEN "
        f"CASE WHEN {_u('grade', seed)} < 0.10 THEN 1 WHEN {_u('grade', seed)} < 0.30 THEN 2 "
        f"WHEN {_u('grade', seed)} < 0.55 THEN 3 ELSE 4 END END"
    )
    income = "CAST(round(700000 * exp(0.6 * {z})) AS BIGINT)"
    income_cols = ",\n  ".join(
        f"{_missing(income.format(z=_normal(f'income{k}', seed)), f'income{k}', seed, 0.10)} AS "
        + ("monthly_income" if k == 0 else f"monthly_income__p{k}")
        for k in range(3)
    )
    # Only numbers and text of this module go into the statement (n and seed are ints).
    return f"""
SELECT i AS id, CAST(floor(i / 2.6) AS BIGINT) AS household_id,
  {_missing("hukou_code", "hukou", seed, 0.01)} AS hukou_region,
  {_missing("CAST(birth AS DATE)", "birth", seed, 0.02)} AS birth_date,
  {_missing(f"{_u('disabled', seed)} < 0.06", "certified", seed, 0.005)} AS disability_certified,
  {disability} AS disability_grade,
  {_missing(f"{_u('low', seed)} < 0.005", "low", seed, 0.03)} AS low_income,
  {income_cols},
  {_missing(f"{_u('employed', seed)} < 0.62", "employed", seed, 0.02)} AS employed
FROM (
  SELECT i, {hukou} AS hukou_code, age_years, {birth} AS birth
  FROM (SELECT i, {age} AS age_years FROM range({n}) AS r(i)) AS a
) AS p
"""  # noqa: S608


def enterprises_sql(n: int, ref_date: dt.date, seed: int = 0) -> str:
    """A ``SELECT`` of ``n`` synthetic enterprises (``id``, the facts of the shipped enterprise rules)."""
    n, seed = int(n), int(seed)
    size = _pick(_u("size", seed), tuple((s, share) for s, share, _, _ in SIZES))
    median_emp = "CASE size WHEN 'micro' THEN 4 WHEN 'small' THEN 40 WHEN 'medium' THEN 400 ELSE 3000 END"
    median_rev = (
        "CASE size WHEN 'micro' THEN 60000000 WHEN 'small' THEN 1200000000 "
        "WHEN 'medium' THEN 30000000000 ELSE 500000000000 END"
    )
    district = _pick(_u("district", seed), tuple((c, float(p)) for c, p in DISTRICTS))
    region = f"CASE WHEN {_u('outside', seed)} < 0.03 THEN '120104' ELSE {district} END"
    growth = f"(1 + 0.08 + 0.25 * {_normal('growth', seed)})"
    ref = ref_date.isoformat()
    months = []
    for k in range(12):
        # a firm that paid last month rarely stops (2 %); one behind stays behind half the time
        months.append(
            _missing(
                f"NOT ({_u('si_trouble', seed)} < 0.06 AND {_u(f'si{k}', seed)} < 0.5)",
                f"si{k}",
                seed,
                0.01,
            )
            + " AS "
            + ("si_paid" if k == 0 else f"si_paid__p{k}")
        )
    month_cols = ",\n  ".join(months)
    days_old = f"CAST(floor({_u('age', seed)} ** 2 * 30 * 365) AS INTEGER)"
    registered = f"CAST(DATE '{ref}' - INTERVAL ({days_old}) DAY AS DATE)"
    rent = f"CAST(round(revenue * 0.03 * (0.5 + {_u('rent', seed)})) AS BIGINT)"
    high_tech = f"(size <> 'micro' AND {_u('hightech', seed)} < 0.12) OR {_u('hightech', seed)} < 0.015"
    revenue = f"({median_rev}) * exp(0.9 * {_normal('revenue', seed)})"
    # Only numbers and text of this module go into the statement (n and seed are ints).
    return f"""
SELECT i AS id,
  {_missing("region", "region", seed, 0.005)} AS region_code,
  {_missing("industry", "industry", seed, 0.01)} AS industry_code,
  {_missing(registered, "registered", seed, 0.005)} AS registered_on,
  {_missing("employees", "employees", seed, 0.03)} AS employees,
  {_missing("revenue", "revenue", seed, 0.05)} AS revenue,
  {_missing("CAST(GREATEST(revenue_before, 0) AS BIGINT)", "revenue_before", seed, 0.12)} AS revenue__p1,
  {_missing(rent, "rent", seed, 0.55)} AS rent_paid,
  {month_cols},
  {_missing(_pick(_u("grade", seed), GRADES), "grade", seed, 0.04)} AS tax_credit_grade,
  {_missing(high_tech, "hightech", seed, 0.02)} AS high_tech
FROM (
  SELECT i, size, {region} AS region,
    {_pick(_u("industry", seed), INDUSTRIES)} AS industry,
    GREATEST(1, CAST(round(({median_emp}) * exp(0.7 * {_normal("employees", seed)})) AS BIGINT)) AS employees,
    CAST(round({revenue}) AS BIGINT) AS revenue,
    CAST(round({revenue} / GREATEST({growth}, 0.2)) AS BIGINT) AS revenue_before
  FROM (SELECT i, {size} AS size FROM range({n}) AS r(i)) AS s
) AS e
"""  # noqa: S608


def generate(con: Any, *, persons: int, enterprises: int, ref_date: dt.date, seed: int = 0) -> None:
    """Create (or replace) the tables ``person``, ``household`` and ``enterprise`` in the DuckDB
    connection ``con``."""
    con.execute(f"CREATE OR REPLACE TABLE person AS {persons_sql(persons, ref_date, seed)}")
    con.execute(f"CREATE OR REPLACE TABLE enterprise AS {enterprises_sql(enterprises, ref_date, seed)}")
    # Households of 2 or 3 consecutive persons (2.6 on average, as in Beijing's census); registered where
    # their first member is.
    con.execute(
        "CREATE OR REPLACE TABLE household AS "
        "SELECT household_id AS id, arg_min(hukou_region, id) AS household_region "
        "FROM person GROUP BY household_id"
    )
