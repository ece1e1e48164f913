"""JSON API of intake under ``/api/v1``: the caller's own profile and consents, and officers' profile desk."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException

from tongban.core import auth
from tongban.core.errors import InvalidInput, NotFound
from tongban.core.http import (
    WRITES_ROUTE,
    ClockDep,
    DbSession,
    FilesDep,
    RawBody,
    Runtime,
    SealerDep,
    idempotent,
    own_records,
    public_with_principal,
    require,
    signed_webhook,
)
from tongban.intake import bundles, departments, materials, notices, outbox, service
from tongban.intake.schemas import (
    ApplicationForm,
    ApplicationOut,
    ApplicationSummary,
    ApplicationWrite,
    BundleAnswers,
    BundleApplicationWrite,
    BundleCheckWrite,
    BundleWrite,
    ConsentOut,
    ConsentWrite,
    DataWrite,
    DepartmentOut,
    DepartmentWrite,
    FormOut,
    FormWrite,
    ItemSettingWrite,
    LicenceOut,
    LicenceWrite,
    MonitorRow,
    NoticeOut,
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


@router.get("/me/profile", openapi_extra=WRITES_ROUTE)
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


@router.get("/intake/profiles/{profile_id}", openapi_extra=WRITES_ROUTE)
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


@router.get("/intake/applications/{receipt_no}", openapi_extra=WRITES_ROUTE)
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
    files: FilesDep,
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
        files=files,
    )


@router.post("/me/applications/{receipt_no}/supplement")
def supplement(
    receipt_no: str,
    body: PrecheckWrite,
    session: DbSession,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
    files: FilesDep,
) -> ApplicationOut:
    """Answer a request for supplementary material: changed values and new upload ids; pre-checked again."""
    return service.supplement(
        session, principal, receipt_no, body.values, sealer=sealer, clock=clock, files=files
    )


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


# --- bundles (高效办成一件事) ------------------------------------------------------------------------


@router.get("/intake/bundles")
def published_bundles(session: DbSession, principal: Anyone) -> list[bundles.BundleOut]:
    """The bundles applicants can apply for (published versions)."""
    return bundles.published_bundles(session)


@router.get("/intake/bundles/{code}")
def published_bundle(code: str, session: DbSession, principal: Anyone) -> bundles.BundleOut:
    """A published bundle: names, situation questions and items."""
    return bundles.published_bundle(session, code)


@router.get("/intake/bundles/{code}/versions")
def bundle_versions(code: str, session: DbSession, principal: FormEditor) -> list[bundles.BundleOut]:
    """Every version of a bundle, newest first."""
    return bundles.list_versions(session, principal, code)


@router.post(
    "/intake/bundles/{code}/versions", status_code=201, responses={201: {"model": bundles.BundleOut}}
)
def save_bundle(
    request: Request,
    code: str,
    body: BundleWrite,
    raw: RawBody,
    session: DbSession,
    clock: ClockDep,
    principal: FormEditor,
) -> Any:
    """A new draft version of a bundle (checked: questions, items, conditions)."""

    def produce() -> tuple[int, Any]:
        return 201, bundles.save_bundle(session, principal, code, body.definition, clock=clock)

    return idempotent(request, session, principal, raw, produce)


@router.post("/intake/bundles/{code}/versions/{version}/publish")
def publish_bundle(
    code: str, version: int, session: DbSession, clock: ClockDep, principal: FormPublisher
) -> bundles.BundleOut:
    """Publish a draft (not by its author); every item needs a published form."""
    return bundles.publish_bundle(session, principal, code, version, clock=clock)


@router.post("/intake/bundles/{code}/application-form")
def bundle_form(
    code: str, body: BundleAnswers, session: DbSession, principal: Holder, clock: ClockDep, sealer: SealerDep
) -> bundles.BundleForm:
    """The merged form for the answers: the items that apply, each shared field once, prefilled."""
    return bundles.bundle_form(session, principal, code, body.answers, sealer=sealer, clock=clock)


@router.post("/intake/bundles/{code}/precheck")
def bundle_precheck(
    code: str,
    body: BundleCheckWrite,
    session: DbSession,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
) -> bundles.BundlePrecheckOut:
    """The pre-check of every item that applies; each finding names its item."""
    return bundles.check_bundle(
        session, principal, code, body.answers, body.values, sealer=sealer, clock=clock
    )


@router.post(
    "/intake/bundle-applications", status_code=201, responses={201: {"model": bundles.BundleApplicationOut}}
)
def submit_bundle(
    request: Request,
    body: BundleApplicationWrite,
    raw: RawBody,
    session: DbSession,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
    files: FilesDep,
) -> Any:
    """Submit a bundle: one application per item that applies, all or nothing. Send ``Idempotency-Key``."""

    def produce() -> tuple[int, Any]:
        return 201, bundles.submit_bundle(
            session,
            principal,
            body.bundle_code,
            body.answers,
            body.values,
            sealer=sealer,
            files=files,
            clock=clock,
        )

    return idempotent(request, session, principal, raw, produce)


@router.get("/me/bundle-applications")
def my_bundle_applications(session: DbSession, principal: Holder) -> list[bundles.BundleApplicationOut]:
    return bundles.my_bundle_applications(session, principal)


@router.get("/me/bundle-applications/{receipt_no}")
def my_bundle_application(
    receipt_no: str, session: DbSession, principal: Holder
) -> bundles.BundleApplicationOut:
    """One combined status, with each item's own application and status."""
    return bundles.get_bundle_application(session, principal, receipt_no)


