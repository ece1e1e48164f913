"""Bundles (高效办成一件事): several departments' items applied for at once.

A bundle is a versioned definition written by staff: names in zh and en, situation questions (yes/no or
one of several options), and the items it combines, each with an optional condition over the answers
(JSON Logic through the same allow-list as forms) saying when it applies. For an applicant's answers the
platform builds **one merged form** from the published forms of the items that apply: a field several
items ask for (the same field key, or the same profile datum) is asked once and its value goes to every
item; a file several items need (the same material) is uploaded once and each item's application gets its
own copy. The pre-check runs every item's own rules on its share of the values. Submission stores one
bundle application with its own receipt number and one application per item, each running its own
process in parallel, in one transaction; the applicant follows one combined status.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from tongban.catalog import service as catalog
from tongban.core.auth import Principal
from tongban.core.clock import Clock
from tongban.core.crypto import Sealer
from tongban.core.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from tongban.core.files import FileStore
from tongban.intake import formdef, service
from tongban.intake import repository as repo
from tongban.intake.models import Application, Bundle, BundleApplication
from tongban.intake.models import Upload as UploadRow
from tongban.intake.schemas import FindingOut, MaterialStatus, Prefilled

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,63}$")


# --- the definition ----------------------------------------------------------------------------------


class Text(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zh: str = Field(min_length=1, max_length=500)
    en: str = Field(min_length=1, max_length=500)


class Option(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(pattern=_KEY.pattern)
    label: Text


class Question(BaseModel):
    """A situation question (情形): its answer decides which items apply."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=_KEY.pattern)
    label: Text
    help: Text | None = None
    type: Literal["boolean", "choice"] = "boolean"
    options: list[Option] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _options(self) -> Question:
        if self.type == "choice" and len(self.options) < 2:
            raise ValueError(f"question {self.key}: a choice needs at least two options")
        if self.type == "boolean" and self.options:
            raise ValueError(f"question {self.key}: a yes/no question has no options")
        if len({o.value for o in self.options}) != len(self.options):
            raise ValueError(f"question {self.key}: option values repeat")
        return self


class Part(BaseModel):
    """An item of the bundle; ``when`` (JSON Logic over the answers) says when it applies (always if None)."""

    model_config = ConfigDict(extra="forbid")

    item_code: str = Field(pattern=_CODE.pattern)
    when: JsonValue | None = None


class BundleDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text
    description: Text | None = None
    questions: list[Question] = Field(default_factory=list, max_length=20)
    items: list[Part] = Field(min_length=2, max_length=20)

    @field_validator("items")
    @classmethod
    def _distinct(cls, items: list[Part]) -> list[Part]:
        codes = [p.item_code for p in items]
        if len(set(codes)) != len(codes):
            raise ValueError("an item appears twice")
        return items

    @model_validator(mode="after")
    def _conditions(self) -> BundleDefinition:
        keys = {q.key for q in self.questions}
        if len(keys) != len(self.questions):
            raise ValueError("question keys repeat")
        for part in self.items:
            if part.when is None:
                continue
            formdef.check_expression(part.when, f"items[{part.item_code}].when")
            unknown = sorted(_vars(part.when) - keys)
            if unknown:
                raise ValueError(
                    f"item {part.item_code}: the condition names no question: {', '.join(unknown)}"
                )
        return self


def _vars(expr: Any) -> set[str]:
    if isinstance(expr, dict):
        out: set[str] = set()
        for op, args in expr.items():
            if op == "var":
                name = args[0] if isinstance(args, list) and args else args
                if isinstance(name, str):
                    out.add(name.split(".")[0])
            else:
                out |= _vars(args)
        return out
    if isinstance(expr, list):
        return set().union(*(_vars(e) for e in expr)) if expr else set()
    return set()


def _parsed(raw: Mapping[str, Any]) -> BundleDefinition:
    try:
        return BundleDefinition.model_validate(raw)
    except (ValidationError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or 'bundle'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ]
        else:
            problems = [str(exc)]
        raise InvalidInput(
            "the bundle definition is not valid: " + "; ".join(problems[:20]), errors=problems
        ) from exc


# --- output ------------------------------------------------------------------------------------------


class BundleOut(BaseModel):
    code: str
    version: int
    state: str
    definition: dict[str, Any]
    author: str
    created_at: dt.datetime
    published_by: str | None
    published_at: dt.datetime | None


class PartOut(BaseModel):
    item_code: str
    item_name: str
    item_name_en: str | None
    department: str
    applies: bool


