"""HTML pages of the consultation: the portal's chat (问) and situation guidance.

The chat works without JavaScript: ``POST /consult`` is a plain form post that renders the page with the
answer. With JavaScript, ``consult.js`` posts the same form to ``POST /consult/stream`` and shows the same
answer as it arrives (Server-Sent Events). Both call :func:`tongban.consult.service.consult` once; the
answer is grounded — every sentence checked against the passages it quotes — before anything is sent.

Situation guidance (``/consult/guide/{code}``) is a GET form: one question at a time, the answers so far
carried in the address (``a.<question>=<option>``), so every step is a bookmarkable page and needs no
script. Operators configure the consultation agents on ``/staff/consult/agents`` (no code).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from tongban.catalog import service as catalog_service
from tongban.consult import guidance, service
from tongban.consult.api import chat_model
from tongban.consult.schemas import AgentIn, AgentOut, ConsultIn, ConsultOut, RefusalReason
from tongban.consult.schemas import Language as AnswerLanguage
from tongban.core import auth
from tongban.core.clock import Clock
from tongban.core.errors import Conflict, DomainError, InvalidInput, PreconditionFailed
from tongban.core.http import (
    ClockDep,
    DbSession,
    LanguageDep,
    csrf_form,
    problem_response,
    public_with_principal,
    render_page,
    require,
)
from tongban.core.i18n import LOCALES, Language
from tongban.core.messages import N_
from tongban.knowledge import service as knowledge_service
from tongban.knowledge.api import Holder
from tongban.knowledge.pages import Posted, entry_url
from tongban.knowledge.schemas import Kind

router = APIRouter(include_in_schema=False)
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]
ChatModel = Annotated[Any, Depends(chat_model)]

#: The longest question the form accepts (the schema's limit).
MAX_QUESTION_CHARS = 500
#: Streamed pieces of the answer: whole clauses, merged up to at least ``PIECE_MIN`` characters and cut
#: at ``PIECE_MAX`` when a clause runs on without punctuation.
PIECE_MIN = 10
PIECE_MAX = 30

#: The languages an answer may be asked in, each named in itself.
ANSWER_LANGUAGES: tuple[tuple[str, str], ...] = (
    (AnswerLanguage.ZH_HANS.value, "简体中文"),
    (AnswerLanguage.ZH_HANT.value, "繁體中文"),
    (AnswerLanguage.EN.value, "English"),
)
#: Refusals after which the service's first "next question" is a rephrasing hint, not a question.
HINTED = frozenset({RefusalReason.NO_SUPPORT, RefusalReason.NOT_COVERED})
#: Refusals a person at the hotline may still help with.
HANDOFF = frozenset({RefusalReason.NO_SUPPORT, RefusalReason.NOT_COVERED, RefusalReason.UNGROUNDED})
_CONVERSATION_ID = re.compile(r"[0-9a-f]{32}")


def item_url(code: str) -> str:
    """The portal's page of a catalogue service item."""
    return "/catalog/items/" + quote(code, safe="")


def safe_link(url: str | None) -> str | None:
    """A hand-off address the page may link to: a web address or a path on this site, nothing else."""
    if url and (
        url.startswith(("https://", "http://")) or (url.startswith("/") and not url.startswith("//"))
    ):
        return url
    return None


def answer_lang(out: ConsultOut) -> str:
    """The language of the answer's text: the offline reader quotes the (Chinese) documents as they are."""
    if out.mode == "extractive":
        return "zh-Hant" if out.language == AnswerLanguage.ZH_HANT else "zh-Hans"
    return out.language.value


# --- Streaming ---------------------------------------------------------------------------------------

_CLAUSE_END = re.compile(r"(?<=[。！？；，、：,.;:!?\n])")


def answer_pieces(text: str, low: int = PIECE_MIN, high: int = PIECE_MAX) -> list[str]:
    """The answer in pieces for streaming: clauses, short ones merged, long ones cut; joined they are the
    text exactly."""
    pieces: list[str] = []
    current = ""
    for clause in _CLAUSE_END.split(text):
        if current and len(current) + len(clause) > high:
            pieces.append(current)
            current = ""
        while len(clause) > high:
            pieces.append(clause[:high])
            clause = clause[high:]
        current += clause
        if len(current) >= low:
            pieces.append(current)
            current = ""
    if current:
        if pieces and len(pieces[-1]) + len(current) <= high:
            pieces[-1] += current
        else:
            pieces.append(current)
    return pieces