# --- departments, notices, documents -----------------------------------------------------------------

DepartmentAdmin = Annotated[auth.Principal, Depends(require(service.DEPARTMENTS))]


@router.get("/intake/departments")
def list_departments(session: DbSession, principal: DepartmentAdmin) -> list[DepartmentOut]:
    """The departments' own systems (never their signing secrets)."""
    return [departments.department_out(r) for r in departments.list_systems(session, principal)]


@router.put(
    "/intake/departments/{code}", response_model=DepartmentOut, responses={201: {"model": DepartmentOut}}
)
def put_department(
    code: str,
    body: DepartmentWrite,
    session: DbSession,
    principal: DepartmentAdmin,
    clock: ClockDep,
    sealer: SealerDep,
    rotate: Annotated[bool, Query(description="generate a new signing secret")] = False,
) -> JSONResponse:
    """Register (201) or change (200) a department's own system: steps in the process lane ``dept_<code>``
    are sent to ``url`` as signed webhooks. The signing secret is generated here and returned only in the
    answer that created it or rotated it (``?rotate=true``); store it in the department's system."""
    row, secret, created = departments.put_system(
        session,
        principal,
        code,
        name=body.name,
        url=body.url,
        active=body.active,
        rotate=rotate,
        sealer=sealer,
        clock=clock,
    )
    out = departments.department_out(row, secret=secret)
    return JSONResponse(
        jsonable_encoder(out), status_code=201 if created else 200, headers={"Cache-Control": "no-store"}
    )


@router.post("/intake/departments/{code}/callbacks")
def department_callback(
    code: str,
    request: Request,
    raw: RawBody,
    session: DbSession,
    clock: ClockDep,
    sealer: SealerDep,
    files: FilesDep,
    _signed: Annotated[None, Depends(signed_webhook)],
) -> JSONResponse:
    """A department system reports on a step it was sent, signed per Standard Webhooks with its secret:
    ``{"type": "task.status", "task_id", "status": "received"|"in_progress", "note"}`` or
    ``{"type": "task.completed", "task_id", "decision", "note"}``. A repeat of a ``webhook-id`` gets the
    first answer (``Idempotent-Replayed: true``) and changes nothing."""
    status, answer, replayed = service.department_callback(
        session, code, raw, request.headers, sealer=sealer, files=files, clock=clock
    )
    response = JSONResponse(answer, status_code=status)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@router.get("/me/notices")
def my_notices(session: DbSession, principal: Holder) -> list[NoticeOut]:
    """The caller's notices about their applications, unread first."""
    return notices.my_notices(session, principal)


@router.post("/me/notices/{notice_id}/read")
def read_notice(notice_id: int, session: DbSession, principal: Holder, clock: ClockDep) -> NoticeOut:
    return notices.mark_read(session, principal, notice_id, clock=clock)


def _pdf(name: str, data: bytes) -> Response:
    return Response(
        data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )


_PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {}}, "description": "the document (PDF)"}
}


@router.get("/me/applications/{receipt_no}/documents/{document_id}", response_class=Response, responses=_PDF)
def my_document(
    receipt_no: str, document_id: int, session: DbSession, principal: Holder, files: FilesDep
) -> Response:
    """A result document (决定书, 通知书) of one of the caller's applications."""
    return _pdf(*service.my_document(session, principal, receipt_no, document_id, files=files))


@router.get(
    "/intake/applications/{receipt_no}/documents/{document_id}",
    response_class=Response,
    responses=_PDF,
    openapi_extra=WRITES_ROUTE,
)
def officer_document(
    receipt_no: str,
    document_id: int,
    session: DbSession,
    principal: Officer,
    clock: ClockDep,
    files: FilesDep,
) -> Response:
    """A result document of an application, for an officer (audited)."""
    return _pdf(
        *service.officer_document(session, principal, receipt_no, document_id, files=files, clock=clock)
    )


def start_outbox_loop(app: FastAPI) -> outbox.Loop | None:
    """Start the web server's own outbox delivery, every ``TONGBAN_OUTBOX_INTERVAL_S`` seconds (0: none;
    then schedule ``tongban intake deliver-outbox``). Stop it at shutdown."""
    rt: Runtime = app.state.runtime
    if rt.settings.outbox_interval_s <= 0:
        return None
    transports = service.outbox_transports(rt.settings, rt.sealer)

    def run_once() -> None:
        service.deliver_outbox(
            rt.sessions, transports, settings=rt.settings, sealer=rt.sealer, clock=rt.clock
        )

    loop = outbox.Loop(
        run_once, rt.settings.outbox_interval_s, on_stop=lambda: service.close_transports(transports)
    )
    loop.start()
    return loop


# --- the applicant's e-material library ------------------------------------------------------------


@router.get("/me/materials")
def my_materials(session: DbSession, principal: Holder, sealer: SealerDep) -> list[materials.LibraryEntry]:
    """Documents the caller submitted with applications and result documents they received, newest first."""
    return materials.library(session, principal, sealer=sealer)


@router.post("/me/materials/{entry_id}/reuse", status_code=201)
def reuse_material(
    entry_id: Annotated[str, Path(max_length=80)],
    session: DbSession,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
    files: FilesDep,
) -> UploadOut:
    """A fresh upload of a library document (``upload:<id>`` or ``document:<id>``), to put in a file field of
    a new application; unused ones are swept like any upload."""
    return materials.reuse(session, principal, entry_id, files=files, sealer=sealer, clock=clock)
