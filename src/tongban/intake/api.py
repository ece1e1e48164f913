"""JSON API of intake under ``/api/v1``: the caller's own profile and consents, and officers' profile desk."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException

from tongban.core import auth
from tongban.core.errors import InvalidInput, NotFound
from tongban.core.http import (
    ClockDep,
    DbSession,
    FilesDep,
    RawBody,
    SealerDep,
    idempotent,
    own_records,
    public_with_principal,
    require,
)
from tongban.intake import service
from tongban.intake.schemas import (
    ApplicationForm,
    ApplicationOut,
    ApplicationSummary,
    ApplicationWrite,
    ConsentOut,
    ConsentWrite,
    DataWrite,
    FormOut,
    FormWrite,
    ItemSettingWrite,
    LicenceOut,
    LicenceWrite,
    MonitorRow,
    OfficerDataWrite,
    PrecheckOut,
    PrecheckWrite,
    ProcessOut,
    ProcessWrite,
    ProfileCreate,
    ProfileOut,
    StepWrite,
    SuspensionWrite,
    UploadOut,
    WorkItemOut,
)
from tongban.intake.vocab import DATA_KEYS, PURPOSE_TEXT, ProfileKind, Purpose

router = APIRouter(prefix="/api/v1", tags=["intake"])
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]
Holder = Annotated[auth.Principal, Depends(own_records)]
Officer = Annotated[auth.Principal, Depends(require(service.PROFILES))]
KindQuery = Annotated[ProfileKind, Query()]


@router.get("/intake/data-keys")
def data_keys(principal: Anyone) -> dict[str, Any]:
    """The profile data keys with their type and personal-data class, and the consent purposes."""
    return {
        "keys": [
            {
                "key": k.key,
                "kind": k.kind.value,
                "type": k.type,
                "classification": k.classification.value,
                "label": k.label,
                "label_en": k.label_en,
                **({"choices": list(k.choices)} if k.choices else {}),
            }
            for k in DATA_KEYS.values()
        ],
        "purposes": [
            {"purpose": p.value, "description": zh, "description_en": en}
            for p, (zh, en) in PURPOSE_TEXT.items()
        ],
    }


@router.get("/me/profile")
def my_profile(
    session: DbSession,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
    kind: KindQuery = ProfileKind.PERSON,
) -> ProfileOut:
    """The caller's profile with every value, its source and time, their consents and e-licences."""
    profile = service.my_profile(session, principal, kind, clock=clock)
    return service.view(session, principal, profile, sealer=sealer, clock=clock)


@router.patch("/me/profile")
def update_my_profile(
    body: DataWrite,
    session: DbSession,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
    kind: KindQuery = ProfileKind.PERSON,
) -> ProfileOut:
    """Record values the caller states (source ``applicant``). Verified values cannot be changed here: 409."""
    profile = service.my_profile(session, principal, kind, clock=clock)
    service.set_own_data(session, principal, profile, body.data, sealer=sealer, clock=clock)
    return service.view(session, principal, profile, sealer=sealer, clock=clock)


@router.put("/me/consents/{purpose}")
def grant_consent(
    purpose: Purpose,
    body: ConsentWrite,
    session: DbSession,
    principal: Holder,
    clock: ClockDep,
    kind: KindQuery = ProfileKind.PERSON,
) -> ConsentOut:
    """Consent to one purpose of use of the caller's profile (granting again renews it)."""
    if body.purpose != purpose:
        raise InvalidInput("purpose: the body names another purpose than the path")
    profile = service.my_profile(session, principal, kind, clock=clock)
    return service.grant_consent(session, principal, profile, purpose, days=body.days, clock=clock)


@router.delete("/me/consents/{purpose}", status_code=204)
def revoke_consent(
    purpose: Purpose,
    session: DbSession,
    principal: Holder,
    clock: ClockDep,
    kind: KindQuery = ProfileKind.PERSON,
) -> Response:
    """Withdraw a consent. Deleting one that is not active is not an error (204 either way)."""
    profile = service.my_profile(session, principal, kind, clock=clock)
    service.revoke_consent(session, principal, profile, purpose, clock=clock)
    return Response(status_code=204)


