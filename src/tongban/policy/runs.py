"""免申即享 and 直达快享 runs, and simulation (推演), over data snapshots in DuckDB.

A **snapshot** is an immutable DuckDB file with a table per entity type (``person``, ``enterprise``): an
``id`` (the platform's keyed digest of the ID number or credit code, so that a signed-in person's verified
profile finds its grants) and a column per given fact (``name``, ``name__pN`` for earlier periods), as the
shared-data exchange delivers them or :mod:`.synthetic` generates them. Its SHA-256 is recorded; a run
refuses a file that changed.

A **run** evaluates the published items of one entity type over a snapshot on a reference date with the
compiled batch SQL (:func:`.engine.batch_sql`), then in the same DuckDB statement applies

* **stacking** (一个叠加组内不重复享受 / 就高): of a subject's eligible items in one stacking group only the
  largest amount stands (ties: the item listed first); a subject already granted an item of the group by
  an approved run gets no other;
* **budget pools** (用完为止): eligible amounts are granted in the order of subjects' ids until what is left
  of the pool (its total less what approved runs granted) would be exceeded; the rest are ``over_budget``.

It stores a row per subject and item that is eligible or undetermined (with the condition marks that
explain it), a summary (counts, fen totals, by district and industry) and a checksum of every row. An
officer other than the one who computed it approves it: then items whose conditions are all data-bound
are **granted** (免申即享) and the others — eligible on data the applicant supplies, or undetermined — are
**noticed**: the subject is told, with the missing data named, and applies through a prefilled fast
application (直达快享). A person who disagrees with an automated decision appeals (PIPL art. 24) and an
officer decides.

A **simulation** evaluates a draft item (or a changed published one) over a snapshot without storing
grants: how many qualify, the cost and its breakdown, against the budget pool, beside the published version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from tongban.policy import engine, synthetic
from tongban.policy import expr as E
from tongban.policy.rules import CheckedItem, RuleError, RuleSet

SNAPSHOTS = Path("policy") / "snapshots"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
#: DuckDB types a fact of each kind may have in a snapshot.
_TYPES = {
    "bool": ("BOOLEAN",),
    "int": ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER"),
    "money": ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"),
    "text": ("VARCHAR",),
    "code": ("VARCHAR",),
    "date": ("DATE",),
}


def snapshot_dir(data_dir: Path) -> Path:
    return data_dir / SNAPSHOTS


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise RuleError(["a snapshot name is 1–100 lower-case letters, digits, '_', '.' or '-'"])
    return name


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


# --- snapshots -----------------------------------------------------------------------------------------


def generate_synthetic(
    target: Path, *, persons: int, enterprises: int, as_of: dt.date, seed: int
) -> dict[str, int]:
    """A synthetic city's snapshot written to ``target`` (a new file): rows per table."""
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    con = duckdb.connect(str(tmp))
    try:
        synthetic.generate(con, persons=persons, enterprises=enterprises, ref_date=as_of, seed=seed)
        # ids as text: a snapshot's ids are keyed digests in a real city; synthetic ones are numbers
        for table, also in (
            ("person", ", CAST(household_id AS VARCHAR) AS household_id"),
            ("household", ""),
            ("enterprise", ""),
        ):
            con.execute(
                f"CREATE OR REPLACE TABLE {table} AS "  # noqa: S608 - our own table names
                f"SELECT * REPLACE (CAST(id AS VARCHAR) AS id{also}) FROM {table}"
            )
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(tmp, target)
    con = duckdb.connect(str(target), read_only=True)
    try:
        households = con.execute("SELECT count(*) FROM household").fetchone()
    finally:
        con.close()
    return {
        "person": persons,
        "household": int(households[0]) if households else 0,
        "enterprise": enterprises,
    }


