"""免申即享 runs end to end (issue 8): a synthetic city's snapshot, the demo library's published items, a run
computed through the platform's service (batch SQL with stacking and budgets in DuckDB, every eligible or
undetermined row stored with its explanation in the platform's database), approved, and reproduced from its
recorded rule versions and snapshot.

    .venv/bin/python bench/policy_run.py --persons 1000000 [--database-url postgresql+psycopg://…/test]

With ``--database-url`` pointing at PostgreSQL, a database of its own is created beside it and dropped
afterwards; without it, SQLite in a temporary directory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from tongban.core import auth  # noqa: E402
from tongban.core.clock import FixedClock  # noqa: E402
from tongban.core.migrate import upgrade  # noqa: E402
from tongban.policy import demo, service  # noqa: E402
from tongban.policy.models import PolicyGrant  # noqa: E402
from tongban.policy.schemas import RunDecision, RunWrite, SyntheticWrite  # noqa: E402

OFFICER = auth.system_principal("bench.officer", frozenset({service.RUN}))
APPROVER = auth.system_principal("bench.approver", frozenset({service.RUN, service.APPROVE}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tongban-run-"))
    admin = None
    name = ""
    url = args.database_url or f"sqlite:///{work / 'bench.sqlite3'}"
    if url.startswith("postgresql"):
        name = f"bench_run_{uuid.uuid4().hex[:8]}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = url.rsplit("/", 1)[0] + f"/{name}"
    engine = create_engine(url)
    clock = FixedClock(dt.datetime(2026, 3, 2, 1, tzinfo=dt.UTC))
    result: dict[str, object] = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "database": engine.dialect.name,
        "persons": args.persons,
    }
    try:
        upgrade(engine)
        with Session(engine) as session:
            demo.seed(session, clock=clock)
            session.commit()
        t0 = time.perf_counter()
        with Session(engine) as session:
            service.synthetic_snapshot(
                session,
                OFFICER,
                SyntheticWrite(
                    name="city", persons=args.persons, enterprises=0, as_of=dt.date(2026, 3, 1), seed=1
                ),
                data_dir=work,
                clock=clock,
            )
            session.commit()
        t1 = time.perf_counter()
        with Session(engine) as session:
            run = service.compute_run(
                session, OFFICER, RunWrite(entity="person", snapshot="city"), data_dir=work, clock=clock
            )
            session.commit()
        t2 = time.perf_counter()
        with Session(engine) as session:
            service.decide_run(session, APPROVER, run.id, RunDecision(approve=True), clock=clock)
            session.commit()
        t3 = time.perf_counter()
        with Session(engine) as session:
            verified = service.verify_run(session, OFFICER, run.id, data_dir=work)
        t4 = time.perf_counter()
        with Session(engine) as session:
            stored = session.scalar(select(func.count()).select_from(PolicyGrant)) or 0
            granted = session.scalar(
                select(func.sum(PolicyGrant.amount_fen)).where(PolicyGrant.status == "granted")
            )
        summary_fen = sum(int(s["granted_fen"]) for s in run.summary["items"].values())
        result.update(
            {
                "snapshot_s": round(t1 - t0, 2),
                "run_s": round(t2 - t1, 2),
                "approve_s": round(t3 - t2, 2),
                "verify_s": round(t4 - t3, 2),
                "rows_stored": stored,
                "granted_fen_db": int(granted or 0),
                "granted_fen_summary": summary_fen,
                "reproduced": verified["reproduced"],
                "items": run.summary["items"],
            }
        )
        if int(granted or 0) != summary_fen or not verified["reproduced"]:
            raise SystemExit(f"MISMATCH: {result}")
    finally:
        engine.dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
