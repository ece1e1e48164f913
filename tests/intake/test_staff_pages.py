"""Staff pages of intake over real HTTP, posted as a browser without JavaScript would: the form builder,
the approval process, special procedures and bundles."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.conftest import PASSWORD, csrf, make_account, staff_login
from tests.factories import item
from tests.intake.helpers import CODE, DEFINITION
from tests.web import conftest as web
from tests.web.test_accessibility import AXE, TAGS, _violations
from tongban.catalog import service as catalog
from tongban.core.clock import FixedClock
from tongban.intake import formdef, process

browser = web.browser  # the shared Chromium fixture (Debian's)
SECOND = "11110000INTK0002"
Headers = dict[str, dict[str, str]]


class _Form(HTMLParser):
    """The inputs a browser would post from the form with ``form_id`` (without its submit buttons)."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.pairs: list[list[str]] = []
        self.select: str | None = None
        self.select_first: str | None = None
        self.select_chosen = False
        self.option: dict[str, str | None] | None = None
        self.option_text = ""
        self.textarea: str | None = None
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.pairs.append([name, a.get("value") or ("on" if a.get("type") == "checkbox" else "")])
        elif tag == "select" and name:
            self.select, self.select_first, self.select_chosen = name, None, False
        elif tag == "option" and self.select:
            self.option, self.option_text = a, ""
        elif tag == "textarea" and name:
            self.textarea, self.text = name, ""

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.text += data
        if self.option is not None:
            self.option_text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea" and self.textarea is not None:
            self.pairs.append([self.textarea, self.text.removeprefix("\n")])
            self.textarea = None
        elif tag == "option" and self.option is not None and self.select:
            value = self.option.get("value")
            value = self.option_text if value is None else value
            if self.select_first is None:
                self.select_first = value
            if "selected" in self.option and not self.select_chosen:
                self.pairs.append([self.select, value])
                self.select_chosen = True
            self.option = None
        elif tag == "select" and self.select:
            if not self.select_chosen and self.select_first is not None:
                self.pairs.append([self.select, self.select_first])
            self.select = None


class Page:
    """A page with a form: its inputs can be changed and the form posted with one of its buttons."""

    def __init__(self, client: httpx.Client, response: httpx.Response, form_id: str) -> None:
        assert response.status_code in (200, 422), response.text[:2000]
        self.client, self.response, self.form_id = client, response, form_id
        self.html = response.text
        parser = _Form(form_id)
        parser.feed(self.html)
        self.pairs = parser.pairs
        assert self.pairs, f"no form {form_id!r} in the page"

    def get(self, name: str) -> str:
        return next(v for k, v in self.pairs if k == name)

    def set(self, name: str, value: str | bool) -> Page:
        self.pairs = [p for p in self.pairs if p[0] != name]
        if value is True:
            self.pairs.append([name, "on"])
        elif value is not False:
            self.pairs.append([name, value])
        return self

    def press(self, action: str, path: str, **extra: str) -> httpx.Response:
        data = [(k, v) for k, v in self.pairs if k not in extra] + [("_action", action), *extra.items()]
        return post(self.client, path, data)

    def then(self, action: str, path: str, **extra: str) -> Page:
        return Page(self.client, self.press(action, path, **extra), self.form_id)


def post(client: httpx.Client, path: str, pairs: Sequence[Sequence[str]]) -> httpx.Response:
    """Post form inputs in order, repeated names included, as a browser does."""
    body = urlencode([(k, v) for k, v in pairs])
    return client.post(path, content=body, headers={"content-type": "application/x-www-form-urlencoded"})


def _second_item(session: Session, clock: FixedClock) -> None:
    catalog.import_item(
        session,
        item(code=SECOND, name="灵活就业人员参保登记", audiences=["natural_person"], materials=[]),
        actor="test",
        clock=clock,
        source="test",
    )
    session.commit()


@contextmanager
def _browser(base_url: str, username: str) -> Iterator[httpx.Client]:
    """Another person's browser, signed in."""
    with httpx.Client(base_url=base_url, timeout=30, follow_redirects=False) as other:
        staff_login(other, username)
        yield other


# --- the form builder ---------------------------------------------------------------------------------

NEW = f"/staff/intake/items/{CODE}/forms/new"


