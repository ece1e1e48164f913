"""Citizens' and staff pages over real HTTP, forms posted as a browser without JavaScript would."""

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.conftest import csrf, make_account, staff_login
from tests.factories import item
from tongban.catalog import service
from tongban.core import auth
from tongban.core.clock import FixedClock


@pytest.fixture
def published(session: Session, clock: FixedClock) -> None:
    service.import_item(session, item(), actor="op", clock=clock, source="t")
    service.import_item(
        session,
        item(
            code="11110000TEST0002",
            name="出生医学证明办理",
            audiences=["natural_person"],
            themes=["生小孩"],
            materials=[],
        ),
        actor="op",
        clock=clock,
        source="t",
    )
    session.commit()


def test_home_lists_themes_and_audiences(client: httpx.Client, published: None) -> None:
    html = client.get("/").text
    assert '<html lang="zh-Hans">' in html
    assert "/catalog?theme=%E7%94%9F%E5%B0%8F%E5%AD%A9" in html  # 生小孩
    assert "/catalog?audience=natural_person" in html


def test_browse_filters_and_item_page(client: httpx.Client, published: None) -> None:
    html = client.get("/catalog", params={"theme": "生小孩"}).text
    assert "出生医学证明办理" in html
    assert "食品经营许可证核发" not in html
    partial = client.get("/catalog", params={"audience": "legal_person"}, headers={"HX-Request": "true"}).text
    assert "<html" not in partial
    assert "食品经营许可证核发" in partial
    page = client.get("/catalog/items/11110000TEST0001").text
    assert "食品经营许可申请书" in page
    assert "营业执照" in page
    # Accepted on Monday 2026-03-02 with a promised limit of 5 working days: due Monday 2026-03-09
    assert "2026年3月9日" in page


def test_english_pages(client: httpx.Client, published: None) -> None:
    page = client.get("/catalog/items/11110000TEST0001", params={"lang": "en"}).text
    assert '<html lang="en">' in page
    assert "Materials" in page
    assert "Administrative licensing" in page
    assert "Monday, March 9, 2026" in page
    switch = client.get("/lang/en", params={"next": "/catalog"})
    assert switch.status_code == 303
    assert switch.headers["location"] == "/catalog"
    assert "tongban_lang=en" in switch.headers["set-cookie"]
    assert client.get("/lang/en", params={"next": "https://evil.example/"}).headers["location"] == "/"
    assert client.get("/lang/en", params={"next": "//evil.example/"}).headers["location"] == "/"


def test_unknown_item_is_404(client: httpx.Client) -> None:
    assert client.get("/catalog/items/NOPE0000").status_code == 404


def test_staff_pages_need_sign_in(client: httpx.Client) -> None:
    response = client.get("/staff/catalog")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/staff/login")


def test_wrong_password_is_refused(client: httpx.Client, session: Session, clock: FixedClock) -> None:
    make_account(session, clock, "editor1", ["catalog_editor"])
    session.commit()
    form = client.get("/staff/login")
    response = client.post(
        "/staff/login", data={"username": "editor1", "password": "nope", "csrf_token": csrf(form.text)}
    )
    assert response.status_code == 401
    assert "tongban_session" not in response.headers.get("set-cookie", "")


def test_staff_create_review_publish_through_forms(
    base_url: str, session: Session, clock: FixedClock
) -> None:
    make_account(session, clock, "editor1", ["catalog_editor"])
    make_account(session, clock, "reviewer1", ["catalog_reviewer"])
    session.commit()
    with httpx.Client(base_url=base_url) as editor, httpx.Client(base_url=base_url) as reviewer:
        staff_login(editor, "editor1")
        form = editor.get("/staff/catalog/new")
        fields = {
            "csrf_token": csrf(form.text),
            "code": "11110000FORM0001",
            "name": "公共场所卫生许可",
            "item_type": "administrative_licence",
            "department": "北京市卫生健康委员会",
            "region": "北京市",
            "level": "municipal",
            "audiences": "legal_person",
            "channels": ["online", "offline"],
            "themes": "准营准办\n医疗卫生",
            "statutory_limit_value": "20",
            "statutory_limit_unit": "working_day",
            "promised_limit_value": "30",  # more than the statutory limit: refused
            "promised_limit_unit": "working_day",
            "material-0-name": "卫生许可申请表",
            "material-0-copies": "1",
            "material-0-required": "on",
            "material-0-source": "applicant",
            "charges_fee": "no",
            "visits": "0",
        }
        bad = editor.post("/staff/catalog/new", data=fields)
        assert bad.status_code == 422
        assert "promised" in bad.text
        assert 'value="公共场所卫生许可"' in bad.text  # what was typed is kept
        fields["promised_limit_value"] = "5"
        fields["csrf_token"] = csrf(bad.text)
        created = editor.post("/staff/catalog/new", data=fields)
        assert created.status_code == 303, created.text
        staff_page = editor.get("/staff/catalog/items/11110000FORM0001").text
        editor.post("/staff/catalog/items/11110000FORM0001/submit", data={"csrf_token": csrf(staff_page)})

        staff_login(reviewer, "reviewer1")
        review_page = reviewer.get("/staff/catalog/items/11110000FORM0001").text
        assert "/staff/catalog/items/11110000FORM0001/publish" in review_page
        done = reviewer.post(
            "/staff/catalog/items/11110000FORM0001/publish",
            data={"csrf_token": csrf(review_page), "note": "ok"},
        )
        assert done.status_code == 303

    out = service.get_item(session, auth.ANONYMOUS, "11110000FORM0001")
    assert out.content.themes == ["准营准办", "医疗卫生"]
    assert out.content.materials[0].name == "卫生许可申请表"
    assert out.content.charges_fee is False
    history = service.list_versions(
        session, auth.Principal(1, "x", "x", permissions=frozenset({"catalog:edit"})), "11110000FORM0001"
    )
    assert [(v.author, v.state, v.reviewed_by) for v in history] == [("editor1", "published", "reviewer1")]


