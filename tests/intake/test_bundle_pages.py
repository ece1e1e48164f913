"""The applicant's bundle pages (高效办成一件事) over real HTTP, posted as a browser without JavaScript would:
the published bundles, the situation questions, the items the answers choose, the merged form (each shared
field once, with the items that use it, prefilled with sources), the pre-check labelled by item, one
idempotent submission, the combined status in words, and who may see what."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import make_account
from tests.intake.bundle_support import BUNDLE, ITEMS, PARENT, import_items, publish_bundle, publish_forms
from tests.intake.helpers import ID, known_citizen, step, upload
from tests.intake.pdfs import pdf
from tests.intake.test_pages import fields_of, post_form, signed_in, text_of
from tongban.core import auth
from tongban.core.clock import FixedClock
from tongban.core.http import CSRF_FIELD
from tongban.core.i18n import get_language
from tongban.core.templating import render
from tongban.intake.bundles import BundleApplicationOut, BundlePartStatus, Text
from tongban.intake.models import Application, BundleApplication

CODES = [i["code"] for i in ITEMS]
NAMES = [i["name"] for i in ITEMS]
NAMES_EN = [i["name_en"] for i in ITEMS]
START = f"/intake/bundles/{BUNDLE}"
APPLY = f"{START}/apply"
CERT = ("birth.pdf", pdf(f"Birth certificate, mother ID {ID}"), "application/pdf")
PHOTO = ("photo.pdf", pdf("Photo of Li Xiaoming"), "application/pdf")
GROUP = (
    r'<fieldset class="items-group">\s*<legend>(.*?)</legend>(.*?)</fieldset>\s*'
    r'(?=<fieldset class="items-group">|<div class="actions">)'
)


@pytest.fixture
def bundle(
    staff: dict[str, dict[str, str]], session: Session, clock: FixedClock, client: httpx.Client
) -> dict[str, dict[str, str]]:
    """The newborn bundle published (four items, the fourth only for the employed) and a known citizen."""
    import_items(session, clock)
    session.commit()
    publish_forms(client, staff)
    publish_bundle(client, staff)
    known_citizen(client, staff)
    return staff


@pytest.fixture
def citizen(base_url: str, bundle: dict[str, dict[str, str]]) -> Iterator[httpx.Client]:
    with signed_in(base_url, "citizen.li") as c:
        yield c


def submitted(client: httpx.Client, person: dict[str, str]) -> dict[str, Any]:
    """The newborn bundle (not employed: three items) submitted through the API."""
    cert = upload(client, person, *CERT).json()["id"]
    photo = upload(client, person, *PHOTO).json()["id"]
    values = {
        "name": "李明",
        "id_number": ID,
        "mobile": "13800138000",
        "household_address": "北京市东城区",
        "baby_name": "李小明",
        "baby_birth_date": "2026-02-20",
        "birth_cert": [cert],
        "photo": [photo],
    }
    out = client.post(
        "/api/v1/intake/bundle-applications",
        headers={**person, "Idempotency-Key": f"bundle-{cert}"},
        json={"bundle_code": BUNDLE, "answers": {"employed": False}, "values": values},
    )
    assert out.status_code == 201, out.text
    body: dict[str, Any] = out.json()
    return body


def _section(html: str, heading_id: str) -> str:
    match = re.search(rf'<section aria-labelledby="{heading_id}">(.*?)</section>', html, re.S)
    assert match, f"no section {heading_id}"
    return match.group(1)


def _groups(html: str) -> dict[str, str]:
    """The merged form's groups of fields by their legend (which items use them)."""
    return {text_of(legend).strip(): body for legend, body in re.findall(GROUP, html, re.S)}


def _summary(html: str) -> dict[str, list[str]]:
    """The error summary: the targets of its links under each heading (the items they concern)."""
    match = re.search(r'<div class="error-summary"(.*?)</div>', html, re.S)
    assert match, "no error summary"
    out: dict[str, list[str]] = {}
    for heading, links in re.findall(r"<h3[^>]*>(.*?)</h3>\s*<ul>(.*?)</ul>", match.group(1), re.S):
        out[text_of(heading).strip()] = re.findall(r'<a href="#([^"]+)">', links)
    return out