def test_building_a_form_adds_moves_removes_and_saves_what_was_built(
    client: httpx.Client, published: Headers
) -> None:
    staff_login(client, "editor.sun")
    overview = client.get(f"/staff/intake/items/{CODE}")
    assert overview.status_code == 200
    assert f'href="/staff/intake/items/{CODE}/forms/1"' in overview.text
    assert "publisher.qian" in overview.text  # version 1 was published by another person

    page = Page(client, client.get(NEW), "builder")
    assert page.get("n_fields") == "0"
    page = page.then("add", NEW, add_type="text")
    assert page.get("f0.key") == "field_1"
    page.set("f0.key", "applicant_name").set("f0.label", "申请人姓名").set("f0.label_en", "Applicant's name")
    page.set("f0.required", True).set("f0.profile_key", "person.name").set("f0.max_length", "50")
    page = page.then("add", NEW, add_type="choice")
    assert page.get("f0.key") == "applicant_name"  # the draft travelled with the post
    assert 'id="f1-options"' in page.html
    assert 'id="f0-options"' not in page.html
    page.set("f1.key", "marital").set("f1.label", "婚姻状况").set("f1.label_en", "Marital status")
    page.set("f1.options", "single|未婚|Single\nmarried|已婚|Married")
    page = page.then("add", NEW, add_type="file")
    page.set("f2.key", "lease_copy").set("f2.label", "租赁合同").set("f2.label_en", "Lease contract")
    page.set("f2.material", "房屋租赁合同").set("f2.accept", "application/pdf, image/jpeg").set(
        "f2.required", True
    )
    page.set("f2.show_if", '{"==": [{"var": "marital"}, "married"]}')
    page = page.then("add", NEW, add_type="integer")
    assert page.get("n_fields") == "4"
    page = page.then("remove:3", NEW)
    assert page.get("n_fields") == "3"
    page = page.then("up:2", NEW)  # the lease moves above the marital status
    assert [page.get(f"f{i}.key") for i in range(3)] == ["applicant_name", "lease_copy", "marital"]
    assert "申请人姓名" in page.html.split('id="preview"')[1]  # the preview shows the draft
    page = page.then("add_rule", NEW)
    page.set("r0.key", "married_lease").set("r0.when", '{"==": [{"var": "marital"}, "married"]}')
    page.set("r0.check", '{"!!": [{"var": "lease_copy"}]}').set("r0.message", "已婚须上传租赁合同")
    page.set("r0.message_en", "Married applicants upload the lease").set("r0.severity", "warning")
    page.set("r0.fields", "lease_copy")
    saved = page.press("save", NEW)
    assert saved.status_code == 303, saved.text[:3000]
    assert saved.headers["location"] == f"/staff/intake/items/{CODE}/forms/2?ok=form_saved"
    version = client.get(saved.headers["location"])
    assert "ok-summary" in version.text
    assert "lease_copy" in version.text

    forms = client.get(f"/api/v1/intake/items/{CODE}/forms", headers=published["editor.sun"]).json()
    assert [f["version"] for f in forms] == [2, 1]
    assert forms[0]["state"] == "draft"
    assert forms[0]["author"] == "editor.sun"
    built = {
        "fields": [
            {
                "key": "applicant_name",
                "label": "申请人姓名",
                "label_en": "Applicant's name",
                "type": "text",
                "required": True,
                "max_length": 50,
                "profile_key": "person.name",
            },
            {
                "key": "lease_copy",
                "label": "租赁合同",
                "label_en": "Lease contract",
                "type": "file",
                "required": True,
                "material": "房屋租赁合同",
                "accept": ["application/pdf", "image/jpeg"],
                "show_if": {"==": [{"var": "marital"}, "married"]},
            },
            {
                "key": "marital",
                "label": "婚姻状况",
                "label_en": "Marital status",
                "type": "choice",
                "options": [
                    {"value": "single", "label": "未婚", "label_en": "Single"},
                    {"value": "married", "label": "已婚", "label_en": "Married"},
                ],
            },
        ],
        "rules": [
            {
                "key": "married_lease",
                "when": {"==": [{"var": "marital"}, "married"]},
                "check": {"!!": [{"var": "lease_copy"}]},
                "message": "已婚须上传租赁合同",
                "message_en": "Married applicants upload the lease",
                "severity": "warning",
                "fields": ["lease_copy"],
            }
        ],
    }
    expected = formdef.FormDefinition.model_validate(built).model_dump(mode="json", exclude_none=True)
    assert forms[0]["definition"] == expected

    # A new version from version 2 starts from what was saved (money bounds shown in yuan, not fen).
    again = Page(client, client.get(f"{NEW}?from=2"), "builder")
    assert [again.get(f"f{i}.key") for i in range(3)] == ["applicant_name", "lease_copy", "marital"]
    assert again.get("f2.options") == "single|未婚|Single\nmarried|已婚|Married"
    v1 = Page(client, client.get(f"{NEW}?from=1"), "builder")
    assert v1.get("f3.min") == "0.01"  # monthly_rent: min 1 fen
    resaved = v1.press("save", NEW)
    assert resaved.status_code == 303, resaved.text[:3000]
    forms = client.get(f"/api/v1/intake/items/{CODE}/forms", headers=published["editor.sun"]).json()
    assert forms[0]["version"] == 3
    assert forms[0]["definition"] == forms[-1]["definition"]  # version 1 round-trips through the editor