def validate_snapshot(path: Path, rules: RuleSet) -> dict[str, int]:
    """The rows per entity table of a snapshot file whose tables and columns fit the variables; every
    problem at once otherwise."""
    problems: list[str] = []
    rows: dict[str, int] = {}
    members_ok: bool | None = None
    try:
        con = _connect(path)
    except duckdb.Error as exc:
        raise RuleError([f"not a DuckDB database: {type(exc).__name__}"]) from None
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        members_ok = "person" in tables and bool(
            con.execute(
                "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'person' AND column_name = ?",
                [engine.HOUSEHOLD_ID],
            ).fetchone()[0]  # type: ignore[index]
        )
        for entity in ("person", "household", "enterprise"):
            if entity not in tables:
                continue
            columns = dict(
                con.execute(
                    "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ?", [entity]
                ).fetchall()
            )
            if columns.get("id") not in ("VARCHAR", "BIGINT", "INTEGER"):
                problems.append(f"{entity}: an id column (text) is required")
            for column, dtype in columns.items():
                if column == "id" or (column == engine.HOUSEHOLD_ID and entity == "person"):
                    continue
                name = column.split("__p")[0]
                var = rules.variables.get(name)
                if var is None or var.entity != entity or not var.given:
                    problems.append(f"{entity}.{column}: not a given fact of a {entity}")
                elif "__p" in column and var.period is None:
                    problems.append(f"{entity}.{column}: {name} has no periods")
                elif dtype not in _TYPES[var.kind]:
                    problems.append(f"{entity}.{column}: {dtype} is not a {var.kind}")
            dupes = con.execute(f"SELECT count(*) - count(DISTINCT id) FROM {entity}").fetchone()  # noqa: S608
            if dupes and dupes[0]:
                problems.append(f"{entity}: {dupes[0]} ids appear more than once")
            count = con.execute(f"SELECT count(*) FROM {entity}").fetchone()  # noqa: S608
            rows[entity] = int(count[0]) if count else 0
    finally:
        con.close()
    if not rows:
        problems.append("no person, household or enterprise table")
    if "household" in rows and rules.aggregates("household") and members_ok is False:
        problems.append("household aggregates need a person table with a household_id column")
    if problems:
        raise RuleError(problems)
    return rows


def copy_into(source: Path, target: Path) -> None:
    """Copy a snapshot file into the platform's store (a reader never sees half a file)."""
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp_path = Path(tmp.name)
    shutil.copyfile(source, tmp_path)
    os.replace(tmp_path, target)


# --- the batch with stacking and budgets ---------------------------------------------------------------


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _region_column(rules: RuleSet, entity: str) -> str | None:
    """The column districts are counted by: the variable the entity's region conditions read."""
    for item in rules.items.values():
        if item.spec.entity == entity:
            for c in item.conditions:
                if c.spec.type == "region" and c.spec.variable:
                    return c.spec.variable
    return None


def _industry_column(rules: RuleSet, entity: str) -> str | None:
    for item in rules.items.values():
        if item.spec.entity == entity:
            for c in item.conditions:
                if c.spec.type == "industry" and c.spec.variable:
                    return c.spec.variable
    names = [v.name for v in rules.variables.values() if v.entity == entity and v.name == "industry_code"]
    return names[0] if names else None


def _meta_values(items: Sequence[CheckedItem]) -> str:
    rows = []
    for order, item in enumerate(items):
        group = _quote(item.spec.stacking.group) if item.spec.stacking else "NULL"
        pool = _quote(item.spec.budget.pool) if item.spec.budget else "NULL"
        rows.append(f"({_quote(item.id)}, {order}, {group}, {pool}, {'TRUE' if item.automatic else 'FALSE'})")
    return ", ".join(rows)


def decide_sql(
    rules: RuleSet,
    entity: str,
    ref_date: dt.date,
    *,
    items: Sequence[str],
    table: str,
    remaining: Mapping[str, int],
    stacking: bool = True,
) -> str:
    """The batch of ``items`` over ``table`` with stacking (unless ``stacking`` is false: a simulation
    sets a draft beside its published version) and budgets applied: a row per subject and item
    eligible or undetermined — ``id``, ``item_id``, ``version``, ``result``, ``amount_fen``, ``marks``,
    ``automatic``, ``status`` (``proposed``, ``stacked``, ``over_budget``), ``region_code``,
    ``industry_code``. ``prior_groups`` (``id``, ``grp``) must hold the subjects already granted an item
    of a stacking group; ``remaining`` is what is left of each budget pool (a pool not named: no limit,
    as in a simulation)."""
    chosen = [rules.items[k] for k in items]
    members = table.rsplit(".", 1)[0] + ".person" if "." in table else "person"
    batch = engine.batch_sql(
        rules, entity, ref_date, dialect="duckdb", table=table, items=items, members_table=members
    )
    region = _region_column(rules, entity)
    industry = _industry_column(rules, entity)
    region_sql = f"coalesce(CAST(t.\"{region}\" AS VARCHAR), '')" if region else "''"
    industry_sql = f"coalesce(CAST(t.\"{industry}\" AS VARCHAR), '')" if industry else "''"
    pools = ", ".join(f"({_quote(p)}, {int(v)})" for p, v in sorted(remaining.items())) or "(NULL, 0)"
    return f"""
WITH r AS ({batch}),
meta(item_id, ord, grp, pool, automatic) AS (VALUES {_meta_values(chosen)}),
pools(pool, remaining) AS (VALUES {pools}),
m AS (
  SELECT CAST(r.id AS VARCHAR) AS id, r.item_id, r.version, r.result, r.amount_fen, r.marks,
         meta.ord, meta.grp, meta.pool, meta.automatic
  FROM r JOIN meta USING (item_id)
),
s AS (
  SELECT m.*,
    CASE WHEN {"TRUE" if stacking else "FALSE"} AND m.result = 'eligible' AND m.grp IS NOT NULL AND (
           EXISTS (SELECT 1 FROM prior_groups p WHERE p.id = m.id AND p.grp = m.grp)
           OR row_number() OVER (PARTITION BY m.id, m.grp, m.result
                                 ORDER BY m.amount_fen DESC NULLS LAST, m.ord) > 1)
         THEN TRUE ELSE FALSE END AS stacked
  FROM m
),
b AS (
  SELECT s.*,
    CASE WHEN s.result = 'eligible' AND NOT s.stacked AND s.automatic AND s.pool IS NOT NULL
         THEN sum(coalesce(s.amount_fen, 0)) OVER (
           PARTITION BY s.pool, (s.result = 'eligible' AND NOT s.stacked AND s.automatic)
           ORDER BY s.id, s.ord ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    END AS spent
  FROM s
)
SELECT b.id, b.item_id, b.version, b.result, b.amount_fen, b.marks, b.automatic,
  CASE WHEN b.stacked THEN 'stacked'
       WHEN b.spent IS NOT NULL AND b.spent > pools.remaining THEN 'over_budget'
       ELSE 'proposed' END AS status,
  {region_sql} AS region_code, {industry_sql} AS industry_code
FROM b LEFT JOIN pools USING (pool)
JOIN {table} AS t ON CAST(t.id AS VARCHAR) = b.id
"""  # noqa: S608


