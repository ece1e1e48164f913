"""JSON API: ``POST /api/v1/consult`` for everyone; agents for consultation operators."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response

from tongban.consult import service
from tongban.consult.schemas import AgentIn, AgentOut, ConsultIn, ConsultOut
from tongban.core import auth
from tongban.core.errors import InvalidInput
from tongban.core.http import (
    ClockDep,
    DbSession,
    RawBody,
    idempotent,
    parse_if_match,
    public_with_principal,
    require,
)
from tongban.core.llm import get_chat_model
from tongban.knowledge.api import Holder

router = APIRouter(prefix="/api/v1", tags=["consult"])
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]
Operator = Annotated[auth.Principal, Depends(require(service.PERMISSION_AGENTS))]
Reader = Annotated[auth.Principal, Depends(require("consult:read"))]


def chat_model(request: Request) -> Any:
    """The configured language model, or None (the offline extractive reader answers)."""
    return get_chat_model(request.app.state.runtime.settings)


@router.post("/consult", responses={200: {"model": ConsultOut}})
def consult(
    request: Request,
    body: ConsultIn,
    raw: RawBody,
    session: DbSession,
    clock: ClockDep,
    holder: Holder,
    principal: Anyone,
    model: Annotated[Any, Depends(chat_model)],
) -> Any:
    """Answer a question from published knowledge with citations, or refuse with a reason and a way
    forward. Send ``Idempotency-Key`` so a retried request does not become a second turn."""

    def produce() -> tuple[int, Any]:
        return 200, service.consult(
            session, holder, principal, body, clock=clock, model=model, handoff_base=service.HOTLINE_FORM
        )

    return idempotent(request, session, principal, raw, produce)


@router.get("/consult/conversations/{conversation_id}")
def conversation(
    conversation_id: str, session: DbSession, clock: ClockDep, principal: Anyone
) -> list[dict[str, Any]]:
    """The turns of a conversation that has not expired (questions with personal numbers masked)."""
    return service.history(session, principal, conversation_id, clock=clock)


@router.get("/consult/agents")
def agents(session: DbSession, principal: Anyone) -> list[AgentOut]:
    """The enabled agents (everyone), or all of them (consultation operators)."""
    return service.list_agents(session, enabled_only=not principal.can(service.PERMISSION_AGENTS))


@router.put("/consult/agents/{code}")
def save_agent(
    code: str,
    body: AgentIn,
    response: Response,
    session: DbSession,
    clock: ClockDep,
    principal: Operator,
    if_match: Annotated[str | None, Header()] = None,
) -> AgentOut:
    """Create or replace an agent; the code in the path and the body must agree. Send ``If-Match`` with the
    ``ETag`` you read to refuse replacing a version someone saved since (412)."""
    if body.code != code:
        raise InvalidInput("the agent code in the path and in the body differ")
    agent = service.save_agent(
        session, principal, body, clock=clock, expected_version=parse_if_match(if_match)
    )
    response.headers["ETag"] = f'W/"{agent.code}-{agent.version}"'
    return agent
