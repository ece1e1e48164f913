"""JSON API of ratings and quality monitoring under ``/api/v1``.

Apps and hall terminals rate cases (``POST /ratings/{kind}/{ref}``); other systems register their cases
(``PUT /ratings/cases/{kind}/{ref}``); units handle rectifications; supervisors and analysts read the
indicators (``/quality/...``); published results are public.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from tongban.core import auth
from tongban.core.errors import InvalidInput
from tongban.core.http import (
    ClockDep,
    DbSession,
    RawBody,
    SealerDep,
    idempotent,
    own_records,
    parse_if_match,
    public,
    public_with_principal,
    public_writing,
    require,
    runtime,
)
from tongban.core.llm import get_chat_model
from tongban.rating import service
from tongban.rating.schemas import (
    AlertOut,
    AppealDecision,
    CaseOut,
    CasePage,
    CaseWrite,
    Filters,
    IndicatorReport,
    PainPointReport,
    PublicationOut,
    RateableOut,
    RatingOut,
    RatingWrite,
    RectificationOut,
    SettingsWrite,
    StepWrite,
    TargetOut,
    TargetWrite,
    VisitWrite,
)
from tongban.rating.vocab import INDICATORS, CaseKind

router = APIRouter(prefix="/api/v1", tags=["ratings"])
Rater = Annotated[auth.Principal, Depends(public_writing)]
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]
Holder = Annotated[auth.Principal, Depends(own_records)]
Unit = Annotated[auth.Principal, Depends(require(service.RECTIFY))]
Supervisor = Annotated[auth.Principal, Depends(require(service.SUPERVISE))]
Monitor = Annotated[auth.Principal, Depends(require(service.MONITOR))]
IfMatch = Annotated[str | None, Header(alias="If-Match")]
#: Row ids: a bad one is a 404 or 422, never an overflow of the database's integer.
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]


def filters(
    date_from: Annotated[str | None, Query(description="first day of closing, YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, Query(description="last day of closing, YYYY-MM-DD")] = None,
    department: str | None = None,
    item_code: str | None = None,
    region_code: str | None = None,
    kind: str | None = None,
    channel: str | None = None,
) -> Filters:
    """The filter of an indicator query, from the query string (a bad value is a 422, never a 500)."""
    raw = {
        "date_from": date_from or None,
        "date_to": date_to or None,
        "department": department or None,
        "item_code": item_code or None,
        "region_code": region_code or None,
        "kind": kind or None,
        "channel": channel or None,
    }
    try:
        return Filters.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "filter"
        raise InvalidInput(f"{where}: {first['msg']}") from exc


FiltersDep = Annotated[Filters, Depends(filters)]


def _chat_model(request: Request) -> Any:
    return get_chat_model(request.app.state.runtime.settings)


# --- ratings -------------------------------------------------------------------------------------------


@router.post("/ratings/{kind}/{ref}", status_code=201, responses={201: {"model": RatingOut}})
def rate(
    request: Request,
    kind: CaseKind,
    ref: str,
    body: RatingWrite,
    raw: RawBody,
    session: DbSession,
    principal: Rater,
    clock: ClockDep,
    model: Annotated[Any, Depends(_chat_model)],
) -> Any:
    """Rate a closed case (an application, hotline ticket, consultation or visit): once, and once more
    after its bad review was rectified. 409 ``already-rated``, ``case-not-closed``, ``rating-window-closed``;
    403 ``not-your-case``. Send ``Idempotency-Key`` to retry safely."""

    def produce() -> tuple[int, Any]:
        return 201, service.rate(session, principal, kind, ref, body, clock=clock, model=model)

    return idempotent(request, session, principal, raw, produce)


@router.get("/ratings/{kind}/{ref}")
def my_case(kind: CaseKind, ref: str, session: DbSession, principal: Anyone, clock: ClockDep) -> RateableOut:
    """A case the caller may rate or has rated: its ratings, whether and until when they may rate, and
    what the unit did about a bad review."""
    return service.my_case(session, principal, kind, ref, clock=clock)


@router.get("/me/ratings")
def my_ratings(session: DbSession, principal: Holder, clock: ClockDep) -> list[RateableOut]:
    return service.my_cases(session, principal, clock=clock)


@router.post(
    "/ratings/visits",
    status_code=201,
    responses={201: {"model": CaseOut}},
    dependencies=[Depends(require(service.VISIT))],
)
def record_visit(
    request: Request, body: VisitWrite, raw: RawBody, session: DbSession, principal: Anyone, clock: ClockDep
) -> Any:
    """Record an in-person visit (window officers); the hall's terminal may then take its rating."""

    def produce() -> tuple[int, Any]:
        return 201, service.record_visit(session, principal, body, clock=clock)

    return idempotent(request, session, principal, raw, produce)


