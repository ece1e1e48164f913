"""HTML pages of intake (办): applicants fill in an item's form, follow and supplement their applications;
officers complete the steps waiting in their lanes; supervisors watch the time limits.

Every action goes through :mod:`tongban.intake.service`. Forms work without JavaScript (a plain POST, then a
redirect or the page again with the findings); ``static/intake.js`` only shows and hides conditional fields
and adds table rows in place.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

from babel.numbers import format_decimal
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from tongban.catalog import pages as catalog_pages
from tongban.core import auth, idempotency
from tongban.core.clock import Clock
from tongban.core.crypto import Sealer
from tongban.core.errors import Conflict, DomainError, InvalidInput, PayloadTooLarge
from tongban.core.files import FileStore
from tongban.core.http import (
    WRITES_ROUTE,
    ClockDep,
    DbSession,
    FilesDep,
    LanguageDep,
    SealerDep,
    csrf_form,
    own_records,
    posted_form,
    render_page,
    require,
)
from tongban.core.i18n import Language
from tongban.core.messages import N_
from tongban.intake import deadlines, formdef, notices, service
from tongban.intake.schemas import (
    ApplicationForm,
    ApplicationOut,
    FindingOut,
    PrecheckWrite,
    StepWrite,
    SuspensionWrite,
    UploadOut,
)

router = APIRouter(include_in_schema=False)
Holder = Annotated[auth.Principal, Depends(own_records)]
Officer = Annotated[auth.Principal, Depends(require(service.PROFILES))]
Supervisor = Annotated[auth.Principal, Depends(require(service.MONITOR))]

FieldType = formdef.FieldType
RUNNING = ("submitted", "in_progress", "supplement_requested")
LEVELS = ("red", "yellow", "green", "paused", "unknown")


Posted = Annotated[FormData, Depends(posted_form)]


def _apply_link(session: Session, code: str) -> list[tuple[str, str]]:
    if not service.has_published_form(session, code):
        return []
    return [(f"/intake/items/{code}/apply", N_("Apply online now"))]


if _apply_link not in catalog_pages.ITEM_LINKS:
    catalog_pages.ITEM_LINKS.append(_apply_link)


# --- form data ---------------------------------------------------------------------------------------
# Inputs are named ``v.<key>`` (table cells ``v.<key>.<row>.<column>``, row counts ``n.<key>``), new files
# ``file.<key>``, upload ids kept ``u.<key>``; controls start with ``_``. Element ids are ``f-`` and the
# finding's path with dots as dashes, so the error summary links to the field.


@dataclass
class Entry:
    """The form as filled in: the inputs as typed (shown again as they were) and upload ids per file field."""

    inputs: dict[str, Any] = field(default_factory=dict)
    uploads: dict[str, list[str]] = field(default_factory=dict)

    def write(self) -> PrecheckWrite:
        """The values as the API takes them (file fields carry upload ids)."""
        try:
            return PrecheckWrite(values={**self.inputs, **self.uploads})
        except ValidationError as exc:
            raise InvalidInput(f"the form has too many or unknown fields ({exc.error_count()})") from exc


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _texts(form: FormData, name: str) -> list[str]:
    return [v for v in form.getlist(name) if isinstance(v, str)]


def _input(form: FormData, name: str, f: formdef.Field) -> str | list[str]:
    return _texts(form, name) if f.type == FieldType.MULTI_CHOICE else _text(form, name)


def _blank(f: formdef.Field) -> list[dict[str, Any]]:
    row = {c.key: [] if c.type == FieldType.MULTI_CHOICE else "" for c in f.columns if c.computed is None}
    return [dict(row) for _ in range(max(f.min_rows or 0, 1))]


def _entry(definition: formdef.FormDefinition, form: FormData) -> Entry:
    entry = Entry()
    removed = set(_texts(form, "_remove"))
    for f in definition.fields:
        if f.computed is not None:
            continue
        if f.type == FieldType.FILE:
            kept = dict.fromkeys(_texts(form, f"u.{f.key}"))
            entry.uploads[f.key] = [i for i in kept if i not in removed]
        elif f.type == FieldType.TABLE:
            count = _text(form, f"n.{f.key}")[:4]
            rows = min(int(count) if count.isdigit() else 0, f.effective_max_rows)
            entry.inputs[f.key] = [
                {c.key: _input(form, f"v.{f.key}.{i}.{c.key}", c) for c in f.columns if c.computed is None}
                for i in range(rows)
            ] or _blank(f)
        else:
            entry.inputs[f.key] = _input(form, f"v.{f.key}", f)
    return entry


def _shown(f: formdef.Field, value: Any) -> str | list[str]:
    if f.type == FieldType.MULTI_CHOICE:
        return [str(v) for v in value] if isinstance(value, list) else []
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else ""
    return str(value)


def _from_values(definition: formdef.FormDefinition, values: Mapping[str, Any]) -> Entry:
    """An entry from stored or prefilled values (already as form input: money in yuan)."""
    entry = Entry()
    for f in definition.fields:
        if f.computed is not None:
            continue
        value = values.get(f.key)
        if f.type == FieldType.FILE:
            entry.uploads[f.key] = [i for i in value if isinstance(i, str)] if isinstance(value, list) else []
        elif f.type == FieldType.TABLE:
            rows = [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []
            entry.inputs[f.key] = [
                {c.key: _shown(c, row.get(c.key)) for c in f.columns if c.computed is None} for row in rows
            ] or _blank(f)
        else:
            entry.inputs[f.key] = _shown(f, value)
    return entry


def _add_row(definition: formdef.FormDefinition, entry: Entry, key: str) -> str | None:
    """One more (blank) row in a table; returns the element id of its first cell to focus."""
    f = next((x for x in definition.fields if x.key == key and x.type == FieldType.TABLE), None)
    if f is None:
        return None
    rows = entry.inputs.setdefault(key, [])
    if len(rows) >= f.effective_max_rows:
        return None
    rows.append(_blank(f)[0])
    first = next((c.key for c in f.columns if c.computed is None), None)
    return f"f-{key}-{len(rows) - 1}-{first}" if first else None


def _upload_problem(key: str, name: str, exc: DomainError, lang: Language) -> FindingOut:
    code = str(exc.extra.get("code", ""))
    if isinstance(exc, PayloadTooLarge):
        text = lang.gettext("%(name)s: the file is too large.")
    elif code == "file.type":
        text = lang.gettext("%(name)s: not a PDF, OFD, PNG, JPEG or TIFF file (judged by its content).")
    elif code == "file.type_mismatch":
        text = lang.gettext("%(name)s: the content does not match the type of the file.")
    elif code == "file.unreadable":
        text = lang.gettext("%(name)s: the file cannot be read (it may be damaged or encrypted).")
    elif code == "file.blank":
        text = lang.gettext("%(name)s: the file is blank.")
    else:
        text = lang.gettext("%(name)s could not be uploaded: %(reason)s")
    message = text % {"name": name, "reason": exc.detail}
    return FindingOut(
        code=code or "file.upload", field=key, severity="error", message=message, message_en=message
    )


def _upload_new(
    session: Session,
    principal: auth.Principal,
    lang: Language,
    definition: formdef.FormDefinition,
    form: FormData,
    entry: Entry,
    *,
    files: FileStore,
    sealer: Sealer,
    clock: Clock,
) -> list[FindingOut]:
    """Store the files chosen in the form (``service.upload_file``); their ids join the entry."""
    problems = []
    for f in definition.fields:
        if f.type != FieldType.FILE:
            continue
        for item in form.getlist(f"file.{f.key}"):
            if not isinstance(item, UploadFile) or not item.filename:
                continue
            try:
                out = service.upload_file(
                    session,
                    principal,
                    filename=item.filename,
                    declared_type=item.content_type or "",
                    data=item.file.read(),
                    files=files,
                    sealer=sealer,
                    clock=clock,
                )
            except DomainError as exc:
                problems.append(_upload_problem(f.key, item.filename, exc, lang))
            else:
                entry.uploads.setdefault(f.key, []).append(out.id)
    return problems


def _problem(exc: DomainError) -> FindingOut:
    """A refusal of the service as a finding of the form as a whole."""
    return FindingOut(code=exc.slug, field=None, severity="error", message=exc.detail, message_en=exc.detail)


# --- showing a form ----------------------------------------------------------------------------------


def _money(fen: int, lang: Language) -> str:
    amount = format_decimal(Decimal(fen) / 100, format="#,##0.00", locale=lang.babel)
    return f"CNY {amount}" if lang.code == "en" else f"{amount} 元"


def _label(f: formdef.Field | formdef.Option, lang: Language) -> str:
    return f.label_en if lang.code == "en" else f.label


def _text_of(f: formdef.Field, value: Any, lang: Language) -> str:
    """A stored (normalised) value for reading: money in yuan, options by their label."""
    if value is None:
        return ""
    if f.type == FieldType.MONEY and isinstance(value, int) and not isinstance(value, bool):
        return _money(value, lang)
    if isinstance(value, bool):
        return lang.gettext("Yes") if value else lang.gettext("No")
    options = {o.value: _label(o, lang) for o in f.options}
    if isinstance(value, list):
        return ("，" if lang.code != "en" else ", ").join(options.get(str(v), str(v)) for v in value)
    return options.get(str(value), str(value))


@dataclass
class Shown:
    """One value of an application for reading."""

    label: str
    text: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    files: list[UploadOut] = field(default_factory=list)


def _readable(
    definition: formdef.FormDefinition,
    values: Mapping[str, Any],
    uploads: Sequence[UploadOut],
    lang: Language,
) -> list[Shown]:
    by_id = {u.id: u for u in uploads}
    out = []
    for f in definition.fields:
        if f.key not in values:
            continue
        value = values[f.key]
        shown = Shown(_label(f, lang))
        if f.type == FieldType.FILE:
            ids = value if isinstance(value, list) else []
            shown.files = [by_id[i] for i in ids if isinstance(i, str) and i in by_id]
        elif f.type == FieldType.TABLE and isinstance(value, list):
            shown.columns = [_label(c, lang) for c in f.columns]
            shown.rows = [
                [_text_of(c, row.get(c.key), lang) for c in f.columns]
                for row in value
                if isinstance(row, dict)
            ]
        else:
            shown.text = _text_of(f, value, lang)
        out.append(shown)
    return out


@dataclass
class FormView:
    """What the field macros of ``intake/_fields.html`` need to show a form."""

    definition: formdef.FormDefinition
    entry: Entry
    uploads: dict[str, list[UploadOut]]
    findings: list[FindingOut]
    hidden: set[str]
    #: Computed values by path, as text.
    computed: dict[str, str]
    prefilled: dict[str, Any] = field(default_factory=dict)
    focus: str | None = None

    @property
    def errors(self) -> list[FindingOut]:
        return [x for x in self.findings if x.severity == "error"]

    @property
    def warnings(self) -> list[FindingOut]:
        return [x for x in self.findings if x.severity != "error"]

    def at(self, path: str) -> list[FindingOut]:
        return [x for x in self.findings if x.field == path]

    def described(self, path: str, *extra: str | None) -> str | None:
        """The ``aria-describedby`` of the control of ``path``: its hints and its findings' messages."""
        ids = [x for x in extra if x] + [f"m-{_dom(path)}-{n}" for n in range(1, len(self.at(path)) + 1)]
        return " ".join(ids) or None

    def invalid(self, path: str) -> bool:
        return any(x.severity == "error" for x in self.at(path))

    @staticmethod
    def size(n: int) -> str:
        return f"{n / 1_048_576:.1f} MB" if n >= 1_048_576 else f"{max(1, round(n / 1024))} KB"

    @staticmethod
    def accepted(f: formdef.Field) -> str:
        names = {"application/pdf": "PDF", "application/ofd": "OFD", "image/png": "PNG", "image/jpeg": "JPEG"}
        names |= {"image/tiff": "TIFF", "image/*": "PNG, JPEG, TIFF"}
        return ", ".join(names.get(a, a) for a in f.accept) or "PDF, OFD, PNG, JPEG, TIFF"

    @staticmethod
    def autocomplete(f: formdef.Field) -> str:
        by_key = {"person.name": "name", "person.mobile": "tel", "person.email": "email"}
        by_key |= {
            "person.address": "street-address",
            "person.birth_date": "bday",
            "enterprise.name": "organization",
        }
        by_type = {FieldType.EMAIL: "email", FieldType.MOBILE: "tel", FieldType.ID_NUMBER: "off"}
        by_type[FieldType.CREDIT_CODE] = "off"
        return by_key.get(f.profile_key or "") or by_type.get(f.type, "")

    def anchor(self, path: str | None) -> str | None:
        """The id of the element a finding about ``path`` links to (None: not on the page)."""
        if not path:
            return None
        parts = path.split(".")
        f = next((x for x in self.definition.fields if x.key == parts[0]), None)
        if f is None or f.key in self.hidden:
            return None
        if f.type == FieldType.TABLE and len(parts) == 3 and parts[1].isdigit():
            rows = self.entry.inputs.get(f.key) or []
            if int(parts[1]) < len(rows) and path not in self.hidden:
                return "f-" + _dom(path)
        return f"f-{f.key}"