class MergedField(BaseModel):
    """A field of the merged form: the item form's field, under the key the bundle asks it by, with the
    items that use it."""

    key: str
    field: dict[str, Any]
    items: list[str]


class BundleForm(BaseModel):
    code: str
    version: int
    name: Text
    description: Text | None
    questions: list[Question]
    answers: dict[str, Any]
    parts: list[PartOut]
    fields: list[MergedField]
    prefilled: list[Prefilled]
    materials: dict[str, list[MaterialStatus]]
    exempted_share: float | None


class BundleFinding(FindingOut):
    item_code: str


class BundlePrecheckOut(BaseModel):
    ok: bool
    findings: list[BundleFinding]


class BundlePartStatus(BaseModel):
    item_code: str
    item_name: str
    department: str
    receipt_no: str
    status: str
    updated_at: dt.datetime


class BundleApplicationOut(BaseModel):
    receipt_no: str
    bundle_code: str
    name: Text
    answers: dict[str, Any]
    #: One status for the applicant: ``submitted``, ``in_progress``, ``supplement_requested``,
    #: ``approved``, ``partly_approved``, ``refused`` or ``closed``.
    status: str
    submitted_at: dt.datetime
    parts: list[BundlePartStatus]


def _bundle_out(row: Bundle) -> BundleOut:
    return BundleOut(
        code=row.code,
        version=row.version,
        state=row.state,
        definition=row.definition,
        author=row.author,
        created_at=row.created_at,
        published_by=row.published_by,
        published_at=row.published_at,
    )


# --- staff: versions ---------------------------------------------------------------------------------


def _versions(session: Session, code: str) -> list[Bundle]:
    return list(session.scalars(select(Bundle).where(Bundle.code == code).order_by(Bundle.version.desc())))


def _published(session: Session, code: str) -> Bundle:
    row = session.scalars(select(Bundle).where(Bundle.code == code, Bundle.state == "published")).first()
    if row is None:
        raise NotFound(f"no published bundle {code!r}")
    return row


def save_bundle(
    session: Session, principal: Principal, code: str, definition: Mapping[str, Any], *, clock: Clock
) -> BundleOut:
    """A new draft version of a bundle; its items must exist in the catalogue."""
    principal.require(service.FORMS)
    if not _CODE.match(code):
        raise InvalidInput("code: letters, digits, '.', '_' or '-' (2–64)")
    parsed = _parsed(definition)
    for part in parsed.items:
        catalog.get_item(session, principal, part.item_code)
    latest = _versions(session, code)
    row = Bundle(
        code=code,
        version=(latest[0].version + 1) if latest else 1,
        definition=parsed.model_dump(mode="json", exclude_none=True),
        state="draft",
        author=principal.username,
        created_at=clock.now(),
    )
    repo.add(session, row)
    service.audit_action(
        session, principal, "intake.bundle.save", "intake_bundle", f"{code}/{row.version}", clock
    )
    return _bundle_out(row)


def publish_bundle(
    session: Session, principal: Principal, code: str, version: int, *, clock: Clock
) -> BundleOut:
    """Publish a draft (four eyes). Every item needs a published form by then."""
    principal.require(service.FORMS_PUBLISH)
    row = next((b for b in _versions(session, code) if b.version == version), None)
    if row is None:
        raise NotFound(f"no bundle version {version} of {code!r}")
    if row.state == "draft":  # then the service checks the state again and retires the published one
        principal.require_other_than(row.author)
        missing = [
            p.item_code
            for p in _parsed(row.definition).items
            if not service.has_published_form(session, p.item_code)
        ]
        if missing:
            raise Conflict(f"these items have no published application form yet: {', '.join(missing)}")
    service.publish_version(
        session, principal, row, _versions(session, code), what=f"bundle version {version}", clock=clock
    )
    service.audit_action(
        session, principal, "intake.bundle.publish", "intake_bundle", f"{code}/{version}", clock
    )
    return _bundle_out(row)


def list_versions(session: Session, principal: Principal, code: str) -> list[BundleOut]:
    principal.require(service.FORMS)
    return [_bundle_out(b) for b in _versions(session, code)]


def list_bundles(session: Session, principal: Principal) -> list[BundleOut]:
    """Every bundle's latest version (drafts included), for staff."""
    principal.require(service.FORMS)
    latest: dict[str, Bundle] = {}
    for b in session.scalars(select(Bundle).order_by(Bundle.code, Bundle.version)):
        latest[b.code] = b
    return [_bundle_out(b) for b in latest.values()]


