"""Policy rules at population scale (issue 8): the compiled batch SQL against hand-written DuckDB SQL, and
the per-request screen.

1. **100 items**: 25 variants of each of the four shipped demo items (`src/tongban/policy/data/rules/`):
   the region of each (the city or one of its 16 districts), the age threshold of the allowance, the rent
   subsidy's cap and the growth award's threshold change from variant to variant. 50 items for persons,
   50 for enterprises.
2. **A synthetic city** (`policy.synthetic.generate`, DuckDB, a database file in a temporary directory):
   ``--persons`` and ``--enterprises`` (default 1,000,000 and 100,000), generated once per run.
3. **Batch, ours**: `engine.batch_sql` for each entity type (one statement, all its items), stored with
   its explanation (`CREATE TABLE … AS`: id, item, version, result, amount, a T/F/U letter per condition;
   rows not eligible left out). **Batch, by hand**: the same 100 items as DuckDB SQL written the way an
   engineer would for these four shapes (conditions as plain predicates, the size class as a CASE with
   its unknowns spelled out, ages as birth-date comparisons), stored the same way. The two results must be
   identical: counts and fen totals per item and result, and a checksum of every (id, item, result,
   amount, explanation). The ratio ours ÷ hand-written is the figure (target: ≤ 1.5×), medians of
   ``--repeat`` runs.
4. **Per request**: ``--items-per-request`` (1,000) variants of the enterprise items compiled into one
   `Matcher`; `screen` (ids of the items not failed) and `match` (those, decided and explained) for one
   enterprise and one person, medians of 200 calls.

    .venv/bin/python bench/policy.py                         # 1M persons, 100k enterprises
    .venv/bin/python bench/policy.py --persons 22000000      # Beijing's population
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from tongban.policy import engine as G
from tongban.policy import rules as R
from tongban.policy import synthetic

REF = dt.date(2026, 12, 3)
CITY = "110000"
REGIONS = [CITY] + [code for code, _ in synthetic.DISTRICTS]


def shipped() -> R.RuleSet:
    folder = Path(str(resources.files("tongban.policy") / "data" / "rules"))
    return R.load_rule_set(folder.glob("*.yaml"))


def variants(rules: R.RuleSet, per_item: int, seed: int) -> R.RuleSet:
    """``per_item`` variants of each shipped item (region, thresholds and caps changed)."""
    rng = random.Random(seed)
    items = []
    for base in rules.items.values():
        if base.spec.entity == "household":
            continue  # the bench's hand-written SQL covers the person and enterprise shapes
        for k in range(per_item):
            conditions = []
            for c in base.spec.conditions:
                update: dict[str, Any] = {}
                if c.type == "region":
                    update["codes"] = [REGIONS[(k + rng.randrange(len(REGIONS))) % len(REGIONS)]]
                elif c.id == "aged_80":
                    update["min"] = rng.choice([70, 75, 80, 85])
                elif c.type == "growth":
                    update["min_percent"] = rng.choice([10, 15, 20, 30])
                conditions.append(c.model_copy(update=update))
            spec_update: dict[str, Any] = {"id": f"{base.id}-{k:03d}", "conditions": conditions, "tests": []}
            if base.spec.amount is not None and base.spec.amount.cap_fen is not None:
                cap = rng.choice([10_000_000, 50_000_000, 100_000_000, 200_000_000])
                spec_update["amount"] = base.spec.amount.model_copy(update={"cap_fen": cap})
            items.append(base.spec.model_copy(update=spec_update))
    return R.check(R.RuleFile(variables=list(rules.variables.values()), items=items))


# --- the same items, written by hand ---------------------------------------------------------------------


def _prefix(code: str) -> str:
    return code.rstrip("0") if code == CITY else code  # 110000 → "11"; a district's code is itself


def _mark(c: str) -> str:
    return f"(CASE WHEN {c} THEN 'T' WHEN NOT {c} THEN 'F' ELSE 'U' END)"


def _item(item_id: str, columns: str, conditions: list[str], amount: str | None, table: str) -> str:
    names = [f"c{i}" for i in range(len(conditions))]
    met = " AND ".join(names)
    result = f"CASE WHEN {met} THEN 'eligible' WHEN NOT ({met}) THEN 'not_eligible' ELSE 'undetermined' END"
    marks = " || ".join(_mark(n) for n in names)
    inner = ", ".join(f"{c} AS {n}" for c, n in zip(conditions, names, strict=True))
    amount_sql = f"CASE WHEN {met} THEN {amount} END" if amount else "CAST(NULL AS BIGINT)"
    return (
        f"SELECT * FROM (SELECT id, '{item_id}' AS item_id, 1 AS version, {result} AS result, "  # noqa: S608
        f"{amount_sql} AS amount_fen, {marks} AS marks "
        f"FROM (SELECT id, {columns}, {inner} FROM {table}) AS t) AS r WHERE result <> 'not_eligible'"
    )


SIZE_CLASS = """(CASE
  WHEN industry_code IS NULL THEN NULL
  WHEN industry_code LIKE 'I%' THEN
    CASE WHEN employees < 10 OR revenue < 5000000 THEN 'micro'
         WHEN employees IS NULL OR revenue IS NULL THEN NULL
         WHEN employees < 100 OR revenue < 100000000000 THEN 'small'
         WHEN employees < 2000 OR revenue < 1000000000000 THEN 'medium'
         ELSE 'large' END
  ELSE
    CASE WHEN employees < 20 OR revenue < 30000000 THEN 'micro'
         WHEN employees IS NULL OR revenue IS NULL THEN NULL
         WHEN employees < 300 OR revenue < 200000000000 THEN 'small'
         WHEN employees < 1000 OR revenue < 4000000000000 THEN 'medium'
         ELSE 'large' END
END)"""


def hand_written(rules: R.RuleSet, entity: str) -> str:
    parts = []
    for item in rules.items.values():
        if item.spec.entity != entity:
            continue
        spec = item.spec
        region = next(c for c in spec.conditions if c.type == "region").codes[0]
        like = f"LIKE '{_prefix(region)}%'"
        base = spec.id.rsplit("-", 1)[0]
        if base == "elderly-allowance":
            age = next(c for c in spec.conditions if c.id == "aged_80").min
            born = REF.replace(year=REF.year - int(age))
            amount = (
                f"CASE WHEN birth_date <= DATE '{REF.replace(year=REF.year - 100)}' THEN 80000 "
                f"WHEN birth_date <= DATE '{REF.replace(year=REF.year - 90)}' THEN 50000 ELSE 10000 END"
            )
            conditions = [f"hukou_region {like}", f"birth_date <= DATE '{born}'"]
            parts.append(_item(spec.id, "birth_date", conditions, amount, "person"))
        elif base == "disability-living-subsidy":
            conditions = [
                f"hukou_region {like}",
                "disability_certified AND disability_grade BETWEEN 1 AND 4",
                "low_income OR monthly_income < 200000",
            ]
            amount = "CASE WHEN disability_grade <= 2 THEN 30000 ELSE 15000 END"
            parts.append(_item(spec.id, "disability_grade", conditions, amount, "person"))
        elif base == "smb-rent-subsidy":
            cap = spec.amount.cap_fen if spec.amount else None
            conditions = [
                f"region_code {like}",
                f"{SIZE_CLASS} IN ('small', 'micro')",
                " AND ".join(["si_paid"] + [f"si_paid__p{k}" for k in range(1, 6)]),
                "tax_credit_grade IN ('A', 'B', 'M', 'C')",
                "rent_paid >= 1",
            ]
            amount = f"(LEAST(rent_paid // 2, {cap}) // 100) * 100"
            parts.append(_item(spec.id, "rent_paid", conditions, amount, "enterprise"))
        elif base == "growth-award":
            p = next(c for c in spec.conditions if c.type == "growth").min_percent
            cap = spec.amount.cap_fen if spec.amount else None
            conditions = [
                f"region_code {like}",
                "high_tech = TRUE",
                f"revenue__p1 > 0 AND revenue * 100 >= revenue__p1 * {100 + int(p or 0)}",
            ]
            growth = "(revenue - revenue__p1) // 100"
            amount = (
                "(LEAST(CASE WHEN revenue >= 10000000000 "
                f"THEN GREATEST({growth}, 10000000) ELSE {growth} END, {cap}) // 100) * 100"
            )
            parts.append(_item(spec.id, "revenue, revenue__p1", conditions, amount, "enterprise"))
        else:
            raise SystemExit(f"no hand-written SQL for {spec.id}")
    return " UNION ALL ".join(parts)


# --- measuring ---------------------------------------------------------------------------------------------


def timed(con: duckdb.DuckDBPyConnection, sql: str) -> float:
    started = time.perf_counter()
    con.execute(sql)
    return time.perf_counter() - started


def summary(con: duckdb.DuckDBPyConnection, table: str) -> tuple[Any, ...]:
    rows = con.execute(
        f"SELECT item_id, result, count(*), sum(amount_fen) FROM {table} GROUP BY 1, 2 ORDER BY 1, 2"  # noqa: S608
    ).fetchall()
    checksum = con.execute(
        f"SELECT sum(hash(id, item_id, result, amount_fen, marks) % 1000000007) FROM {table}"  # noqa: S608
    ).fetchone()
    return tuple(rows), checksum


def batch(con: duckdb.DuckDBPyConnection, rules: R.RuleSet, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entity in ("person", "enterprise"):
        ours_sql = G.batch_sql(rules, entity, REF, dialect="duckdb", table=entity)
        hand_sql = hand_written(rules, entity)
        ours_s, hand_s = [], []
        for _ in range(repeat):
            ours_s.append(timed(con, f"CREATE OR REPLACE TABLE grants_{entity} AS {ours_sql}"))
            hand_s.append(timed(con, f"CREATE OR REPLACE TABLE hand_{entity} AS {hand_sql}"))
        ours, hand = summary(con, f"grants_{entity}"), summary(con, f"hand_{entity}")
        if ours != hand:
            raise SystemExit(f"{entity}: the compiled and the hand-written SQL disagree")
        stored = con.execute(f"SELECT count(*), sum(amount_fen) FROM grants_{entity}").fetchone() or (0, 0)  # noqa: S608
        eligible = con.execute(
            f"SELECT count(*) FROM grants_{entity} WHERE result = 'eligible'"  # noqa: S608
        ).fetchone() or (0,)
        out[entity] = {
            "items": sum(1 for i in rules.items.values() if i.spec.entity == entity),
            "ours_s": statistics.median(ours_s),
            "hand_s": statistics.median(hand_s),
            "ratio": statistics.median(ours_s) / statistics.median(hand_s),
            "runs_ours": ours_s,
            "runs_hand": hand_s,
            "rows_stored": stored[0],
            "eligible": eligible[0],
            "total_fen": int(stored[1] or 0),
        }
    return out


def per_request(rules: R.RuleSet, n_items: int, seed: int) -> dict[str, Any]:
    base = shipped()
    many = variants(base, max(1, n_items // 2), seed)  # n_items // 2 variants of each of the 2 per entity
    matcher = G.Matcher(many, REF)
    enterprise = G.columns_from_periods(
        many,
        "enterprise",
        {
            "region_code": "110105",
            "industry_code": "I6510",
            "employees": 40,
            "revenue": {"2025": 3_000_000_000, "2024": 2_000_000_000},
            "si_paid": {f"2026-{m:02d}": True for m in range(6, 12)},
            "tax_credit_grade": "B",
            "high_tech": True,
        },
        REF,
    )
    person = G.columns_from_periods(
        many,
        "person",
        {"hukou_region": "110105", "birth_date": "1940-03-01", "disability_certified": False},
        REF,
    )
    out: dict[str, Any] = {}
    for entity, columns in (("enterprise", enterprise), ("person", person)):
        items = sum(1 for i in many.items.values() if i.spec.entity == entity)
        for name in ("screen", "match"):
            fn = getattr(matcher, name)
            for _ in range(5):
                fn(entity, columns)
            samples = []
            for _ in range(200):
                started = time.perf_counter()
                kept = fn(entity, columns)
                samples.append(time.perf_counter() - started)
            out[f"{entity}_{name}"] = {
                "items": items,
                "kept": len(kept),
                "median_ms": statistics.median(samples) * 1000,
                "p95_ms": sorted(samples)[int(len(samples) * 0.95)] * 1000,
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--enterprises", type=int, default=100_000)
    parser.add_argument("--variants", type=int, default=25, help="variants of each of the 4 shipped items")
    parser.add_argument("--items-per-request", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: every CPU)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}",
        "load_before": os.getloadavg(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    rules = variants(shipped(), args.variants, args.seed)
    print(f"# Policy rules at scale — {report['date']}, {report['machine']}, load {report['load_before']}")
    with tempfile.TemporaryDirectory(prefix="tongban-policy-") as folder:
        con = duckdb.connect(str(Path(folder) / "city.duckdb"))
        if args.threads:
            con.execute(f"SET threads = {int(args.threads)}")
        started = time.perf_counter()
        synthetic.generate(
            con, persons=args.persons, enterprises=args.enterprises, ref_date=REF, seed=args.seed
        )
        report["generate_s"] = time.perf_counter() - started
        took = report["generate_s"]
        print(f"population: {args.persons:,} persons, {args.enterprises:,} enterprises in {took:.1f} s")
        report["batch"] = batch(con, rules, args.repeat)
        con.close()
    print("\n| entity | items | ours s | hand-written s | ratio | rows stored | eligible | total yuan |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for entity, b in report["batch"].items():
        print(
            f"| {entity} | {b['items']} | {b['ours_s']:.2f} | {b['hand_s']:.2f} | **{b['ratio']:.2f}×** | "
            f"{b['rows_stored']:,} | {b['eligible']:,} | {b['total_fen'] / 100:,.2f} |"
        )
    report["per_request"] = per_request(rules, args.items_per_request, args.seed)
    print("\n| per request | items | kept | median ms | p95 ms |")
    print("|---|---:|---:|---:|---:|")
    for name, r in report["per_request"].items():
        print(f"| {name} | {r['items']} | {r['kept']} | {r['median_ms']:.3f} | {r['p95_ms']:.3f} |")
    report["load_after"] = os.getloadavg()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        print(f"\nResults: `{args.json}`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