def _dom(path: str) -> str:
    """The element id part of a field path (``members.2.id_number`` → ``members-2-id_number``)."""
    return path.replace(".", "-")


def _view(
    definition: formdef.FormDefinition,
    entry: Entry,
    uploads: Sequence[UploadOut],
    findings: Sequence[FindingOut],
    lang: Language,
) -> FormView:
    # Which conditional fields show, and the computed values, follow the definition on what was typed.
    result = formdef.normalise_detailed(definition, entry.inputs)
    computed: dict[str, str] = {}
    for f in definition.fields:
        if f.computed is not None and f.key in result.values:
            computed[f.key] = _text_of(f, result.values[f.key], lang)
        if f.type == FieldType.TABLE and f.key in result.values:
            for index, row in zip(result.row_indices.get(f.key, []), result.values[f.key], strict=False):
                for c in f.columns:
                    if c.computed is not None and c.key in row:
                        computed[f"{f.key}.{index}.{c.key}"] = _text_of(c, row[c.key], lang)
    by_id = {u.id: u for u in uploads}
    return FormView(
        definition=definition,
        entry=entry,
        uploads={k: [by_id[i] for i in ids if i in by_id] for k, ids in entry.uploads.items()},
        findings=list(findings),
        hidden=set(result.hidden),
        computed=computed,
    )