@router.post("/intake/profiles", status_code=201, responses={201: {"model": ProfileOut}})
def create_profile(
    request: Request,
    body: ProfileCreate,
    raw: RawBody,
    session: DbSession,
    principal: Officer,
    clock: ClockDep,
    sealer: SealerDep,
) -> Any:
    """Open a profile: an enterprise for the account that represents it, or a person without an account."""

    def produce() -> tuple[int, Any]:
        owner = None
        if body.owner_username:
            account = auth.account_by_username(session, body.owner_username)
            if account is None:
                raise NotFound(f"no account named {body.owner_username!r}")
            owner = account.id
        profile = service.create_profile(session, principal, body.kind, owner_account_id=owner, clock=clock)
        return 201, service.view(session, principal, profile, sealer=sealer, clock=clock)

    return idempotent(request, session, principal, raw, produce)


@router.get("/intake/profiles/{profile_id}")
def get_profile(
    profile_id: int, session: DbSession, principal: Officer, clock: ClockDep, sealer: SealerDep
) -> ProfileOut:
    """A profile as the officer's permissions allow (sensitive values masked without ``intake:sensitive``)."""
    profile = service.get_profile(session, principal, profile_id)
    return service.view(session, principal, profile, sealer=sealer, clock=clock)


@router.post("/intake/profiles/{profile_id}/data")
def record_data(
    profile_id: int,
    body: OfficerDataWrite,
    session: DbSession,
    principal: Officer,
    clock: ClockDep,
    sealer: SealerDep,
) -> ProfileOut:
    """Record verified values (checked at the counter, or received as a shared-data item); audited."""
    profile = service.get_profile(session, principal, profile_id)
    service.record_data(
        session,
        principal,
        profile,
        body.data,
        source=body.source,
        source_ref=body.source_ref,
        reason=body.reason,
        sealer=sealer,
        clock=clock,
    )
    return service.view(session, principal, profile, sealer=sealer, clock=clock)


@router.post("/intake/profiles/{profile_id}/licences")
def record_licence(
    profile_id: int,
    body: LicenceWrite,
    session: DbSession,
    principal: Officer,
    clock: ClockDep,
    sealer: SealerDep,
) -> LicenceOut:
    """Record or update (by type and number) an e-licence the profile holds."""
    profile = service.get_profile(session, principal, profile_id)
    return service.record_licence(
        session,
        principal,
        profile,
        licence_type=body.licence_type,
        number=body.number,
        issuer=body.issuer,
        issued_on=body.issued_on,
        valid_until=body.valid_until,
        status=body.status,
        data=body.data,
        sealer=sealer,
        clock=clock,
    )


# --- forms and applications --------------------------------------------------------------------------

FormEditor = Annotated[auth.Principal, Depends(require(service.FORMS))]
FormPublisher = Annotated[auth.Principal, Depends(require(service.FORMS_PUBLISH))]


@router.get("/intake/items/{code}/forms")
def list_forms(code: str, session: DbSession, principal: FormEditor) -> list[FormOut]:
    """Every version of an item's application form, newest first."""
    return service.list_forms(session, principal, code)


@router.post("/intake/items/{code}/forms", status_code=201, responses={201: {"model": FormOut}})
def save_form(
    request: Request,
    code: str,
    body: FormWrite,
    raw: RawBody,
    session: DbSession,
    clock: ClockDep,
    principal: FormEditor,
) -> Any:
    """A new draft version of the item's form; the definition is checked (fields, expressions, rules)."""

    def produce() -> tuple[int, Any]:
        return 201, service.save_form(session, principal, code, body.definition, clock=clock)

    return idempotent(request, session, principal, raw, produce)


@router.post("/intake/items/{code}/forms/{version}/publish")
def publish_form(
    code: str, version: int, session: DbSession, clock: ClockDep, principal: FormPublisher
) -> FormOut:
    """Publish a draft (by someone other than its author); the published version before it is retired."""
    return service.publish_form(session, principal, code, version, clock=clock)


# --- items' own approval processes (BPMN 2.0) ----------------------------------------------------------

_XML_TYPES = ("application/xml", "text/xml", "application/bpmn+xml")


@router.get("/intake/items/{code}/processes")
def list_processes(code: str, session: DbSession, principal: FormEditor) -> list[ProcessOut]:
    """Every version of the item's own approval process, newest first (none: it runs the standard one)."""
    return service.list_processes(session, principal, code)


