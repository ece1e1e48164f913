"""The classifier's loop in the product: examples are imported, a model is trained and suggests, the operator
corrects, and the corrections are training rows of the next model."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from tests.conftest import make_account
from tests.hotline.conftest import act, new_ticket
from tests.hotline.test_classifier import FakeEmbedder
from tongban.core.clock import FixedClock
from tongban.core.errors import InvalidInput
from tongban.hotline import service
from tongban.hotline.schemas import SettingsWrite

EXAMPLES = [
    ("路面坑洼", "马路上有很多坑洼，车辆颠簸，请修补路面。", "城乡建设/市政设施/道路维修"),
    ("道路破损", "小区门口道路破损严重，路面坑洼积水。", "城乡建设/市政设施/道路维修"),
    ("路灯不亮", "街道路灯不亮，晚上漆黑一片。", "城乡建设/市政设施/路灯照明"),
    ("工地噪音", "工地夜间施工噪音扰民，打桩声音很大。", "环境保护/噪声污染/施工噪音"),
    ("施工扰民", "凌晨施工噪音太大，无法入睡。", "环境保护/噪声污染/施工噪音"),
    ("拖欠工资", "老板拖欠工资三个月不发。", "劳动和社会保障/工资福利/拖欠工资"),
    ("工资不发", "公司拖欠员工工资，讨薪无门。", "劳动和社会保障/工资福利/拖欠工资"),
]


@pytest.fixture
def embedder(app: FastAPI) -> FakeEmbedder:
    fake = FakeEmbedder()
    app.state.hotline_embedder = fake
    return fake


def test_train_suggest_correct_and_retrain(
    client: httpx.Client,
    hl: dict[str, dict[str, str]],
    session: Session,
    clock: FixedClock,
    embedder: FakeEmbedder,
) -> None:
    admin = make_account(session, clock, "hl.trainer", ["hotline_admin"])
    rows = [{"id": n, "subject": s, "body": b, "category": c} for n, (s, b, c) in enumerate(EXAMPLES)]
    assert service.import_examples(session, rows, source="own.jsonl", clock=clock) == len(EXAMPLES)
    assert service.import_examples(session, rows, source="own.jsonl", clock=clock) == 0
    first = service.train_model(session, admin, embedder=embedder, clock=clock)
    assert (first.examples, first.tickets) == (len(EXAMPLES), 0)
    session.commit()

    ref = new_ticket(client, subject="打桩噪音", body="附近工地夜间打桩，施工噪音扰民。")["ref"]
    s = client.get(f"/api/v1/tickets/{ref}/suggestion", headers=hl["op.li"]).json()
    assert s["category"] == "环境保护"
    assert s["path"] == "环境保护/噪声污染/施工噪音"
    assert s["explanation"]["paths"]
    assert s["model_id"] == first.id
    # The operator corrects it (say, the noise is from a road repair): recorded as a correction.
    act(client, hl["op.li"], ref, "classify", {"category_path": "城乡建设/市政设施/道路维修"})
    detail = client.get(f"/api/v1/tickets/{ref}", headers=hl["op.li"]).json()
    assert detail["suggested_path"] == "环境保护/噪声污染/施工噪音"
    classified = next(e for e in detail["events"] if e["action"] == "classified")
    assert classified["data"]["corrected"] is True

    assert service.retrain_due(session) is False  # 50 confirmed tickets by default
    service.update_settings(session, admin, SettingsWrite(retrain_after=1), clock=clock)
    assert service.retrain_due(session) is True
    second = service.train_model(session, admin, embedder=embedder, clock=clock)
    assert (second.examples, second.tickets) == (len(EXAMPLES), 1)
    assert service.retrain_due(session) is False
    assert service.has_model(session)


def test_training_needs_two_categories(
    hl: dict[str, dict[str, str]], session: Session, clock: FixedClock, embedder: FakeEmbedder
) -> None:
    admin = make_account(session, clock, "hl.trainer", ["hotline_admin"])
    with pytest.raises(service.NoModel):
        service.train_model(session, admin, embedder=embedder, clock=clock)
    with pytest.raises(InvalidInput):
        service.import_examples(session, [{"id": 1, "body": "文本", "category": ""}], source="x", clock=clock)


def test_without_a_model_the_suggestion_says_so(
    client: httpx.Client, hl: dict[str, dict[str, str]], embedder: FakeEmbedder
) -> None:
    ref = new_ticket(client)["ref"]
    s = client.get(f"/api/v1/tickets/{ref}/suggestion", headers=hl["op.li"]).json()
    assert s["category"] is None
    assert s["model_id"] is None
    assert client.get(f"/api/v1/tickets/{ref}/suggestion", headers=hl["u.roads"]).status_code == 403