def sse_event(event: str, data: Any) -> str:
    """One Server-Sent Event; the data is JSON on one line (newlines in text are escaped by JSON)."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def answer_events(out: ConsultOut, guides: dict[str, str] | None = None) -> list[str]:
    """``meta``, the answer as ``delta`` pieces, then ``done`` with the whole :class:`ConsultOut` (and
    ``guides``: the situation-guidance page of each suggested item that has one, by item code)."""
    meta = {"conversation_id": out.conversation_id, "refused": out.refused, "language": answer_lang(out)}
    events = [sse_event("meta", meta)]
    events += [sse_event("delta", piece) for piece in answer_pieces(out.answer)]
    events.append(sse_event("done", {**out.model_dump(mode="json"), "guides": guides or {}}))
    return events


async def _paced(events: Iterable[str]) -> AsyncIterator[str]:
    # No artificial pacing: the pieces go out as fast as the connection takes them.
    for event in events:
        yield event


# --- The form ----------------------------------------------------------------------------------------


@dataclass
class Asked:
    """What the chat form sent, trimmed; unknown choices fall back to the defaults."""

    question: str = ""
    conversation_id: str | None = None
    language: str = AnswerLanguage.ZH_HANS.value
    domain: str = ""


def default_answer_language(lang: Language) -> str:
    return AnswerLanguage.EN.value if lang.code == "en" else AnswerLanguage.ZH_HANS.value


def conversation_id_or_none(value: Any) -> str | None:
    """A well-formed conversation id, else None (a malformed one starts a new conversation)."""
    text = value.strip() if isinstance(value, str) else ""
    return text if _CONVERSATION_ID.fullmatch(text) else None


def read_form(form: FormData, lang: Language) -> Asked:
    def text(name: str, limit: int) -> str:
        value = form.get(name)
        # Browsers send a textarea's line breaks as CRLF.
        return value.replace("\r\n", "\n").strip()[:limit] if isinstance(value, str) else ""

    language = text("language", 20)
    return Asked(
        question=text("question", 20_000),
        conversation_id=conversation_id_or_none(form.get("conversation_id")),
        language=language
        if language in {code for code, _ in ANSWER_LANGUAGES}
        else default_answer_language(lang),
        domain=text("domain", 100),
    )


def validate(asked: Asked, agents: list[AgentOut], lang: Language) -> tuple[ConsultIn | None, dict[str, str]]:
    """The service's input, or messages by field (``question``, ``domain``) for the form."""
    errors: dict[str, str] = {}
    if not asked.question:
        errors["question"] = lang.gettext("Enter your question.")
    elif len(asked.question) > MAX_QUESTION_CHARS:
        errors["question"] = lang.gettext(
            "Your question is too long: it has %(num)s characters, at most %(max)s are allowed."
        ) % {"num": len(asked.question), "max": MAX_QUESTION_CHARS}
    if asked.domain and asked.domain not in {a.code for a in agents}:
        errors["domain"] = lang.gettext("Choose a topic from the list.")
    if errors:
        return None, errors
    data = ConsultIn(
        question=asked.question,
        conversation_id=asked.conversation_id,
        language=AnswerLanguage(asked.language),
        domain=asked.domain or None,
    )
    return data, {}


# --- What the page shows -----------------------------------------------------------------------------


@dataclass
class SourceView:
    title: str
    url: str
    quote: str = ""
    version: int = 0
    heading: str = ""


@dataclass
class AnswerView:
    """The latest answer as the page shows it."""

    question: str
    out: ConsultOut
    lang: str
    sources: list[SourceView]
    items: list[tuple[str, str]]
    next_questions: list[str]
    hint: str
    hotline: str
    handoff_url: str | None


@dataclass
class TurnView:
    """An earlier turn of the conversation (as stored: personal numbers masked, no quotes)."""

    question: str
    answer: str
    refused: bool
    reason_text: str
    sources: list[SourceView] = field(default_factory=list)