def test_the_bundles_and_their_questions_in_chinese_and_english(
    client: httpx.Client, bundle: dict[str, dict[str, str]]
) -> None:
    listed = client.get("/intake/bundles")
    assert listed.status_code == 200, listed.text
    text = text_of(listed.text)
    assert "新生儿出生“一件事”" in text
    assert "一次申请，办理落户、医保参保和社保卡。" in text
    for name, department in ((i["name"], i["department"]) for i in ITEMS):
        assert name in text
        assert department in text
    assert f'href="{START}"' in listed.text
    en = text_of(client.get("/intake/bundles", params={"lang": "en"}).text)
    assert "A newborn's registrations, at once" in en
    assert "Birth registration (household)" in en
    assert "Depending on your answers" in en

    page = client.get(START)
    assert page.status_code == 200
    html = page.text
    text = text_of(html)
    assert "父母一方是否在职参加生育保险？" in text
    assert f'<form method="get" action="{APPLY}"' in html
    assert re.search(r"<legend>父母一方是否在职参加生育保险？", html)
    assert re.search(r'type="radio" id="q-employed" name="a.employed" value="yes"', html)
    assert re.search(r'type="radio" id="q-employed--1" name="a.employed" value="no"', html)
    assert "下一步" in text
    assert "登录" in text  # anonymous: told to sign in first
    assert "生育津贴申领 北京市医疗保障局 视您的回答而定" in text
    en = text_of(client.get(START, params={"lang": "en"}).text)
    assert "Is a parent employed and insured?" in en
    assert "Next step" in en
    # answers in the address are chosen again (the link back from step 2)
    again = client.get(START, params={"a.employed": "no"}).text
    assert re.search(r'value="no" checked', again)
    assert client.get("/intake/bundles/nope").status_code == 404

    # the way in: the home page, and the page of an item that is part of the bundle
    assert 'href="/intake/bundles"' in client.get("/").text
    item_page = client.get(f"/catalog/items/{CODES[0]}").text
    assert f'<a class="button" href="{START}">与相关事项一起办理</a>' in item_page


def test_the_answers_choose_the_items_and_each_shared_field_is_asked_once(citizen: httpx.Client) -> None:
    page = citizen.get(APPLY, params={"a.employed": "no"})
    assert page.status_code == 200, page.text
    html = page.text
    parts = re.findall(r'<tr data-applies="(true|false)"><td>(.*?)</td>', _section(html, "h-parts"), re.S)
    assert [(applies, text_of(name).strip()) for applies, name in parts] == [
        ("true", NAMES[0]),
        ("true", NAMES[1]),
        ("true", NAMES[2]),
        ("false", NAMES[3]),
    ]
    text = text_of(html)
    assert "否，依据您的回答无需办理：“父母一方是否在职参加生育保险？” 否" in text
    assert "是，本“一件事”的必办事项" in text

    # each shared field once, in a group naming the items that use it
    for key in ("name", "id_number", "mobile", "baby_name", "baby_birth_date", "household_address"):
        assert html.count(f'id="f-{key}"') == 1, key
    assert html.count('name="file.birth_cert"') == 1
    assert 'id="f-bank_account"' not in html
    groups = _groups(html)
    shared = "用于：" + "、".join(NAMES[:3])
    assert list(groups) == [shared, f"用于：{NAMES[0]}", f"用于：{NAMES[2]}"]
    assert 'id="f-baby_name"' in groups[shared]
    assert 'name="file.birth_cert"' in groups[shared]
    assert 'id="f-household_address"' in groups[f"用于：{NAMES[0]}"]
    assert 'name="file.photo"' in groups[f"用于：{NAMES[2]}"]

    # prefilled once with its source; the verified ID number cannot be changed here
    assert re.search(r'id="f-id_number" name="v.id_number"[^>]*value="' + ID + '"[^>]*readonly', html)
    assert re.search(r'id="f-household_address" name="v.household_address"[^>]*value="北京市东城区"', html)
    assert re.search(r'id="f-name" name="v.name"[^>]*value="李明"', html)
    assert "来自：共享数据（户籍信息） — 已核验，不可在此修改" in text
    assert "来自：个人档案" in text
    # every item's materials, the answers carried by the form, a key against double submission
    materials = _section(html, "h-materials")
    assert [text_of(h).strip() for h in re.findall(r"<h3>(.*?)</h3>", materials)] == NAMES[:3]
    assert "需上传" in text_of(materials)
    form = fields_of(html, APPLY)
    assert form["a.employed"] == ["no"]
    assert len(form["_idem"][0]) >= 20
    assert f'href="{START}?a.employed=no"' in html  # change the answers

    en = citizen.get(APPLY, params={"a.employed": "no", "lang": "en"}).text
    assert '<html lang="en">' in en
    assert "Used for: " + ", ".join(NAMES_EN[:3]) in _groups(en)
    text = text_of(en)
    assert "No, not needed given your answer: “Is a parent employed and insured?” No" in text
    assert "Baby's name (required)" in text
    assert "From: shared data (户籍信息)" in text

    employed = citizen.get(APPLY, params={"a.employed": "yes"}).text
    assert re.findall(r'<tr data-applies="(true|false)"', employed) == ["true"] * 4
    assert 'id="f-bank_account"' in employed
    assert "是，依据您的回答：“父母一方是否在职参加生育保险？” 是" in text_of(employed)


