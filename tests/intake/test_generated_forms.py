"""Generated application forms: every published item without a form of its own can be applied for online."""

from __future__ import annotations

import httpx
from sqlalchemy.orm import Session

from tests.factories import item
from tests.intake.helpers import CODE, ID, known_citizen
from tongban.catalog import service as catalog
from tongban.core.clock import FixedClock
from tongban.intake import service

BOTH = "11110000GENF0001"
FIRMS = "11110000GENF0002"


def _import(session: Session, clock: FixedClock) -> None:
    for code, audiences in ((BOTH, ["natural_person", "legal_person"]), (FIRMS, ["legal_person"])):
        catalog.import_item(
            session,
            item(
                code=code,
                audiences=audiences,
                materials=[
                    {"name": "申请书", "source": "applicant"},
                    {"name": "营业执照", "source": "e_licence", "source_ref": "营业执照"},
                    {"name": "承诺书", "source": "exempt"},
                    {"name": "申请书", "source": "applicant"},
                ],
            ),
            actor="test",
            clock=clock,
            source="test",
        )


def test_forms_follow_the_audience_and_the_materials(session: Session, clock: FixedClock) -> None:
    _import(session, clock)
    both = service.generated_form(catalog.get_item(session, service.ANONYMOUS, BOTH))
    keys = [f["key"] for f in both["fields"]]
    assert keys[:4] == ["name", "id_number", "mobile", "address"]
    org = {f["key"]: f for f in both["fields"]}
    assert org["credit_code"]["show_if"] == {"==": [{"var": "as_organisation"}, True]}
    files = [f for f in both["fields"] if f["type"] == "file"]
    # One upload per material the applicant supplies; exempt and repeated materials are not asked.
    assert [f["material"] for f in files] == ["申请书", "营业执照"]

    firms = service.generated_form(catalog.get_item(session, service.ANONYMOUS, FIRMS))
    assert [f["key"] for f in firms["fields"][:4]] == [
        "enterprise_name",
        "credit_code",
        "contact_name",
        "contact_mobile",
    ]
    assert "show_if" not in firms["fields"][0]


def test_generation_publishes_once_and_leaves_items_with_forms_alone(
    session: Session, clock: FixedClock, client: httpx.Client, published: dict[str, dict[str, str]]
) -> None:
    _import(session, clock)
    made = service.publish_generated_forms(session, actor="system", clock=clock)
    assert made == 2  # the fixture's item has its own form
    assert service.publish_generated_forms(session, actor="system", clock=clock) == 0
    session.commit()
    assert [f.author for f in service.repo.forms(session, CODE)] == ["editor.sun"]

    known_citizen(client, published)
    form = client.get(f"/api/v1/intake/items/{BOTH}/application-form", headers=published["citizen.li"])
    assert form.status_code == 200, form.text
    prefilled = {p["field"]: p["value"] for p in form.json()["prefilled"]}
    assert prefilled["id_number"] == ID
    assert prefilled["name"] == "李明"