def published_bundles(session: Session) -> list[BundleOut]:
    rows = session.scalars(select(Bundle).where(Bundle.state == "published").order_by(Bundle.code))
    return [_bundle_out(b) for b in rows]


def published_bundle(session: Session, code: str) -> BundleOut:
    return _bundle_out(_published(session, code))


# --- answers and the merged form ---------------------------------------------------------------------


def _answers(definition: BundleDefinition, answers: Mapping[str, Any]) -> dict[str, Any]:
    known = {q.key: q for q in definition.questions}
    unknown = sorted(set(answers) - set(known))
    if unknown:
        raise InvalidInput(f"answers: no question {', '.join(unknown)} in this bundle")
    out: dict[str, Any] = {}
    for q in definition.questions:
        if q.key not in answers or answers[q.key] is None:
            raise InvalidInput(f"answers.{q.key}: answer the question “{q.label.zh}” ({q.label.en})")
        value = answers[q.key]
        if q.type == "boolean":
            if not isinstance(value, bool):
                raise InvalidInput(f"answers.{q.key}: true or false")
        elif not isinstance(value, str) or value not in {o.value for o in q.options}:
            raise InvalidInput(f"answers.{q.key}: one of {', '.join(o.value for o in q.options)}")
        out[q.key] = value
    return out


def _applies(part: Part, answers: Mapping[str, Any]) -> bool:
    return part.when is None or formdef.truthy(formdef.evaluate(part.when, answers))


@dataclass
class _Plan:
    """How the merged form maps onto each item's form."""

    parts: list[tuple[Part, Any]]  # (part, ItemOut) of the items that apply
    fields: list[MergedField] = field(default_factory=list)
    #: item code → {item field key: merged key}
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)
    materials: dict[str, list[MaterialStatus]] = field(default_factory=dict)
    prefilled: list[Prefilled] = field(default_factory=list)


#: What may differ between two items' fields that are asked once: how they are worded and whether required.
_WORDING = frozenset(
    {"key", "label", "label_en", "help", "help_en", "placeholder", "placeholder_en", "required"}
)


def _field_signature(f: formdef.Field) -> dict[str, Any]:
    """Everything that decides which values a field accepts; two fields are asked once only if it is equal
    (same type, options, bounds, pattern, material, conditions), so neither item's pre-check can fail on a
    value the merged field let through."""
    return {k: v for k, v in f.model_dump(mode="json", exclude_none=True).items() if k not in _WORDING}


def _plan(
    session: Session,
    principal: Principal,
    definition: BundleDefinition,
    answers: Mapping[str, Any],
    *,
    sealer: Sealer,
    clock: Clock,
) -> _Plan:
    applying = [p for p in definition.items if _applies(p, answers)]
    if not applying:
        raise InvalidInput("with these answers no item of the bundle applies")
    plan = _Plan(parts=[(p, catalog.get_item(session, principal, p.item_code)) for p in applying])
    by_key: dict[str, MergedField] = {}
    by_profile: dict[str, str] = {}
    by_material: dict[str, str] = {}
    seen_prefill: set[str] = set()
    for part, _item in plan.parts:
        shown, statuses, prefilled = service.form_for(
            session, principal, part.item_code, sealer=sealer, clock=clock
        )
        plan.materials[part.item_code] = statuses
        alias: dict[str, str] = {}
        for f in shown.fields:
            candidates = [
                by_profile.get(f.profile_key or ""),
                by_material.get(f.material or "") if f.type == formdef.FieldType.FILE else None,
                f.key,
            ]
            # A field is asked once with an earlier item's field that accepts exactly the same values — never
            # with another field of the same item (an ID card's front and back are two uploads).
            target = next(
                (
                    c
                    for c in candidates
                    if c is not None
                    and c in by_key
                    and c not in alias.values()
                    and _field_signature(f) == _field_signature(_as_field(by_key[c]))
                ),
                None,
            )
            if target is None:
                target = f.key if f.key not in by_key else f"{part.item_code}__{f.key}"
                while target in by_key:  # the item's own key taken by another of its fields' aliases
                    target += "_"
                merged = MergedField(
                    key=target,
                    field={**f.model_dump(mode="json", exclude_none=True), "key": target},
                    items=[],
                )
                by_key[target] = merged
                plan.fields.append(merged)
                if f.profile_key:
                    by_profile.setdefault(f.profile_key, target)
                if f.type == formdef.FieldType.FILE and f.material:
                    by_material.setdefault(f.material, target)
            else:
                # Asked once: required if any item requires it.
                merged_field = by_key[target].field
                merged_field["required"] = bool(merged_field.get("required")) or f.required
            by_key[target].items.append(part.item_code)
            alias[f.key] = target
        plan.aliases[part.item_code] = alias
        for p in prefilled:
            key = alias.get(p.field, p.field)
            if key not in seen_prefill:
                seen_prefill.add(key)
                plan.prefilled.append(p.model_copy(update={"field": key}))
    return plan


