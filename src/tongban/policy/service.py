"""The policy domain's public functions (京策): the policy library — documents with their lifecycle and
interpretations, policy items whose rules are reviewed and versioned — and the policy calculator over the
published rules. Each function takes the session first and never commits.

Lifecycles:

* a document: ``drafting`` → ``review`` → ``published`` → ``amended`` (a later document amends it) or
  ``repealed``; published documents become knowledge (searchable in the hub) and leave it when repealed;
* an item version: proposed (``review``; its rules checked and its test cases passed) → ``published``
  (by a reviewer who is not its author; the one before becomes ``superseded``) or ``rejected``.

The calculator and every run read the *current rule set*: the latest variables and each item's published
version, built once per change and cached by digest.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml  # type: ignore[import-untyped]
from sqlalchemy import insert
from sqlalchemy.orm import Session

from tongban.core import audit, events
from tongban.core.auth import Principal, system_principal
from tongban.core.clock import Clock
from tongban.core.crypto import Sealer
from tongban.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    Unauthenticated,
)
from tongban.core.llm import ChatModel
from tongban.intake import service as intake
from tongban.knowledge import service as knowledge
from tongban.knowledge.schemas import EntryContent, Kind, SectionIn
from tongban.policy import drafting, engine, overlap, runs
from tongban.policy import repository as repo
from tongban.policy.models import (
    PolicyAppeal,
    PolicyApplication,
    PolicyDocument,
    PolicyGrant,
    PolicyInterpretation,
    PolicyItem,
    PolicyItemVersion,
    PolicyPush,
    PolicyRun,
    PolicySnapshot,
    PolicySubscription,
    PolicyVariableSet,
)
from tongban.policy.rules import CheckedItem, Item, RuleError, RuleFile, RuleSet, Variable, derived_tags
from tongban.policy.rules import check as check_rules
from tongban.policy.rules import parse_text as parse_rule_text
from tongban.policy.schemas import (
    AppealDecision,
    AppealOut,
    AppealWrite,
    ApplicationDecision,
    ApplicationOut,
    CandidateOut,
    ConditionOut,
    DocumentOut,
    DocumentOverlapOut,
    DocumentPage,
    DocumentSummary,
    DocumentWrite,
    DraftOut,
    DraftWrite,
    FastApplicationWrite,
    FieldOut,
    GrantOut,
    GrantPage,
    InterpretationOut,
    InterpretationWrite,
    ItemOut,
    ItemOverlapOut,
    ItemSummary,
    ItemVersionOut,
    ItemVersionWrite,
    MatchOut,
    MatchRequest,
    MatchResponse,
    Needed,
    OverlapReport,
    OverlapRequest,
    ProposalOut,
    PushOut,
    RunDecision,
    RunOut,
    RunWrite,
    SimulationOut,
    SimulationSide,
    SimulationWrite,
    SnapshotOut,
    SubscriptionOut,
    SubscriptionWrite,
    SyntheticWrite,
)

EDIT = "policy:edit"
REVIEW = "policy:review"
#: What the public sees of the library.
PUBLIC = ("published", "amended", "repealed")
ALL_STATUSES = ("drafting", "review", "published", "amended", "repealed")
CHINA = ZoneInfo("Asia/Shanghai")
#: The knowledge hub's id of a published document: ``policy:<code>``.
KNOWLEDGE_PREFIX = "policy:"
#: Events a subscriber (the push of new and amended policies) listens to.
DOCUMENT_PUBLISHED = "policy.document.published"
ITEM_PUBLISHED = "policy.item.published"

_KNOWLEDGE = system_principal("policy", frozenset({"knowledge:publish"}))


def today(clock: Clock) -> dt.date:
    """The date in the city (China Standard Time)."""
    return clock.now().astimezone(CHINA).date()


def _audit(
    session: Session, actor: Principal | str, action: str, target: str, clock: Clock, **detail: Any
) -> None:
    audit.record(
        session,
        actor=actor,
        action=f"policy.{action}",
        target_type="policy",
        target_id=target,
        clock=clock,
        detail=detail or None,
    )


# --- documents -----------------------------------------------------------------------------------------


def _summary(d: PolicyDocument) -> DocumentSummary:
    return DocumentSummary(
        code=d.code,
        title=d.title,
        title_en=d.title_en,
        level=d.level,
        department=d.department,
        region_code=d.region_code,
        issued_on=d.issued_on,
        effective_from=d.effective_from,
        effective_to=d.effective_to,
        status=d.status,
        summary=d.summary,
        revision=d.revision,
    )


def _item_summary(i: PolicyItem) -> ItemSummary:
    return ItemSummary(
        key=i.key,
        document_code=i.document_code,
        entity=i.entity,
        support=i.support,
        title=i.title,
        title_en=i.title_en,
        status=i.status,
        published_version=i.published_version,
        tags=i.tags or {},
    )


def _document_out(session: Session, d: PolicyDocument, principal: Principal) -> DocumentOut:
    statuses = ("draft", "published", "retired") if principal.can(EDIT) else ("published", "retired")
    return DocumentOut(
        **_summary(d).model_dump(),
        body=d.body,
        amends=d.amends,
        amended_by=d.amended_by,
        created_by=d.created_by,
        created_at=d.created_at,
        updated_at=d.updated_at,
        published_at=d.published_at,
        interpretations=[
            InterpretationOut(
                id=i.id,
                kind=i.kind,
                title=i.title,
                body=i.body,
                source=i.source,
                published_on=i.published_on,
                created_by=i.created_by,
                created_at=i.created_at,
            )
            for i in repo.interpretations(session, d.id)
        ],
        items=[_item_summary(i) for i in repo.items(session, statuses=statuses, document_code=d.code)],
    )


def _visible(principal: Principal) -> tuple[str, ...]:
    return ALL_STATUSES if principal.can(EDIT) else PUBLIC


def _document(
    session: Session, principal: Principal, code: str, *, for_update: bool = False
) -> PolicyDocument:
    d = repo.document(session, code, for_update=for_update)
    if d is None or d.status not in _visible(principal):
        raise NotFound(f"no policy document {code!r}")
    return d


def get_document(session: Session, principal: Principal, code: str) -> DocumentOut:
    return _document_out(session, _document(session, principal, code), principal)


def list_documents(
    session: Session,
    principal: Principal,
    *,
    q: str = "",
    level: str = "",
    department: str = "",
    status: str = "",
    page: int = 1,
    per_page: int = 20,
) -> DocumentPage:
    visible = _visible(principal)
    if status and status not in visible:
        raise InvalidInput(f"status must be one of {', '.join(visible)}")
    total, rows = repo.find_documents(
        session,
        statuses=(status,) if status else visible,
        q=q.strip(),
        level=level,
        department=department,
        page=page,
        per_page=per_page,
    )
    return DocumentPage(total=total, page=page, per_page=per_page, documents=[_summary(d) for d in rows])


def departments(session: Session, principal: Principal) -> list[str]:
    return repo.departments(session, _visible(principal))


def _check_revision(d: PolicyDocument, if_match: int | None) -> None:
    if if_match is not None and if_match != d.revision:
        raise PreconditionFailed(f"the document changed (revision {d.revision}); reload it and try again")


def create_document(
    session: Session, principal: Principal, data: DocumentWrite, *, clock: Clock
) -> DocumentOut:
    principal.require(EDIT)
    if repo.document(session, data.code) is not None:
        raise Conflict(f"a document {data.code!r} exists already")
    if data.amends is not None:
        old = repo.document(session, data.amends)
        if old is None or old.status != "published":
            raise InvalidInput(f"{data.amends!r} is not a published document, so it cannot be amended")
    now = clock.now()
    d = PolicyDocument(
        **data.model_dump(),
        status="drafting",
        created_by=principal.username,
        created_at=now,
        updated_at=now,
        revision=1,
    )
    session.add(d)
    session.flush()
    _audit(session, principal, "document.create", d.code, clock)
    return _document_out(session, d, principal)


def update_document(
    session: Session,
    principal: Principal,
    code: str,
    data: DocumentWrite,
    *,
    clock: Clock,
    if_match: int | None = None,
) -> DocumentOut:
    """Change a document being drafted or reviewed (a change under review sends it back to drafting)."""
    principal.require(EDIT)
    d = _document(session, principal, code, for_update=True)
    _check_revision(d, if_match)
    if d.status not in ("drafting", "review"):
        raise Conflict(f"a {d.status} document is not changed; publish a document that amends it")
    if data.code != d.code:
        raise InvalidInput("the document number (code) does not change")
    for name, value in data.model_dump().items():
        setattr(d, name, value)
    d.status = "drafting"
    d.updated_at = clock.now()
    d.revision += 1
    _audit(session, principal, "document.update", d.code, clock, revision=d.revision)
    return _document_out(session, d, principal)


def submit_document(session: Session, principal: Principal, code: str, *, clock: Clock) -> DocumentOut:
    principal.require(EDIT)
    d = _document(session, principal, code, for_update=True)
    if d.status != "drafting":
        raise Conflict(f"only a document being drafted is submitted for review (it is {d.status})")
    d.status, d.submitted_by, d.updated_at = "review", principal.username, clock.now()
    d.revision += 1
    _audit(session, principal, "document.submit", d.code, clock)
    return _document_out(session, d, principal)


def publish_document(session: Session, principal: Principal, code: str, *, clock: Clock) -> DocumentOut:
    """Publish a reviewed document (four eyes: not by its author or submitter); the document it amends
    becomes ``amended``; it becomes knowledge, searchable in the hub."""
    principal.require(REVIEW)
    d = _document(session, principal, code, for_update=True)
    if d.status != "review":
        raise Conflict(f"only a document in review is published (it is {d.status})")
    principal.require_other_than(d.created_by)
    if d.submitted_by:
        principal.require_other_than(d.submitted_by)
    now = clock.now()
    if d.amends:
        old = repo.document(session, d.amends, for_update=True)
        if old is None or old.status != "published":
            raise Conflict(f"{d.amends!r} is no longer a published document")
        old.status, old.amended_by, old.updated_at = "amended", d.code, now
        old.revision += 1
        _audit(session, principal, "document.amended", old.code, clock, by=d.code)
    d.status, d.published_by, d.published_at, d.updated_at = "published", principal.username, now, now
    d.revision += 1
    _audit(session, principal, "document.publish", d.code, clock)
    _to_knowledge(session, d, clock)
    events.emit(session, DOCUMENT_PUBLISHED, clock=clock, code=d.code)
    return _document_out(session, d, principal)


def repeal_document(
    session: Session, principal: Principal, code: str, *, clock: Clock, note: str
) -> DocumentOut:
    """Repeal a published document: its items are retired (no run grants them any more) and it leaves
    the knowledge hub's answers."""
    principal.require(REVIEW)
    if not note.strip():
        raise InvalidInput("say why the document is repealed")
    d = _document(session, principal, code, for_update=True)
    if d.status not in ("published", "amended"):
        raise Conflict(f"only a published document is repealed (it is {d.status})")
    now = clock.now()
    d.status, d.repealed_at, d.updated_at = "repealed", now, now
    d.revision += 1
    for i in repo.items(session, statuses=("published",), document_code=d.code):
        i.status, i.updated_at = "retired", now
        _audit(session, principal, "item.retire", i.key, clock, note=f"document {d.code} repealed")
    _audit(session, principal, "document.repeal", d.code, clock, note=note)
    # (not found or not published there: it never became knowledge, or was withdrawn there already)
    with contextlib.suppress(NotFound, Conflict):
        knowledge.withdraw_entry(session, _KNOWLEDGE, KNOWLEDGE_PREFIX + d.code, clock=clock, note=note)
    return _document_out(session, d, principal)