@router.post(
    "/intake/items/{code}/processes",
    status_code=201,
    responses={201: {"model": ProcessOut}},
    openapi_extra={
        "requestBody": {
            "content": {
                "application/xml": {"schema": {"type": "string"}},
                "application/json": {"schema": ProcessWrite.model_json_schema()},
            }
        }
    },
)
def save_process(
    request: Request, code: str, raw: RawBody, session: DbSession, clock: ClockDep, principal: FormEditor
) -> Any:
    """A new draft version of the item's process: BPMN 2.0 XML as the body (``application/xml``, as a
    modeller exports it) or ``{"xml": ...}``. Checked: no scripts or service calls, conditions in the safe
    grammar, every user task in a lane, end events named by outcome."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in _XML_TYPES:
        try:
            xml = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput("the BPMN definition must be UTF-8 text") from exc
    elif ctype == "application/json":
        try:
            xml = ProcessWrite.model_validate_json(raw).xml
        except ValidationError as exc:
            raise InvalidInput('the body must be {"xml": "<BPMN 2.0 XML>"}') from exc
    else:
        raise InvalidInput('send the BPMN definition as application/xml or as JSON {"xml": ...}')

    def produce() -> tuple[int, Any]:
        return 201, service.save_process(session, principal, code, xml, clock=clock)

    return idempotent(request, session, principal, raw, produce)


@router.get("/intake/items/{code}/processes/{version}", response_model=None)
def process_xml(code: str, version: int, session: DbSession, principal: FormEditor) -> Response:
    """The BPMN XML of one version (to open in a modeller)."""
    return Response(service.process_xml(session, principal, code, version), media_type="application/xml")


@router.post("/intake/items/{code}/processes/{version}/publish")
def publish_process(
    code: str, version: int, session: DbSession, clock: ClockDep, principal: FormPublisher
) -> ProcessOut:
    """Publish a draft (not by its author): new applications run it; running ones keep their version."""
    return service.publish_process(session, principal, code, version, clock=clock)


@router.post("/intake/items/{code}/processes/{version}/retire")
def retire_process(
    code: str, version: int, session: DbSession, clock: ClockDep, principal: FormPublisher
) -> ProcessOut:
    """Withdraw the published process: new applications run the standard process again."""
    return service.retire_process(session, principal, code, version, clock=clock)


@router.get("/intake/items/{code}/application-form")
def application_form(
    code: str, session: DbSession, principal: Holder, clock: ClockDep, sealer: SealerDep
) -> ApplicationForm:
    """The form to fill for an item: without what the platform holds, prefilled from the caller's profile
    (with consent), with each material's status (exempt or to upload)."""
    return service.application_form(session, principal, code, sealer=sealer, clock=clock)


@router.post("/intake/items/{code}/precheck")
def precheck(
    code: str, body: PrecheckWrite, session: DbSession, principal: Holder, clock: ClockDep, sealer: SealerDep
) -> PrecheckOut:
    """The pre-check (智能预检) of filled-in values without submitting; nothing is stored."""
    return service.check_application(session, principal, code, body.values, sealer=sealer, clock=clock)


@router.post("/intake/uploads", status_code=201)
async def upload(
    request: Request,
    session: DbSession,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
    files: FilesDep,
) -> UploadOut:
    """Upload one file (multipart field ``file``); its type is judged by content. Attach it by putting its
    ``id`` in a file field of an application; unattached uploads are deleted after a day."""
    try:
        async with request.form(max_files=1, max_fields=5) as form:
            item = form.get("file")
            if item is None or isinstance(item, str):
                raise InvalidInput("send the file as multipart/form-data in a field named 'file'")
            filename, declared, data = item.filename or "", item.content_type or "", await item.read()
    except MultiPartException as exc:  # malformed multipart bodies, too many files
        raise InvalidInput("send the file as multipart/form-data in a field named 'file'") from exc
    # Parsing a PDF takes CPU time: off the event loop, so one large file does not stall other requests.
    return await run_in_threadpool(
        service.upload_file,
        session,
        principal,
        filename=filename,
        declared_type=declared,
        data=data,
        files=files,
        sealer=sealer,
        clock=clock,
    )


@router.post("/intake/applications", status_code=201, responses={201: {"model": ApplicationOut}})
def submit(
    request: Request,
    body: ApplicationWrite,
    raw: RawBody,
    session: DbSession,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
) -> Any:
    """Submit an application. Send ``Idempotency-Key``: a retry returns the first answer, never a second
    application. Pre-check errors refuse it (422, ``findings``) and store nothing."""

    def produce() -> tuple[int, Any]:
        return 201, service.submit_application(
            session, principal, body.item_code, body.values, sealer=sealer, clock=clock
        )

    return idempotent(request, session, principal, raw, produce)


