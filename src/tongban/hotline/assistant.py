"""The operator's assistant (坐席助手): while a ticket is open, what helps the operator decide.

* the classifier's suggested category with its explanation, and the dispatch plan for the category
  (the ticket's own when known, else the suggestion's);
* similar past tickets that have a reply (replied, answered directly or closed), with that reply: a
  bounded set of candidates (the newest :data:`CANDIDATES` of the same level-1 category when the category
  is known) scored by :func:`service.text_similarity` (Dice of character bigrams; the
  candidates' bigrams are kept between pages);
* grounded answers from the knowledge hub for questions that need no dispatch (直接答复): the
  consultation's extractive reader over the hub's retrieval, with its sources; when nothing in the
  knowledge supports an answer the assistant says so, and lists the closest entries only as leads.
  The hub is asked with the ticket's text while the ticket is received (a direct answer is possible),
  and with the operator's question at any time.

Nothing here writes except :func:`service.suggest`, which keeps the first suggestion on the ticket (so
corrections can be measured), and the knowledge hub's index sync. No language model is used: every answer
is a quotation of a published knowledge entry. A ticket's page is opened again after each action on it:
the classifier's suggestion for a text and the hub's answer to a question against one state of the index
are kept (least recently used dropped first), so only a first view pays for them.
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from tongban.consult import service as consult
from tongban.core import auth
from tongban.core.auth import Principal
from tongban.core.clock import Clock
from tongban.core.http import WRITES_ROUTE, ClockDep, DbSession, require
from tongban.hotline import repository as repo
from tongban.hotline import service
from tongban.hotline.api import embedder_for
from tongban.hotline.schemas import DispatchPlan, SuggestionOut
from tongban.hotline.vocab import INTAKE, Status
from tongban.knowledge import service as knowledge

#: Answered tickets read as candidates of the similar tickets (the newest first).
CANDIDATES = 2000
#: Similar tickets shown, and the least similarity worth showing.
SIMILAR = 5
MIN_SIMILARITY = 0.12
#: Candidate texts whose bigrams are kept between pages (about 1.5 KB each).
GRAM_CACHE = 20_000
#: Knowledge answers kept per index (recent questions).
ANSWER_CACHE = 2_000
#: Characters of a reply (and of a ticket's text) shown in the list.
EXCERPT = 240
#: Knowledge entries read for an answer, and listed as leads.
READ_ENTRIES = 3
LEADS = 3
#: The longest question put to the knowledge hub (a ticket's text is cut to it).
QUESTION_CHARS = 300
#: Statuses of tickets that have a reply the operator may reuse.
ANSWERED = (Status.REPLIED.value, Status.ANSWERED.value, Status.CLOSED.value)
#: Statuses in which a ticket is no longer open (no assistant).
FINISHED = frozenset({Status.CLOSED.value, Status.MERGED.value, Status.CANCELLED.value})


class SimilarTicketOut(BaseModel):
    """A past ticket like this one, and what was replied to it."""

    ref: str
    subject: str
    #: The start of what the requester said.
    excerpt: str
    category_path: str
    status: str
    #: The unit that replied (None: answered directly by an operator).
    unit: str | None
    unit_name: str
    replied_at: dt.datetime | None
    #: Dice similarity of character bigrams with this ticket's subject and text (0–1).
    score: float
    reply_excerpt: str
    #: The return visit's answer, when there was one.
    resolved: bool | None
    satisfaction: int | None


class KnowledgeCitation(BaseModel):
    """A passage of a published knowledge entry an answer quotes."""

    id: str
    title: str
    version: int
    quote: str
    heading: str = ""
    start: int = 0
    end: int = 0


class KnowledgeLead(BaseModel):
    """A knowledge entry close to the question (a lead to read, not an answer)."""

    id: str
    title: str
    version: int
    kind: str
    excerpt: str
    item_code: str | None = None


class KnowledgeAnswer(BaseModel):
    """What the knowledge hub says to the ticket's question."""

    question: str
    #: Whether ``answer`` is supported by the knowledge (quoted from the cited passages).
    grounded: bool
    answer: str
    #: How likely the knowledge supports the answer (the consultation's support model), 0–1.
    confidence: float
    citations: list[KnowledgeCitation]
    #: Why there is no grounded answer: ``no_index`` (no knowledge hub on this node), ``not_covered``
    #: (the knowledge does not mention names the question gives), ``no_support``, ``not_asked`` (the
    #: ticket is past the operator, so no direct answer: the hub is asked only with a question); "" when
    #: grounded.
    reason: str
    #: The names the knowledge does not mention (``not_covered``).
    missing: list[str]
    leads: list[KnowledgeLead]


class AssistantOut(BaseModel):
    ref: str
    status: str
    request_type: str
    suggestion: SuggestionOut
    #: The category the plan is for: the ticket's (``ticket``), the suggestion's (``suggestion``) or none.
    category_path: str | None
    category_source: str
    plan: DispatchPlan | None
    similar: list[SimilarTicketOut]
    #: How many answered tickets were compared (at most :data:`CANDIDATES`).
    compared: int
    knowledge: KnowledgeAnswer
    #: Whether a direct answer (直接答复) fits: a question (咨询) the knowledge answers, still received.
    direct_answer_fits: bool


