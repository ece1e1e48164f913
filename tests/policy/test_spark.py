"""The same rules on Spark (local mode, for a cluster's SQL): the batch statement rendered for Spark decides
every row as the per-request engine does, for persons and enterprises (DuckDB and PostgreSQL are checked
in ``test_engine``). Spark does not touch the database, so it runs in the SQLite pass of the suite only."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.policy.test_engine import REF, _households, _population, _python, _table_columns, shipped
from tongban.policy import engine as G


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    if os.environ.get("TONGBAN_TEST_DATABASE_URL", "").startswith("postgresql"):
        pytest.skip("engine-only: runs in the SQLite pass")
    if shutil.which("java") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install a Java runtime for Spark (see .ci/run)")
        pytest.skip("no Java runtime for Spark")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("tongban-policy-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.mark.parametrize("entity", ["enterprise", "person"])
def test_spark_decides_as_the_per_request_engine(spark: Any, entity: str) -> None:
    rules = shipped()
    rows = _population(rules, entity, 2000, seed=21 if entity == "person" else 22)
    want = _python(rules, entity, rows)
    assert {w[3] for w in want} == {"eligible", "not_eligible", "undetermined"}
    columns = _table_columns(rules, rows)
    schema = ", ".join(f"{c} {'STRING' if t == 'VARCHAR' else t}" for c, t in columns)
    frame = spark.createDataFrame([[r[c] for c, _ in columns] for r in rows], schema=schema)
    frame.createOrReplaceTempView("pop")
    sql = G.batch_sql(rules, entity, REF, dialect="spark", table="pop", keep_not_eligible=True)
    assert {tuple(r) for r in spark.sql(sql).collect()} == want


def test_spark_decides_households_over_their_members(spark: Any) -> None:
    rules = shipped()
    households, persons = _households(rules, 600, seed=41)
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
    spark.createDataFrame(
        [[h["id"], h["household_region"]] for h in households], schema="id STRING, household_region STRING"
    ).createOrReplaceTempView("household")
    columns = [
        ("id", "BIGINT"),
        ("household_id", "VARCHAR"),
        *_table_columns(rules, [{k: v for k, v in persons[0].items() if k != "household_id"}])[1:],
    ]
    schema = ", ".join(f"{c} {'STRING' if t == 'VARCHAR' else t}" for c, t in columns)
    spark.createDataFrame(
        [[r.get(c) for c, _ in columns] for r in persons], schema=schema
    ).createOrReplaceTempView("person")
    sql = G.batch_sql(rules, "household", REF, dialect="spark", table="household", keep_not_eligible=True)
    assert {tuple(r) for r in spark.sql(sql).collect()} == want
