"""Policy items as code: the shipped demo rules pass their own test cases; a population decided by the
compiled Python and by the batch SQL (DuckDB always, PostgreSQL in the PostgreSQL pass) gives the same
result, amount and explanation for every entity and item, missing data included."""

from __future__ import annotations

import datetime as dt
import json
import random
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlalchemy import Connection, text

from tongban.policy import engine as G
from tongban.policy import expr as E
from tongban.policy import rules as R

REF = dt.date(2026, 12, 3)


def shipped() -> R.RuleSet:
    folder = Path(str(resources.files("tongban.policy") / "data" / "rules"))
    return R.load_rule_set(folder.glob("*.yaml"))


def test_the_shipped_items_pass_their_cases_and_a_wrong_expectation_fails() -> None:
    rules = shipped()
    assert len(rules.items) >= 4
    assert sum(len(i.spec.tests) for i in rules.items.values()) >= 10
    assert G.run_cases(rules) == []

    # The same item with one expected amount off by a fen: reported, with the two amounts.
    item = rules.items["smb-rent-subsidy"]
    cases = list(item.spec.tests)
    wrong = cases[0].model_copy(update={"expect": cases[0].expect.model_copy(update={"amount_fen": 6172801})})
    changed = item.spec.model_copy(update={"tests": [wrong, *cases[1:]]})
    mutated = R.check(R.RuleFile(variables=list(rules.variables.values()), items=[changed]))
    failures = G.run_cases(mutated)
    assert [(f.item_id, f.problem) for f in failures] == [
        ("smb-rent-subsidy", "amount 6172800 fen, expected 6172801")
    ]


def test_an_explanation_names_every_condition_and_the_missing_data() -> None:
    rules = shipped()
    matcher = G.Matcher(rules, REF)
    columns = G.columns_from_periods(
        rules,
        "enterprise",
        {
            "region_code": "110105",
            "industry_code": "I6510",
            "employees": 40,
            "revenue": {"2025": 3_000_000_000},
            "si_paid": {"2026-11": True, "2026-10": True, "2026-09": True},
            "tax_credit_grade": "D",
        },
        REF,
    )
    decision = {d.item_id: d for d in matcher.evaluate("enterprise", columns)}
    rent = decision["smb-rent-subsidy"]
    assert rent.result == "not_eligible"  # grade D fails, whatever the unknown months would say
    assert [(c.id, c.value) for c in rent.conditions] == [
        ("in_city", True),
        ("small_or_micro", True),
        ("insured_6_months", None),
        ("credit_ok", False),
        ("rent_declared", None),
    ]
    assert rent.conditions[2].missing == ("si_paid__p3", "si_paid__p4", "si_paid__p5")
    assert rent.marks == "TTUFU"
    assert not rent.automatic  # the rent paid is the applicant's to declare: a fast application
    growth = decision["growth-award"]
    assert growth.result == "undetermined"
    assert growth.missing == ("high_tech", "revenue__p1")
    assert growth.automatic


def _population(rules: R.RuleSet, entity: str, n: int, seed: int) -> list[dict[str, Any]]:
    """Random entities with every kind of value, and a fifth of each value missing."""
    rng = random.Random(seed)
    columns = sorted(
        {r.column for item in rules.items.values() if item.spec.entity == entity for r in item.refs}
        | {r.column for _, e in rules.derived(entity) for r in e.refs}
    )
    derived = {v.name for v, _ in rules.derived(entity)}
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"id": i}
        for column in columns:
            name = column.split("__p")[0]
            if name in derived:
                continue
            var = rules.variables[name]
            value: Any
            if var.kind == "bool":
                value = rng.random() < 0.8
            elif var.kind == "money":
                value = rng.choice([0, 1, 99, rng.randint(0, 10**12), rng.randint(10**6, 10**9)])
            elif var.kind == "int":
                value = rng.choice([rng.randint(0, 5), rng.randint(0, 300), rng.randint(0, 5000)])
            elif var.kind == "date":
                value = dt.date(rng.randint(1915, 2026), rng.randint(1, 12), rng.randint(1, 28))
            elif name.endswith("region") or name == "region_code":
                value = rng.choice(["110105", "110108", "110000", "310101", "120104"])
            elif name == "industry_code":
                value = rng.choice(["I6510", "C3911", "A0111", "F5123"])
            else:
                value = rng.choice(["A", "B", "M", "C", "D"])
            row[column] = None if rng.random() < 0.2 else value
        rows.append(row)
    return rows