def answer_view(question: str, out: ConsultOut, lang: Language) -> AnswerView:
    next_questions = list(out.next_questions)
    hint = ""
    if out.refused and out.reason in HINTED and next_questions:
        hint = next_questions.pop(0)  # the service's rephrasing advice, in the answer's language
    elif out.refused and out.reason in (RefusalReason.UNGROUNDED, RefusalReason.INSTRUCTION):
        hint = lang.gettext("Try asking again in other words, naming the service or policy you mean.")
    hotline = ""
    if out.refused and out.reason in HANDOFF and "12345" not in out.reason_text:
        hotline = lang.gettext("For help from a person, call the 12345 government service hotline.")
    return AnswerView(
        question=question,
        out=out,
        lang=answer_lang(out),
        sources=[SourceView(c.title, entry_url(c.id), c.quote, c.version, c.heading) for c in out.citations],
        items=[(i.name, item_url(i.code)) for i in out.service_items],
        next_questions=next_questions,
        hint=hint,
        hotline=hotline,
        handoff_url=safe_link(out.handoff_url),
    )


def _reason_text(reason: str, language: str) -> str:
    try:
        return service.reason_text(RefusalReason(reason), AnswerLanguage(language))
    except ValueError:
        return ""


def earlier_turns(
    session: Session,
    principal: auth.Principal,
    conversation_id: str | None,
    *,
    clock: Clock,
    language: str,
) -> list[TurnView]:
    """The conversation's turns, or none when it is unknown or expired (the next question starts afresh)."""
    if conversation_id is None:
        return []
    try:
        turns = service.history(session, principal, conversation_id, clock=clock)
    except DomainError:
        return []
    titles: dict[str, str] = {}

    def title(external_id: str) -> str:
        if external_id not in titles:
            try:
                entry = knowledge_service.get_entry(session, auth.ANONYMOUS, external_id)
                titles[external_id] = entry.content.title
            except DomainError:  # withdrawn since: the id still says what was quoted
                titles[external_id] = external_id
        return titles[external_id]

    views = []
    for t in turns:
        ids = list(dict.fromkeys(str(c.get("id", "")) for c in t.get("citations") or [] if c.get("id")))
        views.append(
            TurnView(
                question=str(t.get("question", "")),
                answer=str(t.get("answer", "")),
                refused=bool(t.get("refused")),
                reason_text=_reason_text(str(t.get("reason") or ""), language) if t.get("refused") else "",
                sources=[SourceView(title(i), entry_url(i)) for i in ids],
            )
        )
    return views


def _query_suffix(request: Request) -> str:
    """``?lang=`` when the page's language came from the address, so the form's answer keeps it."""
    code = request.query_params.get("lang")
    return "?" + urlencode({"lang": code}) if code in LOCALES else ""