def test_staff_edit_keeps_history_and_checks_version(
    base_url: str, session: Session, clock: FixedClock, published: None
) -> None:
    make_account(session, clock, "editor1", ["catalog_editor"])
    session.commit()
    with httpx.Client(base_url=base_url) as editor:
        staff_login(editor, "editor1")
        form = editor.get("/staff/catalog/items/11110000TEST0001/edit").text
        assert 'name="expected_version" value="1"' in form
        assert 'value="食品经营许可申请书"' in form
        data = {
            "csrf_token": csrf(form),
            "expected_version": "1",
            "name": "食品经营许可证核发（新办）",
            "item_type": "administrative_licence",
            "department": "北京市市场监督管理局",
            "region": "北京市",
            "level": "municipal",
            "audiences": "legal_person",
            "material-0-name": "食品经营许可申请书",
            "material-0-required": "on",
            "visits": "0",
        }
        saved = editor.post("/staff/catalog/items/11110000TEST0001/edit", data=data)
        assert saved.status_code == 303
        stale = editor.post("/staff/catalog/items/11110000TEST0001/edit", data=data | {"name": "再改"})
        assert stale.status_code == 412
    # the public still sees version 1 until the change is reviewed
    assert service.get_item(session, auth.ANONYMOUS, "11110000TEST0001").content.name == "食品经营许可证核发"


def test_consistency_page(base_url: str, session: Session, clock: FixedClock, published: None) -> None:
    service.import_item(
        session,
        item(
            code="12120000TEST0001",
            region="天津市",
            department="天津市市场监督管理局",
            materials=[{"name": "食品经营许可申请书"}, {"name": "法定代表人身份证明"}],
        ),
        actor="op",
        clock=clock,
        source="t",
    )
    make_account(session, clock, "editor1", ["catalog_editor"])
    session.commit()
    with httpx.Client(base_url=base_url) as editor:
        staff_login(editor, "editor1")
        html = editor.get("/staff/catalog/check").text
    assert "食品经营许可证核发" in html
    assert "法定代表人身份证明" in html
    assert "12120000TEST0001" in html


def test_the_filter_form_submitted_without_javascript(client: httpx.Client, published: None) -> None:
    # A plain GET form sends every field, the empty ones too.
    params = {"q": "", "audience": "", "theme": "", "department": "", "item_type": "administrative_licence"}
    response = client.get("/catalog", params=params)
    assert response.status_code == 200
    assert "食品经营许可证核发" in response.text
    assert client.get("/catalog", params={"audience": "martian"}).status_code == 200


def test_staff_edit_keeps_situation_questions_the_form_does_not_show(
    base_url: str, session: Session, clock: FixedClock
) -> None:
    situations = [
        {"key": "new", "name": "新办", "name_en": "New"},
        {"key": "renew", "name": "延续", "name_en": "Renewal"},
    ]
    question = {
        "key": "kind",
        "text": "您是首次申请吗？",
        "options": [
            {"key": "yes", "label": "是", "situations": ["new"]},
            {"key": "no", "label": "否", "situations": ["renew"]},
        ],
    }
    service.import_item(
        session,
        item(code="11110000TEST0003", situations=situations, situation_questions=[question]),
        actor="op",
        clock=clock,
        source="t",
    )
    make_account(session, clock, "editor1", ["catalog_editor"])
    session.commit()
    base = {
        "expected_version": "1",
        "name": "食品经营许可证核发",
        "item_type": "administrative_licence",
        "department": "北京市市场监督管理局",
        "region": "北京市",
        "level": "municipal",
        "audiences": "legal_person",
        "visits": "0",
        "situation-0-key": "new",
        "situation-0-name": "新办",
        "situation-1-key": "renew",
        "situation-1-name": "延续（改名）",
    }
    with httpx.Client(base_url=base_url) as editor:
        staff_login(editor, "editor1")
        form = editor.get("/staff/catalog/items/11110000TEST0003/edit").text
        saved = editor.post(
            "/staff/catalog/items/11110000TEST0003/edit", data=base | {"csrf_token": csrf(form)}
        )
        assert saved.status_code == 303, saved.text
        # removing a situation a question still names is refused with a message, not silently dropped
        form = editor.get("/staff/catalog/items/11110000TEST0003/edit").text
        removed = {k: v for k, v in base.items() if not k.startswith("situation-1")}
        refused = editor.post(
            "/staff/catalog/items/11110000TEST0003/edit",
            data=removed | {"csrf_token": csrf(form), "expected_version": "2"},
        )
        assert refused.status_code == 422
        assert "renew" in refused.text
    editor_principal = make_account(session, clock, "editor2", ["catalog_editor"])
    _, working = service.get_working_copy(session, editor_principal, "11110000TEST0003")
    assert [q.key for q in working.situation_questions] == ["kind"]
    assert [(s.key, s.name, s.name_en) for s in working.situations] == [
        ("new", "新办", "New"),
        ("renew", "延续（改名）", "Renewal"),
    ]