SQL_TYPES = {
    "bool": "BOOLEAN",
    "int": "BIGINT",
    "money": "BIGINT",
    "date": "DATE",
    "text": "VARCHAR",
    "code": "VARCHAR",
}


def _table_columns(rules: R.RuleSet, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    names = [k for k in rows[0] if k != "id"]
    return [("id", "BIGINT")] + [(c, SQL_TYPES[rules.variables[c.split("__p")[0]].kind]) for c in names]


def _python(rules: R.RuleSet, entity: str, rows: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    matcher = G.Matcher(rules, REF)
    out = set()
    for row in rows:
        for d in matcher.evaluate(entity, {k: v for k, v in row.items() if k != "id"}):
            out.add((row["id"], d.item_id, d.version, d.result, d.amount_fen, d.marks))
    return out


@pytest.mark.parametrize("entity", ["enterprise", "person"])
def test_python_duckdb_and_the_test_database_decide_alike(entity: str, connection: Connection) -> None:
    rules = shipped()
    rows = _population(rules, entity, 3000, seed=11 if entity == "person" else 12)
    want = _python(rules, entity, rows)
    results = {r for _, _, _, r, _, _ in want}
    assert results == {"eligible", "not_eligible", "undetermined"}  # the population reaches every outcome
    columns = _table_columns(rules, rows)

    con = duckdb.connect()
    con.execute(f"CREATE TABLE pop ({', '.join(f'{c} {t}' for c, t in columns)})")
    con.executemany(
        f"INSERT INTO pop VALUES ({', '.join('?' for _ in columns)})",
        [[r[c] for c, _ in columns] for r in rows],
    )
    sql = G.batch_sql(rules, entity, REF, dialect="duckdb", table="pop", keep_not_eligible=True)
    assert set(map(tuple, con.execute(sql).fetchall())) == want

    if connection.dialect.name == "postgresql":
        pg_types = {"VARCHAR": "TEXT"}
        connection.execute(
            text(f"CREATE TEMPORARY TABLE pop ({', '.join(f'{c} {pg_types.get(t, t)}' for c, t in columns)})")
        )
        connection.execute(
            text(f"INSERT INTO pop VALUES ({', '.join(f':{c}' for c, _ in columns)})"),
            [{c: r[c] for c, _ in columns} for r in rows],
        )
        sql = G.batch_sql(rules, entity, REF, dialect="postgres", table="pop", keep_not_eligible=True)
        assert {tuple(r) for r in connection.execute(text(sql))} == want
    # Only the rows worth keeping: not-eligible ones are left out by default.
    kept = G.batch_sql(rules, entity, REF, dialect="duckdb", table="pop")
    assert set(map(tuple, con.execute(kept).fetchall())) == {w for w in want if w[3] != "not_eligible"}


def test_missing_data_never_defaults() -> None:
    """LEAST, GREATEST and CASE would choose on every engine when a value is NULL; in a rule the result
    is unknown instead, on both paths."""
    types = {"a": E.VarType("int"), "b": E.VarType("int")}
    con = duckdb.connect()
    for source in [
        "LEAST(a, 5) < 10",
        "GREATEST(a, 5) > 1",
        "CASE WHEN a > 1 THEN TRUE ELSE FALSE END",
        "a > 1 OR b > 1",
    ]:
        e = E.parse(source, types, want="bool")
        assert E.compile_function(e, REF)({"b": 0}) is None, source
        sql = E.to_sql(e, REF, "duckdb")
        assert con.execute(f"SELECT {sql} FROM (SELECT CAST(NULL AS BIGINT) AS a, 0 AS b)").fetchone() == (
            None,
        ), source
    # Kleene logic where the known part decides: unknown AND false is false, unknown OR true is true.
    assert E.compile_function(E.parse("a > 1 AND b > 1", types), REF)({"b": 0}) is False
    assert E.compile_function(E.parse("a > 1 OR b > -1", types), REF)({"b": 0}) is True


def test_money_is_exact_at_any_scale() -> None:
    """Floor division is exact in whole fen on every engine, negative numbers included, far beyond what a
    64-bit float holds exactly (2^53 fen)."""
    types = {"a": E.VarType("money")}
    e = E.parse("(a * 7) // 3", types, want="int")
    f = E.compile_function(e, REF)
    con = duckdb.connect()
    for a in [2**60 // 7, -(2**60 // 7), 9_007_199_254_740_993 // 7, -1, 0, 1, 5]:
        want = (a * 7) // 3
        assert f({"a": a}) == want
        sql = E.to_sql(e, REF, "duckdb")
        assert con.execute(f"SELECT {sql} FROM (SELECT CAST({a} AS HUGEINT) AS a)").fetchone() == (want,)


def _variable(**fields: Any) -> dict[str, Any]:
    return {"variables": [{"name": "v", "entity": "person", "kind": "int", "label": {"zh": "值"}, **fields}]}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"items": [{"id": "x"}]}, "items.0.version: Field required"),
        (_variable(name="Bad", proof={"kind": "applicant"}), "variable 'Bad': lowercase letters"),
        (_variable(), "give either proof (a fact) or expr"),
        (_variable(proof={"kind": "shared_data"}), "names its source"),
    ],
)
def test_a_bad_rule_file_is_refused_with_its_reasons(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(R.RuleError) as caught:
        R.parse_text(json.dumps(raw), filename="rules.json")
    assert problem in str(caught.value)


def test_every_problem_of_an_item_is_reported_at_once() -> None:
    rules = shipped()
    item = {
        "id": "broken",
        "version": 1,
        "title": {"zh": "坏的"},
        "entity": "person",
        "support": "奖补",
        "document": "示范",
        "conditions": [
            {
                "id": "a",
                "text": {"zh": "甲"},
                "type": "compare",
                "variable": "employees",
                "op": ">",
                "value": 1,
                "source": {"article": "一"},
            },
            {
                "id": "b",
                "text": {"zh": "乙"},
                "type": "expr",
                "expr": "COALESCE(age, 0) > 60",
                "source": {"article": "二"},
            },
            {
                "id": "c",
                "text": {"zh": "丙"},
                "type": "expr",
                "expr": "age / 2 > 1",
                "source": {"article": "三"},
            },
            {
                "id": "d",
                "text": {"zh": "丁"},
                "type": "growth",
                "variable": "age",
                "min_percent": 5,
                "source": {"article": "四"},
            },
        ],
        "amount": {"expr": "age > 1"},
    }
    raw = R.RuleFile.model_validate({"items": [item]})
    with pytest.raises(R.RuleError) as caught:
        R.check(raw, base=rules)
    problems = caught.value.problems
    assert len(problems) == 5, problems
    assert "'employees' is not a variable of a person" in problems[0]
    assert "no COALESCE" in problems[1]
    assert "use // (floor division" in problems[2]
    assert "growth needs a number with periods" in problems[3]
    assert "is a condition, not a number" in problems[4]


@pytest.mark.parametrize("entity", ["enterprise", "person"])
def test_the_screened_path_finds_what_the_full_one_does(entity: str) -> None:
    """``match`` stops at an item's first failed condition; it must keep exactly the items that the full
    evaluation finds eligible or undetermined, with the same explanations."""
    rules = shipped()
    matcher = G.Matcher(rules, REF)
    kept = 0
    for row in _population(rules, entity, 2000, seed=21):
        columns = {k: v for k, v in row.items() if k != "id"}
        full = [d for d in matcher.evaluate(entity, columns) if d.result != "not_eligible"]
        assert matcher.match(entity, columns) == full
        assert matcher.screen(entity, columns) == [d.item_id for d in full]
        kept += len(full)
    assert kept > 100


def test_the_synthetic_city_is_decided_alike_by_sql_and_python() -> None:
    """The generator's population (DuckDB, deterministic per seed) has the shares it promises, and the
    batch SQL over it agrees with the per-entity path on a sample of every outcome."""
    from tongban.policy import synthetic

    rules = shipped()
    con = duckdb.connect()
    synthetic.generate(con, persons=20_000, enterprises=5_000, ref_date=REF, seed=3)
    shares = con.execute(
        "SELECT count(*), avg(CASE WHEN hukou_region LIKE '11%' THEN 1 ELSE 0 END),"
        " avg(CASE WHEN disability_grade IS NOT NULL THEN 1 ELSE 0 END) FROM person"
    ).fetchone()
    assert shares is not None
    n, hukou, disabled = shares
    assert n == 20_000
    assert 0.58 < hukou < 0.68
    assert 0.045 < disabled < 0.075
    again = duckdb.connect()
    synthetic.generate(again, persons=200, enterprises=200, ref_date=REF, seed=3)
    assert (
        again.execute("SELECT * FROM person ORDER BY id").fetchall()
        == con.execute("SELECT * FROM person WHERE id < 200 ORDER BY id").fetchall()
    )

    matcher = G.Matcher(rules, REF)
    for entity in ("person", "enterprise"):
        sql = G.batch_sql(rules, entity, REF, dialect="duckdb", table=entity, keep_not_eligible=True)
        batch = {(r[0], r[1]): r[2:] for r in con.execute(sql).fetchall()}
        outcomes = {v[1] for v in batch.values()}
        assert outcomes == {"eligible", "not_eligible", "undetermined"}, (entity, outcomes)
        names = [d[0] for d in con.execute(f"DESCRIBE {entity}").fetchall()]
        for row in con.execute(f"SELECT * FROM {entity} WHERE id % 50 = 0").fetchall():
            facts = dict(zip(names, row, strict=True))
            given = {k: v for k, v in facts.items() if k not in ("id", G.HOUSEHOLD_ID)}
            for d in matcher.evaluate(entity, given):
                assert batch[(facts["id"], d.item_id)] == (d.version, d.result, d.amount_fen, d.marks)
    # households, over their members
    sql = G.batch_sql(rules, "household", REF, dialect="duckdb", table="household", keep_not_eligible=True)
    batch = {(r[0], r[1]): r[2:] for r in con.execute(sql).fetchall()}
    assert {"not_eligible", "undetermined"} <= {v[1] for v in batch.values()}
    names = [d[0] for d in con.execute("DESCRIBE person").fetchall()]
    members: dict[int, list[dict[str, Any]]] = {}
    for row in con.execute("SELECT * FROM person WHERE household_id % 40 = 0").fetchall():
        facts = dict(zip(names, row, strict=True))
        members.setdefault(facts["household_id"], []).append(
            {k: v for k, v in facts.items() if k not in ("id", G.HOUSEHOLD_ID)}
        )
    for household_id, region in con.execute(
        "SELECT id, household_region FROM household WHERE id % 40 = 0"
    ).fetchall():
        given = {"household_region": region, G.MEMBERS: members.get(household_id, [])}
        for d in matcher.evaluate("household", given):
            assert batch[(household_id, d.item_id)] == (d.version, d.result, d.amount_fen, d.marks)


def test_what_the_two_paths_could_read_differently_is_refused() -> None:
    types = {"a": E.VarType("int"), "t": E.VarType("text")}
    for source, reason in [
        ("a BETWEEN SYMMETRIC 5 AND 1", "no SYMMETRIC"),
        ("t < 'b'", "texts are compared with = <> or IN only"),
        ("t BETWEEN 'a' AND 'c'", "texts are compared with = <> or IN only"),
        ("LEAST(t, 'x') = 'a'", "LEAST/GREATEST compare values of one type"),
    ]:
        with pytest.raises(E.ExprError, match=reason):
            E.parse(source, types)


@pytest.mark.parametrize(
    ("code", "inside", "outside"),
    [
        ("110000", ["110105", "110105001", "110101001001"], ["120101", "310000"]),
        ("110100", ["110105", "110105004"], ["110200", "120101"]),
        ("110112104000", ["110112104201"], ["110112105001", "110112100201"]),
        ("110112100", ["110112100201"], ["110112105001", "110112104201"]),
    ],
)
def test_a_region_covers_exactly_the_codes_under_it(code: str, inside: list[str], outside: list[str]) -> None:
    e = E.parse(f"in_region(r, '{code}')", {"r": E.VarType("code")}, want="bool")
    f = E.compile_function(e, REF)
    assert [f({"r": c}) for c in inside] == [True] * len(inside)
    assert [f({"r": c}) for c in outside] == [False] * len(outside)


def _tiny(conditions: list[dict[str, Any]], amount: str | None = None) -> R.RuleSet:
    facts = [
        ("paid", "bool", "缴费", {"period": "month"}),
        ("born", "date", "出生", {}),
        ("code", "code", "代码", {}),
    ]
    facts.append(("income", "money", "收入", {}))
    raw = {
        "variables": [
            {
                "name": n,
                "entity": "person",
                "kind": k,
                "label": {"zh": zh},
                "proof": {"kind": "applicant"},
                **extra,
            }
            for n, k, zh, extra in facts
        ],
        "items": [
            {
                "id": "tiny",
                "version": 1,
                "title": {"zh": "小"},
                "entity": "person",
                "support": "奖补",
                "document": "示范",
                "conditions": [
                    {"text": {"zh": "条件"}, "source": {"article": "一"}, **c} for c in conditions
                ],
                **({"amount": {"expr": amount}} if amount else {}),
            }
        ],
    }
    return R.check(R.parse_text(json.dumps(raw), filename="tiny.json"))


def test_inputs_are_checked_and_every_period_a_rule_reads_can_be_given() -> None:
    rules = _tiny([{"id": "paid_48", "type": "consecutive", "variable": "paid", "periods": 48}])
    matcher = G.Matcher(rules, REF)
    months = {G.reference_period("month", REF, back): True for back in range(48)}
    columns = G.columns_from_periods(rules, "person", {"paid": months}, REF)
    assert matcher.evaluate("person", columns)[0].result == "eligible"
    del months[G.reference_period("month", REF, 47)]
    partial = G.columns_from_periods(rules, "person", {"paid": months}, REF)
    assert matcher.evaluate("person", partial)[0].missing == ("paid__p47",)
    with pytest.raises(R.RuleError, match="no rule reads the period"):
        G.columns_from_periods(rules, "person", {"paid": {"2025-1": True}}, REF)
    with pytest.raises(R.RuleError, match="is not date"):
        G.columns_from_periods(rules, "person", {"born": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)}, REF)
    with pytest.raises(R.RuleError, match="is not bool"):
        matcher.evaluate("person", {"paid": "yes"})
    with pytest.raises(R.RuleError, match="not a given fact"):
        matcher.screen("person", {"nonsense": 1})
    import numpy as np

    assert matcher.screen("person", {f"paid__p{k}" if k else "paid": np.True_ for k in range(48)}) == ["tiny"]