def test_questions_must_be_answered_first(citizen: httpx.Client) -> None:
    unanswered = citizen.get(APPLY)
    assert unanswered.status_code == 303
    assert unanswered.headers["location"] == START
    wrong = citizen.get(APPLY, params={"a.employed": "maybe"})
    assert wrong.status_code == 422
    assert "<title>错误：" in wrong.text
    assert '<a href="#q-employed">请回答问题“父母一方是否在职参加生育保险？”。</a>' in wrong.text
    assert re.search(r'<fieldset class="field choice-field" aria-describedby="qm-employed">', wrong.text)
    assert re.search(r'id="q-employed" name="a.employed" value="yes" aria-invalid="true"', wrong.text)


def test_the_precheck_labels_findings_by_item_and_a_shared_fields_problem_once(citizen: httpx.Client) -> None:
    html = citizen.get(APPLY, params={"a.employed": "yes"}).text
    checked = post_form(citizen, html, APPLY, {"v.baby_name": "", "v.bank_account": "12-34"}, _action="check")
    assert checked.status_code == 200
    page = checked.text
    assert "<title>错误：" in page
    summary = _summary(page)
    everyone = "、".join(NAMES)
    assert summary[everyone].count("f-baby_name") == 1
    assert "f-birth_cert" in summary[everyone]  # the shared file: once
    assert summary[NAMES[3]] == ["f-bank_account"]
    assert summary[NAMES[2]] == ["f-photo"]
    assert sum(targets.count("f-baby_name") for targets in summary.values()) == 1
    # beside the field: once, marked invalid for assistive technology
    assert 'id="m-baby_name-1"' in page
    assert 'id="m-baby_name-2"' not in page
    assert re.search(r'id="f-baby_name"[^>]*aria-invalid="true"', page)
    assert re.search(r'id="f-bank_account"[^>]*value="12-34"', page)  # what was typed is kept
    assert fields_of(page, APPLY)["a.employed"] == ["yes"]

    en = post_form(citizen, html, APPLY, {"v.baby_name": ""}, params={"lang": "en"}, _action="check").text
    assert "Problems to fix:" in text_of(en)
    assert "Maternity allowance" in _summary(en)