def add_interpretation(
    session: Session, principal: Principal, code: str, data: InterpretationWrite, *, clock: Clock
) -> InterpretationOut:
    principal.require(EDIT)
    d = _document(session, principal, code)
    i = PolicyInterpretation(
        document_id=d.id, **data.model_dump(), created_by=principal.username, created_at=clock.now()
    )
    session.add(i)
    session.flush()
    _audit(session, principal, "interpretation.add", d.code, clock, interpretation=i.id)
    if d.status == "published":
        _to_knowledge(session, d, clock)
    return InterpretationOut(id=i.id, created_by=i.created_by, created_at=i.created_at, **data.model_dump())


_ARTICLE = re.compile(r"(?=(?:^|\n|\s)(?:第[一二三四五六七八九十百零〇]+条|[一二三四五六七八九十]+、))")


def _sections(body: str) -> list[SectionIn]:
    """The body cut at its articles (第X条, 一、…) so that search answers with the article itself."""
    parts = [p.strip() for p in _ARTICLE.split(body) if p.strip()]
    return [SectionIn(heading=[], text=p[:200_000]) for p in parts[:1900]] or [SectionIn(text=body[:200_000])]


def _to_knowledge(session: Session, d: PolicyDocument, clock: Clock) -> None:
    sections = [SectionIn(heading=[], text=f"{d.title}\n{d.code} · {d.department}\n{d.summary}".strip())]
    sections += _sections(d.body)
    for i in repo.interpretations(session, d.id):
        sections.append(SectionIn(heading=["政策解读", i.title[:300]], text=i.body[:200_000]))
    content = EntryContent(
        title=d.title,
        kind=Kind.POLICY,
        department=d.department,
        source=d.code,
        region=d.region_code,
        effective_from=d.effective_from,
        expires_on=d.effective_to,
        sections=sections[:2000],
        subject=d.title[:300],
        metadata={"policy_code": d.code, "level": d.level},
    )
    knowledge.ingest_content(
        session, KNOWLEDGE_PREFIX + d.code, content, actor="policy", clock=clock, source="policy library"
    )


# --- variables and the current rule set ----------------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _parse_variables(source: str) -> list[Variable]:
    raw = parse_rule_text(source, filename="variables.yaml")
    if raw.items:
        raise RuleError(["a variables file holds variables only"])
    return list(raw.variables)


def _parse_item(source: str) -> Item:
    """One item from its YAML or JSON text: the item's mapping itself, or a rule file with one item."""
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise RuleError([f"the item is not valid YAML or JSON: {exc}"]) from exc
    if isinstance(data, dict) and "items" not in data and "variables" not in data:
        data = {"items": [data]}
    raw = parse_rule_text(yaml.safe_dump(data, allow_unicode=True)) if isinstance(data, dict) else None
    if raw is None or raw.variables or len(raw.items) != 1:
        raise RuleError(
            ["give exactly one item (its mapping, or a rule file with one item and no variables)"]
        )
    return raw.items[0]


class _RuleCache:
    """The current rule set (and its matchers per reference date), rebuilt when a digest changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets: OrderedDict[str, RuleSet] = OrderedDict()
        self._matchers: OrderedDict[tuple[str, dt.date], engine.Matcher] = OrderedDict()

    def rules(self, key: str, build: Any) -> RuleSet:
        with self._lock:
            found = self._sets.get(key)
            if found is not None:
                self._sets.move_to_end(key)
                return found
        built: RuleSet = build()
        with self._lock:
            self._sets[key] = built
            while len(self._sets) > 8:
                self._sets.popitem(last=False)
        return built

    def matcher(self, key: str, rules: RuleSet, ref_date: dt.date) -> engine.Matcher:
        with self._lock:
            found = self._matchers.get((key, ref_date))
            if found is not None:
                self._matchers.move_to_end((key, ref_date))
                return found
        built = engine.Matcher(rules, ref_date)
        with self._lock:
            self._matchers[(key, ref_date)] = built
            while len(self._matchers) > 32:
                self._matchers.popitem(last=False)
        return built


_CACHE = _RuleCache()


def _variables_row(session: Session) -> PolicyVariableSet:
    row = repo.current_variables(session)
    if row is None:
        raise Conflict("no variables are defined yet: load the city's data dictionary first")
    return row


def current_rules(session: Session) -> tuple[str, RuleSet]:
    """The digest and the checked rule set of the latest variables and every item's published version."""
    variables = _variables_row(session)
    digests = repo.published_digests(session)
    key = _digest(variables.digest + "".join(f"|{k}:{d}" for k, d in digests))

    def build() -> RuleSet:
        items = [_parse_item(v.source) for _, v in repo.published_versions(session)]
        return check_rules(RuleFile(variables=_parse_variables(variables.source), items=items))

    return key, _CACHE.rules(key, build)


def set_variables(
    session: Session, principal: Principal, source: str, *, clock: Clock, note: str = ""
) -> int:
    """A new version of the variables. Refused if a published item would no longer check against it."""
    principal.require(REVIEW)
    try:
        variables = _parse_variables(source)
        items = [_parse_item(v.source) for _, v in repo.published_versions(session)]
        check_rules(RuleFile(variables=variables, items=items))
    except RuleError as exc:
        raise InvalidInput("the variables are refused: " + "; ".join(exc.problems)) from exc
    current = repo.current_variables(session)
    digest = _digest(source)
    if current is not None and current.digest == digest:
        return current.version
    number = (current.version if current else 0) + 1
    session.add(
        PolicyVariableSet(
            version=number,
            source=source,
            digest=digest,
            created_by=principal.username,
            created_at=clock.now(),
            note=note,
        )
    )
    session.flush()
    _audit(session, principal, "variables.set", str(number), clock, digest=digest)
    return number


def variables_source(session: Session) -> tuple[int, str]:
    row = _variables_row(session)
    return row.version, row.source


# --- items ---------------------------------------------------------------------------------------------


def _version_out(v: PolicyItemVersion) -> ItemVersionOut:
    return ItemVersionOut(
        version=v.version,
        state=v.state,
        digest=v.digest,
        source=v.source,
        note=v.note,
        created_by=v.created_by,
        created_at=v.created_at,
        reviewed_by=v.reviewed_by,
        reviewed_at=v.reviewed_at,
    )


def _item_visible(principal: Principal) -> tuple[str, ...]:
    return ("draft", "published", "retired") if principal.can(EDIT) else ("published", "retired")


def _item(session: Session, principal: Principal, key: str, *, for_update: bool = False) -> PolicyItem:
    i = repo.item(session, key, for_update=for_update)
    if i is None or i.status not in _item_visible(principal):
        raise NotFound(f"no policy item {key!r}")
    return i


def get_item(session: Session, principal: Principal, key: str) -> ItemOut:
    i = _item(session, principal, key)
    versions = repo.versions(session, i.id)
    if not principal.can(EDIT):
        versions = [v for v in versions if v.state in ("published", "superseded")]
    return ItemOut(**_item_summary(i).model_dump(), versions=[_version_out(v) for v in versions])