def _checksum_sql(relation: str) -> str:
    return (
        "SELECT coalesce(bit_xor(md5_number_lower(concat_ws('|', id, item_id, result, "  # noqa: S608
        "coalesce(CAST(amount_fen AS VARCHAR), '-'), marks, status))), 0) "
        f"FROM {relation}"
    )


def summarise_sql(relation: str) -> dict[str, str]:
    """Statements summarising a decided relation: per item and status; per item and district; per item
    and industry section (eligible rows that stand)."""
    return {
        "items": (
            "SELECT item_id, result, status, automatic, count(*) AS n, sum(amount_fen) AS fen "  # noqa: S608
            f"FROM {relation} GROUP BY ALL ORDER BY ALL"
        ),
        "districts": (
            f"SELECT item_id, left(region_code, 6) AS district, count(*) AS n, sum(amount_fen) AS fen "  # noqa: S608
            f"FROM {relation} WHERE result = 'eligible' AND status = 'proposed' GROUP BY ALL ORDER BY ALL"
        ),
        "industries": (
            f"SELECT item_id, left(industry_code, 1) AS section, count(*) AS n, sum(amount_fen) AS fen "  # noqa: S608
            f"FROM {relation} WHERE result = 'eligible' AND status = 'proposed' GROUP BY ALL ORDER BY ALL"
        ),
    }


def run_batch(
    snapshot: Path,
    rules: RuleSet,
    entity: str,
    ref_date: dt.date,
    *,
    items: Sequence[str],
    remaining: Mapping[str, int],
    prior_groups: Iterable[tuple[str, str]],
    stacking: bool = True,
) -> tuple[duckdb.DuckDBPyConnection, str, dict[str, Any]]:
    """Decide ``items`` over the snapshot: an in-memory DuckDB connection holding the table ``decided``
    (see :func:`decide_sql`), its checksum and summary. The caller closes the connection."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {_quote(str(snapshot))} AS snap (READ_ONLY)")
        con.execute("CREATE TEMP TABLE prior_groups (id VARCHAR, grp VARCHAR)")
        prior = list(prior_groups)
        if prior:
            con.executemany("INSERT INTO prior_groups VALUES (?, ?)", prior)
        con.execute(
            "CREATE TEMP TABLE decided AS "
            + decide_sql(
                rules,
                entity,
                ref_date,
                items=items,
                table=f"snap.{entity}",
                remaining=remaining,
                stacking=stacking,
            )
        )
        checksum_row = con.execute(_checksum_sql("decided")).fetchone()
        checksum = f"{int(checksum_row[0]) if checksum_row else 0:016x}"
        summary = _summary(con, "decided")
    except BaseException:
        con.close()
        raise
    return con, checksum, summary


def _summary(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, Any]:
    q = summarise_sql(relation)
    items: dict[str, dict[str, Any]] = {}
    for item_id, result, status, automatic, n, fen in con.execute(q["items"]).fetchall():
        s = items.setdefault(
            item_id,
            {
                "eligible": 0,
                "undetermined": 0,
                "granted_fen": 0,
                "to_grant": 0,
                "to_notice": 0,
                "stacked": 0,
                "over_budget": 0,
                "over_budget_fen": 0,
            },
        )
        s[result] += n
        if status == "stacked":
            s["stacked"] += n
        elif status == "over_budget":
            s["over_budget"] += n
            s["over_budget_fen"] += int(fen or 0)
        elif result == "eligible" and automatic:
            s["to_grant"] += n
            s["granted_fen"] += int(fen or 0)
        else:
            s["to_notice"] += n
    districts: dict[str, list[list[Any]]] = {}
    for item_id, district, n, fen in con.execute(q["districts"]).fetchall():
        districts.setdefault(item_id, []).append([district, n, int(fen or 0)])
    industries: dict[str, list[list[Any]]] = {}
    for item_id, section, n, fen in con.execute(q["industries"]).fetchall():
        industries.setdefault(item_id, []).append([section, n, int(fen or 0)])
    return {"items": items, "districts": districts, "industries": industries}


# --- explanations of stored rows -----------------------------------------------------------------------


def explain_marks(rules: RuleSet, item: CheckedItem, marks: str) -> list[tuple[str, str, list[str]]]:
    """(condition id, outcome, the columns an unknown one reads) from a stored row's marks."""
    derived = {v.name: e for v, e in rules.derived(item.spec.entity)}

    def columns(refs: Iterable[E.Ref]) -> set[str]:
        out: set[str] = set()
        for r in refs:
            out |= columns(derived[r.name].refs) if r.name in derived else {r.column}
        return out

    out = []
    for c, mark in zip(item.conditions, marks, strict=False):
        outcome = {"T": "met", "F": "failed"}.get(mark, "unknown")
        needs = sorted(columns(c.expr.refs)) if outcome == "unknown" else []
        out.append((c.spec.id, outcome, needs))
    if len(marks) > len(item.conditions):
        out.append(("window", "failed", []))
    return out