def _definition(raw: Mapping[str, Any]) -> formdef.FormDefinition:
    return formdef.FormDefinition.model_validate(raw)


# --- applying ----------------------------------------------------------------------------------------


def _apply_page(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    app_form: ApplicationForm,
    definition: formdef.FormDefinition,
    entry: Entry,
    *,
    idem: str,
    findings: Sequence[FindingOut] = (),
    checked: bool = False,
    focus: str | None = None,
    status: int = 200,
) -> Response:
    ids = [i for ids in entry.uploads.values() for i in ids]
    uploads = service.my_uploads(session, principal, ids)
    view = _view(definition, entry, uploads, findings, lang)
    view.prefilled = {p.field: p for p in app_form.prefilled}
    view.focus = focus
    name = app_form.item_name_en if lang.code == "en" and app_form.item_name_en else app_form.item_name
    context = {"app_form": app_form, "item_name": name, "form": view, "idem": idem, "checked": checked}
    return render_page(request, lang, "intake/apply.html", context, status=status)


@router.get("/intake/items/{code}/apply")
def apply_form(
    request: Request,
    code: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
) -> Response:
    """The application form, prefilled from the applicant's profile (with consent)."""
    app_form = service.application_form(session, principal, code, sealer=sealer, clock=clock)
    definition = _definition(app_form.definition)
    prefilled = service.form_input(definition, {p.field: p.value for p in app_form.prefilled})
    entry = _from_values(definition, prefilled)
    # One key per rendered form: a double click or a retry of the submission cannot apply twice.
    idem = secrets.token_urlsafe(24)
    return _apply_page(request, lang, session, principal, app_form, definition, entry, idem=idem)