def list_items(session: Session, principal: Principal, *, entity: str = "") -> list[ItemSummary]:
    return [_item_summary(i) for i in repo.items(session, statuses=_item_visible(principal), entity=entity)]


def propose_item_version(
    session: Session, principal: Principal, data: ItemVersionWrite, *, clock: Clock
) -> ItemOut:
    """A new version of an item's rules, for review. Its rules are checked against the current variables
    and the other published items, its version must be the next one, it cites a document of the library,
    and its own test cases (at least one) must pass."""
    principal.require(EDIT)
    try:
        spec = _parse_item(data.source)
    except RuleError as exc:
        raise InvalidInput("the item is refused: " + "; ".join(exc.problems)) from exc
    existing = repo.item(session, spec.id, for_update=True)
    expected = 1 + max((v.version for v in repo.versions(session, existing.id)), default=0) if existing else 1
    problems: list[str] = []
    if spec.version != expected:
        problems.append(f"version must be {expected} (the next version of {spec.id})")
    if existing is not None and existing.entity != spec.entity:
        problems.append(f"{spec.id} is an item for a {existing.entity}; its entity does not change")
    document = repo.document(session, spec.document)
    if document is None or document.status in ("repealed", "amended"):
        problems.append(f"document {spec.document!r} is not a current document of the library")
    if not spec.tests:
        problems.append("give at least one test case (inputs and the expected result)")
    try:
        variables = _parse_variables(_variables_row(session).source)
        others = [_parse_item(v.source) for i, v in repo.published_versions(session) if i.key != spec.id]
        rules = check_rules(RuleFile(variables=variables, items=[*others, spec]))
    except RuleError as exc:
        problems.extend(exc.problems)
        rules = None
    if rules is not None:
        problems.extend(
            f"test case {f.case!r}: {f.problem}" for f in engine.run_cases(rules, items=[spec.id])
        )
    if problems:
        raise InvalidInput("the item is refused: " + "; ".join(problems))
    now = clock.now()
    if existing is None:
        existing = PolicyItem(
            key=spec.id,
            document_code=spec.document,
            entity=spec.entity,
            support=spec.support,
            title=spec.title.zh,
            title_en=spec.title.en,
            status="draft",
            tags={},
            updated_at=now,
        )
        session.add(existing)
        session.flush()
    for v in repo.versions(session, existing.id):
        if v.state == "review":
            v.state = "superseded"  # a newer proposal replaces one not yet reviewed
    session.add(
        PolicyItemVersion(
            item_id=existing.id,
            version=spec.version,
            source=data.source,
            digest=_digest(data.source),
            state="review",
            note=data.note,
            created_by=principal.username,
            created_at=now,
            submitted_by=principal.username,
        )
    )
    session.flush()
    _audit(session, principal, "item.propose", spec.id, clock, version=spec.version)
    return get_item(session, principal, spec.id)


def publish_item_version(
    session: Session, principal: Principal, key: str, number: int, *, clock: Clock, note: str = ""
) -> ItemOut:
    """Publish a proposed version (four eyes); its document must be published. Its test cases run again
    against the rule set it joins."""
    principal.require(REVIEW)
    i = _item(session, principal, key, for_update=True)
    v = repo.version(session, i.id, number, for_update=True)
    if v is None:
        raise NotFound(f"{key} has no version {number}")
    if v.state != "review":
        raise Conflict(f"only a version in review is published (version {number} is {v.state})")
    principal.require_other_than(v.created_by)
    spec = _parse_item(v.source)
    document = repo.document(session, spec.document)
    if document is None or document.status != "published":
        raise Conflict(f"publish document {spec.document!r} first")
    variables = _parse_variables(_variables_row(session).source)
    others = [_parse_item(s.source) for it, s in repo.published_versions(session) if it.key != key]
    try:
        rules = check_rules(RuleFile(variables=variables, items=[*others, spec]))
    except RuleError as exc:
        raise Conflict("the item no longer checks: " + "; ".join(exc.problems)) from exc
    failures = engine.run_cases(rules, items=[key])
    if failures:
        raise Conflict("its test cases fail: " + "; ".join(f"{f.case}: {f.problem}" for f in failures))
    now = clock.now()
    if i.published_version is not None:
        old = repo.version(session, i.id, i.published_version, for_update=True)
        if old is not None:
            old.state = "superseded"
    v.state, v.reviewed_by, v.reviewed_at = "published", principal.username, now
    if note:
        v.note = (v.note + "\n" if v.note else "") + note
    checked = rules.items[key]
    i.published_version, i.status, i.updated_at = number, "published", now
    i.title, i.title_en, i.support, i.document_code = (
        spec.title.zh,
        spec.title.en,
        spec.support,
        spec.document,
    )
    i.tags = derived_tags(checked)
    _audit(session, principal, "item.publish", key, clock, version=number, digest=v.digest)
    events.emit(session, ITEM_PUBLISHED, clock=clock, key=key, version=number)
    return get_item(session, principal, key)


def reject_item_version(
    session: Session, principal: Principal, key: str, number: int, *, clock: Clock, note: str
) -> ItemOut:
    principal.require(REVIEW)
    if not note.strip():
        raise InvalidInput("say why the version is rejected")
    i = _item(session, principal, key, for_update=True)
    v = repo.version(session, i.id, number, for_update=True)
    if v is None:
        raise NotFound(f"{key} has no version {number}")
    if v.state != "review":
        raise Conflict(f"only a version in review is rejected (version {number} is {v.state})")
    v.state, v.reviewed_by, v.reviewed_at = "rejected", principal.username, clock.now()
    v.note = (v.note + "\n" if v.note else "") + note
    _audit(session, principal, "item.reject", key, clock, version=number, note=note)
    return get_item(session, principal, key)


def retire_item(session: Session, principal: Principal, key: str, *, clock: Clock, note: str) -> ItemOut:
    principal.require(REVIEW)
    if not note.strip():
        raise InvalidInput("say why the item is retired")
    i = _item(session, principal, key, for_update=True)
    if i.status != "published":
        raise Conflict(f"only a published item is retired (it is {i.status})")
    i.status, i.updated_at = "retired", clock.now()
    _audit(session, principal, "item.retire", key, clock, note=note)
    return get_item(session, principal, key)


# --- the calculator ------------------------------------------------------------------------------------


def _text(t: Any, lang: str) -> str:
    return str((t.en or t.zh) if lang == "en" else t.zh)


def _proof_text(var: Variable, lang: str) -> tuple[str, str]:
    if var.proof is None:
        return ("", "")
    if var.proof.kind == "applicant":
        return ("the applicant's statement or documents" if lang == "en" else "申请人自行提供", "applicant")
    return (var.proof.name, var.proof.kind)


def _needed(rules: RuleSet, column: str, ref_date: dt.date, lang: str) -> Needed:
    name, _, back = column.partition("__p")
    var = rules.variables[name]
    period = engine.reference_period(var.period, ref_date, int(back or 0)) if var.period else None
    proof, kind = _proof_text(var, lang)
    return Needed(
        column=column,
        variable=name,
        label=_text(var.label, lang),
        period=period,
        proof=proof,
        proof_kind=kind,
        kind=var.kind,
    )


def _source_text(item: CheckedItem, index: int) -> str:
    c = item.spec.conditions[index]
    s = c.source
    quote = f"：“{s.quote}”" if s.quote else ""
    return f"{s.document or item.spec.document} {s.article}{quote}"


def match(session: Session, request: MatchRequest, *, clock: Clock, lang: str = "zh") -> MatchResponse:
    """The policy calculator: every published item for one person, household or enterprise, decided on
    the facts given, each condition explained (met, failed, or unknown with the data that would decide
    it). Nothing missing is ever defaulted."""
    key, rules = current_rules(session)
    ref_date = request.date or today(clock)
    try:
        columns = engine.columns_from_periods(rules, request.entity, request.facts, ref_date)
        matcher = _CACHE.matcher(key, rules, ref_date)
        decisions = matcher.evaluate(request.entity, columns)
    except RuleError as exc:
        raise InvalidInput("; ".join(exc.problems)) from exc
    order = {"eligible": 0, "undetermined": 1, "not_eligible": 2}
    out = []
    for d in decisions:
        if request.show == "possible" and d.result == "not_eligible":
            continue
        item = rules.items[d.item_id]
        conditions = []
        for index, c in enumerate(d.conditions):
            if c.id == "window":
                w = item.spec.window
                text = (
                    f"Within the application window ({w.start or '…'} to {w.end or '…'})"
                    if lang == "en"
                    else f"在申报期内（{w.start or '…'} 至 {w.end or '…'}）"
                )
                conditions.append(ConditionOut(id="window", text=text, outcome="failed", source="", needs=[]))
                continue
            conditions.append(
                ConditionOut(
                    id=c.id,
                    text=_text(item.spec.conditions[index].text, lang),
                    outcome="met" if c.value else ("failed" if c.value is False else "unknown"),
                    source=_source_text(item, index),
                    needs=[_needed(rules, m, ref_date, lang) for m in c.missing],
                )
            )
        out.append(
            MatchOut(
                key=d.item_id,
                version=d.version,
                title=_text(item.spec.title, lang),
                document_code=item.spec.document,
                support=item.spec.support,
                result=d.result,
                amount_fen=d.amount_fen,
                automatic=d.automatic,
                conditions=conditions,
                needs=[_needed(rules, m, ref_date, lang) for m in d.missing],
            )
        )
    out.sort(key=lambda m: (order[m.result], -(m.amount_fen or 0), m.key))
    return MatchResponse(entity=request.entity, date=ref_date, results=out)