def test_a_rule_cannot_slip_a_missing_value_or_a_comment_past_the_checks() -> None:
    with pytest.raises(R.RuleError, match="a value is empty"):
        _tiny([{"id": "c", "type": "one_of", "variable": "code", "values": ["A", None]}])
    with pytest.raises(R.RuleError, match="is not a text"):
        _tiny([{"id": "c", "type": "one_of", "variable": "code", "values": ["A", 3]}])
    rules = _tiny(
        [{"id": "c", "type": "range", "variable": "income", "min": 1}], amount="income // 100 -- one per cent"
    )
    decision = G.Matcher(rules, REF).evaluate("person", {"income": 12_345})[0]
    assert (decision.result, decision.amount_fen) == ("eligible", 123)
    sql = G.batch_sql(rules, "person", REF, dialect="duckdb", table="t")
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT 1 AS id, CAST(12345 AS BIGINT) AS income")
    assert con.execute(sql).fetchall() == [(1, "tiny", 1, "eligible", 123, "T")]


def _households(rules: R.RuleSet, n: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Households of 0 to 4 random persons (a fifth of each person's values missing), and the persons."""
    rng = random.Random(seed)
    persons = _population(rules, "person", n * 2, seed=seed)
    households = []
    p = 0
    for h in range(n):
        size = rng.choice([0, 1, 2, 2, 3, 3, 4])
        for person in persons[p : p + size]:
            person["household_id"] = str(h)
        p += size
        region = rng.choice(["110105", "110108", "310101", None])
        households.append({"id": str(h), "household_region": region})
    members = [x for x in persons if "household_id" in x]
    return households, members


def test_households_are_decided_alike_over_their_members(connection: Connection) -> None:
    rules = shipped()
    households, persons = _households(rules, 1500, seed=31)
    matcher = G.Matcher(rules, REF)
    by_household: dict[str, list[dict[str, Any]]] = {}
    for person in persons:
        by_household.setdefault(person["household_id"], []).append(
            {k: v for k, v in person.items() if k not in ("id", "household_id")}
        )
    want = set()
    for h in households:
        facts = {"household_region": h["household_region"], G.MEMBERS: by_household.get(h["id"], [])}
        for d in matcher.evaluate("household", facts):
            want.add((h["id"], d.item_id, d.version, d.result, d.amount_fen, d.marks))
    assert {w[3] for w in want} == {"eligible", "not_eligible", "undetermined"}
    facts_only = [{k: v for k, v in persons[0].items() if k != "household_id"}]
    person_columns = [("id", "BIGINT"), ("household_id", "VARCHAR"), *_table_columns(rules, facts_only)[1:]]
    con = duckdb.connect()
    con.execute("CREATE TABLE household (id VARCHAR, household_region VARCHAR)")
    con.executemany(
        "INSERT INTO household VALUES (?, ?)", [[h["id"], h["household_region"]] for h in households]
    )
    con.execute(f"CREATE TABLE person ({', '.join(f'{c} {t}' for c, t in person_columns)})")
    con.executemany(
        f"INSERT INTO person VALUES ({', '.join('?' for _ in person_columns)})",
        [[r.get(c) for c, _ in person_columns] for r in persons],
    )
    sql = G.batch_sql(rules, "household", REF, dialect="duckdb", table="household", keep_not_eligible=True)
    assert set(map(tuple, con.execute(sql).fetchall())) == want
    if connection.dialect.name == "postgresql":
        connection.execute(text("CREATE TEMPORARY TABLE household (id TEXT, household_region TEXT)"))
        connection.execute(
            text("INSERT INTO household VALUES (:id, :household_region)"),
            [{"id": h["id"], "household_region": h["household_region"]} for h in households],
        )
        pg = {"VARCHAR": "TEXT"}
        typed = ", ".join(f"{c} {pg.get(t, t)}" for c, t in person_columns)
        connection.execute(text(f"CREATE TEMPORARY TABLE person ({typed})"))
        connection.execute(
            text(f"INSERT INTO person VALUES ({', '.join(f':{c}' for c, _ in person_columns)})"),
            [{c: r.get(c) for c, _ in person_columns} for r in persons],
        )
        sql = G.batch_sql(
            rules, "household", REF, dialect="postgres", table="household", keep_not_eligible=True
        )
        assert {tuple(r) for r in connection.execute(text(sql))} == want


def test_an_aggregate_is_checked_and_never_given() -> None:
    rules = shipped()
    with pytest.raises(R.RuleError, match="computed"):
        G.columns_from_periods(rules, "household", {"member_count": 3}, REF)
    with pytest.raises(R.RuleError, match="list of the members"):
        G.columns_from_periods(rules, "household", {G.MEMBERS: {"a": 1}}, REF)
    with pytest.raises(R.RuleError, match="not a given fact"):
        G.Matcher(rules, REF).evaluate("household", {"elderly_members": 1})
    bad = R.RuleFile.model_validate(
        {
            "variables": [
                {
                    "name": "oldest",
                    "entity": "household",
                    "kind": "bool",
                    "label": {"zh": "最年长者"},
                    "proof": {"kind": "shared_data", "name": "户籍"},
                    "aggregate": {"fn": "max", "of": "age"},
                }
            ]
        }
    )
    with pytest.raises(R.RuleError, match="max gives"):
        R.check(bad, base=rules)
    # unknown members leave every aggregate unknown; an empty household is known to have none
    decided = G.Matcher(rules, REF).evaluate("household", {"household_region": "110105"})
    assert decided[0].result == "undetermined"
    assert set(decided[0].missing) == {"member_count", "members_income", "elderly_members", "any_disabled"}