def test_submission_without_javascript_is_idempotent_and_the_receipt_shows_every_part(
    citizen: httpx.Client, client: httpx.Client, bundle: dict[str, dict[str, str]], session: Session
) -> None:
    html = citizen.get(APPLY, params={"a.employed": "no"}).text
    filled = {"v.baby_name": "李小明", "v.baby_birth_date": "2026-02-20"}
    # without the files the pre-check refuses it: the form again, nothing stored
    refused = post_form(citizen, html, APPLY, filled, _action="submit")
    assert refused.status_code == 422
    assert {"f-birth_cert", "f-photo"} <= {t for ts in _summary(refused.text).values() for t in ts}
    assert session.scalar(select(func.count()).select_from(BundleApplication)) == 0
    # files uploaded by a check are kept (as upload ids) for the submission
    checked = post_form(
        citizen,
        refused.text,
        APPLY,
        files=[("file.birth_cert", CERT), ("file.photo", PHOTO)],
        _action="check",
    )
    assert checked.status_code == 200, checked.text
    assert "预检未发现需要修改的问题" in text_of(checked.text)
    assert re.search(r'name="u.birth_cert" value="[^"]+"', checked.text)
    first = post_form(citizen, checked.text, APPLY, _action="submit")
    assert first.status_code == 303, first.text
    receipt_url = first.headers["location"]
    found = re.fullmatch(r"/me/bundles/(\d{14})\?submitted=1", receipt_url)
    assert found
    receipt = found.group(1)
    # a retry of the same form gives the same bundle
    again = post_form(citizen, checked.text, APPLY, _action="submit")
    assert again.status_code == 303
    assert again.headers["location"] == receipt_url
    assert session.scalar(select(func.count()).select_from(BundleApplication)) == 1
    assert session.scalar(select(func.count()).select_from(Application)) == 3

    page = citizen.get(receipt_url).text
    text = text_of(page)
    assert f"您的受理编号是 {receipt}" in text
    assert "状态 已提交" in text
    rows = re.findall(r'<tr data-item="([^"]+)">(.*?)</tr>', page, re.S)
    assert [code for code, _ in rows] == CODES[:3]
    mine = client.get(f"/api/v1/me/bundle-applications/{receipt}", headers=bundle["citizen.li"]).json()
    for (_, row), part, spec in zip(rows, mine["parts"], ITEMS, strict=False):
        assert f'<a href="/me/applications/{part["receipt_no"]}">{part["receipt_no"]}</a>' in row
        assert spec["name"] in text_of(row)
        assert spec["department"] in text_of(row)
        assert "已提交，待受理" in text_of(row)
    stored = client.get(
        f"/api/v1/me/applications/{mine['parts'][2]['receipt_no']}", headers=bundle["citizen.li"]
    )
    assert {u["filename"] for u in stored.json()["uploads"]} == {"birth.pdf", "photo.pdf"}

    en = text_of(citizen.get(f"/me/bundles/{receipt}", params={"lang": "en"}).text)
    assert "Status Submitted" in en
    assert "Birth registration (household)" in en
    listed = citizen.get("/me/bundles").text
    assert f'<a href="/me/bundles/{receipt}">{receipt}</a>' in listed
    assert "新生儿出生“一件事”" in text_of(listed)
    assert 'href="/me/bundles"' in citizen.get("/me/applications").text


def test_the_combined_status_follows_the_parts_in_words(
    citizen: httpx.Client, client: httpx.Client, bundle: dict[str, dict[str, str]]
) -> None:
    officer = bundle["officer.wang"]
    out = submitted(client, bundle["citizen.li"])
    receipt, parts = out["receipt_no"], [p["receipt_no"] for p in out["parts"]]
    app = client.get(f"/api/v1/intake/applications/{parts[1]}", headers=officer).json()
    assert step(client, officer, app, "supplement", "出生医学证明不清晰，请重新上传").status_code == 200

    page = citizen.get(f"/me/bundles/{receipt}").text
    assert "状态 待补正" in text_of(page)
    waiting = re.search(r'<div class="warning-summary"(.*?)</div>', page, re.S)
    assert waiting
    links = re.findall(r'<a href="(/me/applications/\d+)">', waiting.group(1))
    assert links == [f"/me/applications/{parts[1]}"]
    assert NAMES[1] in text_of(waiting.group(1))
    assert "Status Supplementary material requested" in text_of(
        citizen.get(f"/me/bundles/{receipt}", params={"lang": "en"}).text
    )


@pytest.mark.parametrize(
    ("status", "zh", "en"),
    [
        ("submitted", "已提交", "Submitted"),
        ("in_progress", "办理中", "Being processed"),
        ("supplement_requested", "待补正", "Supplementary material requested"),
        ("approved", "已办结", "Completed: all approved"),
        ("partly_approved", "部分办结", "Completed: partly approved"),
        ("refused", "未通过", "Not granted"),
        ("closed", "已结束", "Ended"),
    ],
)
def test_every_combined_status_has_words_in_both_languages(status: str, zh: str, en: str) -> None:
    at = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
    row = BundleApplicationOut(
        receipt_no="20260302000001",
        bundle_code=BUNDLE,
        name=Text(zh="新生儿出生“一件事”", en="A newborn's registrations, at once"),
        answers={"employed": False},
        status=status,
        submitted_at=at,
        parts=[
            BundlePartStatus(
                item_code=CODES[0],
                item_name=NAMES[0],
                department="北京市公安局",
                receipt_no="20260302000002",
                status="submitted",
                updated_at=at,
            )
        ],
    )
    context: dict[str, Any] = {
        "rows": [row],
        "principal": auth.ANONYMOUS,
        "csrf_token": "t",
        "csrf_field": CSRF_FIELD,
        "here": "/me/bundles",
    }
    for code, words in (("zh-Hans", zh), ("en", en)):
        html = render("intake/bundle_mine.html", get_language(code), context)
        cells = re.findall(r"<td>(.*?)</td>", html, re.S)
        assert text_of(cells[2]).strip() == words, (code, cells)