def _receipt_of(session: Session, principal: auth.Principal, key: str, path: str, code: str) -> str | None:
    """The receipt number of the application an earlier submission of this form created, if any."""
    stored = idempotency.lookup(
        session, key=key, actor=principal.username, method="POST", path=path, body=code.encode()
    )
    return stored.body or None if stored is not None else None


def submit_once(
    session: Session,
    principal: auth.Principal,
    code: str,
    *,
    key: str,
    path: str,
    clock: Clock,
    submit: Callable[[], str],
) -> str:
    """Run ``submit`` (which stores and returns a receipt number) once per form key
    (:func:`tongban.core.idempotency.once`). Used by the item and the bundle pages."""
    return idempotency.once(
        session, actor=principal.username, key=key, path=path, body=code.encode(), clock=clock, run=submit
    )


@router.post("/intake/items/{code}/apply", dependencies=[Depends(csrf_form)])
def apply(
    request: Request,
    code: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
    files: FilesDep,
    form: Posted,
) -> Response:
    """预检 (check), 提交 (submit) or add a table row; files chosen are uploaded first."""
    action = _text(form, "_action") or "check"
    idem = _text(form, "_idem")
    path = f"/intake/items/{code}/apply"
    if action == "submit":
        earlier = _receipt_of(session, principal, idem, path, code)
        if earlier is not None:  # the same form again (a retry): the application it made
            return RedirectResponse(f"/me/applications/{earlier}?submitted=1", status_code=303)
    app_form = service.application_form(session, principal, code, sealer=sealer, clock=clock)
    definition = _definition(app_form.definition)
    entry = _entry(definition, form)
    findings = _upload_new(
        session, principal, lang, definition, form, entry, files=files, sealer=sealer, clock=clock
    )
    focus, checked, status = None, False, 200
    if action.startswith("add_row:"):
        focus = _add_row(definition, entry, action.removeprefix("add_row:"))
    elif action == "submit" and not findings:
        try:
            values = entry.write().values
            receipt = submit_once(
                session,
                principal,
                code,
                key=idem,
                path=path,
                clock=clock,
                submit=lambda: (
                    service.submit_application(
                        session, principal, code, values, sealer=sealer, clock=clock
                    ).receipt_no
                ),
            )
        except service.PrecheckFailed as exc:
            findings = [FindingOut.model_validate(x) for x in exc.extra.get("findings", [])]
            status = 422
        except (InvalidInput, Conflict) as exc:
            findings, status = [_problem(exc)], exc.status
        else:
            return RedirectResponse(f"/me/applications/{receipt}?submitted=1", status_code=303)
    else:
        try:
            result = service.check_application(
                session, principal, code, entry.write().values, sealer=sealer, clock=clock
            )
        except (InvalidInput, Conflict) as exc:
            findings.append(_problem(exc))
        else:
            findings += result.findings
            checked = result.ok and not any(x.severity == "error" for x in findings)
        status = 422 if action == "submit" else 200
    return _apply_page(
        request,
        lang,
        session,
        principal,
        app_form,
        definition,
        entry,
        idem=idem,
        findings=findings,
        checked=checked,
        focus=focus,
        status=status,
    )


