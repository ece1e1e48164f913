"""Knowledge governance and search through the service functions, on the real database."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import make_account
from tests.factories import item
from tongban.catalog import service as catalog
from tongban.core import auth
from tongban.core.clock import FixedClock
from tongban.core.errors import Conflict, Forbidden, InvalidInput
from tongban.core.models import AuditEvent
from tongban.knowledge import service
from tongban.knowledge.index import SearchFilters
from tongban.knowledge.schemas import EntryContent, Kind, LexiconIn, LexiconKind, SectionIn


@pytest.fixture
def editor(session: Session, clock: FixedClock) -> auth.Principal:
    return make_account(session, clock, "keditor", ["knowledge_editor"])


@pytest.fixture
def reviewer(session: Session, clock: FixedClock) -> auth.Principal:
    return make_account(session, clock, "kreviewer", ["knowledge_reviewer"])


@pytest.fixture
def holder() -> service.IndexHolder:
    """A lexical-only index: governance does not depend on the embedding model."""
    return service.IndexHolder(None)


def content(title: str, text: str, **extra: object) -> EntryContent:
    return EntryContent.model_validate(
        {"title": title, "sections": [{"heading": [], "text": text}], "kind": "faq", **extra}
    )


def ids(
    session: Session, holder: service.IndexHolder, query: str, clock: FixedClock, **kw: object
) -> list[str]:
    return [r.id for r in service.search(session, holder, query, clock=clock, **kw).results]  # type: ignore[arg-type]


def publish_new(
    session: Session,
    editor: auth.Principal,
    reviewer: auth.Principal,
    clock: FixedClock,
    external_id: str,
    body: EntryContent,
) -> None:
    service.create_entry(session, editor, external_id, body, clock=clock)
    service.submit_entry(session, editor, external_id, clock=clock)
    service.publish_entry(session, reviewer, external_id, clock=clock)


def test_workflow_four_eyes_and_audit(
    session: Session,
    editor: auth.Principal,
    reviewer: auth.Principal,
    clock: FixedClock,
    holder: service.IndexHolder,
) -> None:
    service.create_entry(
        session, editor, "faq-1", content("护照办理", "办理护照需要本人到出入境窗口。"), clock=clock
    )
    assert ids(session, holder, "护照", clock) == []  # a draft is never served
    with pytest.raises(Conflict):
        service.publish_entry(session, reviewer, "faq-1", clock=clock)  # not submitted
    service.submit_entry(session, editor, "faq-1", clock=clock)
    with pytest.raises(Forbidden):
        service.publish_entry(session, editor, "faq-1", clock=clock)  # editors cannot publish
    author_reviewer = make_account(session, clock, "selfie", ["knowledge_reviewer"])
    service.create_entry(session, author_reviewer, "faq-2", content("签证", "签证说明。"), clock=clock)
    service.submit_entry(session, author_reviewer, "faq-2", clock=clock)
    with pytest.raises(Forbidden):
        service.publish_entry(session, author_reviewer, "faq-2", clock=clock)  # four eyes
    out = service.publish_entry(session, reviewer, "faq-1", clock=clock)
    assert out.status == "published"
    assert out.published_version == 1
    assert ids(session, holder, "护照", clock) == ["faq-1"]
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.target_id == "faq-1").order_by(AuditEvent.id)
    ).all()
    assert actions == ["knowledge.entry.create", "knowledge.entry.submit", "knowledge.entry.publish"]


def test_superseded_version_is_never_served_and_citation_names_the_version(
    session: Session,
    editor: auth.Principal,
    reviewer: auth.Principal,
    clock: FixedClock,
    holder: service.IndexHolder,
) -> None:
    publish_new(session, editor, reviewer, clock, "fee", content("工本费", "补办证件收取工本费二十元。"))
    first = service.search(session, holder, "工本费", clock=clock)
    assert first.results[0].citation.version == 1
    service.update_entry(
        session, editor, "fee", content("工本费", "补办证件免收工本费，当场办结。"), clock=clock
    )
    # The pending draft is not served; the published version still is.
    assert "二十元" in service.search(session, holder, "工本费", clock=clock).results[0].snippet
    service.submit_entry(session, editor, "fee", clock=clock)
    service.publish_entry(session, reviewer, "fee", clock=clock)
    result = service.search(session, holder, "工本费", clock=clock).results
    assert [r.id for r in result] == ["fee"]
    assert result[0].citation.version == 2
    assert "免收" in result[0].snippet
    assert ids(session, holder, "二十元", clock) == []  # the superseded text is gone from the index
    diff = service.diff_versions(session, editor, "fee", 1, 2)
    assert any(line.startswith("-") and "二十元" in line for line in diff.unified)
    assert any(line.startswith("+") and "免收" in line for line in diff.unified)


def test_expired_and_withdrawn_knowledge_is_never_served(
    session: Session,
    editor: auth.Principal,
    reviewer: auth.Principal,
    clock: FixedClock,
    holder: service.IndexHolder,
) -> None:
    today = clock.now().date()
    publish_new(
        session,
        editor,
        reviewer,
        clock,
        "subsidy-2026",
        content("稳岗补贴", "稳岗补贴申领说明。", expires_on=(today + dt.timedelta(days=3)).isoformat()),
    )
    publish_new(session, editor, reviewer, clock, "subsidy-old", content("稳岗补贴旧规", "稳岗补贴旧规。"))
    assert set(ids(session, holder, "稳岗补贴", clock)) == {"subsidy-2026", "subsidy-old"}
    # Valid-on filter: an entry is not returned for a day after its expiry, even before the job runs.
    later = today + dt.timedelta(days=10)
    assert ids(session, holder, "稳岗补贴", clock, filters=SearchFilters(valid_on=later)) == ["subsidy-old"]
    clock.advance(dt.timedelta(days=10))
    assert ids(session, holder, "稳岗补贴", clock) == ["subsidy-old"]  # the clock alone hides it
    assert service.expire_due(session, clock=clock) == ["subsidy-2026"]
    assert service.expire_due(session, clock=clock) == []  # idempotent
    assert service.get_entry(session, editor, "subsidy-2026").status == "expired"
    with pytest.raises(InvalidInput):
        service.withdraw_entry(session, reviewer, "subsidy-old", clock=clock, note=" ")
    service.withdraw_entry(session, reviewer, "subsidy-old", clock=clock, note="政策废止")
    assert ids(session, holder, "稳岗补贴", clock) == []


def test_conflicting_facts_between_published_entries_are_reported(
    session: Session,
    editor: auth.Principal,
    reviewer: auth.Principal,
    clock: FixedClock,
    holder: service.IndexHolder,
) -> None:
    publish_new(
        session,
        editor,
        reviewer,
        clock,
        "guide-a",
        content("居住证办理指南", "承诺时限：5个工作日。办理地点：市民中心一楼。", subject="居住证签发"),
    )
    publish_new(
        session,
        editor,
        reviewer,
        clock,
        "guide-b",
        content(
            "居住证常见问题", "居住证的承诺时限为十个工作日。办理地点：市民中心一楼", subject="居住证签发"
        ),
    )
    publish_new(
        session,
        editor,
        reviewer,
        clock,
        "guide-c",
        content("居住证说明", "承诺时限：5个工作日。", subject="居住证签发"),
    )
    found = service.conflicts(session)
    assert len(found) == 1
    conflict = found[0]
    assert (conflict.subject, conflict.attribute) == ("居住证签发", "time_limit")
    assert sorted(conflict.values.values()) == [["guide-a", "guide-c"], ["guide-b"]]
    report = service.ops_report(session, editor, holder, clock=clock)
    assert [c.attribute for c in report.conflicts] == ["time_limit"]  # the place agrees
    service.withdraw_entry(session, reviewer, "guide-b", clock=clock, note="合并")
    assert service.conflicts(session) == []


def test_questions_that_found_nothing_are_counted_with_numbers_masked(
    session: Session, editor: auth.Principal, clock: FixedClock, holder: service.IndexHolder
) -> None:
    for _ in range(2):
        response = service.search(session, holder, "身份证号440102199001011234查询", clock=clock)
        assert not response.found
    service.search(session, holder, "xyzzy", clock=clock)
    report = service.ops_report(session, editor, holder, clock=clock)
    counts = {m.query: m.count for m in report.misses}
    assert counts == {"身份证号#查询": 2, "xyzzy": 1}


def test_synonyms_and_traditional_queries_find_official_simplified_text(
    session: Session,
    editor: auth.Principal,
    reviewer: auth.Principal,
    clock: FixedClock,
    holder: service.IndexHolder,
) -> None:
    publish_new(
        session,
        editor,
        reviewer,
        clock,
        "card",
        content("社会保障卡补领", "社会保障卡遗失后可到银行网点补领。"),
    )
    publish_new(session, editor, reviewer, clock, "other", content("护照", "护照遗失后申请补发。"))
    response = service.search(session, holder, "社保卡丢了怎么办", clock=clock)
    assert response.results[0].id == "card"
    assert ["社保卡", "社会保障卡"] in [list(e) for e in response.expansions]
    assert ids(session, holder, "社會保障卡遺失", clock)[0] == "card"
    hit = service.search(session, holder, "社会保障卡", clock=clock).results[0]
    start, end = hit.highlights[0]
    assert hit.snippet[start:end] == "社会保障卡"


def test_lexicon_synonym_applies_after_approval_only(
    session: Session,
    editor: auth.Principal,
    reviewer: auth.Principal,
    clock: FixedClock,
    holder: service.IndexHolder,
) -> None:
    publish_new(session, editor, reviewer, clock, "ck", content("犬只防疫登记", "犬只防疫登记办理流程。"))
    assert "ck" not in ids(session, holder, "狗证", clock)
    row = service.propose_lexicon(
        session,
        editor,
        LexiconIn(kind=LexiconKind.SYNONYM, term="狗证", canonical="犬只防疫登记"),
        clock=clock,
    )
    assert "ck" not in ids(session, holder, "狗证", clock)
    with pytest.raises(Forbidden):
        service.decide_lexicon(session, editor, row.id, approve=True, clock=clock)
    service.decide_lexicon(session, reviewer, row.id, approve=True, clock=clock)
    assert ids(session, holder, "狗证", clock)[0] == "ck"
    with pytest.raises(Conflict):
        service.propose_lexicon(
            session,
            editor,
            LexiconIn(kind=LexiconKind.SYNONYM, term="狗证", canonical="犬只登记证"),
            clock=clock,
        )


def test_ingest_is_idempotent_and_filters_apply(
    session: Session, clock: FixedClock, holder: service.IndexHolder
) -> None:
    body = content("复工补贴", "复工复产补贴申请。", department="人社局", region="广州市")
    assert service.ingest_content(session, "p1", body, actor="op", clock=clock, source="t") == "created"
    assert service.ingest_content(session, "p1", body, actor="op", clock=clock, source="t") == "unchanged"
    policy = EntryContent(
        title="复工政策", kind=Kind.POLICY, sections=[SectionIn(text="复工复产政策。")], region="深圳市"
    )
    service.ingest_content(session, "p2", policy, actor="op", clock=clock, source="t")
    assert set(ids(session, holder, "复工", clock)) == {"p1", "p2"}
    assert ids(session, holder, "复工", clock, filters=SearchFilters(kinds=("policy",))) == ["p2"]
    assert ids(session, holder, "复工", clock, filters=SearchFilters(region="广州市")) == ["p1"]
    assert ids(session, holder, "复工", clock, filters=SearchFilters(department="人社局")) == ["p1"]
    report = service.verify_index(session, holder)
    assert report["ok"], report["problems"]


def test_published_service_items_become_knowledge_automatically(
    session: Session, clock: FixedClock, holder: service.IndexHolder
) -> None:
    editor = make_account(session, clock, "ced", ["catalog_editor"])
    chief = make_account(session, clock, "crv", ["catalog_reviewer"])
    data = item(code="11440000TEST0001", name="犬只登记证核发", conditions="养犬人须办理犬只登记。")
    catalog.create_item(session, editor, data, clock=clock)
    catalog.submit_for_review(session, editor, data.code, clock=clock)
    assert ids(session, holder, "犬只登记", clock) == []
    catalog.publish_item(session, chief, data.code, clock=clock)
    result = service.search(session, holder, "养狗要办什么证 犬只登记", clock=clock).results
    assert result[0].id == f"catalog:{data.code}"
    assert result[0].kind == "service_item"
    assert result[0].item_code == data.code
    catalog.withdraw_item(session, chief, data.code, clock=clock, note="合并事项")
    assert ids(session, holder, "犬只登记", clock) == []
    with pytest.raises(InvalidInput):
        service.update_entry(
            session,
            make_account(session, clock, "ke2", ["knowledge_editor"]),
            f"catalog:{data.code}",
            content("x", "y"),
            clock=clock,
        )


def test_every_node_follows_the_change_log(
    session: Session, editor: auth.Principal, reviewer: auth.Principal, clock: FixedClock
) -> None:
    node_a, node_b = service.IndexHolder(None), service.IndexHolder(None)
    publish_new(session, editor, reviewer, clock, "n1", content("居住证签注", "居住证每年签注一次。"))
    assert ids(session, node_a, "居住证签注", clock) == ["n1"]
    assert ids(session, node_b, "居住证签注", clock) == ["n1"]
    service.withdraw_entry(session, reviewer, "n1", clock=clock, note="过时")
    assert ids(session, node_a, "居住证签注", clock) == []
    assert node_a.index is not None
    first_index = node_a.index
    publish_new(session, editor, reviewer, clock, "n2", content("居住证续签", "居住证到期前三十日内续签。"))
    assert ids(session, node_b, "居住证续签", clock) == ["n2"]
    assert ids(session, node_a, "居住证续签", clock) == ["n2"]
    assert node_a.index is first_index  # applied incrementally, not rebuilt
    assert service.verify_index(session, node_b)["ok"]


def test_alternative_questions_and_entry_synonyms_are_searchable(
    session: Session, clock: FixedClock, holder: service.IndexHolder
) -> None:
    body = content(
        "不动产登记资料查询",
        "权利人可以查询本人名下不动产的登记结果。",
        questions=["怎么查我名下有几套房"],
        synonyms=["查房产", "房产信息查询"],
        tags=["住房"],
    )
    service.ingest_content(session, "q1", body, actor="op", clock=clock, source="t")
    assert ids(session, holder, "名下有几套房", clock) == ["q1"]
    assert ids(session, holder, "查房产", clock) == ["q1"]


def test_english_glossary_terms_match_with_or_without_hyphens() -> None:
    from tongban.knowledge.text import Analyzer

    analyzer = Analyzer()
    for question in ("Register a joint-stock company", "Register a joint stock company"):
        terms = analyzer.analyze_query(question)
        assert ("joint stock company", "股份有限公司") in terms.synonyms_applied, question
        assert "股份有限公司" in terms.rewritten
    assert analyzer.analyze_query("cross-border e-commerce rules").synonyms_applied == [
        ("cross border e commerce", "跨境电子商务")
    ]
    # A hyphen inside a word that is not a glossary term changes nothing.
    assert analyzer.analyze_query("e-commerce").synonyms_applied == []