def _as_field(merged: MergedField) -> formdef.Field:
    return formdef.Field.model_validate(merged.field)


def bundle_form(
    session: Session,
    principal: Principal,
    code: str,
    answers: Mapping[str, Any],
    *,
    sealer: Sealer,
    clock: Clock,
) -> BundleForm:
    """The merged form for the applicant's answers: each shared field once, prefilled, with every item's
    materials and what the platform supplies."""
    row = _published(session, code)
    definition = _parsed(row.definition)
    given = _answers(definition, answers)
    plan = _plan(session, principal, definition, given, sealer=sealer, clock=clock)
    applying = {p.item_code for p, _ in plan.parts}
    parts = []
    for part in definition.items:
        item = catalog.get_item(session, principal, part.item_code)
        parts.append(
            PartOut(
                item_code=part.item_code,
                item_name=item.content.name,
                item_name_en=item.content.name_en,
                department=item.content.department,
                applies=part.item_code in applying,
            )
        )
    statuses = [s for v in plan.materials.values() for s in v]
    return BundleForm(
        code=row.code,
        version=row.version,
        name=definition.name,
        description=definition.description,
        questions=definition.questions,
        answers=given,
        parts=parts,
        fields=plan.fields,
        prefilled=plan.prefilled,
        materials=plan.materials,
        exempted_share=service.exempted_share(statuses),
    )


def _split(plan: _Plan, item_code: str, values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: values[m] for k, m in plan.aliases[item_code].items() if m in values}


def _merged_field(plan: _Plan, item_code: str, name: str | None) -> str | None:
    if not name:
        return name
    head = re.split(r"[.\[]", name, maxsplit=1)[0]
    target = plan.aliases[item_code].get(head)
    return name if target is None else target + name[len(head) :]


def _findings(plan: _Plan, item_code: str, findings: Sequence[FindingOut]) -> list[BundleFinding]:
    return [
        BundleFinding(
            **{
                **f.model_dump(),
                "field": _merged_field(plan, item_code, f.field),
                "related_fields": [_merged_field(plan, item_code, r) or r for r in f.related_fields],
            },
            item_code=item_code,
        )
        for f in findings
    ]


