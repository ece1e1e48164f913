"""The demo city's policy library (``tongban demo``): its data dictionary, the documents the shipped demo
items cite with their interpretations, and the items themselves, each published through the same review
as an officer's (a drafter proposes, a reviewer publishes). Idempotent."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from sqlalchemy.orm import Session

from tongban.core.auth import system_principal
from tongban.core.clock import Clock
from tongban.policy import repository as repo
from tongban.policy import service
from tongban.policy.schemas import DocumentWrite, InterpretationWrite, ItemVersionWrite, SyntheticWrite

DRAFTER = system_principal("demo.policy-drafter", frozenset({service.EDIT}))
REVIEWER = system_principal("demo.policy-reviewer", frozenset({service.EDIT, service.REVIEW}))
OFFICER = system_principal("demo.policy-officer", frozenset({service.RUN}))


def _rules_dir() -> Any:
    return resources.files("tongban.policy") / "data" / "rules"


def item_sources() -> list[str]:
    """Each shipped demo item as its own YAML text (how an item version is stored)."""
    out: list[str] = []
    for name in ("enterprise-relief.yaml", "person-benefits.yaml", "household-support.yaml"):
        data = yaml.safe_load((_rules_dir() / name).read_text(encoding="utf-8"))
        out.extend(yaml.safe_dump(item, allow_unicode=True, sort_keys=False) for item in data["items"])
    return out


def seed(session: Session, *, clock: Clock, data_dir: Path | None = None) -> None:
    """The demo library; with ``data_dir``, also a synthetic city's snapshot (``demo-city``: 20,000
    persons, 2,000 enterprises) for officers to compute runs over."""
    service.set_variables(
        session, REVIEWER, (_rules_dir() / "variables.yaml").read_text(encoding="utf-8"), clock=clock
    )
    library = yaml.safe_load(
        (resources.files("tongban.policy") / "data" / "demo-library.yaml").read_text(encoding="utf-8")
    )
    for raw in library["documents"]:
        interpretations = raw.pop("interpretations", [])
        if repo.document(session, raw["code"]) is not None:
            continue
        service.create_document(session, DRAFTER, DocumentWrite.model_validate(raw), clock=clock)
        for i in interpretations:
            service.add_interpretation(
                session, DRAFTER, raw["code"], InterpretationWrite.model_validate(i), clock=clock
            )
        service.submit_document(session, DRAFTER, raw["code"], clock=clock)
        service.publish_document(session, REVIEWER, raw["code"], clock=clock)
    for source in item_sources():
        key = yaml.safe_load(source)["id"]
        if repo.item(session, key) is not None:
            continue
        service.propose_item_version(session, DRAFTER, ItemVersionWrite(source=source), clock=clock)
        service.publish_item_version(session, REVIEWER, key, 1, clock=clock)
    if data_dir is not None and repo.snapshot_by_name(session, "demo-city") is None:
        service.synthetic_snapshot(
            session,
            OFFICER,
            SyntheticWrite(
                name="demo-city", persons=20_000, enterprises=2_000, as_of=service.today(clock), seed=1
            ),
            data_dir=data_dir,
            clock=clock,
        )