def _chat_page(
    request: Request,
    session: Session,
    lang: Language,
    *,
    asked: Asked,
    turns: list[TurnView],
    answer: AnswerView | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    agents = service.list_agents(session, enabled_only=True)
    suffix = _query_suffix(request)
    conversation_id = answer.out.conversation_id if answer else (asked.conversation_id if turns else None)
    context = {
        "asked": asked,
        "question_value": asked.question if errors else "",
        "conversation_id": conversation_id or "",
        "turns": turns,
        "answer": answer,
        "errors": errors or {},
        "agents": [(a.code, a.name_en if lang.code == "en" and a.name_en else a.name) for a in agents],
        "answer_languages": ANSWER_LANGUAGES,
        "action": "/consult" + suffix,
        "stream_action": "/consult/stream" + suffix,
        "max_chars": MAX_QUESTION_CHARS,
        # the guidance page of each suggested item that has one, by the item's address
        "guides": {item_url(c): url for c, url in guide_links(session, answer.out).items()} if answer else {},
    }
    if conversation_id:  # the language switch comes back to this conversation
        context["here"] = "/consult?" + urlencode({"conversation_id": conversation_id})
    return render_page(request, lang, "consult/chat.html", context, status=status)


# --- Routes ------------------------------------------------------------------------------------------


@router.get("/consult")
def chat_page(
    request: Request,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    principal: Anyone,
    conversation_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    asked = Asked(
        conversation_id=conversation_id_or_none(conversation_id), language=default_answer_language(lang)
    )
    turns = earlier_turns(session, principal, asked.conversation_id, clock=clock, language=asked.language)
    return _chat_page(request, session, lang, asked=asked, turns=turns)


@router.post("/consult", dependencies=[Depends(csrf_form)])
def ask(
    request: Request,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    holder: Holder,
    principal: Anyone,
    model: ChatModel,
    form: Posted,
) -> Response:
    """The form post of browsers without JavaScript: the page again, with the answer."""
    asked = read_form(form, lang)
    data, errors = validate(asked, service.list_agents(session, enabled_only=True), lang)
    if data is not None:
        try:
            out = service.consult(
                session, holder, principal, data, clock=clock, model=model, handoff_base=service.HOTLINE_FORM
            )
        except DomainError as exc:
            session.rollback()
            errors = {"domain" if asked.domain else "question": exc.detail}
        else:
            turns = earlier_turns(
                session, principal, out.conversation_id, clock=clock, language=asked.language
            )
            view = answer_view(asked.question, out, lang)
            return _chat_page(request, session, lang, asked=asked, turns=turns[:-1], answer=view)
    turns = earlier_turns(session, principal, asked.conversation_id, clock=clock, language=asked.language)
    return _chat_page(request, session, lang, asked=asked, turns=turns, errors=errors, status=422)


@router.post("/consult/stream", dependencies=[Depends(csrf_form)])
def ask_streamed(
    request: Request,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    holder: Holder,
    principal: Anyone,
    model: ChatModel,
    form: Posted,
) -> Response:
    """The same question for ``consult.js``: the answer as Server-Sent Events (``meta``, ``delta``…,
    ``done``). Input errors are problem+json; the script then posts the form normally to show them."""
    asked = read_form(form, lang)
    data, errors = validate(asked, service.list_agents(session, enabled_only=True), lang)
    if data is None:
        detail = " ".join(errors.values())
        return problem_response(422, "invalid-input", "Invalid input", detail, errors=errors)
    try:
        out = service.consult(
            session, holder, principal, data, clock=clock, model=model, handoff_base=service.HOTLINE_FORM
        )
    except DomainError as exc:
        session.rollback()
        return problem_response(exc.status, exc.slug, exc.title, exc.detail)
    # Design rule: only the final answer is streamed. The service has composed it and checked every
    # sentence against the passages it cites (and dropped or refused what failed) before this line, so
    # the pieces below are cuts of that checked text — never a language model's raw tokens, which could
    # show a reader something the grounding check would have removed.
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    events = answer_events(out, guide_links(session, out))
    return StreamingResponse(_paced(events), media_type="text/event-stream", headers=headers)


# --- Staff: consultation agents ----------------------------------------------------------------------

Operator = Annotated[auth.Principal, Depends(require(service.PERMISSION_AGENTS))]

#: The knowledge kinds an agent may be limited to (service items are suggested separately, never quoted).
AGENT_KINDS: tuple[tuple[str, str], ...] = (
    (Kind.POLICY.value, N_("Policy")),
    (Kind.GUIDE.value, N_("Guide")),
    (Kind.FAQ.value, N_("Question and answer")),
    (Kind.ARTICLE.value, N_("Article")),
)
#: Departments and regions of an agent's scope: at most this many lines of at most ``SCOPE_LINE_CHARS``.
MAX_SCOPE_LINES = 50
SCOPE_LINE_CHARS = 100
#: The agent form's text fields, with the most characters read of each.
AGENT_FIELDS: dict[str, int] = {
    "code": 200,
    "name": 1000,
    "name_en": 1000,
    "description": 20_000,
    "instructions": 40_000,
    "examples": 100_000,
    "keywords": 100_000,
    "departments": 100_000,
    "regions": 100_000,
    "expected_version": 20,
}
#: What a redirect to the list may announce (``?notice=``); anything else is ignored.
AGENT_NOTICES: dict[str, str] = {
    "created": N_("The agent was created."),
    "saved": N_("The agent was saved as a new version."),
    "unchanged": N_("Nothing was changed, so no new version was made."),
}


@dataclass
class AgentForm:
    """What the agent form shows: its text fields as typed, the ticked kinds and whether it is enabled."""

    text: dict[str, str]
    kinds: list[str]
    enabled: bool


def _lines(value: str) -> list[str]:
    """One item per non-empty line, trimmed, repeats dropped (a textarea's CRLF breaks included)."""
    return list(dict.fromkeys(line.strip() for line in value.splitlines() if line.strip()))


def agent_form(agent: AgentOut | None) -> AgentForm:
    """The form filled from an agent (or empty, enabled, for a new one)."""
    if agent is None:
        return AgentForm({name: "" for name in AGENT_FIELDS}, [], True)
    scope = agent.scope
    text = {
        "code": agent.code,
        "name": agent.name,
        "name_en": agent.name_en,
        "description": agent.description,
        "instructions": agent.instructions,
        "examples": "\n".join(agent.examples),
        "keywords": "\n".join(agent.keywords),
        "departments": "\n".join(scope.get("departments", [])),
        "regions": "\n".join(scope.get("regions", [])),
        "expected_version": str(agent.version),
    }
    return AgentForm(text, list(scope.get("kinds", [])), agent.enabled)


def read_agent_form(form: FormData) -> AgentForm:
    def text(name: str, limit: int) -> str:
        value = form.get(name)
        return value.replace("\r\n", "\n")[:limit] if isinstance(value, str) else ""

    values = {name: text(name, limit) for name, limit in AGENT_FIELDS.items()}
    for name in ("code", "name", "name_en", "expected_version"):
        values[name] = values[name].strip()
    kinds = [k for k in form.getlist("kinds") if isinstance(k, str)]
    return AgentForm(values, list(dict.fromkeys(kinds)), form.get("enabled") is not None)


def _agent_error(error: Any, lang: Language) -> str:
    """A validation error of :class:`AgentIn` in the page's words."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    loc = [str(p) for p in error.get("loc", ())]
    if loc[:1] == ["code"] and kind == "string_pattern_mismatch":
        return lang.gettext(
            "Use 2 to 64 lowercase letters, digits, hyphens or underscores, starting with a letter."
        )
    if loc == ["name"] and kind == "string_too_short":
        return lang.gettext("Enter a name.")
    if kind == "too_long":
        return lang.gettext("Give at most %(max)s lines.") % {"max": ctx.get("max_length", "")}
    if kind == "string_too_long":
        limit = {"max": ctx.get("max_length", "")}
        if len(loc) > 1:
            return lang.gettext("Line %(line)s is too long: at most %(max)s characters are allowed.") % {
                "line": int(loc[1]) + 1,
                **limit,
            }
        return lang.gettext("Too long: at most %(max)s characters are allowed.") % limit
    if kind == "string_too_short" and len(loc) > 1:
        return lang.gettext("Line %(line)s is too short: at least %(min)s characters are needed.") % {
            "line": int(loc[1]) + 1,
            "min": ctx.get("min_length", ""),
        }
    return str(error.get("msg", ""))


def validate_agent(
    form: AgentForm, code: str | None, lang: Language
) -> tuple[AgentIn | None, dict[str, str]]:
    """The service's input, or messages by form field (``kinds``, ``departments`` … included)."""
    errors: dict[str, str] = {}
    known = {k for k, _ in AGENT_KINDS}
    if any(k not in known for k in form.kinds):
        errors["kinds"] = lang.gettext("Choose kinds from the list.")
    scope: dict[str, list[str]] = {"kinds": [k for k in form.kinds if k in known]}
    for name in ("departments", "regions"):
        lines = _lines(form.text[name])
        scope[name] = lines
        if len(lines) > MAX_SCOPE_LINES:
            errors[name] = lang.gettext("Give at most %(max)s lines.") % {"max": MAX_SCOPE_LINES}
        elif any(len(line) > SCOPE_LINE_CHARS for line in lines):
            number = next(i for i, line in enumerate(lines, 1) if len(line) > SCOPE_LINE_CHARS)
            errors[name] = lang.gettext(
                "Line %(line)s is too long: at most %(max)s characters are allowed."
            ) % {"line": number, "max": SCOPE_LINE_CHARS}
    raw = {
        "code": code if code is not None else form.text["code"],
        "name": form.text["name"],
        "name_en": form.text["name_en"],
        "description": form.text["description"].strip(),
        "instructions": form.text["instructions"].strip(),
        "examples": _lines(form.text["examples"]),
        "keywords": _lines(form.text["keywords"]),
        "scope": {k: v for k, v in scope.items() if v},
        "enabled": form.enabled,
    }
    try:
        data = AgentIn.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error.get("loc", ("",))[0])
            errors.setdefault(name, _agent_error(error, lang))
        return None, errors
    return (None, errors) if errors else (data, {})


def agent_url(code: str) -> str:
    return "/staff/consult/agents/" + quote(code, safe="") + "/edit"


def _updated(value: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


#: The form's fields in the order the page shows them, so that the error summary follows the page.
AGENT_FIELD_ORDER = (
    "code",
    "name",
    "name_en",
    "description",
    "instructions",
    "examples",
    "keywords",
    "kinds",
    "departments",
    "regions",
)


def _agent_edit_page(
    request: Request,
    lang: Language,
    *,
    form: AgentForm,
    agent: AgentOut | None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    errors = errors or {}
    ordered = {name: errors[name] for name in AGENT_FIELD_ORDER if name in errors}
    ordered.update({name: msg for name, msg in errors.items() if name not in ordered})
    context = {
        "agent": agent,
        "v": form.text,
        "kinds": form.kinds,
        "enabled": form.enabled,
        "errors": ordered,
        "kind_choices": [(code, lang.gettext(label)) for code, label in AGENT_KINDS],
        "action": agent_url(agent.code) if agent else "/staff/consult/agents/new",
        "max_lines": MAX_SCOPE_LINES,
    }
    return render_page(request, lang, "consult/staff_agent_edit.html", context, status=status)


@router.get("/staff/consult/agents")
def agents_page(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Operator,
    notice: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    agents = service.list_agents(session)
    context = {
        "agents": agents,
        "updated": {a.code: _updated(a.updated_at) for a in agents},
        "kind_labels": {code: lang.gettext(label) for code, label in AGENT_KINDS},
        "agent_url": agent_url,
        "notice": lang.gettext(AGENT_NOTICES[notice]) if notice in AGENT_NOTICES else None,
    }
    return render_page(request, lang, "consult/staff_agents.html", context)


@router.get("/staff/consult/agents/new")
def new_agent_form(request: Request, lang: LanguageDep, principal: Operator) -> Response:
    return _agent_edit_page(request, lang, form=agent_form(None), agent=None)


@router.post("/staff/consult/agents/new", dependencies=[Depends(csrf_form)])
def create_agent(
    request: Request,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    principal: Operator,
    form: Posted,
) -> Response:
    values = read_agent_form(form)
    data, errors = validate_agent(values, None, lang)
    if data is None:
        return _agent_edit_page(request, lang, form=values, agent=None, errors=errors, status=422)
    try:
        service.save_agent(session, principal, data, clock=clock, create=True)
    except Conflict:
        errors = {"code": lang.gettext("An agent with this code exists already; edit that one instead.")}
        return _agent_edit_page(request, lang, form=values, agent=None, errors=errors, status=409)
    return RedirectResponse("/staff/consult/agents?notice=created", status_code=303)


@router.get("/staff/consult/agents/{code}/edit")
def edit_agent_form(
    request: Request, code: str, session: DbSession, lang: LanguageDep, principal: Operator
) -> Response:
    agent = service.get_agent(session, code)
    return _agent_edit_page(request, lang, form=agent_form(agent), agent=agent)


@router.post("/staff/consult/agents/{code}/edit", dependencies=[Depends(csrf_form)])
def update_agent(
    request: Request,
    code: str,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    principal: Operator,
    form: Posted,
) -> Response:
    agent = service.get_agent(session, code)
    values = read_agent_form(form)
    values.text["code"] = agent.code  # the code cannot change
    data, errors = validate_agent(values, agent.code, lang)
    if data is None:
        return _agent_edit_page(request, lang, form=values, agent=agent, errors=errors, status=422)
    expected = values.text["expected_version"]
    try:
        saved = service.save_agent(
            session,
            principal,
            data,
            clock=clock,
            expected_version=int(expected) if expected.isdigit() else None,
        )
    except PreconditionFailed:
        # Saved by someone else since the form was opened: show the form again, now based on their
        # version, so that saving once more knowingly replaces it.
        message = lang.gettext(
            "Someone else saved this agent (version %(version)s) after you opened the form. Check your "
            "changes and save again to replace theirs."
        ) % {"version": agent.version}
        values.text["expected_version"] = str(agent.version)
        errors = {"expected_version": message}
        return _agent_edit_page(request, lang, form=values, agent=agent, errors=errors, status=412)
    notice = "unchanged" if saved.version == agent.version else "saved"
    return RedirectResponse(f"/staff/consult/agents?notice={notice}", status_code=303)


# --- Situation guidance (情形引导) ---------------------------------------------------------------------

#: Answers travel in the address as ``a.<question key>=<option key>``.
ANSWER_PREFIX = "a."
#: The most answers read from an address (an item has at most 20 questions).
MAX_ANSWERS = 20


def guide_url(code: str, answers: Iterable[tuple[str, str]] = (), lang: str | None = None) -> str:
    """The guidance page of an item with the answers so far (and ``lang`` when the address named it)."""
    params = [(ANSWER_PREFIX + key, value) for key, value in answers]
    if lang:
        params.append(("lang", lang))
    query = urlencode(params)
    return "/consult/guide/" + quote(code, safe="") + ("?" + query if query else "")


def read_answers(request: Request) -> list[tuple[str, str]]:
    """The answers in the address, in its order; the first value of a repeated question counts."""
    answers: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name.startswith(ANSWER_PREFIX) and len(answers) < MAX_ANSWERS:
            answers.setdefault(name[len(ANSWER_PREFIX) :][:100], value.strip()[:100])
    return list(answers.items())


def guide_language(lang: Language) -> str:
    return AnswerLanguage.EN.value if lang.code == "en" else AnswerLanguage.ZH_HANS.value


def guide_links(session: Session, out: ConsultOut) -> dict[str, str]:
    """The guidance page of each suggested service item that has one, by item code (the set of guided
    suggested item is read, and only when there are suggestions)."""
    if not out.service_items:
        return {}
    guided = guidance.guided(session, (i.code for i in out.service_items))
    return {i.code: guide_url(i.code) for i in out.service_items if i.code in guided}


@dataclass
class AnsweredView:
    question: str
    answer: str
    #: The page without this answer and those after it: the question is asked again.
    change_url: str


@router.get("/consult/guide")
def guide_index(request: Request, session: DbSession, lang: LanguageDep, principal: Anyone) -> Response:
    code = request.query_params.get("lang")
    shown = code if code in LOCALES else None
    items = [(name, guide_url(item, lang=shown)) for item, name in guidance.items_with_situations(session)]
    return render_page(request, lang, "consult/guide_index.html", {"items": items})


@router.get("/consult/guide/{code}")
def guide_page(
    request: Request, code: str, session: DbSession, lang: LanguageDep, principal: Anyone
) -> Response:
    language = guide_language(lang)
    shown = request.query_params.get("lang")
    shown = shown if shown in LOCALES else None
    answers = read_answers(request)
    error = None
    # Questions in their order (an address may carry the answers in any order).
    content = catalog_service.get_item(session, auth.ANONYMOUS, code).content
    order = [q.key for q in guidance.situation_questions(content)]
    try:
        step = guidance.guide(session, code, dict(answers), language=language)
    except InvalidInput:
        # Keep the answers before the first one that does not fit, and ask the next question again.
        error = lang.gettext("That answer is not one of the choices. Please choose one of the answers below.")
        kept: list[tuple[str, str]] = []
        step = guidance.guide(session, code, {}, language=language)
        for pair in answers:
            try:
                step = guidance.guide(session, code, dict([*kept, pair]), language=language)
            except InvalidInput:
                break
            kept.append(pair)
        answers = kept
    given = dict(answers)
    keys = [k for k in order if k in given]
    answered = [
        AnsweredView(question, answer, guide_url(code, [(k, given[k]) for k in keys[:n]], shown))
        for n, (question, answer) in enumerate(step.answered)
    ]
    context = {
        "step": step,
        "answered": answered,
        "hidden": [(ANSWER_PREFIX + k, given[k]) for k in keys],
        "lang_param": shown,
        "action": "/consult/guide/" + quote(code, safe=""),
        "restart_url": guide_url(code, lang=shown),
        "item_url": item_url(code),
        "apply_url": safe_link(step.checklist.apply_url) if step.checklist else None,
        "online_url": safe_link(step.checklist.online_url) if step.checklist else None,
        "error": error,
    }
    return render_page(request, lang, "consult/guide.html", context, status=422 if error else 200)