def subject_columns(path: Path, entity: str, subject_id: str, *, with_members: bool) -> dict[str, Any] | None:
    """One subject's given facts in a snapshot (``members`` too, for a household's aggregates); None when
    the snapshot has no such subject."""
    con = _connect(path)
    try:
        cursor = con.execute(f"SELECT * FROM {entity} WHERE CAST(id AS VARCHAR) = ?", [subject_id])  # noqa: S608
        names = [d[0] for d in cursor.description]
        row = cursor.fetchone()
        if row is None:
            return None
        out = {k: v for k, v in zip(names, row, strict=True) if k not in ("id", engine.HOUSEHOLD_ID)}
        if with_members:
            members = "SELECT * FROM person WHERE CAST(household_id AS VARCHAR) = ?"
            cursor = con.execute(members, [subject_id])
            names = [d[0] for d in cursor.description]
            out[engine.MEMBERS] = [
                {k: v for k, v in zip(names, r, strict=True) if k not in ("id", engine.HOUSEHOLD_ID)}
                for r in cursor.fetchall()
            ]
        return out
    finally:
        con.close()


def prior_path(data_dir: Path, run_id: int) -> Path:
    """Where a run keeps the stacking state it read (the subjects already granted an item of a group)."""
    return data_dir / "policy" / "runs" / f"run-{run_id}-prior.parquet"


def keep_prior(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    target = _quote(str(path))  # our own file name, quoted
    con.execute(f"COPY (SELECT * FROM prior_groups ORDER BY id, grp) TO {target} (FORMAT PARQUET)")  # noqa: S608


def read_prior(path: Path) -> list[tuple[str, str]]:
    con = duckdb.connect()
    try:
        return [
            (str(a), str(b))
            for a, b in con.execute("SELECT id, grp FROM read_parquet(?)", [str(path)]).fetchall()
        ]
    finally:
        con.close()


_DIGESTS: dict[tuple[str, int, int], str] = {}


def cached_digest(path: Path) -> str:
    """A file's SHA-256, computed again only when its size or modification time changed (a snapshot of a
    city is gigabytes; reading it on every request is not an option)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    found = _DIGESTS.get(key)
    if found is None:
        found = _DIGESTS[key] = file_digest(path)
    return found


def households_of(path: Path, persons: Sequence[str]) -> set[str]:
    """The households (ids) these persons belong to in a snapshot; none if it has no membership."""
    con = _connect(path)
    try:
        has = con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'person' AND column_name = ?",
            [engine.HOUSEHOLD_ID],
        ).fetchone()
        if not has or not has[0]:
            return set()
        marks = ", ".join("?" for _ in persons)
        query = (
            "SELECT DISTINCT CAST(household_id AS VARCHAR) FROM person "  # noqa: S608 - placeholders only
            f"WHERE CAST(id AS VARCHAR) IN ({marks})"
        )
        rows = con.execute(query, list(persons)).fetchall()
        return {r[0] for r in rows if r[0] is not None}
    finally:
        con.close()
