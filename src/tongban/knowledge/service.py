"""The knowledge hub's public functions. Each takes the session first and never commits.

Life of an entry: an editor creates or edits it (a new *draft* version each save), submits it, and a
reviewer other than the author publishes it (four eyes). Publishing swaps the active version in one
transaction: the entry's columns, its passages, its facts and one ``knowledge_change`` row move together,
so a node's index sees either the old version or the new one, never a mix. Expired and withdrawn entries
lose their passages and leave the index. Service items of the catalogue become entries automatically when
published (an event in the same transaction). Operators' bulk ingests publish directly and are audited.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from tongban.catalog import service as catalog
from tongban.catalog.schemas import ItemContent, TimeLimit
from tongban.core import audit, events
from tongban.core.auth import ANONYMOUS, Principal
from tongban.core.clock import Clock
from tongban.core.errors import Conflict, Forbidden, InvalidInput, NotFound, PreconditionFailed
from tongban.core.text import chinese_number
from tongban.knowledge import repository as repo
from tongban.knowledge.embedding import E5Embedder as E5Embedder
from tongban.knowledge.embedding import Embedder as Embedder
from tongban.knowledge.embedding import Matrix as Matrix
from tongban.knowledge.embedding import from_bytes, text_hash, to_bytes
from tongban.knowledge.embedding import get_embedder as get_embedder
from tongban.knowledge.index import IndexedEntry, IndexedPassage, SearchIndex, SearchOutcome
from tongban.knowledge.index import SearchFilters as SearchFilters
from tongban.knowledge.ingest import Section, SourceDocument, split_passages
from tongban.knowledge.models import (
    KnowledgeEntry,
    KnowledgeFact,
    KnowledgeLexicon,
    KnowledgePassage,
    KnowledgeVersion,
)
from tongban.knowledge.schemas import (
    Citation,
    DiffOut,
    EntryContent,
    EntryOut,
    EntryPage,
    EntryStatus,
    EntrySummary,
    Kind,
    LexiconIn,
    LexiconKind,
    LexiconOut,
    LexiconState,
    MissOut,
    OpsReport,
    SearchResponse,
    SearchResultOut,
    SectionIn,
    VersionOut,
    VersionState,
)
from tongban.knowledge.schemas import Conflict as FactConflict
from tongban.knowledge.text import Analyzer, Lexicon, normalize

MAX_PAGE_SIZE = 100
MAX_K = 50
MAX_QUERY_CHARS = 500
#: An entry not reviewed for this long is listed as stale on the operations page.
STALE_AFTER = dt.timedelta(days=365)
#: Entries expiring within this many days are listed as near expiry.
EXPIRY_WARNING = dt.timedelta(days=30)
PASSAGE_CHARS = 200
CATALOG_PREFIX = "catalog:"
SYSTEM = "system"


class IngestOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def content_hash(content: EntryContent) -> str:
    canonical = json.dumps(content.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _dump(content: EntryContent) -> dict[str, Any]:
    return content.model_dump(mode="json")


# -- reading ------------------------------------------------------------------------------------------


def _summary(entry: KnowledgeEntry) -> EntrySummary:
    return EntrySummary(
        external_id=entry.external_id,
        kind=Kind(entry.kind),
        title=entry.title,
        department=entry.department,
        region=entry.region,
        status=EntryStatus(entry.status),
        version=entry.version,
        published_version=entry.published_version,
        pending_version=entry.pending_version,
        effective_from=entry.effective_from,
        expires_on=entry.expires_on,
        updated_at=entry.updated_at,
    )


def _content(session: Session, entry: KnowledgeEntry, version: int | None = None) -> EntryContent:
    number = version or entry.published_version or entry.version
    row = repo.get_version(session, entry.id, number)
    if row is None:  # pragma: no cover - guarded by the schema
        raise NotFound(f"entry {entry.external_id!r} has no version {number}")
    return EntryContent.model_validate(row.content)


def _out(session: Session, entry: KnowledgeEntry, content: EntryContent | None = None) -> EntryOut:
    return EntryOut(
        **_summary(entry).model_dump(),
        source=entry.source,
        audiences=list(entry.audiences),
        created_at=entry.created_at,
        published_at=entry.published_at,
        content=content or _content(session, entry),
    )


def _can_edit(principal: Principal) -> bool:
    return principal.can("knowledge:edit")


def _get(session: Session, external_id: str, *, for_update: bool = False) -> KnowledgeEntry:
    entry = repo.get_entry(session, external_id, for_update=for_update)
    if entry is None:
        raise NotFound(f"no knowledge entry {external_id!r}")
    return entry


def get_entry(session: Session, principal: Principal, external_id: str) -> EntryOut:
    entry = _get(session, external_id)
    if entry.status != EntryStatus.PUBLISHED and not _can_edit(principal):
        raise NotFound(f"no knowledge entry {external_id!r}")
    if _can_edit(principal):
        return _out(session, entry)
    return _out(session, entry, _content(session, entry, entry.published_version))


def get_working_copy(
    session: Session, principal: Principal, external_id: str
) -> tuple[EntryOut, EntryContent]:
    principal.require("knowledge:edit")
    entry = _get(session, external_id)
    return _out(session, entry), _content(session, entry, entry.pending_version or entry.version)


def list_entries(
    session: Session, principal: Principal, *, filters: repo.EntryFilter, page: int = 1, page_size: int = 20
) -> EntryPage:
    if page < 1:
        raise InvalidInput("page starts at 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    if not _can_edit(principal):
        if filters.status not in (None, EntryStatus.PUBLISHED.value):
            raise Forbidden("only editors see unpublished knowledge")
        filters = repo.EntryFilter(**{**filters.__dict__, "status": EntryStatus.PUBLISHED.value})
    rows, total = repo.list_entries(session, filters, offset=(page - 1) * page_size, limit=page_size)
    return EntryPage(entries=[_summary(r) for r in rows], total=total, page=page, page_size=page_size)


def list_versions(session: Session, principal: Principal, external_id: str) -> list[VersionOut]:
    principal.require("knowledge:edit")
    entry = _get(session, external_id)
    return [
        VersionOut(
            version=v.version,
            state=VersionState(v.state),
            author=v.author,
            note=v.note,
            created_at=v.created_at,
            reviewed_by=v.reviewed_by,
            reviewed_at=v.reviewed_at,
            content_hash=v.content_hash,
        )
        for v in repo.list_versions(session, entry.id)
    ]


def _diff_lines(content: EntryContent) -> list[str]:
    meta = content.model_dump(mode="json", exclude={"sections"})
    lines = [f"{k}: {json.dumps(v, ensure_ascii=False, sort_keys=True)}" for k, v in sorted(meta.items())]
    for section in content.sections:
        if section.heading:
            lines.append("## " + " / ".join(section.heading))
        lines.extend(section.text.splitlines())
    return lines


def diff_versions(
    session: Session, principal: Principal, external_id: str, from_version: int, to_version: int
) -> DiffOut:
    principal.require("knowledge:edit")
    entry = _get(session, external_id)
    old, new = (
        repo.get_version(session, entry.id, from_version),
        repo.get_version(session, entry.id, to_version),
    )
    if old is None or new is None:
        raise NotFound(f"entry {external_id!r} has no version {from_version if old is None else to_version}")
    unified = difflib.unified_diff(
        _diff_lines(EntryContent.model_validate(old.content)),
        _diff_lines(EntryContent.model_validate(new.content)),
        fromfile=f"v{from_version}",
        tofile=f"v{to_version}",
        lineterm="",
    )
    return DiffOut(
        external_id=external_id, from_version=from_version, to_version=to_version, unified=list(unified)
    )


# -- writing ------------------------------------------------------------------------------------------


def _apply_columns(entry: KnowledgeEntry, content: EntryContent) -> None:
    entry.kind = content.kind.value
    entry.title = content.title
    entry.department = content.department
    entry.source = content.source
    entry.audiences = list(content.audiences)
    entry.region = content.region
    entry.effective_from = content.effective_from
    entry.expires_on = content.expires_on


def _new_version(
    session: Session,
    entry: KnowledgeEntry,
    content: EntryContent,
    state: VersionState,
    author: str,
    note: str,
    clock: Clock,
    *,
    reviewed_by: str | None = None,
) -> KnowledgeVersion:
    now = clock.now()
    row = KnowledgeVersion(
        entry_id=entry.id,
        version=entry.version,
        state=state.value,
        content=_dump(content),
        content_hash=content_hash(content),
        author=author,
        note=note,
        created_at=now,
        reviewed_by=reviewed_by,
        reviewed_at=now if reviewed_by else None,
    )
    repo.add(session, row)
    return row


def _add_entry(session: Session, external_id: str, content: EntryContent, clock: Clock) -> KnowledgeEntry:
    now = clock.now()
    entry = KnowledgeEntry(
        external_id=external_id,
        status=EntryStatus.DRAFT.value,
        version=1,
        pending_version=1,
        created_at=now,
        updated_at=now,
    )
    _apply_columns(entry, content)
    repo.add(session, entry)
    return entry


def create_entry(
    session: Session,
    principal: Principal,
    external_id: str,
    content: EntryContent,
    *,
    clock: Clock,
    note: str = "",
) -> EntryOut:
    principal.require("knowledge:edit")
    if external_id.startswith(CATALOG_PREFIX):
        raise InvalidInput("entries of service items are made from the catalogue; edit the item there")
    if repo.get_entry(session, external_id) is not None:
        raise Conflict(f"a knowledge entry {external_id!r} already exists", external_id=external_id)
    entry = _add_entry(session, external_id, content, clock)
    _new_version(session, entry, content, VersionState.DRAFT, principal.username, note, clock)
    _audit(session, principal, "create", entry, clock, {"version": 1, "note": note})
    return _out(session, entry, content)


def update_entry(
    session: Session,
    principal: Principal,
    external_id: str,
    content: EntryContent,
    *,
    clock: Clock,
    note: str = "",
    expected_version: int | None = None,
) -> EntryOut:
    principal.require("knowledge:edit")
    entry = _get(session, external_id, for_update=True)
    if external_id.startswith(CATALOG_PREFIX):
        raise InvalidInput("entries of service items follow the catalogue; edit the item there")
    if expected_version is not None and expected_version != entry.version:
        raise PreconditionFailed(
            f"the entry changed meanwhile (now version {entry.version}, you edited {expected_version}); "
            "reload it",
            current_version=entry.version,
        )
    working = _content(session, entry, entry.pending_version or entry.version)
    if content_hash(working) == content_hash(content):
        return _out(session, entry)
    if entry.pending_version is not None:
        old = repo.get_version(session, entry.id, entry.pending_version)
        if old is not None and old.state in (VersionState.DRAFT, VersionState.IN_REVIEW):
            old.state = VersionState.SUPERSEDED.value
    entry.version += 1
    entry.pending_version = entry.version
    entry.updated_at = clock.now()
    if entry.published_version is None:
        _apply_columns(entry, content)
    _new_version(session, entry, content, VersionState.DRAFT, principal.username, note, clock)
    _audit(session, principal, "update", entry, clock, {"version": entry.version, "note": note})
    return _out(session, entry)


def _pending(session: Session, entry: KnowledgeEntry) -> KnowledgeVersion:
    if entry.pending_version is None:
        raise Conflict("this entry has no pending changes")
    row = repo.get_version(session, entry.id, entry.pending_version)
    if row is None:  # pragma: no cover
        raise Conflict("the pending version is missing")
    return row


def submit_entry(
    session: Session, principal: Principal, external_id: str, *, clock: Clock, note: str = ""
) -> EntryOut:
    principal.require("knowledge:edit")
    entry = _get(session, external_id, for_update=True)
    version = _pending(session, entry)
    if version.state == VersionState.REJECTED:
        raise Conflict("this change was returned; edit it to make a new draft")
    if version.state != VersionState.IN_REVIEW:
        version.state = VersionState.IN_REVIEW.value
        entry.updated_at = clock.now()
        if entry.published_version is None:
            entry.status = EntryStatus.IN_REVIEW.value
        _audit(session, principal, "submit", entry, clock, {"version": version.version, "note": note})
    return _out(session, entry)


def publish_entry(
    session: Session, principal: Principal, external_id: str, *, clock: Clock, note: str = ""
) -> EntryOut:
    principal.require("knowledge:publish")
    entry = _get(session, external_id, for_update=True)
    version = _pending(session, entry)
    if version.state != VersionState.IN_REVIEW:
        raise Conflict("submit the changes for review before publishing them")
    principal.require_other_than(version.author)
    _activate(session, entry, version, principal.username, clock)
    _audit(session, principal, "publish", entry, clock, {"version": version.version, "note": note})
    return _out(session, entry)


def reject_entry(
    session: Session, principal: Principal, external_id: str, *, clock: Clock, note: str
) -> EntryOut:
    principal.require("knowledge:review")
    if not note.strip():
        raise InvalidInput("say why the change is returned")
    entry = _get(session, external_id, for_update=True)
    version = _pending(session, entry)
    if version.state != VersionState.IN_REVIEW:
        raise Conflict("only a change in review can be returned")
    version.state = VersionState.REJECTED.value
    version.reviewed_by, version.reviewed_at = principal.username, clock.now()
    entry.updated_at = clock.now()
    if entry.published_version is None:
        entry.status = EntryStatus.DRAFT.value
    _audit(session, principal, "reject", entry, clock, {"version": version.version, "note": note})
    return _out(session, entry)


def withdraw_entry(
    session: Session, principal: Principal, external_id: str, *, clock: Clock, note: str
) -> EntryOut:
    principal.require("knowledge:publish")
    if not note.strip():
        raise InvalidInput("say why the entry is withdrawn")
    entry = _get(session, external_id, for_update=True)
    if entry.status != EntryStatus.PUBLISHED:
        raise Conflict("only a published entry can be withdrawn")
    _deactivate(session, entry, EntryStatus.WITHDRAWN, clock)
    _audit(session, principal, "withdraw", entry, clock, {"note": note})
    return _out(session, entry)


def confirm_entry(session: Session, principal: Principal, external_id: str, *, clock: Clock) -> EntryOut:
    """An editor confirms a published entry is still right: it stops being stale."""
    principal.require("knowledge:edit")
    entry = _get(session, external_id, for_update=True)
    if entry.status != EntryStatus.PUBLISHED:
        raise Conflict("only a published entry can be confirmed")
    entry.reviewed_at = clock.now()
    _audit(session, principal, "confirm", entry, clock, {})
    return _out(session, entry)


def expire_due(session: Session, *, clock: Clock) -> list[str]:
    """Move published entries past their expiry date to ``expired`` (idempotent; run by the scheduler)."""
    today = clock.now().date()
    expired: list[str] = []
    for entry in repo.due_to_expire(session, today):
        _deactivate(session, entry, EntryStatus.EXPIRED, clock)
        audit.record(
            session,
            actor=SYSTEM,
            action="knowledge.entry.expire",
            target_type="knowledge_entry",
            target_id=entry.external_id,
            clock=clock,
            detail={"expires_on": entry.expires_on.isoformat() if entry.expires_on else None},
        )
        expired.append(entry.external_id)
    return expired


def _audit(
    session: Session,
    principal: Principal | str,
    action: str,
    entry: KnowledgeEntry,
    clock: Clock,
    detail: dict[str, Any],
) -> None:
    audit.record(
        session,
        actor=principal,
        action=f"knowledge.entry.{action}",
        target_type="knowledge_entry",
        target_id=entry.external_id,
        clock=clock,
        detail=detail,
    )


def _source_document(external_id: str, content: EntryContent) -> SourceDocument:
    sections = [Section(heading=tuple(s.heading), text=s.text, page=s.page) for s in content.sections]
    if content.questions:
        sections.append(Section(heading=("常见问法",), text="\n".join(content.questions)))
    if content.synonyms:
        sections.append(Section(heading=("又称",), text="、".join(content.synonyms)))
    return SourceDocument(external_id=external_id, title=content.title, sections=tuple(sections), metadata={})


def embedding_text(title: str, heading: str, text: str) -> str:
    """What the embedding model sees for a passage: the entry title and heading give it context."""
    parts = [title]
    if heading and heading != title:
        parts.append(heading)
    parts.append(text)
    return "\n".join(parts)


def _activate(
    session: Session,
    entry: KnowledgeEntry,
    version: KnowledgeVersion,
    reviewer: str,
    clock: Clock,
    *,
    rederive: bool = False,
) -> None:
    """Make ``version`` the active one: columns, passages, facts and the index log, in this transaction."""
    now = clock.now()
    if entry.published_version is not None and entry.published_version != version.version:
        previous = repo.get_version(session, entry.id, entry.published_version)
        if previous is not None:
            previous.state = VersionState.SUPERSEDED.value
    content = EntryContent.model_validate(version.content)
    if not rederive:
        version.state = VersionState.PUBLISHED.value
        version.reviewed_by, version.reviewed_at = reviewer, now
        _apply_columns(entry, content)
        entry.status = EntryStatus.PUBLISHED.value
        entry.published_version, entry.pending_version = version.version, None
        entry.published_at = entry.updated_at = entry.reviewed_at = now
    doc = _source_document(entry.external_id, content)
    passages = []
    for p in split_passages(doc, max_chars=PASSAGE_CHARS):
        heading = " / ".join(p.heading)
        passages.append(
            KnowledgePassage(
                entry_id=entry.id,
                version=version.version,
                seq=p.seq,
                heading=heading[:1000],
                text=p.text,
                start=p.start,
                end=p.end,
                page=p.page,
                embed_hash=text_hash(embedding_text(content.title, heading, p.text)),
            )
        )
    repo.replace_passages(session, entry.id, passages)
    repo.replace_facts(session, entry.id, _facts(entry, version.version, content))
    repo.log_change(session, entry.id, "publish", now)


def _deactivate(session: Session, entry: KnowledgeEntry, status: EntryStatus, clock: Clock) -> None:
    entry.status = status.value
    entry.updated_at = clock.now()
    repo.delete_passages(session, entry.id)
    repo.delete_facts(session, entry.id)
    repo.log_change(session, entry.id, status.value, clock.now())


# -- facts and conflicts ------------------------------------------------------------------------------

_FACT_PATTERNS: dict[str, re.Pattern[str]] = {
    "time_limit": re.compile(
        r"(?:承诺|办理|办结)(?:时限|期限)[为是：:\s]*([0-9０-９一二三四五六七八九十百]+)\s*个?(工作日|自然日|日|天)"
    ),
    "fee": re.compile(r"(?:收费标准|收费|费用)[为是：:\s]*((?:不收费|免费|无)|[0-9０-９.]+\s*元)"),
    "place": re.compile(r"(?:办理地点|受理地点|办事地点)[为是：:\s]*([^。；;\n]{4,120})"),
}


def _cn_number(text: str) -> str:
    value = chinese_number(normalize(text))
    return str(value if value is not None else 0)


def _normalise_fact(attribute: str, value: str) -> str:
    if attribute == "time_limit":
        m = re.match(r"(\S+?)\s*(工作日|自然日|日|天)$", value)
        if m:
            unit = "working_day" if m.group(2) == "工作日" else "day"
            return f"{_cn_number(m.group(1))} {unit}"
    if attribute == "fee":
        v = normalize(value)
        if v in ("不收费", "免费", "无", "0元", "0 元"):
            return "free"
        return re.sub(r"\s+", "", v)
    return re.sub(r"[\s，,。.:：()（）-]+", "", normalize(value))


def _limit_text(limit: TimeLimit) -> str:
    unit = "工作日" if limit.unit.value == "working_day" else "日"
    return f"{limit.value}{unit}"


def _facts(entry: KnowledgeEntry, version: int, content: EntryContent) -> list[KnowledgeFact]:
    subject = normalize(content.subject or content.title)[:300]
    found: dict[str, str] = {}
    structured = content.metadata.get("facts")
    if isinstance(structured, dict):
        found.update({str(k): str(v) for k, v in structured.items() if v})
    for attribute, pattern in _FACT_PATTERNS.items():
        if attribute in found:
            continue
        for section in content.sections:
            m = pattern.search(section.text)
            if m:
                found[attribute] = "".join(g for g in m.groups() if g)
                break
    return [
        KnowledgeFact(
            entry_id=entry.id,
            version=version,
            subject=subject,
            attribute=attribute,
            value=value[:1000],
            normalized=_normalise_fact(attribute, value)[:1000],
        )
        for attribute, value in sorted(found.items())
    ]


def conflicts(session: Session) -> list[FactConflict]:
    grouped: dict[tuple[str, str], dict[str, list[str]]] = {}
    shown: dict[tuple[str, str, str], str] = {}
    for subject, attribute, normalized, value, external_id in repo.conflicting_facts(session):
        key = (subject, attribute)
        shown.setdefault((subject, attribute, normalized), value)
        label = shown[(subject, attribute, normalized)]
        grouped.setdefault(key, {}).setdefault(label, []).append(external_id)
    return [FactConflict(subject=s, attribute=a, values=v) for (s, a), v in grouped.items()]


# -- ingestion ----------------------------------------------------------------------------------------

_KIND_ALIASES = {k.value: k for k in Kind}


def _date(value: Any) -> dt.date | None:
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise InvalidInput(f"not a date (YYYY-MM-DD): {value!r}") from exc


def _str_list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [v.strip() for v in re.split(r"[,，;；、]", value) if v.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    raise InvalidInput(f"expected a list of strings, got {type(value).__name__}")


@dataclass(frozen=True)
class IngestDefaults:
    kind: Kind = Kind.ARTICLE
    department: str = ""
    region: str = ""
    audiences: tuple[str, ...] = ()


def content_from_document(doc: SourceDocument, defaults: IngestDefaults | None = None) -> EntryContent:
    """Map an ingested document and its metadata onto an entry's content (metadata overrides defaults)."""
    defaults = defaults or IngestDefaults()
    meta = dict(doc.metadata)
    kind_value = str(meta.pop("kind", "") or meta.pop("type", "") or defaults.kind.value)
    if kind_value not in _KIND_ALIASES:
        raise InvalidInput(f"unknown kind {kind_value!r}; known: {', '.join(_KIND_ALIASES)}")
    sections = [
        SectionIn(heading=list(s.heading), text=s.text, page=s.page) for s in doc.sections if s.text.strip()
    ]
    if not sections:
        raise InvalidInput(f"{doc.external_id}: the document has no text")
    return EntryContent(
        title=doc.title[:500] or doc.external_id,
        kind=_KIND_ALIASES[kind_value],
        department=str(meta.pop("department", "") or defaults.department)[:200],
        source=str(meta.pop("source", "") or meta.pop("url", ""))[:1000],
        audiences=_str_list(meta.pop("audiences", None) or meta.pop("audience", None))
        or list(defaults.audiences),
        region=str(meta.pop("region", "") or defaults.region)[:200],
        effective_from=_date(meta.pop("effective_from", None)),
        expires_on=_date(meta.pop("expires_on", None)),
        sections=sections,
        tags=_str_list(meta.pop("tags", None)),
        questions=[questions]
        if isinstance(questions := meta.pop("questions", None), str)
        else _str_list(questions),
        subject=str(meta.pop("subject", ""))[:300],
        metadata={k: v for k, v in meta.items() if isinstance(v, str | int | float | bool | None)},
    )