def test_others_get_404_and_the_anonymous_are_asked_to_sign_in(
    client: httpx.Client,
    base_url: str,
    session: Session,
    clock: FixedClock,
    bundle: dict[str, dict[str, str]],
) -> None:
    receipt = submitted(client, bundle["citizen.li"])["receipt_no"]
    make_account(session, clock, "citizen.zhao", [])
    session.commit()
    with signed_in(base_url, "citizen.zhao") as other:
        assert other.get(f"/me/bundles/{receipt}").status_code == 404
        assert receipt not in other.get("/me/bundles").text
    with signed_in(base_url, "citizen.li") as me:
        assert me.get(f"/me/bundles/{receipt}").status_code == 200

    for path in (f"{APPLY}?a.employed=no", "/me/bundles", f"/me/bundles/{receipt}"):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/staff/login?next=/"), path
    assert client.get(f"{APPLY}?a.employed=no").headers["location"] == f"/staff/login?next={APPLY}"
    # a post without the form's token is refused
    assert client.post(APPLY, data={"a.employed": "no", "_action": "submit"}).status_code == 403


def test_a_field_that_shares_a_key_but_not_a_type_is_asked_apart(
    citizen: httpx.Client, client: httpx.Client, bundle: dict[str, dict[str, str]]
) -> None:
    # The social security card's form, version 2: its own "household_address" is a plain text field.
    mailing = {
        "key": "household_address",
        "label": "社保卡邮寄地址",
        "label_en": "Where to post the card",
        "type": "text",
        "required": True,
    }
    definition = {"fields": PARENT + ITEMS[2]["extra"] + [mailing]}
    saved = client.post(
        f"/api/v1/intake/items/{CODES[2]}/forms",
        headers=bundle["editor.sun"],
        json={"definition": definition},
    )
    assert saved.status_code == 201, saved.text
    published = client.post(
        f"/api/v1/intake/items/{CODES[2]}/forms/{saved.json()['version']}/publish",
        headers=bundle["publisher.qian"],
    )
    assert published.status_code == 200, published.text

    html = citizen.get(APPLY, params={"a.employed": "no"}).text
    apart = re.search(r'<label for="(f-[a-z0-9_]+)">社保卡邮寄地址', html)
    assert apart, "the card's address is not asked"
    anchor = apart.group(1)
    assert anchor != "f-household_address"
    assert re.search(rf'id="{anchor}" name="v\.[a-z0-9_]+"', html)
    assert apart.group(0) in _groups(html)[f"用于：{NAMES[2]}"]
    files = [("file.birth_cert", CERT), ("file.photo", PHOTO)]
    filled = {"v.baby_name": "李小明", "v.baby_birth_date": "2026-02-20"}
    checked = post_form(citizen, html, APPLY, filled, files=files, _action="check")
    assert _summary(checked.text) == {NAMES[2]: [anchor]}
    name = re.search(rf'id="{anchor}" name="([^"]+)"', checked.text)
    assert name
    done = post_form(citizen, checked.text, APPLY, {name.group(1): "北京市朝阳区某路 1 号"}, _action="submit")
    assert done.status_code == 303, done.text
    receipt = done.headers["location"].split("/")[-1].split("?")[0]
    out = client.get(f"/api/v1/me/bundle-applications/{receipt}", headers=bundle["citizen.li"]).json()
    values = [
        client.get(f"/api/v1/me/applications/{p['receipt_no']}", headers=bundle["citizen.li"]).json()[
            "values"
        ]
        for p in out["parts"]
    ]
    assert values[0]["household_address"] == "北京市东城区"
    assert values[2]["household_address"] == "北京市朝阳区某路 1 号"