def _excerpt(text: str, limit: int = EXCERPT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _GramCache:
    """The :func:`service.gram_codes` of recent candidate texts (least recently used dropped first): the
    candidates of one level-1 category are much the same from one ticket page to the next. Keyed by the
    text itself, so it is never stale."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._codes: OrderedDict[str, npt.NDArray[np.int64]] = OrderedDict()
        self._lock = threading.Lock()

    def codes(self, texts: Sequence[str]) -> list[npt.NDArray[np.int64]]:
        out: list[npt.NDArray[np.int64] | None] = []
        with self._lock:
            for text in texts:
                codes = self._codes.get(text)
                if codes is not None:
                    self._codes.move_to_end(text)
                out.append(codes)
        missing = {t: service.gram_codes(t) for t, c in zip(texts, out, strict=True) if c is None}
        if missing:
            with self._lock:
                self._codes.update(missing)
                while len(self._codes) > self.size:
                    self._codes.popitem(last=False)
        return [c if c is not None else missing[t] for t, c in zip(texts, out, strict=True)]


_grams = _GramCache(GRAM_CACHE)
_answers: weakref.WeakKeyDictionary[Any, OrderedDict[tuple[str, int, dt.date], KnowledgeAnswer]] = (
    weakref.WeakKeyDictionary()
)
_answers_lock = threading.Lock()


def similar_tickets(
    session: Session, ticket_id: int, text: str, level1: str | None
) -> tuple[list[SimilarTicketOut], int]:
    """The answered tickets most like ``text`` (best first), and how many were compared."""
    rows = repo.answered_texts(
        session, exclude_id=ticket_id, statuses=ANSWERED, level1=level1 or None, limit=CANDIDATES
    )
    scores = service.similarities(service.gram_codes(text), _grams.codes([t for _, t in rows]))
    ranked = sorted(
        ((float(s), rows[i][0]) for i, s in enumerate(scores) if s >= MIN_SIMILARITY),
        key=lambda x: (-x[0], -x[1]),
    )[:SIMILAR]
    score_of = dict((i, s) for s, i in ranked)
    best = repo.answered_tickets(session, [i for _, i in ranked])
    names = service.unit_names(session) if best else {}
    out = [
        SimilarTicketOut(
            ref=r.ref,
            subject=r.subject,
            excerpt=_excerpt(r.body, 120),
            category_path=r.category_path,
            status=r.status,
            unit=r.replied_by_unit,
            unit_name=names.get(r.replied_by_unit or "", r.replied_by_unit or ""),
            replied_at=r.replied_at,
            score=round(score_of[r.id], 3),
            reply_excerpt=_excerpt(r.reply),
            resolved=r.resolved,
            satisfaction=r.satisfaction,
        )
        for r in best
    ]
    return out, len(rows)


def _nothing(
    question: str, reason: str, leads: list[KnowledgeLead], missing: list[str] | None = None
) -> KnowledgeAnswer:
    return KnowledgeAnswer(
        question=question,
        grounded=False,
        answer="",
        confidence=0.0,
        citations=[],
        reason=reason,
        missing=missing or [],
        leads=leads,
    )


def knowledge_answer(
    session: Session, holder: knowledge.IndexHolder | None, question: str, *, clock: Clock
) -> KnowledgeAnswer:
    """A grounded answer to ``question`` from the knowledge hub, quoting its sources; or none, with why and
    the closest entries as leads. Nothing is stored (unlike a consultation, no conversation is kept)."""
    question = " ".join(question.replace("\x00", " ").split())[:QUESTION_CHARS]

    if holder is None or not question:
        return _nothing(question, "no_index", [])
    # The same question against the same state of the index on the same day has the same answer: recent
    # ones are kept, per index (a ticket's page asks again on every view).
    index = knowledge.sync_index(session, holder)
    key = (question, index.applied_seq, clock.now().date())
    with _answers_lock:
        answers = _answers.setdefault(index, OrderedDict())
        known = answers.get(key)
        if known is not None:
            answers.move_to_end(key)
            return known
    answer = _knowledge_answer(session, holder, question, clock=clock)
    with _answers_lock:
        answers[key] = answer
        while len(answers) > ANSWER_CACHE:
            answers.popitem(last=False)
    return answer


def _knowledge_answer(
    session: Session, holder: knowledge.IndexHolder, question: str, *, clock: Clock
) -> KnowledgeAnswer:
    retrieval = knowledge.retrieve(session, holder, question, clock=clock, k=max(READ_ENTRIES, LEADS))
    leads: list[KnowledgeLead] = []
    if retrieval.found:
        for entry in retrieval.entries[:LEADS]:
            best = next((p for p in entry.passages if p.seq == entry.best_passage), None)
            leads.append(
                KnowledgeLead(
                    id=entry.id,
                    title=entry.title,
                    version=entry.version,
                    kind=entry.kind,
                    excerpt=_excerpt(best.text if best else "", 160),
                    item_code=entry.item_code,
                )
            )
    docs, missing = consult.covering_documents(question, consult.documents_from(retrieval))
    if missing:
        return _nothing(question, "not_covered", leads, missing)
    composition = consult.compose_extractive(question, docs[:READ_ENTRIES])
    if composition.doc is None or not retrieval.found or not composition.answer:
        return _nothing(question, "no_support", leads)
    support = consult.support_probability(composition, retrieval.strength)
    if support < consult.MIN_SUPPORT:
        return _nothing(question, "no_support", leads)
    citations = [
        KnowledgeCitation(
            id=docs[i].id,
            title=docs[i].title,
            version=docs[i].version,
            quote=p.text,
            heading=p.heading,
            start=p.start,
            end=p.end,
        )
        for i, p in composition.sources
    ]
    return KnowledgeAnswer(
        question=question,
        grounded=True,
        answer=composition.answer,
        confidence=round(support, 3),
        citations=citations,
        reason="",
        missing=[],
        leads=leads,
    )


def assistant(
    session: Session,
    principal: Principal,
    ref: str,
    *,
    embedder: Any,
    holder: knowledge.IndexHolder | None,
    clock: Clock,
    question: str | None = None,
) -> AssistantOut:
    """Everything the assistant offers on the open ticket ``ref`` (operators only). ``holder`` is the
    node's knowledge index (None: no knowledge answers); ``question`` replaces the ticket's text as the
    question put to the knowledge hub."""
    principal.require(INTAKE)
    t = service.get_ticket(session, principal, ref)
    if t.status in FINISHED:
        raise service.WrongStatus(f"{ref} is {t.status}; the assistant helps with open tickets")
    suggestion = service.suggest(session, principal, ref, embedder=embedder, clock=clock)
    if t.category_path:
        category: str | None = t.category_path
        source = "ticket"
    elif suggestion.path or suggestion.category:
        category = suggestion.path or suggestion.category
        source = "suggestion"
    else:
        category, source = None, ""
    plan = service.plan_dispatch(session, category, t.region_code) if category else None
    text = f"{t.subject} {t.body}".strip()
    similar, compared = similar_tickets(session, t.id, text, category.split("/")[0] if category else None)
    # The hub is asked on its own only while a direct answer is possible (the ticket is still received);
    # later (a unit handles it) only when the operator asks a question.
    if (question or "").strip() or t.status == Status.RECEIVED.value:
        answer = knowledge_answer(session, holder, (question or "").strip() or text, clock=clock)
    else:
        answer = _nothing(" ".join(text.split())[:QUESTION_CHARS], "not_asked", [])
    return AssistantOut(
        ref=t.ref,
        status=t.status,
        request_type=t.request_type,
        suggestion=suggestion,
        category_path=category,
        category_source=source,
        plan=plan,
        similar=similar,
        compared=compared,
        knowledge=answer,
        direct_answer_fits=(
            t.status == Status.RECEIVED.value and t.request_type == "consultation" and answer.grounded
        ),
    )


# --- the node's knowledge index -------------------------------------------------------------------------

_holder_lock = threading.Lock()


def knowledge_holder(app: Any) -> knowledge.IndexHolder | None:
    """The node's knowledge index (``app.state.knowledge_index``, shared with the knowledge hub's pages),
    made on first use with the configured embedding model as the hub makes it."""
    state = app.state
    holder: knowledge.IndexHolder | None = getattr(state, "knowledge_index", None)
    if holder is None:
        with _holder_lock:
            holder = getattr(state, "knowledge_index", None)
            if holder is None:
                settings = state.runtime.settings
                holder = knowledge.IndexHolder(
                    knowledge.get_embedder(settings.embedding, settings.embedding_threads)
                )
                state.knowledge_index = holder
    return holder


def _holder(request: Request) -> knowledge.IndexHolder | None:
    return knowledge_holder(request.app)


def _embedder(request: Request) -> Any:
    return embedder_for(request.app)


HolderDep = Annotated[knowledge.IndexHolder | None, Depends(_holder)]
EmbedderDep = Annotated[Any, Depends(_embedder)]

# --- JSON API ----------------------------------------------------------------------------------------------

router = APIRouter(prefix="/api/v1", tags=["hotline"])
Operator = Annotated[auth.Principal, Depends(require(INTAKE))]
Ref = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z]+$")]


@router.get("/tickets/{ref}/assistant", openapi_extra=WRITES_ROUTE)
def ticket_assistant(
    ref: Ref,
    session: DbSession,
    principal: Operator,
    clock: ClockDep,
    embedder: EmbedderDep,
    holder: HolderDep,
    question: Annotated[str | None, Query(max_length=QUESTION_CHARS)] = None,
) -> AssistantOut:
    """The operator's assistant on an open ticket: the suggested category and its dispatch plan, similar
    answered tickets with their replies, and a grounded answer from the knowledge hub with its sources
    (``question`` asks the hub something else than the ticket's text)."""
    return assistant(
        session, principal, ref, embedder=embedder, holder=holder, clock=clock, question=question
    )