def _dedupe(findings: list[BundleFinding]) -> list[BundleFinding]:
    """A shared field's problem is reported once (for the first item that found it)."""
    seen: set[tuple[str, str | None, str]] = set()
    out = []
    for f in findings:
        key = (f.code, f.field, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _file_ids(plan: _Plan, item_code: str, values: Mapping[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for merged in plan.fields:
        if merged.field.get("type") == formdef.FieldType.FILE.value and item_code in merged.items:
            ids = values.get(merged.key)
            if isinstance(ids, str):
                out[merged.key] = [ids]
            elif isinstance(ids, list):
                out[merged.key] = [i for i in ids if isinstance(i, str)]
    return out


def check_bundle(
    session: Session,
    principal: Principal,
    code: str,
    answers: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    sealer: Sealer,
    clock: Clock,
) -> BundlePrecheckOut:
    """The pre-check of every item that applies, on its share of the merged values."""
    row = _published(session, code)
    definition = _parsed(row.definition)
    plan = _plan(session, principal, definition, _answers(definition, answers), sealer=sealer, clock=clock)
    findings: list[BundleFinding] = []
    for part, _ in plan.parts:
        result = service.check_application(
            session,
            principal,
            part.item_code,
            _split(plan, part.item_code, values),
            sealer=sealer,
            clock=clock,
        )
        findings += _findings(plan, part.item_code, result.findings)
    findings = _dedupe(findings)
    return BundlePrecheckOut(ok=not any(f.severity == "error" for f in findings), findings=findings)


def submit_bundle(
    session: Session,
    principal: Principal,
    code: str,
    answers: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    sealer: Sealer,
    files: FileStore,
    clock: Clock,
) -> BundleApplicationOut:
    """One submission for the whole bundle: every applying item pre-checked first (any error refuses the
    whole submission and nothing is stored), then one application per item, in one transaction."""
    if principal.account_id is None:
        raise Unauthenticated("sign in to apply")
    row = _published(session, code)
    definition = _parsed(row.definition)
    given = _answers(definition, answers)
    plan = _plan(session, principal, definition, given, sealer=sealer, clock=clock)
    check = check_bundle(session, principal, code, given, values, sealer=sealer, clock=clock)
    if not check.ok:
        raise service.PrecheckFailed(
            "the bundle has problems to fix before it can be submitted",
            findings=[f.model_dump() for f in check.findings],
        )
    bundle_app = BundleApplication(
        receipt_no=service.new_receipt(session, clock),
        bundle_id=row.id,
        applicant_account_id=principal.account_id,
        answers=given,
        submitted_at=clock.now(),
    )
    repo.add(session, bundle_app)
    claimed: set[str] = set()
    for part, _ in plan.parts:
        share = _split(plan, part.item_code, values)
        for merged_key, ids in _file_ids(plan, part.item_code, values).items():
            item_keys = [k for k, m in plan.aliases[part.item_code].items() if m == merged_key]
            fresh = []
            if len(set(ids)) != len(ids):
                raise InvalidInput(f"{merged_key}: the same upload is named twice; upload each file once")
            for upload_id in ids:
                if upload_id in claimed:  # attached to an earlier item's application of this bundle
                    original = session.get(UploadRow, upload_id)
                    if original is None or original.owner_account_id != principal.account_id:
                        raise InvalidInput(f"{merged_key}: no upload {upload_id!r} of yours")
                    copy = service.copy_upload(session, original, files=files, sealer=sealer, clock=clock)
                    fresh.append(copy.id)
                else:
                    claimed.add(upload_id)
                    fresh.append(upload_id)
            for k in item_keys:
                share[k] = fresh
        service.submit_part(
            session,
            principal,
            part.item_code,
            share,
            bundle_application_id=bundle_app.id,
            sealer=sealer,
            clock=clock,
        )
    service.audit_action(
        session,
        principal,
        "intake.bundle.submit",
        "intake_bundle_application",
        bundle_app.receipt_no,
        clock,
        {"bundle": code},
    )
    return _bundle_application_out(session, bundle_app, row)


# --- following a bundle application ------------------------------------------------------------------

_ENDED = {"approved", "refused", "not_accepted", "closed"}


def combined_status(statuses: Sequence[str]) -> str:
    """One status for the applicant from the parts' statuses."""
    if not statuses:
        return "submitted"
    if "supplement_requested" in statuses:
        return "supplement_requested"
    if all(s in _ENDED for s in statuses):
        approved = sum(1 for s in statuses if s == "approved")
        if approved == len(statuses):
            return "approved"
        if approved:
            return "partly_approved"
        return "refused" if any(s in ("refused", "not_accepted") for s in statuses) else "closed"
    if all(s == "submitted" for s in statuses):
        return "submitted"
    return "in_progress"


def _bundle_application_out(
    session: Session, bundle_app: BundleApplication, row: Bundle | None = None
) -> BundleApplicationOut:
    bundle = row or session.get_one(Bundle, bundle_app.bundle_id)
    parts = list(
        session.scalars(
            select(Application)
            .where(Application.bundle_application_id == bundle_app.id)
            .order_by(Application.id)
        )
    )
    return BundleApplicationOut(
        receipt_no=bundle_app.receipt_no,
        bundle_code=bundle.code,
        name=Text.model_validate(bundle.definition["name"]),
        answers=bundle_app.answers,
        status=combined_status([a.status for a in parts]),
        submitted_at=bundle_app.submitted_at,
        parts=[
            BundlePartStatus(
                item_code=a.item_code,
                item_name=a.item_name,
                department=a.department,
                receipt_no=a.receipt_no,
                status=a.status,
                updated_at=a.updated_at,
            )
            for a in parts
        ],
    )


def get_bundle_application(session: Session, principal: Principal, receipt_no: str) -> BundleApplicationOut:
    found = session.scalars(
        select(BundleApplication).where(BundleApplication.receipt_no == receipt_no)
    ).first()
    if found is None or found.applicant_account_id != principal.account_id:
        raise NotFound(f"no bundle application {receipt_no!r}")
    return _bundle_application_out(session, found)


def my_bundle_applications(
    session: Session, principal: Principal, *, limit: int = 50
) -> list[BundleApplicationOut]:
    if principal.account_id is None:
        raise Unauthenticated("sign in to see your applications")
    rows = session.scalars(
        select(BundleApplication)
        .where(BundleApplication.applicant_account_id == principal.account_id)
        .order_by(BundleApplication.submitted_at.desc())
        .limit(limit)
    )
    return [_bundle_application_out(session, r) for r in rows]