def test_the_builder_links_each_problem_to_its_input_and_saves_nothing(
    client: httpx.Client, published: Headers
) -> None:
    staff_login(client, "editor.sun")
    page = Page(client, client.get(NEW), "builder")
    page = page.then("add", NEW, add_type="text").then("add", NEW, add_type="file")
    page.set("f0.key", "name").set("f0.label", "姓名").set("f0.label_en", "Name")
    page.set("f0.show_if", '{"regex": [{"var": "name"}, "x"]}')  # not an allowed operator
    page.set("f1.key", "scan").set("f1.label", "扫描件").set("f1.label_en", "Scan")  # no material chosen
    refused = page.press("save", NEW)
    assert refused.status_code == 422
    assert 'href="#f1-material"' in refused.text  # the editor's own rule: a file field names a material
    assert 'id="f1-material"' in refused.text
    assert 'aria-invalid="true"' in refused.text

    page = Page(client, refused, "builder").set("f1.material", "房屋租赁合同").set("f1.key", "Bad Key")
    refused = page.press("save", NEW)
    assert refused.status_code == 422
    summary = refused.text.split('id="error-summary"')[1].split("</div>")[0]
    assert 'href="#f0-show_if"' in summary
    assert 'href="#f1-key"' in summary
    assert "String should match pattern" not in summary  # said in the editor's words
    assert "&#39;regex&#39; is not allowed" in summary or "'regex' is not allowed" in summary
    assert re.search(r'id="f0-show_if"[^>]*aria-invalid="true"', refused.text)

    page = (
        Page(client, refused, "builder")
        .set("f0.show_if", '{"==": [{"var": "nobody"}, 1]}')
        .set("f1.key", "scan")
    )
    refused = page.press("save", NEW)
    assert 'href="#f0-show_if"' in refused.text
    assert "unknown field" in refused.text

    page = Page(client, refused, "builder").set("f0.show_if", "{not json")
    refused = page.press("save", NEW)
    assert refused.status_code == 422
    assert 'href="#f0-show_if"' in refused.text
    assert "JSON" in refused.text

    page = Page(client, refused, "builder").set("f0.show_if", "").set("f1.key", "name")
    refused = page.press("save", NEW)
    assert 'href="#f1-key"' in refused.text  # the second field of a repeated key
    assert "duplicate field keys" in refused.text

    forms = client.get(f"/api/v1/intake/items/{CODE}/forms", headers=published["editor.sun"]).json()
    assert [f["version"] for f in forms] == [1]


def test_the_definition_round_trips_through_the_json_box(client: httpx.Client, published: Headers) -> None:
    staff_login(client, "editor.sun")
    page = Page(client, client.get(f"{NEW}?from=1"), "builder")
    text = page.get("definition_json")
    assert '"monthly_rent"' in text
    loaded = Page(client, client.get(NEW), "builder").then("load_json", NEW, definition_json=text)
    assert loaded.get("n_fields") == str(len(DEFINITION["fields"]))
    assert loaded.get("f5.computed") == '{"*": [{"var": "monthly_rent"}, {"var": "months"}]}'
    bad = loaded.press("load_json", NEW, definition_json="[1, 2]")
    assert bad.status_code == 422
    assert 'href="#definition-json"' in bad.text
    assert '<details id="advanced" open>' in bad.text
    saved = loaded.press("save_json", NEW, definition_json=text)
    assert saved.status_code == 303, saved.text[:3000]
    forms = client.get(f"/api/v1/intake/items/{CODE}/forms", headers=published["editor.sun"]).json()
    assert forms[0]["definition"] == forms[1]["definition"]