@router.get("/me/applications")
def my_applications(session: DbSession, principal: Holder) -> list[ApplicationSummary]:
    return service.my_applications(session, principal)


@router.get("/me/applications/{receipt_no}")
def my_application(
    receipt_no: str, session: DbSession, principal: Holder, sealer: SealerDep, clock: ClockDep
) -> ApplicationOut:
    """One of the caller's applications with its values, materials, uploads and every status change."""
    return service.get_application(session, principal, receipt_no, sealer=sealer, clock=clock)


# --- officers: the work list and the steps -----------------------------------------------------------


@router.get("/intake/worklist")
def worklist(
    session: DbSession, principal: Officer, role: Annotated[str | None, Query(max_length=64)] = None
) -> list[WorkItemOut]:
    """The steps waiting in the caller's lanes (``intake:lane:<lane>``), oldest first, with each
    application's pre-check findings counted."""
    return service.worklist(session, principal, role=role)


@router.get("/intake/applications/{receipt_no}")
def officer_application(
    receipt_no: str, session: DbSession, principal: Officer, clock: ClockDep, sealer: SealerDep
) -> ApplicationOut:
    """An application for an officer: values, the same pre-check findings the applicant saw, materials,
    uploads, events, steps waiting. Audited."""
    return service.officer_view(session, principal, receipt_no, sealer=sealer, clock=clock)


@router.post("/intake/applications/{receipt_no}/steps/{task_id}")
def act(
    receipt_no: str,
    task_id: str,
    body: StepWrite,
    session: DbSession,
    principal: Officer,
    clock: ClockDep,
    sealer: SealerDep,
) -> ApplicationOut:
    """Complete a waiting step: 受理 (``accept``/``supplement``/``reject``), 审查 (``pass``/``supplement``),
    决定 (``approve``/``reject``), 送达 (``done``). ``supplement`` and ``reject`` need a ``note``."""
    return service.act(
        session,
        principal,
        receipt_no,
        task_id,
        decision=body.decision,
        note=body.note,
        clock=clock,
        sealer=sealer,
    )


@router.post("/me/applications/{receipt_no}/supplement")
def supplement(
    receipt_no: str,
    body: PrecheckWrite,
    session: DbSession,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
) -> ApplicationOut:
    """Answer a request for supplementary material: changed values and new upload ids; pre-checked again."""
    return service.supplement(session, principal, receipt_no, body.values, sealer=sealer, clock=clock)


# --- deadlines ---------------------------------------------------------------------------------------

Monitor = Annotated[auth.Principal, Depends(require(service.MONITOR))]


@router.put("/intake/items/{code}/special-procedures")
def set_special_procedures(
    code: str, body: ItemSettingWrite, session: DbSession, clock: ClockDep, principal: FormEditor
) -> list[str]:
    """The special procedures (听证, 专家评审, 现场勘验 ...) that may suspend this item's time limit."""
    return service.set_special_procedures(session, principal, code, body.special_procedures, clock=clock)


@router.post("/intake/applications/{receipt_no}/suspensions")
def start_suspension(
    receipt_no: str,
    body: SuspensionWrite,
    session: DbSession,
    principal: Officer,
    clock: ClockDep,
    sealer: SealerDep,
) -> ApplicationOut:
    """Start a special procedure of the item: the time limit is paused until it ends."""
    return service.start_special_procedure(
        session, principal, receipt_no, kind=body.kind, note=body.note, clock=clock, sealer=sealer
    )


@router.post("/intake/applications/{receipt_no}/suspensions/{suspension_id}/end")
def end_suspension(
    receipt_no: str,
    suspension_id: int,
    session: DbSession,
    principal: Officer,
    clock: ClockDep,
    sealer: SealerDep,
    note: Annotated[str, Query(max_length=2000)] = "",
) -> ApplicationOut:
    return service.end_special_procedure(
        session, principal, receipt_no, suspension_id, note=note, clock=clock, sealer=sealer
    )


@router.get("/intake/deadlines")
def deadlines(
    session: DbSession,
    principal: Monitor,
    clock: ClockDep,
    department: Annotated[str | None, Query(max_length=200)] = None,
    level: Annotated[str | None, Query(pattern="^(green|yellow|red|paused|unknown)$")] = None,
) -> list[MonitorRow]:
    """Running applications against their promised time limits, overdue first."""
    return service.monitor(session, principal, department=department, level=level, clock=clock)
