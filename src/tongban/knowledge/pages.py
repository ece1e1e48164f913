"""HTML pages of the knowledge hub: the portal's search, public entries, and the staff's governance desk.

Everything shown from content (titles, snippets, notes) is escaped by the templates; the one fragment
built here, a snippet with its ``<mark>`` highlights, escapes the text itself and marks only the ranges.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup, escape
from pydantic import ValidationError
from starlette.datastructures import FormData

from tongban.core import auth
from tongban.core.errors import DomainError, InvalidInput, NotFound
from tongban.core.http import (
    ClockDep,
    DbSession,
    LanguageDep,
    csrf_form,
    public_with_principal,
    render_page,
    require,
)
from tongban.core.i18n import Language
from tongban.core.messages import N_
from tongban.knowledge import service
from tongban.knowledge.api import Holder, parse_kinds
from tongban.knowledge.index import SearchFilters
from tongban.knowledge.repository import EntryFilter
from tongban.knowledge.schemas import (
    EntryContent,
    EntryOut,
    EntryStatus,
    EntryUpdate,
    EntryWrite,
    Kind,
    LexiconIn,
    LexiconKind,
    LexiconState,
    SearchResponse,
    SearchResultOut,
    SectionIn,
    VersionOut,
    VersionState,
)

router = APIRouter(include_in_schema=False)
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]
Editor = Annotated[auth.Principal, Depends(require("knowledge:edit"))]
Reviewer = Annotated[auth.Principal, Depends(require("knowledge:review"))]
Publisher = Annotated[auth.Principal, Depends(require("knowledge:publish"))]

#: Results asked of the index for the portal's page; grouped here by kind.
SEARCH_K = 30
PAGE_SIZE = 50
NOTE_CHARS = 2000

#: Names of the codes the pages show (kinds, statuses, version states, lexicon rows, fact attributes).
LABELS: dict[str, str] = {
    Kind.SERVICE_ITEM: N_("Service item"),
    Kind.POLICY: N_("Policy"),
    Kind.GUIDE: N_("Guide"),
    Kind.FAQ: N_("Question and answer"),
    Kind.ARTICLE: N_("Article"),
    EntryStatus.DRAFT: N_("Draft"),
    EntryStatus.IN_REVIEW: N_("In review"),
    EntryStatus.PUBLISHED: N_("Published"),
    EntryStatus.EXPIRED: N_("Expired"),
    EntryStatus.WITHDRAWN: N_("Withdrawn"),
    VersionState.SUPERSEDED: N_("Superseded"),
    VersionState.REJECTED: N_("Returned"),
    LexiconKind.TERM: N_("Dictionary term"),
    LexiconKind.SYNONYM: N_("Synonym"),
    LexiconState.PROPOSED: N_("Proposed"),
    LexiconState.APPROVED: N_("Approved"),
    LexiconState.RETIRED: N_("Retired"),
    "time_limit": N_("Time limit"),
    "fee": N_("Fee"),
    "place": N_("Place"),
}

#: The portal groups results into three kinds of answer: (key, heading, kinds).
GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("services", N_("Service items"), (Kind.SERVICE_ITEM.value,)),
    ("policies", N_("Policies"), (Kind.POLICY.value,)),
    ("knowledge", N_("Knowledge"), (Kind.GUIDE.value, Kind.FAQ.value, Kind.ARTICLE.value)),
)

SCORE_LABELS: tuple[tuple[str, str], ...] = (
    ("passage_bm25", N_("Keywords in the best passage (BM25)")),
    ("entry_bm25", N_("Keywords in the whole entry (BM25)")),
    ("semantic", N_("Closeness in meaning (semantic)")),
    ("fused", N_("Combined score")),
)

#: What a redirect after a staff action may announce (``?notice=``); anything else is ignored.
NOTICES: dict[str, str] = {
    "created": N_("The entry was created as a draft."),
    "saved": N_("Your changes were saved as a draft."),
    "unchanged": N_("Nothing was changed, so no new version was made."),
    "submitted": N_("The changes were submitted for review."),
    "published": N_("The version was published; search serves it now."),
    "rejected": N_("The changes were returned to the editor."),
    "withdrawn": N_("The entry was withdrawn; search no longer serves it."),
    "confirmed": N_("The entry was confirmed as still correct."),
    "proposed": N_("The proposal was recorded; a reviewer has to approve it."),
    "approved": N_("The lexicon entry was approved; search uses it now."),
    "retired": N_("The lexicon entry was retired."),
}

#: Names of the entry form's fields, for validation messages.
FIELD_LABELS: dict[str, str] = {
    "external_id": N_("External id"),
    "title": N_("Title"),
    "kind": N_("Kind"),
    "department": N_("Issued by"),
    "source": N_("Source"),
    "region": N_("Region"),
    "audiences": N_("Audiences"),
    "effective_from": N_("Effective from"),
    "expires_on": N_("Expires on"),
    "subject": N_("Subject"),
    "sections": N_("Text"),
    "tags": N_("Tags"),
    "questions": N_("Alternative questions"),
    "note": N_("Note"),
    "term": N_("Term"),
    "canonical": N_("Official term"),
}


async def posted_form(request: Request) -> FormData:
    return await request.form()


Posted = Annotated[FormData, Depends(posted_form)]


def entry_url(external_id: str) -> str:
    return "/knowledge/" + quote(external_id, safe="/:")


def staff_url(external_id: str) -> str:
    return "/staff/knowledge/entries/" + quote(external_id, safe="/:")


def _context(lang: Language) -> dict[str, Any]:
    return {
        "label": lambda code: lang.gettext(LABELS[code]) if code in LABELS else code,
        "entry_url": entry_url,
        "staff_url": staff_url,
    }


def _field(value: Any, limit: int = 20_000) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def _note(form: FormData) -> str:
    return _field(form.get("note"), NOTE_CHARS)


def _notice(lang: Language, notice: str | None) -> str | None:
    return lang.gettext(NOTICES[notice]) if notice in NOTICES else None


# --- The portal's search ---------------------------------------------------------------------------


def highlighted(snippet: str, ranges: list[tuple[int, int]]) -> Markup:
    """The snippet, escaped, with each [start, end) range in ``<mark>``.

    Overlapping and touching ranges become one mark (a query's words often sit side by side); ranges
    outside the snippet are cut to it.
    """
    merged: list[list[int]] = []
    for start, end in sorted(ranges):
        start, end = max(start, 0), min(end, len(snippet))
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts: list[Markup] = []
    pos = 0
    for start, end in merged:
        parts.append(escape(snippet[pos:start]))
        parts.append(Markup("<mark>%s</mark>") % snippet[start:end])
        pos = end
    parts.append(escape(snippet[pos:]))
    return Markup("").join(parts)


@dataclass
class ResultView:
    title: str
    url: str
    kind: str
    snippet: Markup
    department: str
    region: str
    source: str
    source_url: str | None
    version: int
    heading: str
    scores: list[tuple[str, str]]


@dataclass
class GroupView:
    key: str
    title: str
    results: list[ResultView] = field(default_factory=list)


def _source_link(source: str) -> tuple[str, str | None]:
    """What to show of a source, and the link when it is a web address."""
    parts = urlsplit(source)
    if parts.scheme in ("http", "https") and parts.netloc:
        return parts.netloc, source
    return source, None


def _result_view(result: SearchResultOut, lang: Language) -> ResultView:
    if result.kind == Kind.SERVICE_ITEM and result.item_code:
        url = "/catalog/items/" + quote(result.item_code, safe="")
    else:
        url = entry_url(result.id)
    shown, link = _source_link(result.source)
    scores = [
        (lang.gettext(text), f"{result.scores[key]:.3f}")
        for key, text in SCORE_LABELS
        if key in result.scores
    ]
    return ResultView(
        title=result.title,
        url=url,
        kind=result.kind.value,
        snippet=highlighted(result.snippet, result.highlights),
        department=result.department,
        region=result.region,
        source=shown,
        source_url=link,
        version=result.citation.version,
        heading=result.citation.heading,
        scores=scores,
    )


def group_results(response: SearchResponse, lang: Language) -> list[GroupView]:
    """Results by group, in ranking order within each; groups without results are left out."""
    groups = [GroupView(key, lang.gettext(title)) for key, title, _ in GROUPS]
    by_kind = {kind: g for g, (_, _, kinds) in zip(groups, GROUPS, strict=True) for kind in kinds}
    for result in response.results:
        by_kind.get(result.kind.value, groups[-1]).results.append(_result_view(result, lang))
    return [g for g in groups if g.results]


@router.get("/search")
def search_page(
    request: Request,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    holder: Holder,
    principal: Anyone,
    q: Annotated[str | None, Query(max_length=service.MAX_QUERY_CHARS)] = None,
    type: Annotated[str | None, Query(max_length=200)] = None,
    department: Annotated[str | None, Query(max_length=200)] = None,
    region: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    query = (q or "").strip()
    # A form sends every field, empty ones included; an empty or unknown choice means "any".
    try:
        kinds = parse_kinds(type)
    except InvalidInput:
        kinds, type = (), None
    department = (department or "").strip() or None
    region = (region or "").strip() or None
    response: SearchResponse | None = None
    groups: list[GroupView] = []
    if query:
        filters = SearchFilters(kinds=kinds, department=department, region=region)
        response = service.search(session, holder, query, clock=clock, k=SEARCH_K, filters=filters)
        if response.found:
            groups = group_results(response, lang)
    type_choices = [(",".join(ks), lang.gettext(title)) for _, title, ks in GROUPS]
    context = {
        "query": query,
        "type": type or "",
        "type_choices": type_choices,
        "department": department or "",
        "region": region or "",
        "response": response,
        "groups": groups,
        "shown": sum(len(g.results) for g in groups),
        "expansions": "、".join(dict.fromkeys(added for _, added in response.expansions)) if response else "",
        "more_filters": bool(department or region),
        **_context(lang),
    }
    return render_page(request, lang, "knowledge/search.html", context)


# --- Public entries ----------------------------------------------------------------------------------


@dataclass
class SectionView:
    heading: str
    text: str


def _sections(content: EntryContent) -> list[SectionView]:
    return [
        SectionView(" / ".join(s.heading), s.text) for s in content.sections if s.text.strip() or s.heading
    ]


@router.get("/knowledge/{external_id:path}")
def entry_page(
    request: Request, external_id: str, session: DbSession, lang: LanguageDep, principal: Anyone
) -> Response:
    # Everyone, staff included, reads the published version here; staff see drafts on their own pages.
    entry = service.get_entry(session, auth.ANONYMOUS, external_id)
    content = entry.content
    item_code = content.metadata.get("item_code") if entry.kind == Kind.SERVICE_ITEM else None
    shown, link = _source_link(entry.source)
    context = {
        "entry": entry,
        "c": content,
        "sections": _sections(content),
        "item_url": "/catalog/items/" + quote(str(item_code), safe="") if item_code else None,
        "source_shown": shown,
        "source_url": link,
        **_context(lang),
    }
    return render_page(request, lang, "knowledge/entry.html", context)


# --- Staff: the list ---------------------------------------------------------------------------------


@router.get("/staff/knowledge")
def staff_list(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Editor,
    q: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    status = status if status in {s.value for s in EntryStatus} else None
    kind = kind if kind in {k.value for k in Kind} else None
    text = (q or "").strip() or None
    filters = EntryFilter(status=status, kind=kind, text=text)
    result = service.list_entries(session, principal, filters=filters, page=page, page_size=PAGE_SIZE)
    params = {k: v for k, v in {"q": text, "status": status, "kind": kind}.items() if v}
    context = {
        "result": result,
        "q": text or "",
        "status": status or "",
        "kind": kind or "",
        "statuses": [s.value for s in EntryStatus],
        "kinds": [k.value for k in Kind],
        "pages": max(1, math.ceil(result.total / result.page_size)),
        "page_url": lambda n: "/staff/knowledge?" + urlencode({**params, "page": n}),
        **_context(lang),
    }
    return render_page(request, lang, "knowledge/staff_list.html", context)


# --- Staff: operations -------------------------------------------------------------------------------


@router.get("/staff/knowledge/ops")
def ops_page(
    request: Request,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    holder: Holder,
    principal: Editor,
) -> Response:
    service.sync_index(session, holder)
    report = service.ops_report(session, principal, holder, clock=clock)
    return render_page(request, lang, "knowledge/ops.html", {"report": report, **_context(lang)})


# --- Staff: the lexicon ------------------------------------------------------------------------------


def _lexicon_page(
    request: Request,
    session: Any,
    lang: Language,
    principal: auth.Principal,
    *,
    values: dict[str, str] | None = None,
    errors: list[tuple[str, str]] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    context = {
        "rows": service.list_lexicon(session, principal),
        "v": values or {"kind": LexiconKind.SYNONYM.value},
        "errors": errors or [],
        "notice": _notice(lang, notice),
        "lexicon_kinds": [k.value for k in LexiconKind],
        **_context(lang),
    }
    return render_page(request, lang, "knowledge/lexicon.html", context, status=status)


@router.get("/staff/knowledge/lexicon")
def lexicon_page(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Editor,
    notice: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    return _lexicon_page(request, session, lang, principal, notice=notice)


def _errors(exc: ValidationError, lang: Language, *, strip: str | None = None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ())]
        if strip and loc and loc[0] == strip:
            loc = loc[1:]
        name = loc[0] if loc else ""
        where = lang.gettext(FIELD_LABELS[name]) if name in FIELD_LABELS else lang.gettext("Entry")
        out.append((where, str(e.get("msg", ""))))
    return out


@router.post("/staff/knowledge/lexicon", dependencies=[Depends(csrf_form)])
def propose_lexicon(
    request: Request,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    principal: Editor,
    form: Posted,
) -> Response:
    values = {name: _field(form.get(name), 500) for name in ("kind", "term", "canonical", "note")}
    try:
        data = LexiconIn.model_validate(
            {
                "kind": values["kind"],
                "term": values["term"],
                "canonical": values["canonical"] or None,
                "note": values["note"],
            }
        )
    except ValidationError as exc:
        errors = _errors(exc, lang)
        return _lexicon_page(request, session, lang, principal, values=values, errors=errors, status=422)
    try:
        service.propose_lexicon(session, principal, data, clock=clock)
    except DomainError as exc:
        errors = [(lang.gettext("Term"), exc.detail)]
        session.rollback()
        return _lexicon_page(
            request, session, lang, principal, values=values, errors=errors, status=exc.status
        )
    return RedirectResponse("/staff/knowledge/lexicon?notice=proposed", status_code=303)


@router.post("/staff/knowledge/lexicon/{row_id}/approve", dependencies=[Depends(csrf_form)])
def approve_lexicon(row_id: int, session: DbSession, clock: ClockDep, principal: Reviewer) -> Response:
    service.decide_lexicon(session, principal, row_id, approve=True, clock=clock)
    return RedirectResponse("/staff/knowledge/lexicon?notice=approved", status_code=303)


@router.post("/staff/knowledge/lexicon/{row_id}/retire", dependencies=[Depends(csrf_form)])
def retire_lexicon(row_id: int, session: DbSession, clock: ClockDep, principal: Reviewer) -> Response:
    service.decide_lexicon(session, principal, row_id, approve=False, clock=clock)
    return RedirectResponse("/staff/knowledge/lexicon?notice=retired", status_code=303)


# --- Staff: creating and editing ---------------------------------------------------------------------

_LIST_SPLIT = re.compile(r"[,，、;；\n]")


def _list(value: str) -> list[str]:
    return [v.strip() for v in _LIST_SPLIT.split(value) if v.strip()]


def body_text(sections: list[SectionIn]) -> str:
    """An entry's sections as one text: a line ``# heading`` starts each section that has a heading."""
    blocks = []
    for s in sections:
        lines = [f"# {' / '.join(s.heading)}"] if s.heading else []
        if s.text.strip():
            lines.append(s.text.strip("\n"))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def parse_body(text: str) -> list[dict[str, Any]]:
    """The inverse of :func:`body_text`: lines starting with ``# `` start a new section with that heading."""
    sections: list[dict[str, Any]] = []
    heading: list[str] = []
    lines: list[str] = []

    def flush() -> None:
        body = "\n".join(lines).strip("\n")
        if body.strip() or heading:
            sections.append({"heading": heading, "text": body})

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.startswith("# "):
            flush()
            heading = [h.strip() for h in line[2:].split(" / ") if h.strip()]
            lines = []
        else:
            lines.append(line.rstrip())
    flush()
    return sections


def content_to_form(content: EntryContent | None) -> dict[str, str]:
    if content is None:
        return {"kind": Kind.ARTICLE.value}
    return {
        "title": content.title,
        "kind": content.kind.value,
        "department": content.department,
        "source": content.source,
        "region": content.region,
        "audiences": ", ".join(content.audiences),
        "effective_from": content.effective_from.isoformat() if content.effective_from else "",
        "expires_on": content.expires_on.isoformat() if content.expires_on else "",
        "subject": content.subject,
        "body": body_text(content.sections),
        "tags": ", ".join(content.tags),
        "questions": "\n".join(content.questions),
    }


FORM_FIELDS = (
    "external_id",
    "title",
    "kind",
    "department",
    "source",
    "region",
    "audiences",
    "effective_from",
    "expires_on",
    "subject",
    "body",
    "tags",
    "questions",
    "note",
    "expected_version",
)


def form_values(form: FormData) -> dict[str, str]:
    # Browsers send a textarea's line breaks as CRLF.
    return {
        name: _field(form.get(name), 200_000 if name == "body" else 20_000).replace("\r\n", "\n")
        for name in FORM_FIELDS
    }


def form_to_data(values: dict[str, str], base: EntryContent | None) -> dict[str, Any]:
    """The content the form describes; what the form does not show (metadata, synonyms) stays as it was."""
    data: dict[str, Any] = base.model_dump(mode="json") if base else {}
    data.update(
        {
            "title": values["title"],
            "kind": values["kind"],
            "department": values["department"],
            "source": values["source"],
            "region": values["region"],
            "audiences": _list(values["audiences"]),
            "effective_from": values["effective_from"] or None,
            "expires_on": values["expires_on"] or None,
            "subject": values["subject"],
            "tags": _list(values["tags"]),
            "questions": [q.strip() for q in values["questions"].splitlines() if q.strip()],
        }
    )
    if base is None or values["body"].strip() != body_text(base.sections).strip():
        data["sections"] = parse_body(values["body"])
    return data


def _edit_page(
    request: Request,
    lang: Language,
    *,
    values: dict[str, str],
    errors: list[tuple[str, str]],
    entry: EntryOut | None,
    status: int = 200,
) -> Response:
    context = {
        "v": values,
        "errors": errors,
        "entry": entry,
        "kinds": [k.value for k in Kind if k != Kind.SERVICE_ITEM or (entry and entry.kind == k)],
        **_context(lang),
    }
    return render_page(request, lang, "knowledge/edit.html", context, status=status)


@router.get("/staff/knowledge/new")
def new_form(request: Request, lang: LanguageDep, principal: Editor) -> Response:
    return _edit_page(request, lang, values=content_to_form(None), errors=[], entry=None)


@router.post("/staff/knowledge/new", dependencies=[Depends(csrf_form)])
def create(
    request: Request, session: DbSession, clock: ClockDep, lang: LanguageDep, principal: Editor, form: Posted
) -> Response:
    values = form_values(form)
    try:
        write = EntryWrite.model_validate(
            {
                "external_id": values["external_id"],
                "content": form_to_data(values, None),
                "note": values["note"][:NOTE_CHARS],
            }
        )
    except ValidationError as exc:
        errors = _errors(exc, lang, strip="content")
        return _edit_page(request, lang, values=values, errors=errors, entry=None, status=422)
    try:
        service.create_entry(
            session, principal, write.external_id, write.content, clock=clock, note=write.note
        )
    except DomainError as exc:
        session.rollback()
        errors = [(lang.gettext("External id"), exc.detail)]
        return _edit_page(request, lang, values=values, errors=errors, entry=None, status=exc.status)
    return RedirectResponse(staff_url(write.external_id) + "?notice=created", status_code=303)


@router.get("/staff/knowledge/entries/{external_id:path}/edit")
def edit_form(
    request: Request, external_id: str, session: DbSession, lang: LanguageDep, principal: Editor
) -> Response:
    entry, working = service.get_working_copy(session, principal, external_id)
    values = content_to_form(working) | {"expected_version": str(entry.version)}
    return _edit_page(request, lang, values=values, errors=[], entry=entry)


@router.post("/staff/knowledge/entries/{external_id:path}/edit", dependencies=[Depends(csrf_form)])
def save(
    request: Request,
    external_id: str,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    principal: Editor,
    form: Posted,
) -> Response:
    entry, working = service.get_working_copy(session, principal, external_id)
    values = form_values(form)
    try:
        update = EntryUpdate.model_validate(
            {"content": form_to_data(values, working), "note": values["note"][:NOTE_CHARS]}
        )
    except ValidationError as exc:
        errors = _errors(exc, lang, strip="content")
        return _edit_page(request, lang, values=values, errors=errors, entry=entry, status=422)
    expected = values["expected_version"]
    try:
        saved = service.update_entry(
            session,
            principal,
            external_id,
            update.content,
            clock=clock,
            note=update.note,
            expected_version=int(expected) if expected.isdigit() else None,
        )
    except DomainError as exc:
        session.rollback()
        errors = [(lang.gettext("Entry"), exc.detail)]
        return _edit_page(request, lang, values=values, errors=errors, entry=entry, status=exc.status)
    notice = "saved" if saved.version != entry.version else "unchanged"
    return RedirectResponse(f"{staff_url(external_id)}?notice={notice}", status_code=303)


# --- Staff: the workflow -----------------------------------------------------------------------------


def _done(external_id: str, notice: str) -> RedirectResponse:
    return RedirectResponse(f"{staff_url(external_id)}?notice={notice}", status_code=303)


@router.post("/staff/knowledge/entries/{external_id:path}/submit", dependencies=[Depends(csrf_form)])
def submit(
    external_id: str, session: DbSession, clock: ClockDep, principal: Editor, form: Posted
) -> Response:
    service.submit_entry(session, principal, external_id, clock=clock, note=_note(form))
    return _done(external_id, "submitted")


@router.post("/staff/knowledge/entries/{external_id:path}/publish", dependencies=[Depends(csrf_form)])
def publish(
    external_id: str, session: DbSession, clock: ClockDep, principal: Publisher, form: Posted
) -> Response:
    service.publish_entry(session, principal, external_id, clock=clock, note=_note(form))
    return _done(external_id, "published")


@router.post("/staff/knowledge/entries/{external_id:path}/reject", dependencies=[Depends(csrf_form)])
def reject(
    external_id: str, session: DbSession, clock: ClockDep, principal: Reviewer, form: Posted
) -> Response:
    service.reject_entry(session, principal, external_id, clock=clock, note=_note(form))
    return _done(external_id, "rejected")


@router.post("/staff/knowledge/entries/{external_id:path}/withdraw", dependencies=[Depends(csrf_form)])
def withdraw(
    external_id: str, session: DbSession, clock: ClockDep, principal: Publisher, form: Posted
) -> Response:
    service.withdraw_entry(session, principal, external_id, clock=clock, note=_note(form))
    return _done(external_id, "withdrawn")


@router.post("/staff/knowledge/entries/{external_id:path}/confirm", dependencies=[Depends(csrf_form)])
def confirm(external_id: str, session: DbSession, clock: ClockDep, principal: Editor) -> Response:
    service.confirm_entry(session, principal, external_id, clock=clock)
    return _done(external_id, "confirmed")


# --- Staff: one entry --------------------------------------------------------------------------------

_DIFF = re.compile(r"(\d{1,9})-(\d{1,9})")


def diff_markup(lines: list[str]) -> Markup:
    """A unified diff for ``<pre>``: added lines in ``<ins>``, removed ones in ``<del>``, all escaped."""
    out: list[Markup] = []
    for line in lines:
        if line.startswith(("+++", "---")):
            out.append(Markup('<span class="diff-file">%s</span>') % line)
        elif line.startswith("@@"):
            out.append(Markup('<span class="diff-hunk">%s</span>') % line)
        elif line.startswith("+"):
            out.append(Markup("<ins>%s</ins>") % line)
        elif line.startswith("-"):
            out.append(Markup("<del>%s</del>") % line)
        else:
            out.append(escape(line))
    return Markup("\n").join(out)


@dataclass
class Actions:
    """The workflow steps the signed-in person may take on an entry now."""

    edit: bool = False
    submit: bool = False
    publish: bool = False
    reject: bool = False
    withdraw: bool = False
    confirm: bool = False

    @property
    def any(self) -> bool:
        return any((self.edit, self.submit, self.publish, self.reject, self.withdraw, self.confirm))


def actions_for(principal: auth.Principal, entry: EntryOut, pending: VersionOut | None) -> Actions:
    in_review = pending is not None and pending.state == VersionState.IN_REVIEW
    own = pending is not None and pending.author == principal.username and "admin" not in principal.roles
    published = entry.status == EntryStatus.PUBLISHED
    draft = pending is not None and pending.state == VersionState.DRAFT
    return Actions(
        edit=principal.can("knowledge:edit") and not entry.external_id.startswith(service.CATALOG_PREFIX),
        submit=draft and principal.can("knowledge:edit"),
        publish=in_review and principal.can("knowledge:publish") and not own,
        reject=in_review and principal.can("knowledge:review"),
        withdraw=published and principal.can("knowledge:publish"),
        confirm=published and principal.can("knowledge:edit"),
    )


@router.get("/staff/knowledge/entries/{external_id:path}")
def staff_entry(
    request: Request,
    external_id: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Editor,
    diff: Annotated[str | None, Query(max_length=40)] = None,
    notice: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    entry, working = service.get_working_copy(session, principal, external_id)
    versions = service.list_versions(session, principal, external_id)
    pending = next((v for v in versions if v.version == entry.pending_version), None)
    diff_out, diff_body, diff_error = None, None, None
    if diff:
        m = _DIFF.fullmatch(diff.strip())
        if m is None:
            diff_error = lang.gettext("Say which versions to compare as FROM-TO, for example 1-2.")
        else:
            try:
                diff_out = service.diff_versions(
                    session, principal, external_id, int(m.group(1)), int(m.group(2))
                )
                diff_body = diff_markup(diff_out.unified)
            except NotFound as exc:
                diff_error = exc.detail
    compare = None
    if entry.published_version and entry.pending_version:
        compare = f"{entry.published_version}-{entry.pending_version}"
    context = {
        "entry": entry,
        "c": working,
        "sections": _sections(working),
        "versions": versions,
        "pending": pending,
        "actions": actions_for(principal, entry, pending),
        "diff": diff_out,
        "diff_body": diff_body,
        "diff_error": diff_error,
        "compare": compare,
        "notice": _notice(lang, notice),
        **_context(lang),
    }
    return render_page(request, lang, "knowledge/staff_entry.html", context)