def ingest_content(
    session: Session, external_id: str, content: EntryContent, *, actor: str, clock: Clock, source: str
) -> IngestOutcome:
    """Create or update one entry from an operator's bulk ingest, published at once (audited as such)."""
    digest = content_hash(content)
    entry = repo.get_entry(session, external_id, for_update=True)
    note = f"ingested from {source}"
    if entry is None:
        entry = _add_entry(session, external_id, content, clock)
        outcome = IngestOutcome.CREATED
    else:
        current = (
            repo.get_version(session, entry.id, entry.published_version) if entry.published_version else None
        )
        if current is not None and current.content_hash == digest and entry.status == EntryStatus.PUBLISHED:
            return IngestOutcome.UNCHANGED
        if entry.pending_version is not None:
            pending = repo.get_version(session, entry.id, entry.pending_version)
            if pending is not None and pending.state in (VersionState.DRAFT, VersionState.IN_REVIEW):
                pending.state = VersionState.SUPERSEDED.value
        entry.version += 1
        outcome = IngestOutcome.UPDATED
    version = _new_version(session, entry, content, VersionState.IN_REVIEW, actor, note, clock)
    _activate(session, entry, version, actor, clock)
    audit.record(
        session,
        actor=actor,
        action=f"knowledge.entry.ingest.{outcome.value}",
        target_type="knowledge_entry",
        target_id=external_id,
        clock=clock,
        detail={"version": entry.version, "source": source},
    )
    return outcome