# --- the applicant's applications --------------------------------------------------------------------


@router.get("/me/applications")
def my_applications(
    request: Request, session: DbSession, lang: LanguageDep, principal: Holder, clock: ClockDep
) -> Response:
    rows = service.my_applications(session, principal)
    standing = service.deadlines_of(session, [r.receipt_no for r in rows], clock=clock)
    return render_page(request, lang, "intake/my_applications.html", {"rows": rows, "standing": standing})


def _asked(out: ApplicationOut) -> str | None:
    """The officer's note of the latest request for supplementary material."""
    asked = [e for e in out.events if e.to_status == "supplement_requested" and e.from_status != e.to_status]
    return asked[-1].note if asked else None


def _application_page(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    out: ApplicationOut,
    *,
    clock: Clock,
    entry: Entry | None = None,
    findings: Sequence[FindingOut] = (),
    focus: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    definition = _definition(service.form_definition_of(session, out.receipt_no))
    view = None
    if out.status == "supplement_requested" and any(w.role == "applicant" for w in out.waiting):
        shown = _definition(service.supplement_definition(session, principal, out.receipt_no, clock=clock))
        if entry is None:
            entry = _from_values(shown, service.form_input(shown, out.values))
        new = service.my_uploads(session, principal, [i for ids in entry.uploads.values() for i in ids])
        view = _view(shown, entry, [*out.uploads, *new], findings, lang)
        view.focus = focus
    context = {
        "app": out,
        "values": _readable(definition, out.values, out.uploads, lang),
        "supplement": view,
        "asked": _asked(out),
        "events": [e for e in out.events if e.action != "escalate"],
        "size": FormView.size,
        "notice": notice,
        "notices": [n for n in notices.my_notices(session, principal) if n.receipt_no == out.receipt_no],
    }
    return render_page(request, lang, "intake/application.html", context, status=status)


@router.get("/me/applications/{receipt_no}")
def application_page(
    request: Request,
    receipt_no: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
    submitted: bool = False,
    supplemented: bool = False,
) -> Response:
    """One of the applicant's applications: status, timeline, values, materials; the supplement form."""
    out = service.get_application(session, principal, receipt_no, sealer=sealer, clock=clock)
    notice = "submitted" if submitted else "supplemented" if supplemented else None
    return _application_page(request, lang, session, principal, out, clock=clock, notice=notice)


@router.post("/me/applications/{receipt_no}/supplement", dependencies=[Depends(csrf_form)])
def supplement(
    request: Request,
    receipt_no: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
    files: FilesDep,
    form: Posted,
) -> Response:
    """补正: replacement files and changed values, checked again; the process goes back to the step."""
    out = service.get_application(session, principal, receipt_no, sealer=sealer, clock=clock)
    definition = _definition(service.supplement_definition(session, principal, receipt_no, clock=clock))
    entry = _entry(definition, form)
    findings = _upload_new(
        session, principal, lang, definition, form, entry, files=files, sealer=sealer, clock=clock
    )
    action = _text(form, "_action")
    focus, status = None, 422
    if action.startswith("add_row:"):
        focus, status = _add_row(definition, entry, action.removeprefix("add_row:")), 200
    elif not findings:
        try:
            with session.begin_nested():
                values = entry.write().values
                service.supplement(
                    session, principal, receipt_no, values, sealer=sealer, clock=clock, files=files
                )
        except service.PrecheckFailed as exc:
            findings = [FindingOut.model_validate(x) for x in exc.extra.get("findings", [])]
        except (InvalidInput, Conflict) as exc:
            findings, status = [_problem(exc)], exc.status
        else:
            return RedirectResponse(f"/me/applications/{receipt_no}?supplemented=1", status_code=303)
    return _application_page(
        request,
        lang,
        session,
        principal,
        out,
        clock=clock,
        entry=entry,
        findings=findings,
        focus=focus,
        status=status,
    )


# --- officers ----------------------------------------------------------------------------------------


@router.get("/staff/intake/worklist")
def worklist(
    request: Request, session: DbSession, lang: LanguageDep, principal: Officer, clock: ClockDep
) -> Response:
    rows = service.worklist(session, principal)
    standing = service.deadlines_of(session, [r.receipt_no for r in rows], clock=clock)
    return render_page(request, lang, "intake/worklist.html", {"rows": rows, "standing": standing})


@dataclass
class Problem:
    """A refusal shown on the officer's page, linked to the control it concerns."""

    target: str | None
    message: str


def _officer_problem(
    exc: DomainError | ValidationError, lang: Language, *, note: str, choice: str
) -> Problem:
    """The service's (or the input model's) refusal, pointed at the note or the choice it is about."""
    if isinstance(exc, ValidationError):
        where = str(exc.errors()[0]["loc"][0]) if exc.errors() and exc.errors()[0]["loc"] else ""
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    else:
        where, detail = exc.detail.split(":", 1)[0], exc.detail
    if where == "note":
        return Problem(
            note,
            lang.gettext("Write a note: say what is missing, or why."),
        )
    if where in ("decision", "kind"):
        return Problem(choice, lang.gettext("Choose one of the options.") + " " + detail)
    title = lang.gettext(exc.title) if isinstance(exc, DomainError) else lang.gettext("Invalid input")
    return Problem(None, f"{title}: {detail}")


def _officer_page(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    out: ApplicationOut,
    *,
    problems: Sequence[Problem] = (),
    posted: Mapping[str, str] | None = None,
    done: bool = False,
    status: int = 200,
) -> Response:
    definition = _definition(service.form_definition_of(session, out.receipt_no))
    decisions = service.step_decisions(session, out.receipt_no)
    tasks = [
        (w, decisions.get(w.task_id, ()))
        for w in out.waiting
        if w.role != "applicant" and principal.can(service.LANE + w.role)
    ]
    running = out.status in RUNNING
    context = {
        "app": out,
        "values": _readable(definition, out.values, out.uploads, lang),
        "tasks": tasks,
        "procedures": service.special_procedures(session, out.item_code) if running and out.deadline else [],
        "under_way": [s for s in out.suspensions if s.ended_at is None and s.kind != deadlines.SUPPLEMENT],
        "size": FormView.size,
        "problems": list(problems),
        "posted": posted or {},
        "done": done,
    }
    return render_page(request, lang, "intake/officer_application.html", context, status=status)


@router.get("/staff/intake/applications/{receipt_no}", openapi_extra=WRITES_ROUTE)
def officer_application(
    request: Request,
    receipt_no: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Officer,
    clock: ClockDep,
    sealer: SealerDep,
    done: bool = False,
) -> Response:
    """An application for an officer (values masked by role; the look is audited) with a form per step."""
    out = service.officer_view(session, principal, receipt_no, sealer=sealer, clock=clock)
    return _officer_page(request, lang, session, principal, out, done=done)


def _officer_action(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    receipt_no: str,
    run: Any,
    *,
    note: str,
    choice: str,
    posted: Mapping[str, str],
    sealer: Sealer,
    clock: Clock,
) -> Response:
    """Run an officer's action in a savepoint; on a refusal show the page again with the reason."""
    try:
        with session.begin_nested():
            run()
    except (InvalidInput, Conflict, ValidationError) as exc:
        out = service.officer_view(session, principal, receipt_no, sealer=sealer, clock=clock)
        problem = _officer_problem(exc, lang, note=note, choice=choice)
        status = exc.status if isinstance(exc, DomainError) else 422
        return _officer_page(
            request, lang, session, principal, out, problems=[problem], posted=posted, status=status
        )
    return RedirectResponse(f"/staff/intake/applications/{receipt_no}?done=1", status_code=303)


@router.post("/staff/intake/applications/{receipt_no}/steps/{task_id}", dependencies=[Depends(csrf_form)])
def act(
    request: Request,
    receipt_no: str,
    task_id: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Officer,
    clock: ClockDep,
    sealer: SealerDep,
    files: FilesDep,
    form: Posted,
) -> Response:
    """Complete a waiting step with a decision and a note (``service.act``); an ending issues the result
    document into the file store."""
    posted = {"task": task_id, "decision": _text(form, "decision"), "note": _text(form, "note")}

    def run() -> None:
        body = StepWrite(decision=posted["decision"] or None, note=posted["note"])
        service.act(
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

    return _officer_action(
        request,
        lang,
        session,
        principal,
        receipt_no,
        run,
        note=f"note-{task_id}",
        choice=f"decision-{task_id}-0",
        posted=posted,
        sealer=sealer,
        clock=clock,
    )


@router.post("/staff/intake/applications/{receipt_no}/suspensions", dependencies=[Depends(csrf_form)])
def start_suspension(
    request: Request,
    receipt_no: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Officer,
    clock: ClockDep,
    sealer: SealerDep,
    form: Posted,
) -> Response:
    """Start a special procedure of the item: the time limit pauses until it ends."""
    posted = {"task": "suspend", "kind": _text(form, "kind"), "note": _text(form, "note")}

    def run() -> None:
        body = SuspensionWrite(kind=posted["kind"], note=posted["note"])
        service.start_special_procedure(
            session, principal, receipt_no, kind=body.kind, note=body.note, clock=clock, sealer=sealer
        )

    return _officer_action(
        request,
        lang,
        session,
        principal,
        receipt_no,
        run,
        note="suspend-note",
        choice="suspend-kind",
        posted=posted,
        sealer=sealer,
        clock=clock,
    )


@router.post(
    "/staff/intake/applications/{receipt_no}/suspensions/{suspension_id}/end",
    dependencies=[Depends(csrf_form)],
)
def end_suspension(
    request: Request,
    receipt_no: str,
    suspension_id: int,
    session: DbSession,
    lang: LanguageDep,
    principal: Officer,
    clock: ClockDep,
    sealer: SealerDep,
    form: Posted,
) -> Response:
    note = _text(form, "note")[:2000]

    def run() -> None:
        service.end_special_procedure(
            session, principal, receipt_no, suspension_id, note=note, clock=clock, sealer=sealer
        )

    return _officer_action(
        request,
        lang,
        session,
        principal,
        receipt_no,
        run,
        note=f"resume-note-{suspension_id}",
        choice=f"resume-note-{suspension_id}",
        posted={"task": f"resume-{suspension_id}", "note": note},
        sealer=sealer,
        clock=clock,
    )


@router.get("/staff/intake/monitor")
def monitor(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Supervisor,
    clock: ClockDep,
    department: Annotated[str, Query(max_length=200)] = "",
    item: Annotated[str, Query(max_length=64)] = "",
    level: Annotated[str, Query(max_length=20)] = "attention",
) -> Response:
    """Running applications against their time limits: counts per level, and those due soon or overdue."""
    rows = service.monitor(session, principal, department=None, level=None, clock=clock)
    departments = sorted({r.department for r in rows})
    items = sorted({(r.item_code, r.item_name) for r in rows})
    scoped = [
        r
        for r in rows
        if (not department or r.department == department) and (not item or r.item_code == item)
    ]
    level = level if level in (*LEVELS, "all") else "attention"
    listed = [
        r
        for r in scoped
        if level == "all"
        or r.deadline.level == level
        or (level == "attention" and r.deadline.level in ("red", "yellow"))
    ]
    context = {
        "counts": Counter(r.deadline.level for r in scoped),
        "levels": LEVELS,
        "rows": listed,
        "departments": departments,
        "items": items,
        "filters": {"department": department, "item": item, "level": level},
        "may_open": any(p.startswith(service.LANE) for p in principal.permissions),
    }
    return render_page(request, lang, "intake/monitor.html", context)


# --- shared with the bundle pages (bundle_pages.py) ---------------------------------------------------
# The merged form of a bundle is read, uploaded, checked and shown again exactly as an item's form is.

form_text = _text
entry_of = _entry
entry_from_values = _from_values
add_row = _add_row
upload_new = _upload_new
problem_of = _problem
view_of = _view
receipt_of = _receipt_of