def test_a_large_form_travels_whole(client: httpx.Client, published: Headers) -> None:
    """More inputs than Starlette's default limit of 1000 per form: the builder still takes them."""
    staff_login(client, "editor.sun")
    fields = [
        {"key": f"f_{n}", "label": f"字段{n}", "label_en": f"Field {n}", "type": "text", "max_length": 20}
        for n in range(120)
    ]
    text = json.dumps({"fields": fields}, ensure_ascii=False)
    page = Page(client, client.get(NEW), "builder").then("load_json", NEW, definition_json=text)
    assert len(page.pairs) > 1000
    page = page.then("down:0", NEW)
    assert page.get("f0.key") == "f_1"
    assert page.get("f1.key") == "f_0"
    assert page.get("n_fields") == "120"


def test_publishing_needs_another_person(
    client: httpx.Client, published: Headers, session: Session, clock: FixedClock, base_url: str
) -> None:
    make_account(session, clock, "publisher.zhao", ["intake_form_publisher"])
    session.commit()
    draft = {"fields": [{"key": "name", "label": "姓名", "label_en": "Name", "type": "text"}]}
    saved = client.post(
        f"/api/v1/intake/items/{CODE}/forms", headers=published["publisher.qian"], json={"definition": draft}
    )
    assert saved.status_code == 201
    staff_login(client, "publisher.qian")
    page = client.get(f"/staff/intake/items/{CODE}/forms/2")
    assert "another person must publish it" in page.text or "须由他人发布" in page.text
    own = client.post(f"/staff/intake/items/{CODE}/forms/2/publish", data={"csrf_token": csrf(page.text)})
    assert own.status_code == 403
    assert "error-summary" in own.text
    assert "someone other than its author" in own.text
    with _browser(base_url, "editor.sun") as editor:  # may edit, may not publish
        refused = editor.post(
            f"/staff/intake/items/{CODE}/forms/2/publish",
            data={"csrf_token": csrf(editor.get(f"/staff/intake/items/{CODE}").text)},
        )
        assert refused.status_code == 403
    with _browser(base_url, "publisher.zhao") as other:
        done = other.post(
            f"/staff/intake/items/{CODE}/forms/2/publish",
            data={"csrf_token": csrf(other.get(f"/staff/intake/items/{CODE}/forms/2").text)},
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/staff/intake/items/{CODE}/forms/2?ok=form_published"
    forms = client.get(f"/api/v1/intake/items/{CODE}/forms", headers=published["editor.sun"]).json()
    assert [(f["version"], f["state"], f["published_by"]) for f in forms] == [
        (2, "published", "publisher.zhao"),
        (1, "retired", "publisher.qian"),
    ]


# --- processes and special procedures -----------------------------------------------------------------


def test_uploading_a_bpmn_process_checks_it_and_publishing_needs_another_person(
    client: httpx.Client, published: Headers, base_url: str
) -> None:
    path = f"/staff/intake/items/{CODE}/processes"
    staff_login(client, "editor.sun")
    page = client.get(path)
    assert page.status_code == 200
    token = csrf(page.text)
    assert "standard" in page.text

    bad = client.post(
        path, data={"csrf_token": token}, files={"file": ("broken.bpmn", b"<definitions>", "application/xml")}
    )
    assert bad.status_code == 422
    assert 'href="#bpmn-file"' in bad.text
    assert "not well-formed XML" in bad.text or "not a BPMN 2.0 document" in bad.text
    scripted = process.example("parallel_departments").replace("bpmn:userTask", "bpmn:scriptTask", 2)
    refused = client.post(
        path, data={"csrf_token": token}, files={"file": ("x.bpmn", scripted.encode(), "application/xml")}
    )
    assert refused.status_code == 422
    assert "scriptTask elements run code" in refused.text
    wrong = client.post(
        path, data={"csrf_token": token}, files={"file": ("notes.txt", b"hello", "text/plain")}
    )
    assert wrong.status_code == 422
    assert "notes.txt" in wrong.text

    example = process.example("parallel_departments")
    uploaded = client.post(
        path,
        data={"csrf_token": token},
        files={"file": ("parallel.bpmn", example.encode(), "application/xml")},
    )
    assert uploaded.status_code == 303, uploaded.text[:3000]
    listed = client.get(uploaded.headers["location"])
    definition = process.load_definition(example)
    for step in definition.steps:
        assert f"<code>{step.id}</code>" in listed.text
        assert f"<code>{step.role}</code>" in listed.text
    assert f"{path}/1/bpmn" in listed.text
    assert f"{path}/1/publish" not in listed.text  # an editor may not publish
    xml = client.get(f"{path}/1/bpmn")
    assert xml.status_code == 200
    assert xml.headers["content-type"].startswith("application/xml")
    assert "attachment" in xml.headers["content-disposition"]
    assert process.load_definition(xml.text).process_id == definition.process_id

    standard = client.post(path, data={"csrf_token": token, "source": "standard"})
    assert standard.status_code == 303

    with _browser(base_url, "publisher.qian") as publisher:
        page = publisher.get(f"/staff/intake/items/{CODE}")
        assert "/processes/2/publish" in page.text
        done = publisher.post(f"{path}/2/publish", data={"csrf_token": csrf(page.text), "back": "item"})
        assert done.status_code == 303
        assert done.headers["location"] == f"/staff/intake/items/{CODE}?ok=process_published"
        again = publisher.post(f"{path}/2/publish", data={"csrf_token": csrf(page.text), "back": "item"})
        assert again.status_code == 409  # not a draft any more: shown as a message on the page
        assert 'href="#process-2"' in again.text
        retired = publisher.post(f"{path}/2/retire", data={"csrf_token": csrf(page.text)})
        assert retired.status_code == 303
        assert retired.headers["location"] == f"{path}?ok=process_retired"
    rows = client.get(f"/api/v1/intake/items/{CODE}/processes", headers=published["editor.sun"]).json()
    assert [(p["version"], p["state"], p["published_by"]) for p in rows] == [
        (2, "retired", "publisher.qian"),
        (1, "draft", None),
    ]


def test_special_procedures_are_chosen_from_a_list(client: httpx.Client, published: Headers) -> None:
    staff_login(client, "editor.sun")
    page = Page(client, client.get(f"/staff/intake/items/{CODE}"), "special-form")
    assert [v for k, v in page.pairs if k == "procedure"] == [
        "听证",
        "专家评审",
        "现场勘验",
        "检验检测",
        "公示",
        "招标拍卖",
        "鉴定",
    ]
    page.pairs = [p for p in page.pairs if p[0] != "procedure" or p[1] in ("听证", "公示")]
    path = f"/staff/intake/items/{CODE}/special-procedures"
    refused = post(client, path, [*page.pairs, ("more", "补正")])
    assert refused.status_code == 422
    assert 'href="#sp-more"' in refused.text
    saved = post(client, path, [*page.pairs, ("more", "技术审查\n")])
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/staff/intake/items/{CODE}?ok=procedures_saved#special"
    shown = Page(client, client.get(f"/staff/intake/items/{CODE}"), "special-form")
    assert [v for k, v in shown.pairs if k == "procedure"] == ["听证", "公示", "技术审查"]


# --- bundles --------------------------------------------------------------------------------------------


def test_the_bundle_editor_round_trip(
    client: httpx.Client, published: Headers, session: Session, clock: FixedClock, base_url: str
) -> None:
    _second_item(session, clock)
    staff_login(client, "editor.sun")
    listing = client.get("/staff/intake/bundles")
    assert listing.status_code == 200
    assert client.get("/staff/intake/bundles", params={"code": "a b"}).status_code == 422
    opened = client.get("/staff/intake/bundles", params={"code": "rent"})
    assert opened.headers["location"] == "/staff/intake/bundles/rent/edit"
    edit = "/staff/intake/bundles/rent/edit"
    page = Page(client, client.get(edit), "bundle-editor")
    assert page.get("n_parts") == "2"
    page.set("b.name_zh", "租房一件事").set("b.name_en", "Renting a home")
    page = page.then("add_question", edit)
    page.set("q0.key", "employed").set("q0.label_zh", "是否灵活就业").set("q0.label_en", "Self-employed?")
    page = page.then("add_question", edit)
    page.set("q1.key", "area").set("q1.label_zh", "所在区域").set("q1.label_en", "Area").set(
        "q1.type", "choice"
    )
    page = page.then("refresh", edit)
    page.set("q1.options", "city|市区|City\nsuburb|郊区|Suburbs")
    page.set("i0.code", CODE).set("i1.code", SECOND)
    page = page.then("refresh", edit)
    assert 'value="yes:employed"' in page.html
    assert 'value="eq:area:suburb"' in page.html
    page.set("i1.cond", "yes:employed")
    page = page.then("add_item", edit)
    assert page.get("n_parts") == "3"
    page = page.then("remove_item:2", edit)
    saved = page.press("save", edit)
    assert saved.status_code == 303, saved.text[:3000]
    assert saved.headers["location"] == f"{edit}?ok=bundle_saved"

    versions = client.get("/api/v1/intake/bundles/rent/versions", headers=published["editor.sun"]).json()
    assert versions[0]["definition"] == {
        "name": {"zh": "租房一件事", "en": "Renting a home"},
        "questions": [
            {
                "key": "employed",
                "label": {"zh": "是否灵活就业", "en": "Self-employed?"},
                "type": "boolean",
                "options": [],
            },
            {
                "key": "area",
                "label": {"zh": "所在区域", "en": "Area"},
                "type": "choice",
                "options": [
                    {"value": "city", "label": {"zh": "市区", "en": "City"}},
                    {"value": "suburb", "label": {"zh": "郊区", "en": "Suburbs"}},
                ],
            },
        ],
        "items": [{"item_code": CODE}, {"item_code": SECOND, "when": {"==": [{"var": "employed"}, True]}}],
    }
    page = Page(client, client.get(edit), "bundle-editor")  # the editor starts from the latest version
    assert page.get("i1.cond") == "yes:employed"
    assert page.get("q1.options") == "city|市区|City\nsuburb|郊区|Suburbs"

    page.set("i1.cond", "json").set("i1.when", '{"==": [{"var": "unknown"}, 1]}')
    refused = page.press("save", edit)
    assert refused.status_code == 422
    assert 'href="#i1-when"' in refused.text
    page.set("i1.cond", "").set("i1.code", "NOPE0000")
    refused = page.press("save", edit)
    assert refused.status_code == 404
    assert 'href="#i1-code"' in refused.text

    with _browser(base_url, "publisher.qian") as publisher:
        token = csrf(publisher.get(edit).text)
        early = publisher.post("/staff/intake/bundles/rent/versions/1/publish", data={"csrf_token": token})
        assert early.status_code == 409  # the second item has no published form yet
        assert SECOND in early.text
        assert 'href="#version-1"' in early.text
        headers = published["editor.sun"]
        form = {"fields": [{"key": "name", "label": "姓名", "label_en": "Name", "type": "text"}]}
        assert (
            client.post(
                f"/api/v1/intake/items/{SECOND}/forms", headers=headers, json={"definition": form}
            ).status_code
            == 201
        )
        assert (
            client.post(
                f"/api/v1/intake/items/{SECOND}/forms/1/publish", headers=published["publisher.qian"]
            ).status_code
            == 200
        )
        done = publisher.post("/staff/intake/bundles/rent/versions/1/publish", data={"csrf_token": token})
        assert done.status_code == 303
        assert "已发布" in publisher.get(edit).text or "Published" in publisher.get(edit).text
    listed = client.get("/staff/intake/bundles")
    assert 'href="/staff/intake/bundles/rent/edit"' in listed.text


# --- who may see these pages, in which languages --------------------------------------------------------


def _staff_paths() -> list[str]:
    return [
        "/staff/intake/items",
        f"/staff/intake/items/{CODE}",
        f"/staff/intake/items/{CODE}/forms/new",
        f"/staff/intake/items/{CODE}/forms/1",
        f"/staff/intake/items/{CODE}/processes",
        "/staff/intake/bundles",
        "/staff/intake/bundles/rent/edit",
    ]


def test_citizens_and_anonymous_visitors_are_kept_out(client: httpx.Client, published: Headers) -> None:
    for path in _staff_paths():
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/staff/login")
    staff_login(client, "citizen.li")
    token = csrf(client.get("/staff").text)
    for path in _staff_paths():
        assert client.get(path).status_code == 403, path
    for path in (
        f"/staff/intake/items/{CODE}/forms/new",
        f"/staff/intake/items/{CODE}/forms/1/publish",
        f"/staff/intake/items/{CODE}/processes",
        f"/staff/intake/items/{CODE}/special-procedures",
        "/staff/intake/bundles/rent/edit",
        "/staff/intake/bundles/rent/versions/1/publish",
    ):
        assert client.post(path, data={"csrf_token": token, "_action": "save"}).status_code == 403, path
    assert client.get(f"/staff/intake/items/{CODE}/processes/1/bpmn").status_code == 403


def test_the_pages_in_chinese_and_english(
    client: httpx.Client, published: Headers, session: Session, clock: FixedClock
) -> None:
    make_account(session, clock, "both", ["catalog_editor", "intake_form_editor"])
    session.commit()
    staff_login(client, "both")
    home = client.get("/staff").text
    assert 'href="/staff/intake/items"' in home
    assert 'href="/staff/intake/bundles"' in home
    assert f'href="/staff/intake/items/{CODE}"' in client.get(f"/staff/catalog/items/{CODE}").text
    assert (
        client.get("/staff/intake/items", params={"code": CODE}).headers["location"]
        == f"/staff/intake/items/{CODE}"
    )
    assert client.get("/staff/intake/items", params={"code": "NOPE0000"}).status_code == 404
    for path in _staff_paths():
        zh = client.get(path)
        assert zh.status_code == 200, path
        assert '<html lang="zh-Hans">' in zh.text
        assert "工作台" in zh.text  # the breadcrumb
        en = client.get(path, params={"lang": "en"})
        assert '<html lang="en">' in en.text
        assert "Staff desk" in en.text
    version_zh = client.get(f"/staff/intake/items/{CODE}/forms/1").text
    assert "已发布" in version_zh
    assert "租房提取住房公积金" in version_zh
    assert '<label for="pv-3">月租金' in version_zh  # the preview in the page's language
    version_en = client.get(f"/staff/intake/items/{CODE}/forms/1", params={"lang": "en"}).text
    assert "Published" in version_en
    assert '<label for="pv-3">Monthly rent' in version_en
    builder = client.get(NEW, params={"from": 1, "lang": "en"}).text
    assert "Form builder" in builder
    assert '<option value="money" selected>Amount of money (yuan)</option>' in builder  # from version 1


#: A form with a field of every type (and a check across fields), for the accessibility checks.
EVERY_TYPE: dict[str, Any] = {
    "fields": [
        {
            "key": "name",
            "label": "姓名",
            "label_en": "Name",
            "type": "text",
            "required": True,
            "pattern": "^.{2,}$",
            "help": "至少两个字",
            "help_en": "At least two characters",
            "profile_key": "person.name",
        },
        {"key": "note", "label": "说明", "label_en": "Note", "type": "textarea", "max_length": 500},
        {"key": "id_number", "label": "身份证号", "label_en": "ID number", "type": "id_number"},
        {"key": "credit", "label": "信用代码", "label_en": "Credit code", "type": "credit_code"},
        {"key": "mobile", "label": "手机", "label_en": "Mobile", "type": "mobile"},
        {"key": "email", "label": "邮箱", "label_en": "Email", "type": "email"},
        {"key": "addr", "label": "地址", "label_en": "Address", "type": "address"},
        {"key": "start", "label": "起租日", "label_en": "Start", "type": "date", "min": "2020-01-01"},
        {"key": "rent", "label": "月租金", "label_en": "Rent", "type": "money", "min": 100},
        {"key": "months", "label": "月数", "label_en": "Months", "type": "integer", "max": 120},
        {"key": "area", "label": "面积", "label_en": "Area", "type": "decimal"},
        {
            "key": "marital",
            "label": "婚姻",
            "label_en": "Marital status",
            "type": "choice",
            "options": [
                {"value": "single", "label": "未婚", "label_en": "Single"},
                {"value": "married", "label": "已婚", "label_en": "Married"},
            ],
        },
        {
            "key": "langs",
            "label": "语言",
            "label_en": "Languages",
            "type": "multi_choice",
            "options": [
                {"value": "zh", "label": "中文", "label_en": "Chinese"},
                {"value": "en", "label": "英文", "label_en": "English"},
            ],
        },
        {"key": "agree", "label": "同意", "label_en": "I agree", "type": "boolean", "required": True},
        {
            "key": "members",
            "label": "家庭成员",
            "label_en": "Family",
            "type": "table",
            "min_rows": 1,
            "columns": [
                {"key": "who", "label": "姓名", "label_en": "Name", "type": "text"},
                {"key": "age", "label": "年龄", "label_en": "Age", "type": "integer"},
            ],
        },
        {
            "key": "lease",
            "label": "租赁合同",
            "label_en": "Lease",
            "type": "file",
            "material": "房屋租赁合同",
            "accept": ["application/pdf"],
            "show_if": {"==": [{"var": "marital"}, "married"]},
        },
        {
            "key": "total",
            "label": "总额",
            "label_en": "Total",
            "type": "money",
            "computed": {"*": [{"var": "rent"}, {"var": "months"}]},
        },
    ],
    "rules": [
        {
            "key": "adult",
            "check": {">": [{"var": "months"}, 0]},
            "message": "月数须大于零",
            "message_en": "Months must be more than zero",
            "severity": "warning",
        }
    ],
}


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["zh-Hans", "en"])
def test_the_staff_pages_have_no_wcag_violations(
    browser: Any,
    base_url: str,
    client: httpx.Client,
    published: Headers,
    session: Session,
    clock: FixedClock,
    lang: str,
) -> None:
    _second_item(session, clock)
    editor = published["editor.sun"]
    saved = client.post(f"/api/v1/intake/items/{CODE}/forms", headers=editor, json={"definition": EVERY_TYPE})
    assert saved.status_code == 201, saved.text
    uploaded = client.post(
        f"/api/v1/intake/items/{CODE}/processes",
        headers={**editor, "content-type": "application/xml"},
        content=process.example("parallel_departments").encode(),
    )
    assert uploaded.status_code == 201, uploaded.text
    bundle = {
        "name": {"zh": "租房一件事", "en": "Renting"},
        "questions": [
            {"key": "employed", "label": {"zh": "是否就业", "en": "Employed?"}},
            {
                "key": "area",
                "label": {"zh": "区域", "en": "Area"},
                "type": "choice",
                "options": [
                    {"value": "city", "label": {"zh": "市区", "en": "City"}},
                    {"value": "suburb", "label": {"zh": "郊区", "en": "Suburbs"}},
                ],
            },
        ],
        "items": [{"item_code": CODE}, {"item_code": SECOND, "when": {"==": [{"var": "area"}, "city"]}}],
    }
    assert (
        client.post(
            "/api/v1/intake/bundles/rent/versions", headers=editor, json={"definition": bundle}
        ).status_code
        == 201
    )
    token = httpx.post(
        f"{base_url}/api/v1/auth/login", json={"username": "publisher.qian", "password": PASSWORD}
    ).json()["token"]
    cookies = [{"name": "tongban_session", "value": token, "url": base_url}]
    for path in (
        "/staff/intake/items",
        f"/staff/intake/items/{CODE}",
        f"/staff/intake/items/{CODE}/forms/2",
        f"/staff/intake/items/{CODE}/forms/new?from=2",
        f"/staff/intake/items/{CODE}/processes",
        "/staff/intake/bundles",
        "/staff/intake/bundles/rent/edit",
        "/staff/intake/bundles/new_one/edit",
    ):
        separator = "&" if "?" in path else "?"
        assert _violations(browser, f"{base_url}{path}{separator}lang={lang}", cookies) == [], path

    # The pages showing problems: a refused save of the builder and of the bundle editor, a bad BPMN file.
    context = browser.new_context(bypass_csp=True)
    context.add_cookies(cookies)
    page = context.new_page()
    problems = []
    page.goto(f"{base_url}/staff/intake/items/{CODE}/forms/new?from=2&lang={lang}")
    page.fill("#f0-show_if", "{not json")
    page.fill("#f1-key", "Not A Key")
    page.locator("button[value=save]").first.click()
    problems.append(page.locator("#error-summary a").count())
    page.locator("#error-summary a").first.click()
    assert page.evaluate("document.activeElement.id") == "f0-show_if"  # the summary leads to the input
    page.add_script_tag(content=AXE)
    found = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    assert [v["id"] for v in found["violations"]] == []
    page.goto(f"{base_url}/staff/intake/bundles/rent/edit?lang={lang}")
    page.fill("#i0-code", "NOPE0000")
    page.locator("button[value=save]").first.click()
    problems.append(page.locator("#error-summary a").count())
    page.add_script_tag(content=AXE)
    found = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    assert [v["id"] for v in found["violations"]] == []
    page.goto(f"{base_url}/staff/intake/items/{CODE}/processes?lang={lang}")
    page.set_input_files("#bpmn-file", {"name": "bad.bpmn", "mimeType": "application/xml", "buffer": b"<x/>"})
    page.locator("form[enctype] button[type=submit]").click()
    problems.append(page.locator("#error-summary a").count())
    page.add_script_tag(content=AXE)
    found = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    assert [v["id"] for v in found["violations"]] == []
    context.close()
    assert problems == [1, 1, 1], problems