# -- the catalogue as knowledge -------------------------------------------------------------------------


def catalog_content(item: ItemContent) -> EntryContent:
    """A published service item as structured knowledge: one section per element of the guide."""
    from tongban.catalog.vocab import label

    head = [item.name]
    head.append(f"{item.department} · {label(item.item_type.value, 'zh-Hans')} · {item.region}")
    audiences = [label(a.value, "zh-Hans") for a in item.audiences]
    if item.audience_detail:
        audiences.extend(item.audience_detail)
    head.append("服务对象：" + "、".join(audiences))
    if item.themes:
        head.append("主题：" + "、".join(item.themes))
    sections = [SectionIn(heading=[], text="\n".join(head))]
    if item.conditions:
        sections.append(SectionIn(heading=["受理条件"], text=item.conditions))
    if item.materials:
        sections.append(
            SectionIn(
                heading=["申请材料"],
                text="\n".join(f"{i}. {m.name}" for i, m in enumerate(item.materials, 1)),
            )
        )
    facts: dict[str, str] = {}
    limits = []
    if item.statutory_limit:
        limits.append(f"法定办结时限：{_limit_text(item.statutory_limit)}")
    if item.promised_limit:
        limits.append(f"承诺办结时限：{_limit_text(item.promised_limit)}")
        facts["time_limit"] = _limit_text(item.promised_limit)
    fee_lines = []
    if item.charges_fee is False:
        fee_lines.append("不收费")
        facts["fee"] = "不收费"
    for fee in item.fees:
        amount = f"{fee.amount_fen / 100:g}元" if fee.amount_fen is not None else ""
        fee_lines.append(f"{fee.name} {amount}".strip())
        if amount:
            facts.setdefault("fee", amount)
    where = []
    if item.location:
        where.append(f"办理地点：{item.location}")
        facts["place"] = item.location
    if item.office_hours:
        where.append(f"办公时间：{item.office_hours}")
    if item.consult_phone:
        where.append(f"咨询电话：{item.consult_phone}")
    handling = limits + (["收费：" + "；".join(fee_lines)] if fee_lines else []) + where
    if handling:
        sections.append(SectionIn(heading=["办理须知"], text="\n".join(handling)))
    if item.legal_basis:
        sections.append(SectionIn(heading=["设定依据"], text=item.legal_basis))
    return EntryContent(
        title=item.name,
        kind=Kind.SERVICE_ITEM,
        department=item.department,
        source=item.online_url or "",
        audiences=[a.value for a in item.audiences],
        region=item.region,
        sections=sections,
        tags=list(item.themes),
        subject=item.name,
        metadata={"item_code": item.code, "facts": facts},
    )