def calculator_fields(session: Session, entity: str, *, clock: Clock, lang: str = "zh") -> list[FieldOut]:
    """The facts the published items for ``entity`` read (derived variables expanded to what they read;
    a household's aggregates are asked per member, see :func:`member_fields`), one field per period for a
    variable with periods: the calculator's form."""
    _, rules = current_rules(session)
    columns: set[str] = set()
    for item in rules.items.values():
        if item.spec.entity == entity:
            columns |= _given_columns(rules, entity, item.refs)
    return _fields(rules, columns, today(clock), lang)


def member_fields(session: Session, entity: str, *, clock: Clock, lang: str = "zh") -> list[FieldOut]:
    """The facts of each member a household's aggregates read (none for other entity types)."""
    _, rules = current_rules(session)
    columns: set[str] = set()
    for _, where, of in rules.aggregates(entity):
        for expression in (where, of):
            if expression is not None:
                columns |= _given_columns(rules, "person", expression.refs)
    return _fields(rules, columns, today(clock), lang)


def _given_columns(rules: RuleSet, entity: str, refs: Any) -> set[str]:
    """The given columns behind ``refs``: derived variables expanded, aggregates left out."""
    derived = {v.name: e for v, e in rules.derived(entity)}
    out: set[str] = set()
    for r in refs:
        if r.name in derived:
            out |= _given_columns(rules, entity, derived[r.name].refs)
        elif rules.variables[r.name].given:
            out.add(r.column)
    return out


def _fields(rules: RuleSet, columns: set[str], ref_date: dt.date, lang: str) -> list[FieldOut]:
    fields = []
    for column in sorted(columns, key=lambda c: (list(rules.variables).index(c.split("__p")[0]), c)):
        n = _needed(rules, column, ref_date, lang)
        fields.append(
            FieldOut(
                column=column,
                variable=n.variable,
                label=n.label,
                kind=rules.variables[n.variable].kind,
                period=n.period,
                proof=n.proof,
                proof_kind=n.proof_kind,
            )
        )
    return fields


def facts_from_columns(
    session: Session, entity: str, values: Mapping[str, Any], *, clock: Clock
) -> dict[str, Any]:
    """Facts (``{variable: value}`` or ``{variable: {period: value}}``) from calculator columns."""
    _, rules = current_rules(session)
    ref_date = today(clock)
    facts: dict[str, Any] = {}
    for column, value in values.items():
        name, _, back = column.partition("__p")
        var = rules.variables.get(name)
        if var is None or var.entity != entity:
            raise InvalidInput(f"{column!r} is not a fact of a {entity}")
        if var.period:
            facts.setdefault(name, {})[engine.reference_period(var.period, ref_date, int(back or 0))] = value
        else:
            facts[name] = value
    return facts


# --- the overlap check ---------------------------------------------------------------------------------

_INDEX_LOCK = threading.Lock()
_INDEX: dict[str, overlap.DocumentIndex] = {}


def _library_index(session: Session) -> overlap.DocumentIndex:
    """The MinHash index of every document of the library (drafts included), rebuilt when one changes."""
    rows = repo.all_document_texts(session, ALL_STATUSES)
    key = _digest("".join(f"|{code}:{_digest(title + body)}" for code, title, body in rows))
    with _INDEX_LOCK:
        found = _INDEX.get(key)
    if found is not None:
        return found
    built = overlap.DocumentIndex.build((code, f"{title}\n{body}") for code, title, body in rows)
    with _INDEX_LOCK:
        _INDEX.clear()
        _INDEX[key] = built
    return built


def library_overlaps(session: Session, principal: Principal) -> list[overlap.DocumentPair]:
    """Every near-duplicate or contained pair of documents in the library."""
    principal.require(EDIT)
    return _library_index(session).pairs()


def overlap_report(session: Session, principal: Principal, request: OverlapRequest) -> OverlapReport:
    """The drafter's report before publishing: documents of the library the draft's text duplicates, is
    contained in or contains; published items the draft item overlaps with, and whether a stacking rule
    settles each overlap."""
    principal.require(EDIT)
    index = _library_index(session)
    documents = []
    if request.text.strip():
        for pair in index.check(request.text, key="\x00draft"):
            code = pair.b if pair.a == "\x00draft" else pair.a
            if code == request.code:
                continue
            d = repo.document(session, code)
            if d is None:
                continue
            documents.append(
                DocumentOverlapOut(
                    code=code,
                    title=d.title,
                    status=d.status,
                    kind=pair.kind,
                    jaccard=pair.jaccard,
                    containment=pair.containment,
                    shorter="draft" if pair.shorter == "\x00draft" else "library",
                )
            )
    items: list[ItemOverlapOut] = []
    if request.item.strip():
        try:
            spec = _parse_item(request.item)
            _, published = current_rules(session)
            others = [i.spec for key, i in published.items.items() if key != spec.id]
            rules = check_rules(RuleFile(variables=list(published.variables.values()), items=[*others, spec]))
        except RuleError as exc:
            raise InvalidInput("the item is refused: " + "; ".join(exc.problems)) from exc
        library = [i for key, i in rules.items.items() if key != spec.id]
        items = [
            ItemOverlapOut(a=o.a, b=o.b, shared=list(o.shared), verdict=o.verdict, reason=o.reason)
            for o in overlap.item_overlaps([rules.items[spec.id]], against=library)
        ]
    return OverlapReport(documents=documents, items=items, library_documents=len(index))


# --- snapshots and runs (免申即享, 直达快享) -------------------------------------------------------------

RUN = "policy:run"
APPROVE = "policy:approve"


def _snapshot_out(s: PolicySnapshot) -> SnapshotOut:
    return SnapshotOut(
        id=s.id,
        name=s.name,
        digest=s.digest,
        rows=s.rows,
        source=s.source,
        as_of=s.as_of,
        created_by=s.created_by,
        created_at=s.created_at,
    )


def _new_snapshot_path(data_dir: Path, name: str) -> tuple[Path, str]:
    runs.check_name(name)
    folder = runs.snapshot_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    relative = f"{name}.duckdb"
    # the caller found no snapshot of this name: a file is the orphan of a transaction that failed
    (folder / relative).unlink(missing_ok=True)
    return folder / relative, relative


def synthetic_snapshot(
    session: Session, principal: Principal, data: SyntheticWrite, *, data_dir: Path, clock: Clock
) -> SnapshotOut:
    """A synthetic city as a snapshot (demos, benchmarks, drills)."""
    principal.require(RUN)
    if repo.snapshot_by_name(session, data.name) is not None:
        raise Conflict(f"a snapshot {data.name!r} exists already")
    path, relative = _new_snapshot_path(data_dir, data.name)
    rows = runs.generate_synthetic(
        path, persons=data.persons, enterprises=data.enterprises, as_of=data.as_of, seed=data.seed
    )
    snap = PolicySnapshot(
        name=data.name,
        path=relative,
        digest=runs.file_digest(path),
        rows=rows,
        source=f"synthetic seed={data.seed}",
        as_of=data.as_of,
        created_by=principal.username,
        created_at=clock.now(),
    )
    session.add(snap)
    session.flush()
    _audit(session, principal, "snapshot.create", data.name, clock, rows=rows, digest=snap.digest)
    return _snapshot_out(snap)


def add_snapshot(
    session: Session,
    principal: Principal,
    *,
    name: str,
    source: Path,
    as_of: dt.date,
    data_dir: Path,
    clock: Clock,
) -> SnapshotOut:
    """Register a snapshot the shared-data exchange delivered (a DuckDB file; see :mod:`.runs`): its
    tables and columns are checked against the variables, and it is copied into the platform's store."""
    principal.require(RUN)
    if repo.snapshot_by_name(session, name) is not None:
        raise Conflict(f"a snapshot {name!r} exists already")
    _, rules = current_rules(session)
    try:
        rows = runs.validate_snapshot(source, rules)
    except RuleError as exc:
        raise InvalidInput("the snapshot is refused: " + "; ".join(exc.problems)) from exc
    path, relative = _new_snapshot_path(data_dir, name)
    runs.copy_into(source, path)
    snap = PolicySnapshot(
        name=name,
        path=relative,
        digest=runs.file_digest(path),
        rows=rows,
        source=source.name[:300],
        as_of=as_of,
        created_by=principal.username,
        created_at=clock.now(),
    )
    session.add(snap)
    session.flush()
    _audit(session, principal, "snapshot.add", name, clock, rows=rows, digest=snap.digest)
    return _snapshot_out(snap)


def list_snapshots(session: Session, principal: Principal) -> list[SnapshotOut]:
    principal.require(RUN)
    return [_snapshot_out(s) for s in repo.snapshots(session)]


def _snapshot_file(session: Session, name: str, data_dir: Path) -> tuple[PolicySnapshot, Path]:
    snap = repo.snapshot_by_name(session, name)
    if snap is None:
        raise NotFound(f"no snapshot {name!r}")
    path = runs.snapshot_dir(data_dir) / snap.path
    if not path.exists():
        raise Conflict(f"the file of snapshot {name!r} is missing")
    if runs.cached_digest(path) != snap.digest:
        raise Conflict(f"the file of snapshot {name!r} changed since it was registered; it is not used")
    return snap, path