@router.put("/ratings/cases/{kind}/{ref}")
def register_case(
    kind: CaseKind,
    ref: str,
    body: CaseWrite,
    session: DbSession,
    principal: Annotated[auth.Principal, Depends(require(service.CASES))],
    clock: ClockDep,
) -> CaseOut:
    """Another system registers (or updates) one of its cases; closing it opens its rating period.
    Idempotent on ``(kind, ref)``."""
    if len(ref) > 64 or not ref.replace("-", "").replace("_", "").replace(".", "").replace(":", "").isalnum():
        raise InvalidInput("ref: letters, digits and - _ . : (at most 64)")
    return service.record_case(session, principal, kind, ref, body, clock=clock)


# --- rectification --------------------------------------------------------------------------------------


@router.get("/rectifications")
def rectifications(
    session: DbSession,
    principal: Unit,
    clock: ClockDep,
    state: Annotated[str | None, Query(pattern="^(open|contacted|rectified|closed|void)$")] = None,
    overdue: bool = False,
    appeal: Annotated[str | None, Query(pattern="^(none|pending|upheld|rejected)$")] = None,
    page: PageNo = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[RectificationOut]:
    """Rectifications of bad reviews for the caller's units (all units for supervisors), those to act on
    first by deadline; filter by state, ``overdue=true`` or ``appeal=pending``."""
    return service.list_rectifications(
        session,
        principal,
        state=state,
        overdue_only=overdue,
        appeal=appeal,
        clock=clock,
        page=page,
        per_page=per_page,
    )


@router.get("/rectifications/{rect_id}")
def rectification(rect_id: Id, session: DbSession, principal: Unit, clock: ClockDep) -> RectificationOut:
    return service.get_rectification(session, principal, rect_id, clock=clock)


def _etag(response: Response, out: RectificationOut) -> RectificationOut:
    response.headers["ETag"] = f'W/"{out.id}-{out.version}"'
    return out


@router.post("/rectifications/{rect_id}/contact")
def contact(
    rect_id: Id,
    body: StepWrite,
    response: Response,
    session: DbSession,
    principal: Unit,
    clock: ClockDep,
    if_match: IfMatch = None,
) -> RectificationOut:
    """Record the return call (回访) to the rater."""
    out = service.contact(
        session, principal, rect_id, body.note, clock=clock, version=parse_if_match(if_match)
    )
    return _etag(response, out)


@router.post("/rectifications/{rect_id}/rectify")
def rectify(
    rect_id: Id,
    body: StepWrite,
    response: Response,
    session: DbSession,
    principal: Unit,
    clock: ClockDep,
    sealer: SealerDep,
    if_match: IfMatch = None,
) -> RectificationOut:
    """Record the rectification (整改); the rater is invited to rate again."""
    out = service.rectify(
        session, principal, rect_id, body.note, clock=clock, sealer=sealer, version=parse_if_match(if_match)
    )
    return _etag(response, out)


@router.post("/rectifications/{rect_id}/appeal")
def appeal(
    rect_id: Id,
    body: StepWrite,
    response: Response,
    session: DbSession,
    principal: Unit,
    clock: ClockDep,
    if_match: IfMatch = None,
) -> RectificationOut:
    """Appeal (申诉) a rating the unit holds mistaken or malicious; a supervisor decides."""
    out = service.appeal(
        session, principal, rect_id, body.note, clock=clock, version=parse_if_match(if_match)
    )
    return _etag(response, out)


@router.post("/rectifications/{rect_id}/appeal-decision")
def decide_appeal(
    rect_id: Id,
    body: AppealDecision,
    response: Response,
    session: DbSession,
    principal: Supervisor,
    clock: ClockDep,
    if_match: IfMatch = None,
) -> RectificationOut:
    """Decide an appeal (申诉复核): upheld strikes the rating out of every figure."""
    out = service.decide_appeal(
        session,
        principal,
        rect_id,
        upheld=body.upheld,
        note=body.note,
        clock=clock,
        version=parse_if_match(if_match),
    )
    return _etag(response, out)


# --- indicators -------------------------------------------------------------------------------------------


@router.get("/quality/indicator-definitions", dependencies=[Depends(public)])
def indicator_definitions() -> list[dict[str, Any]]:
    """The documented indicator set: code, names, unit, direction and definition."""
    return [
        {
            "code": i.code,
            "name": i.name,
            "name_en": i.name_en,
            "unit": i.unit,
            "higher_is_better": i.higher_is_better,
            "definition": i.definition,
        }
        for i in INDICATORS
    ]


@router.get("/quality/indicators")
def indicators(
    f: FiltersDep,
    session: DbSession,
    principal: Monitor,
    clock: ClockDep,
    group_by: Annotated[str | None, Query(pattern="^(department|item|region|month|kind|channel)$")] = None,
) -> IndicatorReport:
    """Every indicator over the closed cases of the filter, in total and per group."""
    return service.indicators(session, principal, f, group_by=group_by, clock=clock)


def _group(group: str | None) -> tuple[str, str] | None:
    if not group:
        return None
    name, sep, value = group.partition(":")
    if not sep:
        raise InvalidInput("group: <dimension>:<value>, e.g. department:市公安局")
    return name, value


@router.get("/quality/cases")
def cases(
    f: FiltersDep,
    session: DbSession,
    principal: Monitor,
    only: str | None = None,
    level: Annotated[int | None, Query(ge=1, le=5)] = None,
    group: str | None = None,
    page: PageNo = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CasePage:
    """The cases behind an indicator (drill-down): ``only`` = rated, bad, late, supplemented ...;
    ``group`` = ``department:<name>``, ``item:<code>``, ``region:<code>``, ``month:YYYY-MM``."""
    return service.cases(
        session, principal, f, only=only, level=level, group=_group(group), page=page, per_page=per_page
    )


@router.get("/quality/cases.csv", response_class=StreamingResponse)
def cases_csv(
    request: Request, f: FiltersDep, session: DbSession, principal: Monitor, only: str | None = None
) -> StreamingResponse:
    """Every case of the filter as CSV (UTF-8 with BOM, for spreadsheets); no personal data."""
    service.check_export(principal, only)  # before the response starts: a bad filter is a 422
    sessions = runtime(request).sessions

    def rows() -> Iterator[list[Any]]:
        # The request's session is closed once the handler returns; the body streams from its own.
        with sessions() as own:
            yield from service.export_rows(own, principal, f, only=only)

    stream = rows()
    header = next(stream)
    return StreamingResponse(
        _csv_chunks(header, stream),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="quality-cases.csv"'},
    )


def _csv_chunks(header: list[Any], rows: Iterator[list[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    n = 0
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
        n += 1
        if n % 1000 == 0:
            yield _take(buffer, first=n == 1000)
    yield _take(buffer, first=n < 1000)


def _take(buffer: io.StringIO, *, first: bool) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return ("\ufeff" + text) if first else text


@router.get("/quality/pain-points")
def pain_points(f: FiltersDep, session: DbSession, principal: Monitor) -> PainPointReport:
    """Where bad reviews concentrate, which case facts predict them, and their reasons."""
    return service.pain_points(session, principal, f)


# --- rules, targets, alerts, publication ---------------------------------------------------------------


@router.get("/quality/settings")
def get_settings(session: DbSession, principal: Monitor) -> dict[str, int]:
    return service.settings(session)


@router.put("/quality/settings")
def put_settings(
    body: SettingsWrite, session: DbSession, principal: Supervisor, clock: ClockDep
) -> dict[str, int]:
    """Change the rating window, reminders and rectification deadlines (audited)."""
    return service.update_settings(session, principal, body, clock=clock)


@router.get("/quality/targets")
def targets(session: DbSession, principal: Monitor) -> list[TargetOut]:
    return service.list_targets(session, principal)


@router.put("/quality/targets")
def put_target(body: TargetWrite, session: DbSession, principal: Supervisor, clock: ClockDep) -> TargetOut:
    """Set an indicator's band for everyone or one department, item or region."""
    return service.set_target(session, principal, body, clock=clock)


@router.delete("/quality/targets/{target_id}", status_code=204)
def delete_target(target_id: Id, session: DbSession, principal: Supervisor, clock: ClockDep) -> Response:
    service.delete_target(session, principal, target_id, clock=clock)
    return Response(status_code=204)


@router.get("/quality/alerts")
def alerts(session: DbSession, principal: Monitor, open_only: bool = True) -> list[AlertOut]:
    return service.list_alerts(session, principal, open_only=open_only)


class PeriodWrite(BaseModel):
    period: str


class AlertCheckWrite(BaseModel):
    period: str
    #: Groups with fewer closed cases in the month are not compared with their band.
    min_cases: int = Field(default=service.ALERT_MIN_CASES, ge=1, le=1_000_000)


@router.post("/quality/alerts/check")
def check_alerts(
    body: AlertCheckWrite, session: DbSession, principal: Supervisor, clock: ClockDep
) -> list[AlertOut]:
    """Compare a month's indicators with the targets now (groups of at least ``min_cases`` cases);
    returns the alerts newly raised."""
    return service.check_alerts(session, body.period, clock=clock, min_cases=body.min_cases)


@router.post("/quality/alerts/{alert_id}/acknowledge")
def acknowledge(alert_id: Id, session: DbSession, principal: Supervisor, clock: ClockDep) -> AlertOut:
    return service.acknowledge_alert(session, principal, alert_id, clock=clock)


@router.post("/quality/publications", status_code=201)
def publish(body: PeriodWrite, session: DbSession, principal: Supervisor, clock: ClockDep) -> PublicationOut:
    """Publish a finished period's results (``YYYY-MM``, ``YYYY-Qn`` or ``YYYY``) on the public page."""
    return service.publish(session, principal, body.period, clock=clock)


@router.get("/quality/publications", dependencies=[Depends(public)])
def publications(session: DbSession) -> list[PublicationOut]:
    """Published results (public)."""
    return service.publications(session)


@router.get("/quality/publications/{period}", dependencies=[Depends(public)])
def publication(period: str, session: DbSession) -> PublicationOut:
    return service.publication(session, period)