def sync_catalog_item(session: Session, *, clock: Clock, code: str) -> None:
    """Event handler: a published (or re-published) item becomes, or updates, its knowledge entry."""
    try:  # what the public sees: only a published item becomes knowledge
        item = catalog.get_item(session, ANONYMOUS, code)
    except NotFound:
        return
    ingest_content(
        session,
        CATALOG_PREFIX + code,
        catalog_content(item.content),
        actor=SYSTEM,
        clock=clock,
        source="catalogue",
    )


def withdraw_catalog_item(session: Session, *, clock: Clock, code: str) -> None:
    entry = repo.get_entry(session, CATALOG_PREFIX + code, for_update=True)
    if entry is not None and entry.status == EntryStatus.PUBLISHED:
        _deactivate(session, entry, EntryStatus.WITHDRAWN, clock)
        _audit(session, SYSTEM, "withdraw", entry, clock, {"note": "the service item was withdrawn"})


events.subscribe(catalog.ITEM_PUBLISHED, sync_catalog_item)
events.subscribe(catalog.ITEM_WITHDRAWN, withdraw_catalog_item)


def sync_catalog(session: Session, *, clock: Clock) -> int:
    """Bring every published item's entry up to date (for items published before this domain existed)."""
    n = 0
    for content in catalog.export_items(session):
        before = repo.get_entry(session, CATALOG_PREFIX + content.code)
        outcome = ingest_content(
            session,
            CATALOG_PREFIX + content.code,
            catalog_content(content),
            actor=SYSTEM,
            clock=clock,
            source="catalogue",
        )
        n += outcome != IngestOutcome.UNCHANGED or before is None
    return n