def _run_out(r: PolicyRun) -> RunOut:
    return RunOut(
        id=r.id,
        entity=r.entity,
        ref_date=r.ref_date,
        status=r.status,
        rules=r.rules,
        snapshot=r.snapshot,
        checksum=r.checksum,
        summary=r.summary,
        note=r.note,
        created_by=r.created_by,
        created_at=r.created_at,
        decided_by=r.decided_by,
        decided_at=r.decided_at,
    )


def _pools_and_groups(
    rules: RuleSet, keys: Sequence[str]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Every item of the rule set in each budget pool and stacking group of ``keys``."""
    pools: dict[str, list[str]] = {}
    groups: dict[str, list[str]] = {}
    wanted_pools = {b.pool for k in keys if (b := rules.items[k].spec.budget) is not None}
    wanted_groups = {s.group for k in keys if (s := rules.items[k].spec.stacking) is not None}
    for key, item in rules.items.items():
        if item.spec.budget and item.spec.budget.pool in wanted_pools:
            pools.setdefault(item.spec.budget.pool, []).append(key)
        if item.spec.stacking and item.spec.stacking.group in wanted_groups:
            groups.setdefault(item.spec.stacking.group, []).append(key)
    return pools, groups


def _remaining(session: Session, rules: RuleSet, pools: Mapping[str, list[str]]) -> dict[str, int]:
    out = {}
    for pool, keys in pools.items():
        total = min(rules.items[k].spec.budget.total_fen for k in keys if rules.items[k].spec.budget)  # type: ignore[union-attr]
        out[pool] = max(0, total - repo.granted_fen(session, keys))
    return out


def _prior_groups(session: Session, rules: RuleSet, groups: Mapping[str, list[str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for group, keys in groups.items():
        out.extend((subject, group) for subject, _ in repo.granted_subjects(session, keys))
    return sorted(set(out))


_GRANT_COLUMNS = (
    "id",
    "item_id",
    "version",
    "result",
    "amount_fen",
    "marks",
    "automatic",
    "status",
    "region_code",
    "industry_code",
)


def compute_run(
    session: Session, principal: Principal, data: RunWrite, *, data_dir: Path, clock: Clock
) -> RunOut:
    """Evaluate the published items of one entity type over a snapshot (see :mod:`.runs`); the grants are
    proposed, waiting for another officer's approval."""
    principal.require(RUN)
    snap, path = _snapshot_file(session, data.snapshot, data_dir)
    if data.entity not in snap.rows:
        raise InvalidInput(f"snapshot {snap.name!r} has no {data.entity} table")
    variables = _variables_row(session)
    _, rules = current_rules(session)
    available = [k for k, i in rules.items.items() if i.spec.entity == data.entity]
    keys = list(data.items) if data.items is not None else available
    if len(set(keys)) != len(keys):
        raise InvalidInput("an item is named twice")
    unknown = sorted(set(keys) - set(available))
    if unknown:
        raise InvalidInput(f"not published items for a {data.entity}: {', '.join(unknown)}")
    if not keys:
        raise InvalidInput(f"no published item for a {data.entity}")
    ref_date = data.date or today(clock)
    # what is read from here on is the state as of `started`: a run approved after it makes this one stale
    started = clock.now()
    pools, groups = _pools_and_groups(rules, keys)
    remaining = _remaining(session, rules, pools)
    prior = _prior_groups(session, rules, groups)
    con, checksum, summary = runs.run_batch(
        path, rules, data.entity, ref_date, items=keys, remaining=remaining, prior_groups=prior
    )
    digests = dict(repo.published_digests(session))
    run = PolicyRun(
        entity=data.entity,
        ref_date=ref_date,
        status="computed",
        rules={
            "variables": {"version": variables.version, "digest": variables.digest},
            "items": [{"key": k, "version": rules.items[k].spec.version, "digest": digests[k]} for k in keys],
            "budget_left_fen": remaining,
            "prior_groups": {"count": len(prior), "digest": _digest(repr(prior))},
        },
        snapshot_id=snap.id,
        snapshot={
            "name": snap.name,
            "digest": snap.digest,
            "rows": snap.rows,
            "as_of": snap.as_of.isoformat(),
        },
        checksum=checksum,
        summary=summary,
        note=data.note,
        created_by=principal.username,
        created_at=started,
    )
    session.add(run)
    session.flush()
    try:
        runs.keep_prior(con, runs.prior_path(data_dir, run.id))
        cursor = con.execute(f"SELECT {', '.join(_GRANT_COLUMNS)} FROM decided ORDER BY id, item_id")  # noqa: S608
        while batch := cursor.fetchmany(5000):
            session.execute(
                insert(PolicyGrant),
                [
                    {
                        "run_id": run.id,
                        "subject_id": row[0],
                        "item_key": row[1],
                        "version": row[2],
                        "result": row[3],
                        "amount_fen": row[4],
                        "marks": row[5],
                        "automatic": bool(row[6]),
                        "status": row[7],
                        "region_code": (row[8] or "")[:12],
                        "industry_code": (row[9] or "")[:10],
                    }
                    for row in batch
                ],
            )
    finally:
        con.close()
    _audit(session, principal, "run.compute", str(run.id), clock, checksum=checksum, items=keys)
    return _run_out(run)


def get_run(session: Session, principal: Principal, run_id: int) -> RunOut:
    if not principal.can(APPROVE):
        principal.require(RUN)
    r = repo.run(session, run_id)
    if r is None:
        raise NotFound(f"no run {run_id}")
    return _run_out(r)


def list_runs(session: Session, principal: Principal) -> list[RunOut]:
    if not principal.can(APPROVE):
        principal.require(RUN)
    return [_run_out(r) for r in repo.runs(session)]


def decide_run(
    session: Session, principal: Principal, run_id: int, decision: RunDecision, *, clock: Clock
) -> RunOut:
    """Approve (grants made, notices due) or reject a computed run; never by the officer who computed it.
    An approval is refused when the state the run read no longer holds — another run approved since it
    was computed, an item of it changed, retired or repealed, or grants made since (fast applications,
    upheld appeals) that its budgets or stacking did not see: compute it again."""
    principal.require(APPROVE)
    r = repo.run(session, run_id, for_update=True)
    if r is None:
        raise NotFound(f"no run {run_id}")
    if r.status != "computed":
        raise Conflict(f"run {run_id} was {r.status} already")
    principal.require_other_than(r.created_by)
    if not decision.approve and not decision.note.strip():
        raise InvalidInput("say why the run is rejected")
    now = clock.now()
    if decision.approve:
        repo.lock_grants(session)  # approvals, appeals and applications that grant go one at a time
        later = repo.approved_after(session, r.created_at)
        if later:
            raise Conflict(
                f"run {later[0].id} was approved after this one was computed; compute this run again"
            )
        published = repo.published_version_numbers(session)
        stale = [e["key"] for e in r.rules["items"] if published.get(e["key"]) != int(e["version"])]
        if stale:
            raise Conflict(
                f"{', '.join(stale)} changed, retired or repealed since the run was computed; "
                "compute it again"
            )
        _check_run_still_fits(session, r)
        repo.set_status_on_approval(session, r.id, now)
    r.status = "approved" if decision.approve else "rejected"
    r.decided_by, r.decided_at = principal.username, now
    if decision.note:
        r.note = (r.note + "\n" if r.note else "") + decision.note
    _audit(session, principal, f"run.{r.status}", str(r.id), clock, note=decision.note)
    return _run_out(r)


def _check_run_still_fits(session: Session, r: PolicyRun) -> None:
    """Refuse an approval that would overspend a pool, or stack a group, because of grants made since the
    run was computed."""
    keys = [e["key"] for e in r.rules["items"]]
    _, rules = current_rules(session)
    pools, groups = _pools_and_groups(rules, keys)
    left = _remaining(session, rules, pools)
    for pool, pool_keys in pools.items():
        if repo.proposed_fen(session, r.id, pool_keys) > left[pool]:
            raise Conflict(f"budget pool {pool} no longer covers this run; compute it again")
    for group, group_keys in groups.items():
        if repo.granted_in_group_since(session, r.id, group_keys):
            raise Conflict(f"benefits of stacking group {group} were granted since; compute the run again")


def _check_grantable(session: Session, g: PolicyGrant, amount: int) -> None:
    """One grant (a fast application, an upheld appeal) within its budget pool and stacking group."""
    _, rules = current_rules(session)
    item = rules.items.get(g.item_key)
    if item is None:
        raise Conflict(f"{g.item_key} is no longer published")
    pools, groups = _pools_and_groups(rules, [g.item_key])
    if item.spec.budget is not None:
        pool = item.spec.budget.pool
        if amount > _remaining(session, rules, {pool: pools[pool]})[pool]:
            raise Conflict("the budget of this benefit is used up")
    if item.spec.stacking is not None:
        others = [k for k in groups[item.spec.stacking.group] if k != g.item_key]
        if any(s == g.subject_id for s, _ in repo.granted_subjects(session, others)):
            raise Conflict("a benefit of the same stacking group was granted already")


def _rules_of_run(session: Session, r: PolicyRun) -> RuleSet:
    """The rule set exactly as the run read it (its variables version and item versions)."""
    key = "run:" + _digest(repr(r.rules["variables"]) + repr(r.rules["items"]))

    def build() -> RuleSet:
        variables = repo.variable_set(session, int(r.rules["variables"]["version"]))
        if variables is None:
            raise Conflict("the variables the run read are gone")
        items = []
        for entry in r.rules["items"]:
            source = repo.item_version_source(session, entry["key"], int(entry["version"]))
            if source is None or _digest(source) != entry["digest"]:
                raise Conflict(f"item {entry['key']} version {entry['version']} is not as the run read it")
            items.append(_parse_item(source))
        return check_rules(RuleFile(variables=_parse_variables(variables.source), items=items))

    return _CACHE.rules(key, build)


def verify_run(session: Session, principal: Principal, run_id: int, *, data_dir: Path) -> dict[str, Any]:
    """Reproduce a run: the same rule versions (by digest) over the same snapshot (by digest), with the
    budgets it read and the stacking state it kept (its digest checked); the checksums must match."""
    if not principal.can(APPROVE):
        principal.require(RUN)
    r = repo.run(session, run_id)
    if r is None:
        raise NotFound(f"no run {run_id}")
    snap, path = _snapshot_file(session, r.snapshot["name"], data_dir)
    if snap.digest != r.snapshot["digest"]:
        raise Conflict("the snapshot is not the one the run read")
    kept = runs.prior_path(data_dir, r.id)
    if not kept.exists():
        raise Conflict("the stacking state the run read is not kept any more")
    prior = runs.read_prior(kept)
    if _digest(repr(prior)) != r.rules["prior_groups"]["digest"]:
        raise Conflict("the stacking state kept with the run was changed")
    rules = _rules_of_run(session, r)
    con, checksum, _ = runs.run_batch(
        path,
        rules,
        r.entity,
        r.ref_date,
        items=[e["key"] for e in r.rules["items"]],
        remaining={k: int(v) for k, v in r.rules["budget_left_fen"].items()},
        prior_groups=prior,
    )
    con.close()
    return {"run": r.id, "checksum": r.checksum, "recomputed": checksum, "reproduced": checksum == r.checksum}


def _grant_out(
    session: Session,
    g: PolicyGrant,
    rules: RuleSet,
    appeal: PolicyAppeal | None,
    lang: str,
    ref_date: dt.date,
    application: PolicyApplication | None = None,
    known: Mapping[str, Any] | None = None,
) -> GrantOut:
    item = rules.items[g.item_key]
    conditions = []
    needs_all: dict[str, Needed] = {}
    explained = runs.explain_marks(rules, item, g.marks)
    for index, (cid, outcome, columns) in enumerate(explained):
        if cid == "window":
            conditions.append(ConditionOut(id="window", text="window", outcome="failed", source="", needs=[]))
            continue
        needs = [_needed(rules, c, ref_date, lang) for c in columns]
        for n in needs:
            needs_all[n.column] = n
        conditions.append(
            ConditionOut(
                id=cid,
                text=_text(item.spec.conditions[index].text, lang),
                outcome=outcome,
                source=_source_text(item, index),
                needs=needs,
            )
        )
    return GrantOut(
        id=g.id,
        run_id=g.run_id,
        subject_id=g.subject_id,
        item_key=g.item_key,
        version=g.version,
        title=_text(item.spec.title, lang),
        document_code=item.spec.document,
        result=g.result,
        amount_fen=g.amount_fen,
        automatic=g.automatic,
        status=g.status,
        conditions=conditions,
        needs=sorted(needs_all.values(), key=lambda n: n.column),
        appeal=appeal.status if appeal else None,
        asks=[
            _needed(rules, c, ref_date, lang)
            for c in sorted(_application_columns(rules, item, g.marks, known))
        ]
        if g.status == "noticed"
        else [],
        application=application.status if application else None,
    )


def run_grants(
    session: Session,
    principal: Principal,
    run_id: int,
    *,
    status: str = "",
    page: int = 1,
    per_page: int = 50,
    lang: str = "zh",
) -> GrantPage:
    if not principal.can(APPROVE):
        principal.require(RUN)
    r = repo.run(session, run_id)
    if r is None:
        raise NotFound(f"no run {run_id}")
    rules = _rules_of_run(session, r)
    total, rows = repo.grants_of_run(session, run_id, status=status, page=page, per_page=per_page)
    appeals = repo.appeals_of_grants(session, [g.id for g in rows])
    return GrantPage(
        total=total,
        page=page,
        per_page=per_page,
        grants=[_grant_out(session, g, rules, appeals.get(g.id), lang, r.ref_date) for g in rows],
    )


def my_grants(
    session: Session, principal: Principal, *, lang: str = "zh", data_dir: Path | None = None
) -> list[GrantOut]:
    """The benefits approved runs granted (or noticed) to the person or enterprises the signed-in account
    acts for, by their verified identity, each with its explanation."""
    rows = repo.grants_of_subjects(session, sorted(_my_subjects(session, principal, data_dir)))
    appeals = repo.appeals_of_grants(session, [g.id for g in rows])
    applications = repo.applications_of_grants(session, [g.id for g in rows])
    out = []
    for g in rows:
        r = repo.run(session, g.run_id)
        if r is None:
            continue
        rules = _rules_of_run(session, r)
        known = None
        if g.status == "noticed" and data_dir is not None:  # ask only for what the shared data lack
            with contextlib.suppress(NotFound, Conflict):
                _, path = _snapshot_file(session, r.snapshot["name"], data_dir)
                known = runs.subject_columns(
                    path, r.entity, g.subject_id, with_members=bool(rules.aggregates(r.entity))
                )
        out.append(
            _grant_out(session, g, rules, appeals.get(g.id), lang, r.ref_date, applications.get(g.id), known)
        )
    return out


def _my_subjects(session: Session, principal: Principal, data_dir: Path | None) -> set[str]:
    """The subjects the signed-in account may see the benefits of: its verified person and enterprises,
    and (with ``data_dir``) the households its person belongs to in the snapshots of approved runs."""
    if principal.account_id is None:
        raise Unauthenticated("sign in to see your benefits")
    verified = intake.verified_subjects(session, principal.account_id)
    subjects = {digest for _, digest in verified}
    persons = [digest for kind, digest in verified if kind == "person"]
    if persons and data_dir is not None:
        for name in repo.snapshots_of_approved_runs(session, "household"):
            with contextlib.suppress(NotFound, Conflict):  # a snapshot gone: its households are not found
                _, path = _snapshot_file(session, name, data_dir)
                subjects |= runs.households_of(path, persons)
    return subjects


def _own_grant(
    session: Session, principal: Principal, grant_id: int, data_dir: Path | None = None
) -> tuple[PolicyGrant, PolicyRun]:
    g = repo.grant(session, grant_id, for_update=True)
    r = repo.run(session, g.run_id) if g is not None else None
    subjects = _my_subjects(session, principal, data_dir)
    if g is None or r is None or r.status != "approved" or g.subject_id not in subjects:
        raise NotFound(f"no benefit {grant_id} of yours")
    return g, r


def _appeal_out(a: PolicyAppeal, g: PolicyGrant) -> AppealOut:
    return AppealOut(
        id=a.id,
        grant_id=a.grant_id,
        item_key=g.item_key,
        subject_id=g.subject_id,
        reason=a.reason,
        status=a.status,
        decision=a.decision,
        decided_by=a.decided_by,
        created_at=a.created_at,
        decided_at=a.decided_at,
    )


def file_appeal(
    session: Session,
    principal: Principal,
    grant_id: int,
    data: AppealWrite,
    *,
    clock: Clock,
    data_dir: Path | None = None,
) -> AppealOut:
    """A person's or enterprise's objection to an automated decision (PIPL art. 24): an officer reviews
    the data and the rules and decides. One open appeal per decision, and none while a fast application
    of it waits (its decision is what to appeal then)."""
    g, _ = _own_grant(session, principal, grant_id, data_dir)
    if g.status == "applied":
        raise Conflict("your fast application of this benefit waits for its decision; appeal that decision")
    if repo.open_appeal(session, g.id):
        raise Conflict("an appeal of this decision is open already")
    a = PolicyAppeal(
        grant_id=g.id,
        account_id=principal.account_id,
        reason=data.reason,
        status="open",
        created_at=clock.now(),
    )
    session.add(a)
    session.flush()
    _audit(session, principal, "appeal.file", str(a.id), clock, grant=g.id)
    return _appeal_out(a, g)


def list_appeals(session: Session, principal: Principal, *, status: str = "") -> list[AppealOut]:
    principal.require(APPROVE)
    out = []
    for a in repo.appeals(session, status=status):
        g = repo.grant(session, a.grant_id)
        if g is not None:
            out.append(_appeal_out(a, g))
    return out


def decide_appeal(
    session: Session, principal: Principal, appeal_id: int, data: AppealDecision, *, clock: Clock
) -> AppealOut:
    """Uphold (the benefit is granted, at the amount the officer finds due, within its budget pool and
    stacking group) or dismiss an appeal, with the reasons; audited and shown to the appellant."""
    principal.require(APPROVE)
    a = repo.appeal(session, appeal_id, for_update=True)
    if a is None:
        raise NotFound(f"no appeal {appeal_id}")
    if a.status != "open":
        raise Conflict(f"appeal {appeal_id} was decided already")
    if a.account_id is not None and a.account_id == principal.account_id:
        raise Forbidden("an officer does not decide their own appeal")
    g = repo.grant(session, a.grant_id, for_update=True)
    if g is None:
        raise NotFound("the decision appealed is gone")
    if g.status == "applied":
        raise Conflict("a fast application of this benefit waits for its decision; decide it first")
    now = clock.now()
    if data.uphold:
        amount = data.amount_fen if data.amount_fen is not None else g.amount_fen
        if amount is None:
            raise InvalidInput("give the amount due (the rules computed none for this decision)")
        repo.lock_grants(session)
        _check_grantable(session, g, amount - (g.amount_fen or 0) if g.status == "granted" else amount)
        g.status, g.amount_fen, g.decided_at = "granted", amount, now
    a.status = "upheld" if data.uphold else "dismissed"
    a.decision, a.decided_by, a.decided_at = data.decision, principal.username, now
    _audit(session, principal, f"appeal.{a.status}", str(a.id), clock, grant=g.id, amount_fen=g.amount_fen)
    return _appeal_out(a, g)


# --- simulation (推演) -----------------------------------------------------------------------------------


def simulate(
    session: Session, principal: Principal, data: SimulationWrite, *, data_dir: Path, clock: Clock
) -> SimulationOut:
    """A draft item (or a changed published one) over a snapshot, before publishing: who qualifies, the
    cost and its breakdown by district and industry, beside the published version and against the
    budget pool. Nothing is stored."""
    if not principal.can(RUN):
        principal.require(EDIT)
    snap, path = _snapshot_file(session, data.snapshot, data_dir)
    try:
        spec = _parse_item(data.source)
        _, published = current_rules(session)
        draft_id = spec.id if spec.id not in published.items else f"{spec.id}__draft"
        draft = spec.model_copy(update={"id": draft_id})
        others = [i.spec for i in published.items.values()]
        rules = check_rules(RuleFile(variables=list(published.variables.values()), items=[*others, draft]))
    except RuleError as exc:
        raise InvalidInput("the item is refused: " + "; ".join(exc.problems)) from exc
    if spec.entity not in snap.rows:
        raise InvalidInput(f"snapshot {snap.name!r} has no {spec.entity} table")
    ref_date = data.date or today(clock)
    keys = [draft_id] + ([spec.id] if spec.id in published.items else [])
    con, _, summary = runs.run_batch(
        path, rules, spec.entity, ref_date, items=keys, remaining={}, prior_groups=(), stacking=False
    )
    con.close()

    def side(key: str) -> SimulationSide:
        s = summary["items"].get(key, {})
        return SimulationSide(
            eligible=int(s.get("eligible", 0)),
            undetermined=int(s.get("undetermined", 0)),
            cost_fen=sum(int(row[2]) for row in summary["districts"].get(key, [])),
            districts=summary["districts"].get(key, []),
            industries=summary["industries"].get(key, []),
        )

    draft_side = side(draft_id)
    pool = spec.budget.pool if spec.budget else None
    left = None
    if spec.budget is not None:
        pools, _ = _pools_and_groups(rules, [draft_id])
        left = max(
            0,
            spec.budget.total_fen
            - repo.granted_fen(session, [k for k in pools.get(pool or "", []) if k != draft_id]),
        )
    return SimulationOut(
        item=spec.id,
        snapshot=snap.name,
        date=ref_date,
        draft=draft_side,
        published=side(spec.id) if spec.id in published.items else None,
        budget_pool=pool,
        budget_total_fen=spec.budget.total_fen if spec.budget else None,
        budget_left_fen=left,
        budget_share=round(draft_side.cost_fen / left, 4) if left else None,
    )


# --- subscriptions and push ------------------------------------------------------------------------------


def _subscription_out(s: PolicySubscription, sealer: Sealer) -> SubscriptionOut:
    contact = ""
    if s.contact_sealed:
        raw = sealer.open(s.contact_sealed, f"policy_subscription:{s.id}:contact")
        contact = intake.mask("email" if s.channel == "email" else "mobile", raw)
    return SubscriptionOut(
        id=s.id,
        entity=s.entity,
        tags=s.tags,
        has_facts=bool(s.facts_sealed),
        channel=s.channel,
        contact=contact,
        active=s.active,
        created_at=s.created_at,
    )


def subscribe(
    session: Session, principal: Principal, data: SubscriptionWrite, *, sealer: Sealer, clock: Clock
) -> SubscriptionOut:
    """Subscribe the signed-in person (or an enterprise's representative) to new and amended items."""
    if principal.account_id is None:
        raise Unauthenticated("sign in to subscribe")
    if data.facts:
        _, rules = current_rules(session)
        try:  # the facts must be ones the calculator takes
            engine.columns_from_periods(rules, data.entity, data.facts, today(clock))
        except RuleError as exc:
            raise InvalidInput("; ".join(exc.problems)) from exc
    s = PolicySubscription(
        account_id=principal.account_id,
        entity=data.entity,
        tags={k: sorted(set(v)) for k, v in data.tags.items() if v},
        facts_sealed="",
        channel=data.channel,
        contact_sealed="",
        active=True,
        created_at=clock.now(),
    )
    session.add(s)
    session.flush()
    if data.facts:
        s.facts_sealed = sealer.seal(
            json.dumps(data.facts, ensure_ascii=False), f"policy_subscription:{s.id}:facts"
        )
    if data.contact:
        s.contact_sealed = sealer.seal(data.contact, f"policy_subscription:{s.id}:contact")
    _audit(session, principal, "subscription.create", str(s.id), clock, tags=s.tags, channel=s.channel)
    return _subscription_out(s, sealer)


def my_subscriptions(session: Session, principal: Principal, *, sealer: Sealer) -> list[SubscriptionOut]:
    if principal.account_id is None:
        raise Unauthenticated("sign in to see your subscriptions")
    return [_subscription_out(s, sealer) for s in repo.subscriptions_of(session, principal.account_id)]


def cancel_subscription(
    session: Session, principal: Principal, subscription_id: int, *, sealer: Sealer, clock: Clock
) -> SubscriptionOut:
    """End a subscription; the facts and contact it kept are erased."""
    s = repo.subscription(session, subscription_id)
    if s is None or s.account_id != principal.account_id:
        raise NotFound(f"no subscription {subscription_id} of yours")
    s.active, s.facts_sealed, s.contact_sealed = False, "", ""
    _audit(session, principal, "subscription.cancel", str(s.id), clock)
    return _subscription_out(s, sealer)


def _prefix_codes(codes: Sequence[str]) -> list[str]:
    out = []
    for c in codes:
        while len(c) > 2 and c.endswith("00") and c[:1].isdigit():
            c = c[:-2]
        out.append(c)
    return out


def tags_match(wanted: Mapping[str, Sequence[str]], tags: Mapping[str, Sequence[str]]) -> list[str]:
    """The matched tags (``topic: 养老``) when every key the subscriber gave matches, else []. An item with
    no region (or industry) applies everywhere; codes match when one is inside the other."""
    matched = []
    for key, values in wanted.items():
        if not values:
            continue
        have = list(tags.get(key, []))
        if key in ("region", "industry"):
            if not have:
                matched.append(f"{key}: *")
                continue
            a, b = _prefix_codes(values), _prefix_codes(have)
            hits = sorted({x for x in a for y in b if x.startswith(y) or y.startswith(x)})
        else:
            hits = sorted(set(values) & set(have))
        if not hits:
            return []
        matched.append(f"{key}: {', '.join(hits)}")
    return matched or ["*"]


def push_new_items(session: Session, *, sealer: Sealer, clock: Clock) -> int:
    """Tell subscribers of each item version published since the last push — once per subscription and
    version, with the reason; by inbox, and by email or SMS through the outbox. Returns pushes made.
    Idempotent: a version is marked pushed when done, and a push is never repeated."""
    versions = repo.unpushed_versions(session)
    if not versions:
        return 0
    _, rules = current_rules(session)
    ref_date = today(clock)
    made = 0
    for item, version in versions:
        checked = rules.items.get(item.key)
        if checked is None or item.published_version != version.version:
            version.pushed_at = clock.now()  # superseded or retired before it was pushed
            continue
        kind = "amended" if version.version > 1 else "new"
        after = 0
        while batch := repo.active_subscriptions(session, item.entity, after_id=after):
            after = batch[-1].id
            for s in batch:
                made += _push_one(session, s, item, version, checked, kind, rules, ref_date, sealer, clock)
        version.pushed_at = clock.now()
    return made


def _push_one(
    session: Session,
    s: PolicySubscription,
    item: PolicyItem,
    version: PolicyItemVersion,
    checked: CheckedItem,
    kind: str,
    rules: RuleSet,
    ref_date: dt.date,
    sealer: Sealer,
    clock: Clock,
) -> int:
    if version.reviewed_at is not None and s.created_at > version.reviewed_at:
        return 0  # published before the subscription
    matched = tags_match(s.tags, item.tags or {})
    if not matched or repo.pushed(session, s.id, item.key, version.version):
        return 0
    result = ""
    reason = "与您订阅的标签相符：" + "；".join(matched)
    if s.facts_sealed:
        facts = json.loads(sealer.open(s.facts_sealed, f"policy_subscription:{s.id}:facts"))
        try:
            columns = engine.columns_from_periods(rules, s.entity, facts, ref_date)
            decision = _CACHE.matcher(current_rules(session)[0], rules, ref_date).evaluate(
                s.entity, columns, items=[item.key]
            )[0]
        except RuleError:
            decision = None  # the facts no longer fit the variables: push on tags, say so
            reason += "；您保存的情况已不适用，请更新"
        if decision is not None:
            if decision.result == "not_eligible":
                return 0
            result = decision.result
            if decision.result == "eligible":
                reason += "；按您提供的情况符合条件"
            else:
                missing = "、".join(_needed(rules, m, ref_date, "zh").label for m in decision.missing)
                reason += f"；按您提供的情况尚需：{missing}"
    title = checked.spec.title.zh
    what = "新政策" if kind == "new" else "政策调整"
    text = f"【政策推送】{what}：{title}（{checked.spec.document}）。{reason}。"
    message_id = ""
    if s.channel in ("email", "sms") and s.contact_sealed:
        contact = sealer.open(s.contact_sealed, f"policy_subscription:{s.id}:contact")
        message_id = intake.queue_message(
            session,
            channel=s.channel,
            to=contact,
            event="policy.push",
            text=text,
            subject=f"政策推送：{title}",
            sealer=sealer,
            clock=clock,
        )
    session.add(
        PolicyPush(
            subscription_id=s.id,
            account_id=s.account_id,
            item_key=item.key,
            version=version.version,
            kind=kind,
            result=result,
            reason=reason,
            message_id=message_id,
            created_at=clock.now(),
        )
    )
    session.flush()
    return 1


def my_pushes(session: Session, principal: Principal) -> list[PushOut]:
    """The signed-in account's policy inbox, newest first."""
    if principal.account_id is None:
        raise Unauthenticated("sign in to see your policy inbox")
    titles = {i.key: i.title for i in repo.items(session, statuses=("published", "retired"))}
    return [
        PushOut(
            id=p.id,
            subscription_id=p.subscription_id,
            item_key=p.item_key,
            version=p.version,
            title=titles.get(p.item_key, p.item_key),
            kind=p.kind,
            result=p.result,
            reason=p.reason,
            created_at=p.created_at,
            read_at=p.read_at,
        )
        for p in repo.pushes_of(session, principal.account_id)
    ]


def mark_push_read(session: Session, principal: Principal, push_id: int, *, clock: Clock) -> None:
    p = repo.push(session, push_id)
    if p is None or p.account_id != principal.account_id:
        raise NotFound(f"no message {push_id} of yours")
    if p.read_at is None:
        p.read_at = clock.now()


# --- the drafting aid ------------------------------------------------------------------------------------


def draft_aid(
    session: Session, principal: Principal, data: DraftWrite, *, model: ChatModel | None
) -> DraftOut:
    """Candidates from the text (always) and, with a language model configured, a checked proposal of the
    item's rules for a person to review (see :mod:`.drafting`)."""
    principal.require(EDIT)
    candidates = [
        CandidateOut(kind=c.kind, value=c.value, start=c.start, end=c.end, quote=c.quote)
        for c in drafting.extract(data.text)
    ]
    if model is None:
        return DraftOut(mode="rules", candidates=candidates, proposal=None)
    _, rules = current_rules(session)
    p = drafting.propose(data.text, model=model, rules=rules, entity=data.entity)
    return DraftOut(
        mode="llm",
        candidates=candidates,
        proposal=ProposalOut(
            source=p.source,
            ok=p.ok,
            problems=p.problems,
            unsupported_numbers=p.unsupported_numbers,
            unquoted=p.unquoted,
        ),
    )


# --- fast applications (直达快享) ------------------------------------------------------------------------


def _application_columns(
    rules: RuleSet, item: CheckedItem, marks: str, known: Mapping[str, Any] | None = None
) -> set[str]:
    """What a fast application may supply: the given facts an undetermined condition reads that the
    shared data lack (``known``: the snapshot's facts; a value held there is never replaced), and the facts
    of the item only the applicant can prove. Aggregates over members are not asked."""
    allowed = set()
    for _, outcome, columns in runs.explain_marks(rules, item, marks):
        if outcome != "unknown":
            continue
        for c in columns:
            var = rules.variables.get(c.split("__p")[0])
            if var is not None and var.given and (known is None or known.get(c) is None):
                allowed.add(c)
    for ref in item.refs:
        var = rules.variables.get(ref.name)
        if var is not None and var.given and var.proof is not None and var.proof.kind == "applicant":
            allowed.add(ref.column)
    return allowed


def _application_out(
    a: PolicyApplication, g: PolicyGrant, facts: dict[str, Any] | None = None
) -> ApplicationOut:
    return ApplicationOut(
        id=a.id,
        grant_id=g.id,
        item_key=g.item_key,
        subject_id=g.subject_id,
        amount_fen=a.amount_fen,
        status=a.status,
        decision=a.decision,
        decided_by=a.decided_by,
        created_at=a.created_at,
        decided_at=a.decided_at,
        facts=facts,
    )


def apply_fast(
    session: Session,
    principal: Principal,
    grant_id: int,
    data: FastApplicationWrite,
    *,
    sealer: Sealer,
    data_dir: Path,
    clock: Clock,
) -> ApplicationOut:
    """直达快享: for a noticed benefit, the person supplies only what the shared data lacked; the rules
    decide again on the snapshot's facts and these. Eligible: the application waits for an officer to
    verify the supplied facts. Otherwise it is refused at once with the conditions that still fail or lack
    data."""
    g, r = _own_grant(session, principal, grant_id, data_dir)
    if g.status != "noticed":
        raise Conflict("only a benefit noticed for a fast application is applied for")
    if repo.open_appeal(session, g.id):
        raise Conflict("your appeal of this benefit waits for its decision")
    rules = _rules_of_run(session, r)
    item = rules.items[g.item_key]
    _, path = _snapshot_file(session, r.snapshot["name"], data_dir)
    known = runs.subject_columns(path, r.entity, g.subject_id, with_members=bool(rules.aggregates(r.entity)))
    if known is None:
        raise Conflict("the snapshot no longer holds your data; ask the department")
    allowed = _application_columns(rules, item, g.marks, known)
    extra = sorted(set(data.facts) - allowed)
    if extra:
        asked = ", ".join(sorted(allowed)) or "nothing"
        raise InvalidInput(f"these facts are not asked for: {', '.join(extra)}; asked: {asked}")
    merged = {**known, **data.facts}
    try:
        decision = _CACHE.matcher("run:" + str(r.id), rules, r.ref_date).evaluate(
            r.entity, merged, items=[g.item_key]
        )[0]
    except RuleError as exc:
        raise InvalidInput("; ".join(exc.problems)) from exc
    if decision.result != "eligible":
        failed = [c.id for c in decision.conditions if c.value is False]
        missing = list(decision.missing)
        detail = f"the benefit is still {decision.result.replace('_', ' ')}"
        if failed:
            detail += f"; conditions not met: {', '.join(failed)}"
        if missing:
            detail += f"; still needed: {', '.join(missing)}"
        raise InvalidInput(detail)
    a = PolicyApplication(
        grant_id=g.id,
        account_id=principal.account_id,
        facts_sealed="",
        amount_fen=decision.amount_fen,
        status="submitted",
        created_at=clock.now(),
    )
    session.add(a)
    session.flush()
    a.facts_sealed = sealer.seal(
        json.dumps(data.facts, ensure_ascii=False, default=str), f"policy_application:{a.id}"
    )
    g.status = "applied"
    _audit(session, principal, "application.submit", str(a.id), clock, grant=g.id, amount_fen=a.amount_fen)
    return _application_out(a, g)


def list_applications(
    session: Session, principal: Principal, *, status: str = "", sealer: Sealer, clock: Clock
) -> list[ApplicationOut]:
    """Fast applications to verify, with the facts supplied (the reading is audited)."""
    principal.require(APPROVE)
    out = []
    for a in repo.applications(session, status=status):
        g = repo.grant(session, a.grant_id)
        if g is None:
            continue
        facts = (
            json.loads(sealer.open(a.facts_sealed, f"policy_application:{a.id}")) if a.facts_sealed else {}
        )
        out.append(_application_out(a, g, facts))
    if out:
        _audit(session, principal, "application.read", ",".join(str(a.id) for a in out)[:200], clock)
    return out


def decide_application(
    session: Session, principal: Principal, application_id: int, data: ApplicationDecision, *, clock: Clock
) -> ApplicationOut:
    """Grant (the supplied facts verified; the item's budget pool and stacking group still allow it) or
    refuse (with reasons) a fast application; not by its applicant."""
    principal.require(APPROVE)
    a = repo.application(session, application_id, for_update=True)
    if a is None:
        raise NotFound(f"no application {application_id}")
    if a.status != "submitted":
        raise Conflict(f"application {application_id} was decided already")
    if a.account_id is not None and a.account_id == principal.account_id:
        raise Forbidden("an officer does not decide their own application")
    g = repo.grant(session, a.grant_id, for_update=True)
    if g is None:
        raise NotFound("the benefit applied for is gone")
    if g.status != "applied":
        raise Conflict("the benefit is no longer waiting for this application")
    if not data.approve and not data.decision:
        raise InvalidInput("say why the application is refused")
    now = clock.now()
    if data.approve:
        repo.lock_grants(session)
        _check_grantable(session, g, a.amount_fen or 0)
        g.status, g.amount_fen, g.decided_at = "granted", a.amount_fen, now
        a.status = "approved"
    else:
        g.status = "noticed"
        a.status = "refused"
    a.decision, a.decided_by, a.decided_at = data.decision, principal.username, now
    _audit(
        session, principal, f"application.{a.status}", str(a.id), clock, grant=g.id, amount_fen=g.amount_fen
    )
    return _application_out(a, g)