# -- embeddings and the index -------------------------------------------------------------------------


def embed_missing(
    session: Session,
    embedder: Embedder,
    *,
    batch: int = 32,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Compute and cache the vectors of published passages that have none yet. Returns how many."""
    done = 0
    titles: dict[int, str] = {}
    while limit is None or done < limit:
        want = batch if limit is None else min(batch, limit - done)
        rows = _missing_with_titles(session, embedder.name, want, titles)
        if not rows:
            break
        vectors = embedder.passages([text for _, text in rows])
        repo.store_vectors(
            session, embedder.name, {h: to_bytes(v) for (h, _), v in zip(rows, vectors, strict=True)}
        )
        done += len(rows)
        if progress:
            progress(done)
    return done


def _missing_with_titles(
    session: Session, model: str, limit: int, titles: dict[int, str]
) -> list[tuple[str, str]]:
    out: dict[str, str] = {}
    for passage in repo.passages_missing_vectors(session, model, limit):
        if passage.entry_id not in titles:
            entry = repo.get_entry_by_id(session, passage.entry_id)
            titles[passage.entry_id] = entry.title if entry else ""
        out[passage.embed_hash] = embedding_text(titles[passage.entry_id], passage.heading, passage.text)
    return list(out.items())


def current_lexicon(session: Session) -> Lexicon:
    rows = repo.lexicon_rows(session, LexiconState.APPROVED.value)
    terms = [(r.term, 20000, "nz") for r in rows if r.kind == LexiconKind.TERM]
    synonyms = {r.term: r.canonical for r in rows if r.kind == LexiconKind.SYNONYM and r.canonical}
    return Lexicon.builtin().merged(terms, synonyms)


class IndexHolder:
    """A node's index and the lock that keeps its syncs one at a time."""

    def __init__(self, embedder: Embedder | None) -> None:
        self.embedder = embedder
        self.index: SearchIndex | None = None
        self.lock = threading.Lock()


def _indexed_entry(
    entry: KnowledgeEntry, passages: Sequence[KnowledgePassage], vectors: dict[str, bytes]
) -> IndexedEntry:
    return IndexedEntry(
        entry_id=entry.id,
        external_id=entry.external_id,
        kind=entry.kind,
        title=entry.title,
        version=entry.published_version or entry.version,
        department=entry.department,
        region=entry.region,
        audiences=tuple(entry.audiences),
        source=entry.source,
        effective_from=entry.effective_from,
        expires_on=entry.expires_on,
        passages=tuple(
            IndexedPassage(
                seq=p.seq,
                text=p.text,
                heading=p.heading,
                start=p.start,
                end=p.end,
                page=p.page,
                vector=from_bytes(vectors[p.embed_hash]) if p.embed_hash in vectors else None,
            )
            for p in passages
        ),
    )


def _load_entries(session: Session, index: SearchIndex, entries: Iterable[KnowledgeEntry]) -> None:
    batch = [e for e in entries if e.status == EntryStatus.PUBLISHED]
    for i in range(0, len(batch), 500):
        chunk = batch[i : i + 500]
        passages = repo.passages_of(session, [e.id for e in chunk])
        by_entry: dict[int, list[KnowledgePassage]] = {}
        for p in passages:
            by_entry.setdefault(p.entry_id, []).append(p)
        vectors: dict[str, bytes] = {}
        if index.embedder is not None:
            vectors = repo.cached_vectors(session, index.embedder.name, (p.embed_hash for p in passages))
            missing = [p for p in passages if p.embed_hash not in vectors]
            if missing:
                titles = {e.id: e.title for e in chunk}
                texts = {p.embed_hash: embedding_text(titles[p.entry_id], p.heading, p.text) for p in missing}
                computed = index.embedder.passages(list(texts.values()))
                new = {h: to_bytes(v) for h, v in zip(texts, computed, strict=True)}
                repo.store_vectors(session, index.embedder.name, new)
                vectors.update(new)
        for e in chunk:
            index.put(_indexed_entry(e, by_entry.get(e.id, []), vectors))


def rebuild_index(session: Session, holder: IndexHolder) -> SearchIndex:
    """A fresh index from the database: every published entry, the current lexicon."""
    with holder.lock:
        return _rebuild(session, holder)


def _rebuild(session: Session, holder: IndexHolder) -> SearchIndex:
    index = SearchIndex(Analyzer(current_lexicon(session)), holder.embedder)
    seq = repo.last_change(session)
    _load_entries(session, index, repo.published_entries(session))
    index.commit()
    index.applied_seq = seq
    holder.index = index
    return index


def sync_index(session: Session, holder: IndexHolder) -> SearchIndex:
    """Bring the node's index in step with the change log (cheap when nothing changed)."""
    with holder.lock:
        index = holder.index
        seq = repo.last_change(session)
        if index is None or seq < index.applied_seq:
            return _rebuild(session, holder)
        if seq == index.applied_seq:
            return index
        changes = repo.changes_since(session, index.applied_seq)
        if any(c.entry_id is None for c in changes):  # the lexicon changed: every text is re-analysed
            return _rebuild(session, holder)
        touched = repo.entries_by_id(session, {c.entry_id for c in changes if c.entry_id is not None})
        for entry_id in {c.entry_id for c in changes if c.entry_id is not None}:
            entry = touched.get(entry_id)
            if entry is None or entry.status != EntryStatus.PUBLISHED:
                index.remove(entry_id)
        _load_entries(session, index, [e for e in touched.values() if e.status == EntryStatus.PUBLISHED])
        index.commit()
        index.applied_seq = changes[-1].seq
        return index


def verify_index(session: Session, holder: IndexHolder) -> dict[str, Any]:
    """Compare the node's index with the database: entries, versions and passage counts."""
    index = sync_index(session, holder)
    published = {e.id: e for e in repo.published_entries(session)}
    passages = repo.passages_of(session, list(published))
    counts: dict[int, int] = {}
    for p in passages:
        counts[p.entry_id] = counts.get(p.entry_id, 0) + 1
    problems: list[str] = []
    for entry_id, entry in published.items():
        indexed = index.entry(entry_id)
        if indexed is None:
            problems.append(f"{entry.external_id}: published but not indexed")
        elif indexed.version != entry.published_version:
            problems.append(
                f"{entry.external_id}: index has v{indexed.version}, database v{entry.published_version}"
            )
        elif len(indexed.passages) != counts.get(entry_id, 0):
            problems.append(f"{entry.external_id}: passage count differs")
    for indexed in index.entries():
        if indexed.entry_id not in published:
            problems.append(f"{indexed.external_id}: indexed but not published")
    missing_vectors = 0
    if index.embedder is not None:
        have = repo.cached_vectors(session, index.embedder.name, (p.embed_hash for p in passages))
        missing_vectors = sum(1 for p in passages if p.embed_hash not in have)
    return {
        "entries": len(published),
        "indexed_entries": index.entry_count,
        "passages": len(passages),
        "indexed_passages": index.passage_count,
        "applied_seq": index.applied_seq,
        "missing_vectors": missing_vectors,
        "problems": problems,
        "ok": not problems,
    }


# -- search -------------------------------------------------------------------------------------------

_PERSONAL_NUMBER = re.compile(r"\d{6,}[\dxX]?")


def normalize_text(text: str) -> str:
    """Text as search compares it: NFKC, Traditional → Simplified, lower case (for other domains)."""
    return normalize(text)


def _miss_key(query: str) -> str:
    """The form a miss is stored in: normalised, personal numbers (ID, phone) masked, bounded."""
    return _PERSONAL_NUMBER.sub("#", normalize(" ".join(query.split())))[:200]


def _snippet(text: str, terms: list[str], width: int = 120) -> tuple[str, list[tuple[int, int]]]:
    norm = normalize(text)
    comparable = len(norm) == len(text)
    haystack = norm if comparable else text
    spans: list[tuple[int, int]] = []
    for term in terms:
        start = 0
        while (pos := haystack.find(term, start)) >= 0:
            if not any(a < pos + len(term) and pos < b for a, b in spans):
                spans.append((pos, pos + len(term)))
            start = pos + len(term)
    spans.sort()
    if len(text) <= width:
        return text, spans
    best, best_count = 0, -1
    for a, _ in spans:
        lo = max(0, a - width // 4)
        count = sum(1 for s, e in spans if s >= lo and e <= lo + width)
        if count > best_count:
            best, best_count = lo, count
    snippet = text[best : best + width]
    prefix = "…" if best > 0 else ""
    suffix = "…" if best + width < len(text) else ""
    shifted = [
        (s - best + len(prefix), e - best + len(prefix)) for s, e in spans if s >= best and e <= best + width
    ]
    return prefix + snippet + suffix, shifted


def _run_query(
    session: Session,
    holder: IndexHolder,
    query: str,
    *,
    clock: Clock,
    k: int,
    filters: SearchFilters | None,
) -> tuple[SearchIndex, SearchOutcome]:
    if not query:
        raise InvalidInput("the query is empty")
    if not 1 <= k <= MAX_K:
        raise InvalidInput(f"k must be between 1 and {MAX_K}")
    index = sync_index(session, holder)
    return index, index.search(query, k=k, filters=filters, today=clock.now().date())


def search(
    session: Session,
    holder: IndexHolder,
    query: str,
    *,
    clock: Clock,
    k: int = 10,
    filters: SearchFilters | None = None,
    record_miss: bool = True,
) -> SearchResponse:
    query = query.strip()
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"the query is longer than {MAX_QUERY_CHARS} characters")
    index, outcome = _run_query(session, holder, query, clock=clock, k=k, filters=filters)
    terms = index.analyzer.highlight_terms(outcome.terms)
    results = [_result(hit.entry, hit.passage, hit.scores, terms) for hit in outcome.hits]
    if record_miss and not outcome.found:
        repo.record_miss(session, _miss_key(query), clock.now())
    return SearchResponse(
        query=query,
        total=len(results),
        results=results,
        expansions=outcome.terms.synonyms_applied,
        found=outcome.found,
    )


@dataclass(frozen=True)
class RetrievedPassage:
    seq: int
    text: str
    heading: str
    start: int
    end: int
    page: int | None
    #: Closeness in meaning to the query (cosine of the embeddings), when the model is on.
    semantic: float | None = None


@dataclass(frozen=True)
class RetrievedEntry:
    """A search hit with the whole active version's passages, for readers that quote from it."""

    id: str
    kind: str
    title: str
    version: int
    department: str
    region: str
    source: str
    item_code: str | None
    #: ``seq`` of the passage that matched best.
    best_passage: int
    scores: dict[str, float]
    passages: tuple[RetrievedPassage, ...]


@dataclass(frozen=True)
class Retrieval:
    entries: list[RetrievedEntry]
    #: The best lexical score as a share of the query's BM25 ceiling, and whether anything matched.
    strength: float
    found: bool


def retrieve(
    session: Session,
    holder: IndexHolder,
    query: str,
    *,
    clock: Clock,
    k: int = 5,
    filters: SearchFilters | None = None,
) -> Retrieval:
    """Search as :func:`search` does, returning whole entries (every passage of the active version); a
    query longer than the limit is cut rather than refused (a follow-up read with the question before)."""
    _, outcome = _run_query(
        session, holder, query.strip()[:MAX_QUERY_CHARS], clock=clock, k=k, filters=filters
    )
    # the query vector is cached by the embedder, so this costs a dot product per passage
    qv = (
        holder.embedder.query(outcome.terms.rewritten)
        if holder.embedder is not None and outcome.hits
        else None
    )
    entries = []
    for hit in outcome.hits:
        e = hit.entry
        entries.append(
            RetrievedEntry(
                id=e.external_id,
                kind=e.kind,
                title=e.title,
                version=e.version,
                department=e.department,
                region=e.region,
                source=e.source,
                item_code=e.external_id[len(CATALOG_PREFIX) :]
                if e.external_id.startswith(CATALOG_PREFIX)
                else None,
                best_passage=hit.passage.seq,
                scores=dict(hit.scores),
                passages=tuple(
                    RetrievedPassage(
                        p.seq,
                        p.text,
                        p.heading,
                        p.start,
                        p.end,
                        p.page,
                        float(p.vector @ qv) if qv is not None and p.vector is not None else None,
                    )
                    for p in e.passages
                ),
            )
        )
    return Retrieval(entries=entries, strength=outcome.strength, found=outcome.found)


def embed_texts(holder: IndexHolder, texts: Sequence[str]) -> list[list[float]]:
    """Unit vectors of ``texts`` by the hub's embedding model (empty when the model is off)."""
    if holder.embedder is None or not texts:
        return []
    return [[float(v) for v in row] for row in holder.embedder.passages(list(texts))]


def record_unanswered(session: Session, question: str, *, clock: Clock) -> None:
    """Count a question that the consultation refused or answered with low confidence, so editors see
    what the knowledge lacks (it joins the operations page's list of questions that found nothing)."""
    repo.record_miss(session, _miss_key(question), clock.now())


def _result(
    entry: IndexedEntry, passage: IndexedPassage, scores: dict[str, float], terms: list[str]
) -> SearchResultOut:
    snippet, highlights = _snippet(passage.text, terms)
    item_code = (
        entry.external_id[len(CATALOG_PREFIX) :] if entry.external_id.startswith(CATALOG_PREFIX) else None
    )
    return SearchResultOut(
        id=entry.external_id,
        kind=Kind(entry.kind),
        title=entry.title,
        snippet=snippet,
        highlights=highlights,
        scores=scores,
        source=entry.source,
        department=entry.department,
        region=entry.region,
        citation=Citation(
            external_id=entry.external_id,
            version=entry.version,
            heading=passage.heading,
            start=passage.start,
            end=passage.end,
            page=passage.page,
        ),
        item_code=item_code,
    )


# -- operations ---------------------------------------------------------------------------------------


def ops_report(
    session: Session, principal: Principal, holder: IndexHolder, *, clock: Clock, limit: int = 50
) -> OpsReport:
    principal.require("knowledge:edit")
    now = clock.now()
    misses = [
        MissOut(query=m.query, count=m.count, last_seen=m.last_seen) for m in repo.top_misses(session, limit)
    ]
    index = holder.index
    return OpsReport(
        stale=[_summary(e) for e in repo.stale_entries(session, now - STALE_AFTER, limit)],
        expiring=[_summary(e) for e in repo.expiring_entries(session, (now + EXPIRY_WARNING).date(), limit)],
        misses=misses,
        conflicts=conflicts(session),
        pending_review=[_summary(e) for e in repo.in_review(session, limit)],
        index={
            "entries": index.entry_count if index else 0,
            "passages": index.passage_count if index else 0,
            "applied_seq": index.applied_seq if index else 0,
            "log_seq": repo.last_change(session),
            "status_counts": repo.status_counts(session),
        },
    )


# -- lexicon ------------------------------------------------------------------------------------------


def _lexicon_out(row: KnowledgeLexicon) -> LexiconOut:
    return LexiconOut(
        id=row.id,
        kind=LexiconKind(row.kind),
        term=row.term,
        canonical=row.canonical,
        state=LexiconState(row.state),
        note=row.note,
        proposed_by=row.proposed_by,
        approved_by=row.approved_by,
        updated_at=row.updated_at,
    )


def list_lexicon(session: Session, principal: Principal, *, state: str | None = None) -> list[LexiconOut]:
    principal.require("knowledge:edit")
    if state is not None and state not in {s.value for s in LexiconState}:
        raise InvalidInput(f"unknown state {state!r}")
    return [_lexicon_out(r) for r in repo.lexicon_rows(session, state)]


def propose_lexicon(session: Session, principal: Principal, data: LexiconIn, *, clock: Clock) -> LexiconOut:
    principal.require("knowledge:edit")
    existing = repo.lexicon_row(session, data.kind.value, data.term)
    if existing is not None and existing.state != LexiconState.RETIRED:
        raise Conflict(f"{data.term!r} is already in the lexicon ({existing.state})", id=existing.id)
    now = clock.now()
    if existing is None:
        row = KnowledgeLexicon(
            kind=data.kind.value,
            term=data.term,
            canonical=data.canonical,
            state=LexiconState.PROPOSED.value,
            note=data.note,
            proposed_by=principal.username,
            created_at=now,
            updated_at=now,
        )
        repo.add(session, row)
    else:
        row = existing
        row.canonical, row.note, row.state = data.canonical, data.note, LexiconState.PROPOSED.value
        row.proposed_by, row.approved_by, row.updated_at = principal.username, None, now
    audit.record(
        session,
        actor=principal,
        action="knowledge.lexicon.propose",
        target_type="knowledge_lexicon",
        target_id=str(row.id),
        clock=clock,
        detail=data.model_dump(mode="json"),
    )
    return _lexicon_out(row)


def decide_lexicon(
    session: Session, principal: Principal, row_id: int, *, approve: bool, clock: Clock
) -> LexiconOut:
    """Approve a proposal (it applies to every node's analysis) or retire an entry."""
    principal.require("knowledge:review")
    row = repo.lexicon_by_id(session, row_id, for_update=True)
    if row is None:
        raise NotFound(f"no lexicon entry {row_id}")
    if approve:
        if row.state != LexiconState.PROPOSED:
            raise Conflict("only a proposal can be approved")
        principal.require_other_than(row.proposed_by)
        row.state, row.approved_by = LexiconState.APPROVED.value, principal.username
    else:
        if row.state == LexiconState.RETIRED:
            return _lexicon_out(row)
        row.state = LexiconState.RETIRED.value
    row.updated_at = clock.now()
    repo.log_change(session, None, "lexicon", clock.now())
    audit.record(
        session,
        actor=principal,
        action="knowledge.lexicon." + ("approve" if approve else "retire"),
        target_type="knowledge_lexicon",
        target_id=str(row.id),
        clock=clock,
        detail={"term": row.term},
    )
    return _lexicon_out(row)


def store_vectors(session: Session, model: str, vectors: dict[str, bytes]) -> None:
    """Seed the embedding cache (e.g. from a shipped or saved cache file)."""
    repo.store_vectors(session, model, vectors)


def rederive_all(session: Session, *, clock: Clock) -> int:
    """Re-split and re-extract every published entry from its active version (after a splitter change)."""
    n = 0
    for entry in repo.published_entries(session):
        version = repo.get_version(session, entry.id, entry.published_version or entry.version)
        if version is None:  # pragma: no cover
            continue
        _activate(session, entry, version, version.reviewed_by or SYSTEM, clock, rederive=True)
        n += 1
    repo.log_change(session, None, "rebuild", clock.now())
    return n
