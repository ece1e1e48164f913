"""Intake's public functions. Each takes a session and never commits (the caller's edge does).

Profiles (一人一档, 一企一档): every datum carries its source and time; verified sources (e-licence,
shared data, officer) cannot be overwritten by the holder; values are sealed at rest and masked by
role. Use of the data is scoped by the holder's consent per purpose: prefill needs ``prefill``,
exemption of materials needs ``exempt``; both are visible and revocable by the holder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session, sessionmaker

from tongban.catalog import service as catalog
from tongban.catalog.schemas import ItemOut
from tongban.core import audit, calendar, events, idempotency, notify
from tongban.core.auth import ANONYMOUS, Principal
from tongban.core.clock import Clock
from tongban.core.config import Settings
from tongban.core.crypto import Sealer
from tongban.core.errors import (
    CalendarUnknown,
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
)
from tongban.core.files import FileStore, new_file_key
from tongban.core.models import Account
from tongban.intake import (
    deadlines,
    departments,
    documents,
    formdef,
    identifiers,
    notices,
    outbox,
    process,
    uploads,
)
from tongban.intake import repository as repo
from tongban.intake.models import (
    Application,
    ApplicationEvent,
    Consent,
    ELicence,
    IntakeForm,
    ItemProcess,
    ItemSetting,
    Profile,
    ProfileDatum,
    Suspension,
    WorkItem,
)
from tongban.intake.models import Upload as UploadRow
from tongban.intake.precheck import PrecheckResult
from tongban.intake.precheck import precheck as run_precheck
from tongban.intake.schemas import (
    ApplicationForm,
    ApplicationOut,
    ApplicationSummary,
    ConsentOut,
    DatumOut,
    DeadlineOut,
    EventOut,
    FindingOut,
    FormOut,
    LicenceOut,
    MaterialStatus,
    MonitorRow,
    PrecheckOut,
    Prefilled,
    ProcessOut,
    ProcessStepOut,
    ProfileOut,
    StepOut,
    SuspensionOut,
    UploadOut,
    WorkItemOut,
)
from tongban.intake.vocab import (
    DATA_KEYS,
    PURPOSE_TEXT,
    VERIFIED_SOURCES,
    Classification,
    DataKey,
    DataSource,
    ProfileKind,
    Purpose,
)

#: Permission to read and record profiles at a counter (personal data shown unmasked).
PROFILES = "intake:profiles"
#: Permission to see sensitive data (ID numbers, ethnicity, marital status) unmasked.
SENSITIVE = "intake:sensitive"

#: Receipt numbers and days follow the city's clock.
CHINA = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[a-z]{2,24}$", re.IGNORECASE)


class PrecheckFailed(DomainError):
    """Submission refused: the pre-check found errors (listed in ``findings``); nothing was stored."""

    status = 422
    slug = "precheck-failed"
    title = "The application has problems to fix"


def _audit(
    session: Session,
    actor: Principal | str,
    action: str,
    target_type: str,
    target_id: str,
    clock: Clock,
    detail: dict[str, Any] | None = None,
) -> None:
    audit.record(
        session,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        clock=clock,
        detail=detail,
    )


# --- values ------------------------------------------------------------------------------------------


def _coerce(spec: DataKey, value: Any) -> Any:
    """The canonical value of ``spec`` from ``value``, or :class:`InvalidInput` naming what is wrong."""
    where = f"{spec.key}: "
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(where + "a value is required (to remove a value, ask an officer)")
    try:
        if spec.type == "id_number":
            return identifiers.check_id_number(str(value)).number
        if spec.type == "credit_code":
            return identifiers.check_credit_code(str(value))
        if spec.type == "mobile":
            return identifiers.check_mobile(str(value))
    except identifiers.IdentifierError as exc:
        raise InvalidInput(where + exc.message_en, code=exc.code, message_zh=exc.message_zh) from exc
    if spec.type == "email":
        text = str(value).strip()
        if not _EMAIL.match(text):
            raise InvalidInput(where + "not an email address")
        return text
    if spec.type == "date":
        try:
            return dt.date.fromisoformat(str(value)).isoformat()
        except ValueError as exc:
            raise InvalidInput(where + "a date as YYYY-MM-DD") from exc
    if spec.type in ("money", "integer"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(where + "a whole number ≥ 0" + (" (fen)" if spec.type == "money" else ""))
        return value
    if spec.type == "choice":
        if value not in spec.choices:
            raise InvalidInput(where + f"one of {', '.join(spec.choices)}")
        return value
    if not isinstance(value, str) or len(value.strip()) > 500:
        raise InvalidInput(where + "text of at most 500 characters")
    return value.strip()


def _context(profile_id: int, key: str) -> str:
    return f"intake_profile_datum:{profile_id}:{key}"


def _open(sealer: Sealer, datum: ProfileDatum) -> Any:
    return json.loads(sealer.open(datum.value_sealed, _context(datum.profile_id, datum.key)))


def mask(spec_type: str, value: Any) -> str:
    """A masked form of a value that keeps enough to recognise it (first and last characters)."""
    text = str(value)
    if spec_type == "id_number":
        return identifiers.mask_id_number(text)
    if spec_type == "mobile":
        return identifiers.mask_mobile(text)
    if spec_type == "date":
        return text[:4] + "-**-**"
    if spec_type == "email":
        name, _, domain = text.partition("@")
        return name[:1] + "***@" + domain
    if len(text) <= 1:
        return "*"
    if len(text) <= 3:
        return text[0] + "*" * (len(text) - 1)
    return text[0] + "*" * (len(text) - 2) + text[-1]


def _may_see(principal: Principal, profile: Profile, classification: Classification) -> bool:
    if classification == Classification.PUBLIC:
        return True
    if principal.account_id is not None and principal.account_id == profile.owner_account_id:
        return True
    if classification == Classification.PERSONAL:
        return principal.can(PROFILES)
    return principal.can(SENSITIVE)


# --- access ------------------------------------------------------------------------------------------


def _owned(principal: Principal, profile: Profile) -> bool:
    return principal.account_id is not None and principal.account_id == profile.owner_account_id


def _readable(session: Session, principal: Principal, profile_id: int) -> Profile:
    if not principal.is_authenticated:
        raise Unauthenticated("sign in to see a profile")
    profile = repo.profile(session, profile_id)
    if profile is None or not (_owned(principal, profile) or principal.can(PROFILES)):
        # Someone else's profile does not exist as far as the caller can tell.
        raise NotFound(f"no profile {profile_id}")
    return profile


def my_profile(session: Session, principal: Principal, kind: ProfileKind, *, clock: Clock) -> Profile:
    """The caller's own person profile (created on first use), or their first enterprise profile."""
    if principal.account_id is None:
        raise Unauthenticated("sign in to use your profile")
    found = repo.profiles_of_owner(session, principal.account_id, kind.value)
    if found:
        return found[0]
    if kind == ProfileKind.ENTERPRISE:
        raise NotFound("you act for no enterprise yet; an officer links your account to one")
    profile = Profile(kind=kind.value, owner_account_id=principal.account_id, created_at=clock.now())
    repo.add(session, profile)
    return profile


def create_profile(
    session: Session, principal: Principal, kind: ProfileKind, *, owner_account_id: int | None, clock: Clock
) -> Profile:
    """An officer opens a profile (an enterprise for its representative, or a person without an account)."""
    principal.require(PROFILES)
    profile = Profile(kind=kind.value, owner_account_id=owner_account_id, created_at=clock.now())
    repo.add(session, profile)
    _audit(
        session,
        principal,
        "intake.profile.create",
        "intake_profile",
        str(profile.id),
        clock,
        {"kind": kind.value, "owner_account_id": owner_account_id},
    )
    return profile


def get_profile(session: Session, principal: Principal, profile_id: int) -> Profile:
    return _readable(session, principal, profile_id)


def view(
    session: Session, principal: Principal, profile: Profile, *, sealer: Sealer, clock: Clock
) -> ProfileOut:
    """The profile as ``principal`` may see it; an officer's look at someone's personal data is audited."""
    data: list[DatumOut] = []
    shown: list[str] = []
    for datum in repo.current_data(session, profile.id):
        spec = DATA_KEYS.get(datum.key)
        if spec is None:
            continue
        value = _open(sealer, datum)
        visible = _may_see(principal, profile, spec.classification)
        if visible and spec.classification != Classification.PUBLIC:
            shown.append(datum.key)
        data.append(
            DatumOut(
                key=datum.key,
                label=spec.label,
                label_en=spec.label_en,
                classification=spec.classification,
                value=value if visible else mask(spec.type, value),
                masked=not visible,
                source=DataSource(datum.source),
                source_ref=datum.source_ref,
                recorded_at=datum.recorded_at,
                verified=datum.source in VERIFIED_SOURCES,
            )
        )
    order = list(DATA_KEYS)
    data.sort(key=lambda d: order.index(d.key))
    if shown and not _owned(principal, profile):
        _audit(
            session,
            principal,
            "intake.profile.view",
            "intake_profile",
            str(profile.id),
            clock,
            {"keys": shown},
        )
    now = clock.now()
    own_or_officer = _owned(principal, profile) or principal.can(SENSITIVE)
    return ProfileOut(
        id=profile.id,
        kind=ProfileKind(profile.kind),
        data=data,
        consents=[_consent_out(c, now) for c in repo.consents(session, profile.id)],
        licences=[
            _licence_out(sealer, lic, now.date(), unmasked=own_or_officer)
            for lic in repo.licences(session, profile.id)
        ],
    )


# --- data --------------------------------------------------------------------------------------------


def _subject_key(kind: str) -> str:
    return "person.id_number" if kind == ProfileKind.PERSON else "enterprise.credit_code"


def _record(
    session: Session,
    profile: Profile,
    values: Mapping[str, Any],
    *,
    source: DataSource,
    source_ref: str | None,
    actor: str,
    sealer: Sealer,
    clock: Clock,
    holder_writes: bool,
) -> list[str]:
    """Record ``values`` (already checked); returns the keys whose value changed."""
    now = clock.now()
    current = {d.key: d for d in repo.current_data(session, profile.id, values)}
    changed: list[str] = []
    for key, value in values.items():
        old = current.get(key)
        if old is not None:
            if holder_writes and old.source in VERIFIED_SOURCES:
                if _open(sealer, old) == value:
                    continue
                raise Conflict(
                    f"{key} was verified by {old.source}"
                    + (f" ({old.source_ref})" if old.source_ref else "")
                    + "; ask the department that holds it to correct it",
                    key=key,
                )
            if _open(sealer, old) == value and old.source == source.value and old.source_ref == source_ref:
                continue
            repo.supersede(session, old.id, now)
        if key == _subject_key(profile.kind) and source in VERIFIED_SOURCES:
            # Only a verified identifier says whose profile this is: a number an applicant types claims
            # nothing (and tells nothing about whether it is registered).
            digest = sealer.digest(str(value), profile.kind)
            other = repo.profile_by_digest(session, profile.kind, digest)
            if other is not None and other.id != profile.id:
                raise Conflict(
                    f"{key} already belongs to another profile; an officer must merge the two", key=key
                )
            profile.subject_digest = digest
        repo.add(
            session,
            ProfileDatum(
                profile_id=profile.id,
                key=key,
                value_sealed=sealer.seal(json.dumps(value, ensure_ascii=False), _context(profile.id, key)),
                source=source.value,
                source_ref=source_ref,
                recorded_at=now,
                recorded_by=actor,
            ),
        )
        changed.append(key)
    return changed


def _checked(profile: Profile, values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        spec = DATA_KEYS.get(key)
        if spec is None:
            raise InvalidInput(f"{key}: unknown data key; see GET /api/v1/intake/data-keys", key=key)
        if spec.kind != profile.kind:
            raise InvalidInput(f"{key}: belongs to {spec.kind.value} profiles, not {profile.kind}", key=key)
        out[key] = _coerce(spec, value)
    _agree_with_id(out)
    return out


def _agree_with_id(values: dict[str, Any]) -> None:
    """An ID number states a birth date and a sex: values recorded with it must agree."""
    number = values.get("person.id_number")
    if number is None:
        return
    parsed = identifiers.check_id_number(number)
    if "person.birth_date" in values and values["person.birth_date"] != parsed.birth_date.isoformat():
        raise InvalidInput("person.birth_date: does not match the date of birth in the ID number")
    if "person.sex" in values and values["person.sex"] != parsed.sex:
        raise InvalidInput("person.sex: does not match the sex stated by the ID number")


def set_own_data(
    session: Session,
    principal: Principal,
    profile: Profile,
    values: Mapping[str, Any],
    *,
    sealer: Sealer,
    clock: Clock,
) -> list[str]:
    """The holder records or corrects values they state themselves (source ``applicant``)."""
    if not _owned(principal, profile):
        raise NotFound(f"no profile {profile.id}")
    checked = _checked(profile, values)
    changed = _record(
        session,
        profile,
        checked,
        source=DataSource.APPLICANT,
        source_ref=None,
        actor=principal.username,
        sealer=sealer,
        clock=clock,
        holder_writes=True,
    )
    if changed:
        _audit(
            session,
            principal,
            "intake.profile.data",
            "intake_profile",
            str(profile.id),
            clock,
            {"keys": changed, "source": DataSource.APPLICANT.value},
        )
    return changed


def record_data(
    session: Session,
    principal: Principal,
    profile: Profile,
    values: Mapping[str, Any],
    *,
    source: DataSource,
    source_ref: str | None,
    reason: str,
    sealer: Sealer,
    clock: Clock,
) -> list[str]:
    """An officer records verified values (checked at the counter, or received as shared data)."""
    principal.require(PROFILES)
    if source == DataSource.APPLICANT:
        raise InvalidInput("source: officers record officer, shared_data or e_licence values")
    if source in (DataSource.SHARED_DATA, DataSource.E_LICENCE) and not source_ref:
        raise InvalidInput(f"source_ref: name the {source.value} item the values come from")
    checked = _checked(profile, values)
    changed = _record(
        session,
        profile,
        checked,
        source=source,
        source_ref=source_ref,
        actor=principal.username,
        sealer=sealer,
        clock=clock,
        holder_writes=False,
    )
    _audit(
        session,
        principal,
        "intake.profile.data",
        "intake_profile",
        str(profile.id),
        clock,
        {"keys": changed, "source": source.value, "source_ref": source_ref, "reason": reason},
    )
    return changed


def current_values(
    session: Session, profile: Profile, *, sealer: Sealer
) -> dict[str, tuple[Any, ProfileDatum]]:
    return {d.key: (_open(sealer, d), d) for d in repo.current_data(session, profile.id)}


# --- consent -----------------------------------------------------------------------------------------


def _consent_out(consent: Consent, now: dt.datetime) -> ConsentOut:
    purpose = Purpose(consent.purpose)
    zh, en = PURPOSE_TEXT[purpose]
    active = consent.revoked_at is None and (consent.expires_at is None or consent.expires_at > now)
    return ConsentOut(
        purpose=purpose,
        description=zh,
        description_en=en,
        granted_at=consent.granted_at,
        expires_at=consent.expires_at,
        revoked_at=consent.revoked_at,
        active=active,
    )


def grant_consent(
    session: Session,
    principal: Principal,
    profile: Profile,
    purpose: Purpose,
    *,
    days: int | None,
    clock: Clock,
) -> ConsentOut:
    """The holder consents to one purpose; granting again renews it."""
    if not _owned(principal, profile):
        raise Forbidden("only the profile's holder can give consent")
    now = clock.now()
    current = repo.active_consent(session, profile.id, purpose.value, now)
    if current is not None:
        current.revoked_at = now
    consent = Consent(
        profile_id=profile.id,
        purpose=purpose.value,
        granted_at=now,
        granted_by=principal.username,
        expires_at=now + dt.timedelta(days=days) if days else None,
    )
    repo.add(session, consent)
    _audit(
        session,
        principal,
        "intake.consent.grant",
        "intake_profile",
        str(profile.id),
        clock,
        {"purpose": purpose.value, "days": days},
    )
    return _consent_out(consent, now)


def revoke_consent(
    session: Session, principal: Principal, profile: Profile, purpose: Purpose, *, clock: Clock
) -> bool:
    """The holder withdraws a consent; returns False when none was active (revoking is idempotent)."""
    if not _owned(principal, profile):
        raise Forbidden("only the profile's holder can withdraw consent")
    now = clock.now()
    current = repo.active_consent(session, profile.id, purpose.value, now)
    if current is None:
        return False
    current.revoked_at = now
    _audit(
        session,
        principal,
        "intake.consent.revoke",
        "intake_profile",
        str(profile.id),
        clock,
        {"purpose": purpose.value},
    )
    return True


def has_consent(session: Session, profile: Profile, purpose: Purpose, *, clock: Clock) -> bool:
    return repo.active_consent(session, profile.id, purpose.value, clock.now()) is not None


# --- e-licences --------------------------------------------------------------------------------------


def _licence_context(licence_type: str, what: str) -> str:
    return f"intake_elicence:{licence_type}:{what}"


def _licence_state(licence: ELicence, today: dt.date) -> str:
    if licence.status == "revoked":
        return "revoked"
    if licence.valid_until is not None and licence.valid_until < today:
        return "expired"
    return "valid"


def _licence_out(sealer: Sealer, licence: ELicence, today: dt.date, *, unmasked: bool) -> LicenceOut:
    number = sealer.open(licence.number_sealed, _licence_context(licence.licence_type, "number"))
    return LicenceOut(
        id=licence.id,
        licence_type=licence.licence_type,
        number=number if unmasked else mask("text", number),
        masked=not unmasked,
        issuer=licence.issuer,
        issued_on=licence.issued_on,
        valid_until=licence.valid_until,
        status=licence.status,
        state=_licence_state(licence, today),
    )


def record_licence(
    session: Session,
    principal: Principal,
    profile: Profile,
    *,
    licence_type: str,
    number: str,
    issuer: str,
    issued_on: dt.date,
    valid_until: dt.date | None,
    status: str,
    data: Mapping[str, Any],
    sealer: Sealer,
    clock: Clock,
) -> LicenceOut:
    """Record (or update, by type and number) an e-licence a profile holds."""
    principal.require(PROFILES)
    if valid_until is not None and valid_until < issued_on:
        raise InvalidInput("valid_until: before issued_on")
    digest = sealer.digest(number.strip(), f"licence:{licence_type}")
    licence = repo.licence_by_number(session, licence_type, digest)
    if licence is not None and licence.holder_profile_id != profile.id:
        raise Conflict(f"licence {licence_type} with this number is held by another profile")
    sealed_data = sealer.seal(
        json.dumps(dict(data), ensure_ascii=False), _licence_context(licence_type, digest)
    )
    if licence is None:
        licence = ELicence(
            holder_profile_id=profile.id,
            licence_type=licence_type,
            number_sealed=sealer.seal(number.strip(), _licence_context(licence_type, "number")),
            number_digest=digest,
            issuer=issuer,
            issued_on=issued_on,
            valid_until=valid_until,
            status=status,
            data_sealed=sealed_data,
            recorded_at=clock.now(),
            recorded_by=principal.username,
        )
        repo.add(session, licence)
    else:
        licence.issuer, licence.issued_on, licence.valid_until = issuer, issued_on, valid_until
        licence.status, licence.data_sealed = status, sealed_data
        licence.recorded_at, licence.recorded_by = clock.now(), principal.username
    _audit(
        session,
        principal,
        "intake.licence.record",
        "intake_profile",
        str(profile.id),
        clock,
        {"licence_type": licence_type, "licence_id": licence.id, "status": status},
    )
    return _licence_out(sealer, licence, clock.now().date(), unmasked=True)


# --- prefill and exemption ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MaterialNeed:
    """What exemption needs to know of a catalogue material (``Material`` of the catalogue)."""

    name: str
    required: bool
    source: str
    source_ref: str | None


def prefill(
    session: Session,
    profile: Profile,
    fields: Mapping[str, str],
    *,
    sealer: Sealer,
    clock: Clock,
) -> list[Prefilled]:
    """Values for form fields (field key → profile key) from the profile, with their source.

    Nothing is prefilled without the holder's ``prefill`` consent.
    """
    if not has_consent(session, profile, Purpose.PREFILL, clock=clock):
        return []
    values = current_values(session, profile, sealer=sealer)
    out = []
    for field, key in fields.items():
        if key in values:
            value, datum = values[key]
            out.append(
                Prefilled(
                    field=field,
                    value=value,
                    profile_key=key,
                    source=DataSource(datum.source),
                    source_ref=datum.source_ref,
                    recorded_at=datum.recorded_at,
                    verified=datum.source in VERIFIED_SOURCES,
                )
            )
    return out


def material_status(
    session: Session,
    profile: Profile | None,
    materials: Sequence[MaterialNeed],
    *,
    clock: Clock,
) -> list[MaterialStatus]:
    """For each material: exempt (an e-licence or shared-data item held for the applicant satisfies it),
    or to upload. Exemption needs the holder's ``exempt`` consent."""
    consented = profile is not None and has_consent(session, profile, Purpose.EXEMPT, clock=clock)
    today = clock.now().date()
    licences = repo.licences(session, profile.id) if consented and profile is not None else []
    shared = (
        {d.source_ref for d in repo.current_data(session, profile.id) if d.source == DataSource.SHARED_DATA}
        if consented and profile is not None
        else set()
    )
    out = []
    for m in materials:
        if m.source == "exempt":
            out.append(MaterialStatus(name=m.name, required=m.required, status="not_needed"))
            continue
        if m.source not in ("e_licence", "shared_data"):
            out.append(MaterialStatus(name=m.name, required=m.required, status="upload"))
            continue
        if not consented:
            out.append(
                MaterialStatus(
                    name=m.name,
                    required=m.required,
                    status="upload",
                    reason="未授权使用电子证照和共享数据",
                    reason_en="you have not consented to the use of your e-licences and shared data",
                )
            )
            continue
        if m.source == "e_licence":
            held = [lic for lic in licences if lic.licence_type == m.source_ref]
            valid = [lic for lic in held if _licence_state(lic, today) == "valid"]
            if valid:
                out.append(
                    MaterialStatus(
                        name=m.name,
                        required=m.required,
                        status="exempt",
                        satisfied_by=f"e_licence:{m.source_ref}",
                    )
                )
            else:
                state = _licence_state(held[0], today) if held else None
                out.append(
                    MaterialStatus(
                        name=m.name,
                        required=m.required,
                        status="upload",
                        reason={"expired": "电子证照已过期", "revoked": "电子证照已注销"}.get(
                            state or "", "未找到对应的电子证照"
                        ),
                        reason_en={
                            "expired": "the e-licence has expired",
                            "revoked": "the e-licence was revoked",
                        }.get(state or "", "no such e-licence is on record for you"),
                    )
                )
            continue
        if m.source_ref in shared:
            out.append(
                MaterialStatus(
                    name=m.name,
                    required=m.required,
                    status="exempt",
                    satisfied_by=f"shared_data:{m.source_ref}",
                )
            )
        else:
            out.append(
                MaterialStatus(
                    name=m.name,
                    required=m.required,
                    status="upload",
                    reason="共享数据中没有您的相关记录",
                    reason_en="the shared data hold no record of this for you",
                )
            )
    return out


def exempted_share(statuses: Iterable[MaterialStatus]) -> float | None:
    """Share of the required materials the applicant does not have to submit (None when none is required)."""
    required = [s for s in statuses if s.required]
    if not required:
        return None
    return sum(1 for s in required if s.status in ("exempt", "not_needed")) / len(required)


# --- forms -------------------------------------------------------------------------------------------

#: Permission to write application forms; publishing needs ``intake:forms_publish`` and a second person.
FORMS = "intake:forms"
FORMS_PUBLISH = "intake:forms_publish"


def _definition(raw: Mapping[str, Any]) -> formdef.FormDefinition:
    try:
        return formdef.FormDefinition.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        ]
        raise InvalidInput(
            "the form definition is not valid: " + "; ".join(problems[:20]), errors=problems
        ) from exc


def _form_out(form: IntakeForm) -> FormOut:
    return FormOut(
        item_code=form.item_code,
        version=form.version,
        state=form.state,
        definition=form.definition,
        author=form.author,
        created_at=form.created_at,
        published_by=form.published_by,
        published_at=form.published_at,
    )


def save_form(
    session: Session, principal: Principal, item_code: str, definition: Mapping[str, Any], *, clock: Clock
) -> FormOut:
    """A new draft version of an item's form (checked: fields, expressions, rules, materials)."""
    principal.require(FORMS)
    item = catalog.get_item(session, principal, item_code)
    parsed = _definition(definition)
    names = {m.name for m in item.content.materials}
    loose = [f.key for f in parsed.fields if f.type == formdef.FieldType.FILE and not f.material]
    if loose:
        raise InvalidInput(
            f"file fields must name the catalogue material they carry: {', '.join(loose)}; "
            f"the item's materials are: {', '.join(sorted(names)) or '(none)'}",
            errors=[f"fields.{k}.material: required for a file field" for k in loose],
        )
    unknown = sorted({f.material for f in parsed.fields if f.material and f.material not in names})
    if unknown:
        raise InvalidInput(
            f"file fields name materials the item does not list: {', '.join(unknown)}; "
            f"the item's materials are: {', '.join(sorted(names)) or '(none)'}"
        )
    latest = repo.latest_form(session, item_code)
    form = IntakeForm(
        item_code=item_code,
        version=(latest.version + 1) if latest else 1,
        definition=parsed.model_dump(mode="json", exclude_none=True),
        state="draft",
        author=principal.username,
        created_at=clock.now(),
    )
    repo.add(session, form)
    _audit(session, principal, "intake.form.save", "intake_form", f"{item_code}/{form.version}", clock)
    return _form_out(form)


class Versioned(Protocol):
    """A versioned definition (a form, a process, a bundle): drafts are published by a second person."""

    state: str
    author: str
    published_by: str | None
    published_at: dt.datetime | None


def publish_version(
    session: Session,
    principal: Principal,
    row: Versioned,
    others: Iterable[Versioned],
    *,
    what: str,
    clock: Clock,
) -> None:
    """Publish the draft ``row`` (four eyes: not by its author) and retire the published one among
    ``others``. Another publisher who got there first makes it a 409, not a 500 (one published version
    per item is a unique index)."""
    if row.state != "draft":
        raise Conflict(f"{what} is {row.state}, not a draft")
    principal.require_other_than(row.author)
    for other in others:
        if other is not row and other.state == "published":
            other.state = "retired"
    row.state, row.published_by, row.published_at = "published", principal.username, clock.now()
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"{what} was published by someone else at the same moment; reload and try again"
        ) from exc


def publish_form(
    session: Session, principal: Principal, item_code: str, version: int, *, clock: Clock
) -> FormOut:
    """Publish a draft (four eyes: not by its author); the previously published version is retired."""
    principal.require(FORMS_PUBLISH)
    form = repo.form(session, item_code, version)
    if form is None:
        raise NotFound(f"no form version {version} for item {item_code!r}")
    publish_version(
        session, principal, form, repo.forms(session, item_code), what=f"form version {version}", clock=clock
    )
    _audit(session, principal, "intake.form.publish", "intake_form", f"{item_code}/{version}", clock)
    return _form_out(form)


_PERSON_FIELDS: tuple[dict[str, Any], ...] = (
    {
        "key": "name",
        "label": "申请人姓名",
        "label_en": "Applicant's name",
        "type": "text",
        "required": True,
        "max_length": 50,
        "profile_key": "person.name",
    },
    {
        "key": "id_number",
        "label": "公民身份号码",
        "label_en": "ID number",
        "type": "id_number",
        "required": True,
        "profile_key": "person.id_number",
    },
    {
        "key": "mobile",
        "label": "手机号码",
        "label_en": "Mobile number",
        "type": "mobile",
        "required": True,
        "profile_key": "person.mobile",
    },
    {
        "key": "address",
        "label": "联系地址",
        "label_en": "Address",
        "type": "address",
        "max_length": 200,
        "profile_key": "person.address",
    },
)
_ENTERPRISE_FIELDS: tuple[dict[str, Any], ...] = (
    {
        "key": "enterprise_name",
        "label": "单位名称",
        "label_en": "Name of the organisation",
        "type": "text",
        "required": True,
        "max_length": 200,
    },
    {
        "key": "credit_code",
        "label": "统一社会信用代码",
        "label_en": "Unified social credit code",
        "type": "credit_code",
        "required": True,
    },
    {
        "key": "contact_name",
        "label": "经办人姓名",
        "label_en": "Name of the person applying",
        "type": "text",
        "required": True,
        "max_length": 50,
        "profile_key": "person.name",
    },
    {
        "key": "contact_mobile",
        "label": "经办人手机号码",
        "label_en": "Mobile number of the person applying",
        "type": "mobile",
        "required": True,
        "profile_key": "person.mobile",
    },
)


def generated_form(item: ItemOut) -> dict[str, Any]:
    """A basic application form for an item that has none of its own yet: who applies (a person, or an
    organisation and the person acting for it, by the item's audiences), what they ask for, and one upload
    per material the applicant supplies — so every published item can be applied for online until staff
    write its real form."""
    content = item.content
    audiences = {str(getattr(a, "value", a)) for a in content.audiences}
    person = "natural_person" in audiences
    fields: list[dict[str, Any]] = [dict(f) for f in _PERSON_FIELDS] if person else []
    if audiences - {"natural_person"}:
        if person:  # persons and organisations may apply: the organisation's fields only for organisations
            fields.append(
                {
                    "key": "as_organisation",
                    "label": "以单位名义申请",
                    "label_en": "Applying for an organisation",
                    "type": "boolean",
                }
            )
            fields += [
                {**f, "show_if": {"==": [{"var": "as_organisation"}, True]}} for f in _ENTERPRISE_FIELDS[:2]
            ]
        else:
            fields += [dict(f) for f in _ENTERPRISE_FIELDS]
    fields.append(
        {
            "key": "request",
            "label": "申请事项说明",
            "label_en": "What you are applying for",
            "type": "textarea",
            "max_length": 2000,
            "help": "简要说明申请的内容和理由。",
            "help_en": "Briefly describe what you apply for and why.",
        }
    )
    used: set[str] = set()
    for n, m in enumerate(content.materials, start=1):
        if m.source.value == "exempt" or m.name in used:
            continue
        used.add(m.name)
        fields.append(
            {
                "key": f"material_{n}",
                "label": m.name[:200],
                "label_en": f"Material {n}: {m.name}"[:200],
                "type": "file",
                "required": bool(m.required) and not m.situations,
                "material": m.name,
                "accept": ["application/pdf", "image/jpeg", "image/png", "application/ofd"],
            }
        )
    return {"fields": fields}


def publish_generated_forms(
    session: Session, *, actor: str, clock: Clock, codes: Sequence[str] | None = None
) -> int:
    """Give every published item without a form of its own a generated, published one (idempotent: items
    with any form version are left alone). A system task (``tongban intake generate-forms``), audited."""
    done = 0
    wanted = set(codes) if codes is not None else None
    for content in catalog.export_items(session):
        if wanted is not None and content.code not in wanted:
            continue
        if repo.latest_form(session, content.code) is not None:
            continue
        item = catalog.get_item(session, ANONYMOUS, content.code)
        try:
            definition = _definition(generated_form(item))
        except InvalidInput:
            continue  # an item whose materials cannot make a form (reported by the catalogue's checks)
        now = clock.now()
        repo.add(
            session,
            IntakeForm(
                item_code=content.code,
                version=1,
                definition=definition.model_dump(mode="json", exclude_none=True),
                state="published",
                author=actor,
                created_at=now,
                published_by=actor,
                published_at=now,
            ),
        )
        _audit(session, actor, "intake.form.generate", "intake_form", f"{content.code}/1", clock)
        done += 1
    return done


def list_forms(session: Session, principal: Principal, item_code: str) -> list[FormOut]:
    principal.require(FORMS)
    return [_form_out(f) for f in repo.forms(session, item_code)]


def _published(session: Session, item_code: str) -> tuple[IntakeForm, formdef.FormDefinition]:
    form = repo.published_form(session, item_code)
    if form is None:
        raise NotFound(f"item {item_code!r} cannot be applied for online yet (no published form)")
    return form, formdef.FormDefinition.model_validate(form.definition)


def _needs(item: ItemOut, situations: Sequence[str] = ()) -> list[MaterialNeed]:
    return [
        MaterialNeed(m.name, m.required, m.source.value, m.source_ref)
        for m in item.content.materials
        if not m.situations or not situations or set(m.situations) & set(situations)
    ]


def _without_exempt(
    definition: formdef.FormDefinition, statuses: Sequence[MaterialStatus]
) -> formdef.FormDefinition:
    """The form without the file fields of materials the platform supplies (nothing known is asked again)."""
    supplied = {s.name for s in statuses if s.status in ("exempt", "not_needed")}
    keep = [f for f in definition.fields if not (f.type == formdef.FieldType.FILE and f.material in supplied)]
    if len(keep) == len(definition.fields):
        return definition
    try:
        return formdef.FormDefinition.model_validate(
            {
                **definition.model_dump(mode="json", exclude_none=True),
                "fields": [f.model_dump(mode="json", exclude_none=True) for f in keep],
            }
        )
    except ValidationError:
        # A rule or condition refers to the removed field: keep the field, but it may stay empty.
        fields = [
            f.model_copy(update={"required": False})
            if f.type == formdef.FieldType.FILE and f.material in supplied
            else f
            for f in definition.fields
        ]
        return definition.model_copy(update={"fields": fields})


def _applicant_data(
    session: Session, principal: Principal, *, sealer: Sealer, clock: Clock
) -> tuple[Profile | None, dict[str, Any]]:
    if principal.account_id is None:
        return None, {}
    found = repo.profiles_of_owner(session, principal.account_id, ProfileKind.PERSON.value)
    if not found:
        return None, {}
    profile = found[0]
    if not has_consent(session, profile, Purpose.PREFILL, clock=clock):
        return profile, {}
    return profile, {k: v for k, (v, _) in current_values(session, profile, sealer=sealer).items()}


def application_form(
    session: Session, principal: Principal, item_code: str, *, sealer: Sealer, clock: Clock
) -> ApplicationForm:
    """What an applicant sees before applying: the form without what the platform already holds, the values
    prefilled from their profile with sources, and each material's status."""
    item = catalog.get_item(session, principal, item_code)
    form, _ = _published(session, item_code)
    shown, statuses, prefilled = form_for(session, principal, item_code, sealer=sealer, clock=clock)
    return ApplicationForm(
        item_code=item_code,
        item_name=item.content.name,
        item_name_en=item.content.name_en,
        form_version=form.version,
        definition=shown.model_dump(mode="json", exclude_none=True),
        prefilled=prefilled,
        materials=statuses,
        exempted_share=exempted_share(statuses),
    )


# --- uploads -----------------------------------------------------------------------------------------


def upload_file(
    session: Session,
    principal: Principal,
    *,
    filename: str,
    declared_type: str,
    data: bytes,
    files: FileStore,
    sealer: Sealer,
    clock: Clock,
) -> UploadOut:
    """Store an applicant's file (sealed) after checking what it really is; refuse what cannot be used."""
    if principal.account_id is None:
        raise Unauthenticated("sign in to upload files")
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()[:255]
    if not name:
        raise InvalidInput("file: a file name is required")
    if not data:
        raise InvalidInput(f"{name}: the file is empty")
    if len(data) > uploads.MAX_BYTES:
        raise PayloadTooLarge(f"{name}: larger than {uploads.MAX_BYTES // (1024 * 1024)} MB")
    seen = uploads.inspect(data)
    if seen.content_type is None or seen.content_type not in uploads.ALLOWED:
        raise InvalidInput(
            f"{name}: not a PDF, OFD, PNG, JPEG or TIFF file (judged by its content, not its name)",
            code="file.type",
        )
    declared = declared_type.split(";")[0].strip().lower()
    if declared not in ("", "application/octet-stream") and declared != seen.content_type:
        raise InvalidInput(
            f"{name}: declared as {declared} but the content is {seen.content_type}",
            code="file.type_mismatch",
        )
    if not seen.readable:
        raise InvalidInput(
            f"{name}: the file cannot be read ({', '.join(seen.problems)})", code="file.unreadable"
        )
    if seen.blank:
        raise InvalidInput(f"{name}: the file is blank", code="file.blank")
    key = new_file_key()
    files.put(key, data)
    row = UploadRow(
        id=key,
        owner_account_id=principal.account_id,
        filename=name,
        content_type=seen.content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        pages=seen.pages,
        checks={"readable": True, "blank": False, "text_chars": len(seen.text or "")},
        text_sealed=sealer.seal(seen.text, f"intake_upload:{key}") if seen.text else None,
        created_at=clock.now(),
    )
    repo.add(session, row)
    return _upload_out(row)


def copy_upload(
    session: Session, row: UploadRow, *, files: FileStore, sealer: Sealer, clock: Clock
) -> UploadOut:
    """A fresh, unattached upload of the same file for the same owner (a bundle's shared file for each
    item, a library document reused): a new key, sealed anew; swept like any upload if never attached."""
    key = new_file_key()
    files.put(key, files.get(row.id))
    text = sealer.open(row.text_sealed, f"intake_upload:{row.id}") if row.text_sealed else None
    copy = UploadRow(
        id=key,
        owner_account_id=row.owner_account_id,
        filename=row.filename,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        pages=row.pages,
        checks=dict(row.checks),
        text_sealed=sealer.seal(text, f"intake_upload:{key}") if text else None,
        created_at=clock.now(),
    )
    repo.add(session, copy)
    return _upload_out(copy)


def _upload_out(row: UploadRow) -> UploadOut:
    return UploadOut(
        id=row.id,
        filename=row.filename,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        pages=row.pages,
    )


def _attach(session: Session, upload: UploadRow, application: Application) -> None:
    """Attach an upload to an application, atomically: a concurrent submission naming the same upload
    finds it taken (409) instead of both claiming it."""
    if not repo.attach_upload(session, upload.id, application.id, application.applicant_account_id):
        raise Conflict(f"upload {upload.id!r} is already part of another application")
    session.refresh(upload)


def _resolve_uploads(
    session: Session,
    principal: Principal,
    definition: formdef.FormDefinition,
    values: Mapping[str, Any],
    *,
    sealer: Sealer,
) -> tuple[dict[str, Any], dict[str, list[UploadRow]]]:
    """File fields carry upload ids; the pre-check needs what the files are. Ids must be the caller's own,
    not yet attached."""
    raw = dict(values)
    rows: dict[str, list[UploadRow]] = {}
    seen_ids: set[str] = set()
    for f in definition.fields:
        if f.type != formdef.FieldType.FILE or f.key not in raw:
            continue
        ids = raw[f.key]
        ids = [ids] if isinstance(ids, str) else ids
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise InvalidInput(f"{f.key}: a list of upload ids (POST /api/v1/intake/uploads)")
        if len(set(ids)) != len(ids) or any(i in seen_ids for i in ids):
            raise InvalidInput(f"{f.key}: the same upload is named twice; upload each file once per field")
        seen_ids.update(ids)
        found = repo.uploads(session, ids)
        by_id = {u.id: u for u in found}
        for i in ids:
            u = by_id.get(i)
            if u is None or u.owner_account_id != principal.account_id:
                raise InvalidInput(f"{f.key}: no upload {i!r} of yours")
            if u.application_id is not None:
                raise Conflict(f"{f.key}: upload {i!r} is already part of another application")
        rows[f.key] = [by_id[i] for i in ids]
        raw[f.key] = [
            formdef.Upload(
                u.filename,
                u.content_type,
                u.size,
                u.sha256,
                sealer.open(u.text_sealed, f"intake_upload:{u.id}") if u.text_sealed else None,
            )
            for u in rows[f.key]
        ]
    return raw, rows


def _finding_out(f: formdef.Finding) -> FindingOut:
    return FindingOut(
        code=f.code,
        field=f.field,
        severity=f.severity,
        message=f.message,
        message_en=f.message_en,
        related_fields=list(f.related_fields),
    )


def _check(
    session: Session,
    principal: Principal,
    item_code: str,
    values: Mapping[str, Any],
    *,
    sealer: Sealer,
    clock: Clock,
    form: IntakeForm | None = None,
) -> tuple[
    ItemOut, IntakeForm, Profile | None, list[MaterialStatus], PrecheckResult, dict[str, list[UploadRow]]
]:
    """Pre-check ``values`` against the item's published form (or ``form``: an application keeps the
    version it was submitted with)."""
    if principal.account_id is None:
        raise Unauthenticated("sign in to apply")
    item = catalog.get_item(session, principal, item_code)
    if form is None:
        form, definition = _published(session, item_code)
    else:
        definition = formdef.FormDefinition.model_validate(form.definition)
    profile, known = _applicant_data(session, principal, sealer=sealer, clock=clock)
    statuses = material_status(session, profile, _needs(item), clock=clock)
    shown = _without_exempt(definition, statuses)
    raw, rows = _resolve_uploads(session, principal, shown, values, sealer=sealer)
    result = run_precheck(shown, raw, applicant=known or None, check_upload=uploads.check_upload)
    missing = _missing_materials(shown, statuses, result)
    if missing:
        result = PrecheckResult(values=result.values, findings=tuple(missing) + result.findings)
    return item, form, profile, statuses, result, rows


def _missing_materials(
    definition: formdef.FormDefinition, statuses: Sequence[MaterialStatus], result: PrecheckResult
) -> list[formdef.Finding]:
    """Required materials neither supplied by the platform nor uploaded into a field linked to them."""
    uploaded = {
        f.material for f in definition.fields if f.type == formdef.FieldType.FILE and result.values.get(f.key)
    }
    linked = {f.material for f in definition.fields if f.type == formdef.FieldType.FILE and f.material}
    out = []
    for s in statuses:
        if s.required and s.status == "upload" and s.name in linked and s.name not in uploaded:
            already = any(
                x.code == "field.required" and x.field and _field_material(definition, x.field) == s.name
                for x in result.findings
            )
            if not already:
                out.append(
                    formdef.Finding(
                        code="material.missing",
                        field=next(f.key for f in definition.fields if f.material == s.name),
                        severity="error",
                        message=f"请上传{s.name}。",
                        message_en=f"Upload the {s.name}.",
                    )
                )
    return out


def _field_material(definition: formdef.FormDefinition, key: str) -> str | None:
    return next((f.material for f in definition.fields if f.key == key), None)


def check_application(
    session: Session,
    principal: Principal,
    item_code: str,
    values: Mapping[str, Any],
    *,
    sealer: Sealer,
    clock: Clock,
) -> PrecheckOut:
    """The pre-check (智能预检) without submitting: findings an applicant can act on."""
    _, form, _, statuses, result, _ = _check(
        session, principal, item_code, values, sealer=sealer, clock=clock
    )
    return PrecheckOut(
        ok=result.ok,
        form_version=form.version,
        findings=[_finding_out(f) for f in result.findings],
        materials=statuses,
        values=formdef.jsonable(result.values),
    )


# --- submission --------------------------------------------------------------------------------------


def _receipt(session: Session, clock: Clock) -> str:
    day = clock.now().astimezone(CHINA).strftime("%Y%m%d")
    return f"{day}{repo.next_receipt(session, day):06d}"


def _store(
    session: Session,
    principal: Principal,
    item: ItemOut,
    form: IntakeForm,
    profile: Profile | None,
    statuses: Sequence[MaterialStatus],
    result: PrecheckResult,
    rows: Mapping[str, Sequence[UploadRow]],
    *,
    sealer: Sealer,
    clock: Clock,
    bundle_application_id: int | None = None,
) -> Application:
    """Store a pre-checked application: receipt number, sealed values, uploads attached, the process
    started, the first event recorded and audited."""
    now = clock.now()
    if principal.account_id is None:  # _check refused anonymous callers already
        raise Unauthenticated("sign in to apply")
    limit = item.content.promised_limit or item.content.statutory_limit
    application = Application(
        receipt_no=_receipt(session, clock),
        item_code=item.code,
        item_name=item.content.name,
        department=item.content.department,
        form_id=form.id,
        applicant_account_id=principal.account_id,
        profile_id=profile.id if profile else None,
        values_sealed="",
        findings=[_finding_out(f).model_dump() for f in result.findings],
        materials=[s.model_dump() for s in statuses],
        status="submitted",
        limit_value=limit.value if limit else None,
        limit_unit=limit.unit.value if limit else None,
        bundle_application_id=bundle_application_id,
        submitted_at=now,
        updated_at=now,
        version=1,
    )
    repo.add(session, application)
    stored = formdef.jsonable(result.values)
    for key, ups in rows.items():
        stored[key] = [u.id for u in ups]
        for u in ups:
            _attach(session, u, application)
    application.values_sealed = sealer.seal(
        json.dumps(stored, ensure_ascii=False), f"intake_application:{application.id}"
    )
    _start_process(session, application, clock=clock, sealer=sealer)
    _event(session, application, principal.username, "submit", None, "", clock)
    _audit(
        session,
        principal,
        "intake.application.submit",
        "intake_application",
        application.receipt_no,
        clock,
        {"item_code": item.code, "bundle_application_id": bundle_application_id},
    )
    return application


def new_receipt(session: Session, clock: Clock) -> str:
    """The next receipt number (applications and bundle applications share the daily sequence)."""
    return _receipt(session, clock)


def audit_action(
    session: Session,
    principal: Principal,
    action: str,
    target_type: str,
    target_id: str,
    clock: Clock,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Audit an action of the intake package's other modules (bundles, departments) like the service's own."""
    _audit(session, principal, action, target_type, target_id, clock, dict(detail) if detail else None)


def form_for(
    session: Session, principal: Principal, item_code: str, *, sealer: Sealer, clock: Clock
) -> tuple[formdef.FormDefinition, list[MaterialStatus], list[Prefilled]]:
    """The item's published form as the applicant is asked it (without what the platform supplies), each
    material's status and the prefilled values — the parts of :func:`application_form`, for bundles."""
    item = catalog.get_item(session, principal, item_code)
    _, definition = _published(session, item_code)
    profile, _ = _applicant_data(session, principal, sealer=sealer, clock=clock)
    statuses = material_status(session, profile, _needs(item), clock=clock)
    shown = _without_exempt(definition, statuses)
    prefilled = (
        prefill(
            session,
            profile,
            {f.key: f.profile_key for f in shown.fields if f.profile_key},
            sealer=sealer,
            clock=clock,
        )
        if profile is not None
        else []
    )
    return shown, statuses, prefilled


def submit_part(
    session: Session,
    principal: Principal,
    item_code: str,
    values: Mapping[str, Any],
    *,
    bundle_application_id: int,
    sealer: Sealer,
    clock: Clock,
) -> Application:
    """Store one item's application of a bundle (the bundle pre-checked everything before)."""
    item, form, profile, statuses, result, rows = _check(
        session, principal, item_code, values, sealer=sealer, clock=clock
    )
    if not result.ok:  # only if something changed between the bundle's check and now
        raise PrecheckFailed(
            f"the application for {item.content.name} has problems to fix",
            findings=[_finding_out(f).model_dump() for f in result.findings],
        )
    return _store(
        session,
        principal,
        item,
        form,
        profile,
        statuses,
        result,
        rows,
        sealer=sealer,
        clock=clock,
        bundle_application_id=bundle_application_id,
    )


def submit_application(
    session: Session,
    principal: Principal,
    item_code: str,
    values: Mapping[str, Any],
    *,
    sealer: Sealer,
    clock: Clock,
) -> ApplicationOut:
    """Submit an application: pre-checked (errors refuse it with the findings; nothing is stored), then
    stored with a receipt number, its uploads attached, its values sealed, its first event recorded."""
    item, form, profile, statuses, result, rows = _check(
        session, principal, item_code, values, sealer=sealer, clock=clock
    )
    if not result.ok:
        raise PrecheckFailed(
            "the application has problems to fix before it can be submitted",
            findings=[_finding_out(f).model_dump() for f in result.findings],
        )
    application = _store(
        session, principal, item, form, profile, statuses, result, rows, sealer=sealer, clock=clock
    )
    return _application_out(session, application, sealer=sealer, clock=clock)


def _application_out(
    session: Session, application: Application, *, sealer: Sealer, clock: Clock, officer: bool = False
) -> ApplicationOut:
    values = json.loads(sealer.open(application.values_sealed, f"intake_application:{application.id}"))
    return ApplicationOut(
        receipt_no=application.receipt_no,
        item_code=application.item_code,
        item_name=application.item_name,
        department=application.department,
        status=application.status,
        submitted_at=application.submitted_at,
        updated_at=application.updated_at,
        values=values,
        findings=[FindingOut.model_validate(f) for f in application.findings],
        materials=[MaterialStatus.model_validate(m) for m in application.materials],
        uploads=[_upload_out(u) for u in repo.uploads_of(session, application.id)],
        deadline=_deadline(session, application, (susp := repo.suspensions(session, application.id)), clock),
        suspensions=[_suspension_out(x) for x in susp],
        waiting=[
            StepOut(task_id=w.task_id, step=w.step, name=w.name, role=w.role)
            for w in repo.work_items_of(session, application.id)
        ],
        events=[
            EventOut(
                at=e.at,
                actor=e.actor,
                action=e.action,
                from_status=e.from_status,
                to_status=e.to_status,
                note=e.note,
            )
            for e in repo.events(session, application.id)
        ],
        # --- departments, notices, documents ---
        documents=documents.listing(session, application, officer=officer),
    )


def get_application(
    session: Session, principal: Principal, receipt_no: str, *, sealer: Sealer, clock: Clock
) -> ApplicationOut:
    """One application, to its applicant (others: not found)."""
    application = repo.application_by_receipt(session, receipt_no)
    if application is None or application.applicant_account_id != principal.account_id:
        raise NotFound(f"no application {receipt_no!r}")
    return _application_out(session, application, sealer=sealer, clock=clock)


def my_applications(session: Session, principal: Principal, *, limit: int = 50) -> list[ApplicationSummary]:
    if principal.account_id is None:
        raise Unauthenticated("sign in to see your applications")
    return [
        ApplicationSummary(
            receipt_no=a.receipt_no,
            item_code=a.item_code,
            item_name=a.item_name,
            status=a.status,
            submitted_at=a.submitted_at,
            updated_at=a.updated_at,
        )
        for a in repo.applications_of(session, principal.account_id, limit=limit)
    ]


def sweep_uploads(session: Session, files: FileStore, *, clock: Clock, hours: int = 24) -> int:
    """Delete uploads never attached to an application within ``hours``, and files no row refers to."""
    cutoff = clock.now() - dt.timedelta(hours=hours)
    removed = 0
    for row in repo.stale_uploads(session, cutoff):
        files.delete(row.id)
        session.delete(row)
        removed += 1
    session.flush()
    # Files an upload or a result document refers to are kept (documents.file_known: result documents).
    removed += files.sweep(
        lambda key: repo.upload_exists(session, key) or documents.file_known(session, key), older_than=cutoff
    )
    return removed


# --- the back-office process -------------------------------------------------------------------------

#: Permission to act in a lane of a process: ``intake:lane:<lane>`` (window, reviewer, decider ...).
LANE = "intake:lane:"
#: Decisions each step of the standard process takes (other processes: any short word their gateways use).
STANDARD_DECISIONS: dict[str, tuple[str, ...]] = {
    s.id: s.decisions for s in process.standard().steps if s.role != "applicant"
}
#: Decisions that must say why (the applicant reads it).
NEEDS_REASON = frozenset({"supplement", "reject"})
_ENDS = {"approved": "approved", "refused": "refused", "not_accepted": "not_accepted"}


def _definition_of(application: Application) -> process.Definition:
    """The definition the application runs: the item's own version it started on, or the standard one."""
    if application.item_process_id is None:
        return process.standard()
    session = object_session(application)
    assert session is not None  # noqa: S101 - applications are always loaded through a session
    return _loaded(repo.process_by_id(session, application.item_process_id).xml)


@lru_cache(maxsize=128)
def _loaded(xml: str) -> process.Definition:
    return process.load_definition(xml)


#: End events a process may reach, by id: each is an outcome the applicant is told.
PROCESS_ENDS = frozenset(_ENDS)
_LANE_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def _checked_process(xml: str) -> process.Definition:
    try:
        definition = process.load_definition(xml)
    except process.ProcessError as exc:
        raise InvalidInput(f"the process definition cannot be used: {exc}") from exc
    problems = [
        f"lane {s.role!r} of step {s.id!r}: lane ids are lower-case words (they name a permission)"
        for s in definition.steps
        if not _LANE_ID.match(s.role)
    ]
    problems += [
        f"end event {end!r}: end events are one of {', '.join(sorted(PROCESS_ENDS))}"
        for end in definition.ends
        if end not in PROCESS_ENDS
    ]
    if not any(s.role != "applicant" for s in definition.steps):
        problems.append("no step for officers: every step is the applicant's")
    if problems:
        raise InvalidInput("the process definition cannot be used: " + "; ".join(problems), errors=problems)
    return definition


def _process_out(row: ItemProcess) -> ProcessOut:
    definition = _loaded(row.xml)
    return ProcessOut(
        item_code=row.item_code,
        version=row.version,
        state=row.state,
        process_id=definition.process_id,
        name=definition.name,
        steps=[
            ProcessStepOut(id=s.id, name=s.name, role=s.role, decisions=list(s.decisions))
            for s in definition.steps
        ],
        ends=definition.ends,
        author=row.author,
        created_at=row.created_at,
        published_by=row.published_by,
        published_at=row.published_at,
    )


def save_process(
    session: Session, principal: Principal, item_code: str, xml: str, *, clock: Clock
) -> ProcessOut:
    """A new draft version of an item's own approval process (BPMN 2.0 XML; checked, never run as code)."""
    principal.require(FORMS)
    catalog.get_item(session, principal, item_code)
    definition = _checked_process(xml)
    latest = repo.processes(session, item_code)
    row = ItemProcess(
        item_code=item_code,
        version=(latest[0].version + 1) if latest else 1,
        xml=definition.xml,
        process_id=definition.process_id,
        state="draft",
        author=principal.username,
        created_at=clock.now(),
    )
    repo.add(session, row)
    _audit(
        session, principal, "intake.process.save", "intake_item_process", f"{item_code}/{row.version}", clock
    )
    return _process_out(row)


def publish_process(
    session: Session, principal: Principal, item_code: str, version: int, *, clock: Clock
) -> ProcessOut:
    """Publish a draft process (four eyes); new applications run it, running ones keep their version."""
    principal.require(FORMS_PUBLISH)
    row = repo.item_process(session, item_code, version)
    if row is None:
        raise NotFound(f"no process version {version} for item {item_code!r}")
    publish_version(
        session,
        principal,
        row,
        repo.processes(session, item_code),
        what=f"process version {version}",
        clock=clock,
    )
    _audit(
        session, principal, "intake.process.publish", "intake_item_process", f"{item_code}/{version}", clock
    )
    return _process_out(row)


def retire_process(
    session: Session, principal: Principal, item_code: str, version: int, *, clock: Clock
) -> ProcessOut:
    """Withdraw the published process: new applications run the standard process again."""
    principal.require(FORMS_PUBLISH)
    row = repo.item_process(session, item_code, version)
    if row is None:
        raise NotFound(f"no process version {version} for item {item_code!r}")
    if row.state != "published":
        raise Conflict(f"process version {version} is {row.state}, not published")
    row.state = "retired"
    _audit(
        session, principal, "intake.process.retire", "intake_item_process", f"{item_code}/{version}", clock
    )
    return _process_out(row)


def list_processes(session: Session, principal: Principal, item_code: str) -> list[ProcessOut]:
    principal.require(FORMS)
    return [_process_out(r) for r in repo.processes(session, item_code)]


def process_xml(session: Session, principal: Principal, item_code: str, version: int) -> str:
    principal.require(FORMS)
    row = repo.item_process(session, item_code, version)
    if row is None:
        raise NotFound(f"no process version {version} for item {item_code!r}")
    return row.xml


def _step_decisions(application: Application, step: str) -> tuple[str, ...]:
    found = _definition_of(application).step(step)
    return found.decisions if found is not None else ()


def _status(state: process.State, first_steps: Sequence[str]) -> str:
    if state.end is not None:
        return _ENDS.get(state.end, "closed")
    roles = {r.role for r in state.ready}
    if "applicant" in roles:
        return "supplement_requested"
    if any(r.step in first_steps for r in state.ready):
        return "submitted"
    return "in_progress"


def _sync(
    session: Session, application: Application, state: process.State, *, clock: Clock, sealer: Sealer
) -> None:
    """Record the instance's waiting steps as work items and the application's status; steps newly
    ready in a department's lane go to its system."""
    known = {w.task_id for w in repo.work_items_of(session, application.id)}
    items = [
        WorkItem(
            task_id=r.task_id,
            application_id=application.id,
            step=r.step,
            name=r.name,
            role=r.role,
            ready_at=clock.now(),
        )
        for r in state.ready
    ]
    repo.replace_work_items(session, application.id, items)
    application.status = _status(state, _definition_of(application).first_steps)
    # --- departments, notices, documents ---
    _dispatch_departments(
        session, application, [w for w in items if w.task_id not in known], sealer=sealer, clock=clock
    )


def _start_process(session: Session, application: Application, *, clock: Clock, sealer: Sealer) -> None:
    own = repo.published_process(session, application.item_code)
    application.item_process_id = own.id if own is not None else None
    definition = _definition_of(application)
    application.process_name = definition.process_id
    application.process_state = process.start(definition)
    _sync(
        session, application, process.state(definition, application.process_state), clock=clock, sealer=sealer
    )
    # --- departments, notices, documents ---
    _notify(session, application, application.status, sealer=sealer, clock=clock)  # received


def _event(
    session: Session,
    application: Application,
    actor: str,
    action: str,
    before: str | None,
    note: str,
    clock: Clock,
) -> None:
    repo.add(
        session,
        ApplicationEvent(
            application_id=application.id,
            at=clock.now(),
            actor=actor,
            action=action,
            from_status=before,
            to_status=application.status,
            note=note,
        ),
    )


def _advance(
    session: Session,
    application: Application,
    task_id: str,
    data: Mapping[str, Any],
    *,
    actor: str,
    action: str,
    note: str,
    clock: Clock,
    sealer: Sealer,
    files: FileStore | None,
) -> None:
    definition = _definition_of(application)
    before = application.status
    try:
        application.process_state, state = process.complete(
            definition, application.process_state, task_id, data
        )
    except process.ProcessError as exc:
        raise Conflict(str(exc)) from exc
    _sync(session, application, state, clock=clock, sealer=sealer)
    application.updated_at = clock.now()
    application.version += 1
    if before == "submitted" and application.status == "in_progress" and application.accepted_on is None:
        application.accepted_on = _today(clock)  # the time limit runs from 受理
    if application.status not in _RUNNING:
        for s in repo.suspensions(session, application.id):  # the process ended: no clock to pause
            if s.ended_at is None:
                s.ended_at = clock.now()
    elif application.status == "supplement_requested" and before != "supplement_requested":
        _open_suspension(session, application, deadlines.SUPPLEMENT, note, actor, clock)
    elif before == "supplement_requested" and application.status != "supplement_requested":
        _close_suspensions(session, application, deadlines.SUPPLEMENT, clock)
    _event(session, application, actor, action, before, note, clock)
    # --- departments, notices, documents ---
    _after_change(session, application, before, note=note, sealer=sealer, files=files, clock=clock)


def worklist(
    session: Session, principal: Principal, *, role: str | None = None, limit: int = 100
) -> list[WorkItemOut]:
    """The steps waiting in the lanes the officer may act in, oldest first."""
    lanes = sorted(p[len(LANE) :] for p in principal.permissions if p.startswith(LANE))
    if not lanes:
        raise Forbidden("your account acts in no lane of an approval process")
    if role is not None:
        if role not in lanes:
            raise Forbidden(f"your account does not act in the lane {role!r}")
        lanes = [role]
    out = []
    for item, application in repo.work_items(session, lanes, limit=limit):
        out.append(
            WorkItemOut(
                task_id=item.task_id,
                step=item.step,
                name=item.name,
                role=item.role,
                ready_at=item.ready_at,
                receipt_no=application.receipt_no,
                item_code=application.item_code,
                item_name=application.item_name,
                status=application.status,
                errors=sum(1 for f in application.findings if f.get("severity") == "error"),
                warnings=sum(1 for f in application.findings if f.get("severity") == "warning"),
                decisions=list(_step_decisions(application, item.step)),
            )
        )
    return out


def _officer_application(session: Session, principal: Principal, receipt_no: str) -> Application:
    if not any(p.startswith(LANE) for p in principal.permissions):
        raise Forbidden("your account acts in no lane of an approval process")
    application = repo.application_by_receipt(session, receipt_no, for_update=True)
    if application is None:
        raise NotFound(f"no application {receipt_no!r}")
    return application


_RUNNING = ("submitted", "in_progress", "supplement_requested")


def _may_handle(session: Session, principal: Principal, application: Application) -> None:
    """Acting on an application: never one's own; only while it runs; only in a lane it waits in (or as
    a supervisor who monitors deadlines)."""
    if principal.account_id is not None and principal.account_id == application.applicant_account_id:
        raise Forbidden("officers do not handle their own applications")
    if application.status not in _RUNNING:
        raise Conflict(f"the application is {application.status}; nothing can be done on it any more")
    lanes = {w.role for w in repo.work_items_of(session, application.id)}
    if not principal.can(MONITOR) and not any(principal.can(LANE + lane) for lane in lanes):
        raise Forbidden("the application waits in no lane of yours")


def _form_of(session: Session, application: Application) -> formdef.FormDefinition:
    return formdef.FormDefinition.model_validate(repo.form_by_id(session, application.form_id).definition)


_MASKED_TYPES = {formdef.FieldType.ID_NUMBER: "id_number", formdef.FieldType.MOBILE: "mobile"}


def _mask_values(fields: Sequence[formdef.Field], values: dict[str, Any]) -> None:
    """Mask identifiers and sensitive profile data in form values, table rows included."""
    for f in fields:
        value = values.get(f.key)
        if value is None:
            continue
        spec = DATA_KEYS.get(f.profile_key or "")
        if f.type in _MASKED_TYPES and isinstance(value, str):
            values[f.key] = mask(_MASKED_TYPES[f.type], value)
        elif spec is not None and spec.classification == Classification.SENSITIVE:
            values[f.key] = mask(spec.type, value)
        elif f.type == formdef.FieldType.TABLE and isinstance(value, list):
            for row in value:
                if isinstance(row, dict):
                    _mask_values(f.columns, row)


def _officer_out(
    session: Session, principal: Principal, application: Application, *, sealer: Sealer, clock: Clock
) -> ApplicationOut:
    """An application as an officer may see it: identifiers and sensitive data masked without
    ``intake:sensitive`` — in every officer response, not only the detail view."""
    out = _application_out(session, application, sealer=sealer, clock=clock, officer=True)
    if not principal.can(SENSITIVE):
        definition = formdef.FormDefinition.model_validate(
            repo.form_by_id(session, application.form_id).definition
        )
        _mask_values(definition.fields, out.values)
    return out


def officer_view(
    session: Session, principal: Principal, receipt_no: str, *, sealer: Sealer, clock: Clock
) -> ApplicationOut:
    """An application as an officer sees it: values (ID numbers masked without ``intake:sensitive``), the
    pre-check's findings, materials, uploads, events and the steps waiting."""
    application = _officer_application(session, principal, receipt_no)
    out = _officer_out(session, principal, application, sealer=sealer, clock=clock)
    _audit(session, principal, "intake.application.view", "intake_application", receipt_no, clock)
    return out


def act(
    session: Session,
    principal: Principal,
    receipt_no: str,
    task_id: str,
    *,
    decision: str | None,
    note: str,
    clock: Clock,
    sealer: Sealer,
    files: FileStore | None = None,
) -> ApplicationOut:
    """An officer completes a waiting step with a decision (受理/补正/不予受理, 审查, 准予/不予许可, 送达).
    A decision that ends the application issues its result document into ``files``."""
    application = _officer_application(session, principal, receipt_no)
    if principal.account_id is not None and principal.account_id == application.applicant_account_id:
        raise Forbidden("officers do not handle their own applications")
    item = repo.work_item(session, task_id)
    if item is None or item.application_id != application.id:
        raise Conflict("that step is not waiting (someone else may have completed it)")
    if item.role == "applicant":
        raise Forbidden("the applicant completes this step (supplementary materials)")
    if not principal.can(LANE + item.role):
        raise Forbidden(f"the step {item.name} is done in the lane {item.role!r}, which your account lacks")
    allowed = _step_decisions(application, item.step)
    if decision is None and allowed == ("done",):
        decision = "done"
    if decision not in allowed:
        raise InvalidInput(f"decision: one of {', '.join(allowed)} for the step {item.name}")
    if decision in NEEDS_REASON and len(note.strip()) < 4:
        raise InvalidInput("note: say what is missing or why, for the applicant (at least 4 characters)")
    _advance(
        session,
        application,
        task_id,
        {"decision": decision},
        actor=principal.username,
        action=f"{item.step}:{decision}" if decision else item.step,
        note=note.strip(),
        clock=clock,
        sealer=sealer,
        files=files,
    )
    _audit(
        session,
        principal,
        "intake.application.step",
        "intake_application",
        receipt_no,
        clock,
        {"step": item.step, "decision": decision, "status": application.status},
    )
    return _officer_out(session, principal, application, sealer=sealer, clock=clock)


def _yuan(fen: Any) -> Any:
    return str(Decimal(fen) / 100) if isinstance(fen, int) and not isinstance(fen, bool) else fen


def _as_input(fields: Sequence[formdef.Field], values: Mapping[str, Any]) -> dict[str, Any]:
    """Stored (normalised) values as form input again: money back from fen to yuan, in tables too."""
    out = dict(values)
    for f in fields:
        if f.key not in out:
            continue
        if f.type == formdef.FieldType.MONEY:
            out[f.key] = _yuan(out[f.key])
        elif f.type == formdef.FieldType.TABLE and isinstance(out[f.key], list):
            out[f.key] = [_as_input(f.columns, row) if isinstance(row, dict) else row for row in out[f.key]]
    return out


def supplement(
    session: Session,
    principal: Principal,
    receipt_no: str,
    values: Mapping[str, Any],
    *,
    sealer: Sealer,
    clock: Clock,
    files: FileStore | None = None,
) -> ApplicationOut:
    """The applicant answers a request for supplementary material (补正): changed values and new uploads
    are merged, pre-checked again, and the process goes back to the step that asked."""
    application = repo.application_by_receipt(session, receipt_no, for_update=True)
    if application is None or application.applicant_account_id != principal.account_id:
        raise NotFound(f"no application {receipt_no!r}")
    waiting = [w for w in repo.work_items_of(session, application.id) if w.role == "applicant"]
    if not waiting:
        raise Conflict("no supplementary material was requested for this application")
    stored = json.loads(sealer.open(application.values_sealed, f"intake_application:{application.id}"))
    form = repo.form_by_id(session, application.form_id)
    definition = formdef.FormDefinition.model_validate(form.definition)
    file_keys = {f.key for f in definition.fields if f.type == formdef.FieldType.FILE}
    merged = {k: v for k, v in _as_input(definition.fields, stored).items() if k not in file_keys}
    merged.update({k: v for k, v in values.items() if k not in file_keys})
    # Files: ids already attached to this application stay attached (whether sent again or not); new ids
    # must be the caller's own unattached uploads.
    kept: dict[str, list[UploadRow]] = {}
    for key in file_keys:
        before = [i for i in stored.get(key, []) if isinstance(i, str)]
        if key in values:
            sent = values[key] if isinstance(values[key], list) else [values[key]]
            merged[key] = [i for i in sent if i not in before]
            kept[key] = repo.uploads(session, [i for i in sent if i in before])
        else:
            kept[key] = repo.uploads(session, before)
    _, _, _, statuses, result, rows = _check(
        session, principal, application.item_code, merged, sealer=sealer, clock=clock, form=form
    )
    if not result.ok:
        blocking = [
            f
            for f in result.findings
            if f.severity == "error" and not (f.field is not None and kept.get(f.field))
        ]
        if blocking:
            raise PrecheckFailed(
                "the supplement has problems to fix",
                findings=[_finding_out(f).model_dump() for f in blocking],
            )
    new_values = formdef.jsonable(result.values)
    for key in file_keys:
        new_values[key] = [u.id for u in kept.get(key, [])] + [u.id for u in rows.get(key, [])]
        if not new_values[key]:
            new_values.pop(key)
        for u in rows.get(key, []):
            _attach(session, u, application)
    application.values_sealed = sealer.seal(
        json.dumps(new_values, ensure_ascii=False), f"intake_application:{application.id}"
    )
    application.findings = [_finding_out(f).model_dump() for f in result.findings if f.severity == "warning"]
    application.materials = [s.model_dump() for s in statuses]
    _advance(
        session,
        application,
        waiting[0].task_id,
        {},
        actor=principal.username,
        action="supplement",
        note="",
        clock=clock,
        sealer=sealer,
        files=files,
    )
    _audit(session, principal, "intake.application.supplement", "intake_application", receipt_no, clock)
    return _application_out(session, application, sealer=sealer, clock=clock)


# --- deadlines ---------------------------------------------------------------------------------------

#: Permission to watch a department's deadlines (the monitoring page) and be escalated to.
MONITOR = "intake:monitor"


def _today(clock: Clock) -> dt.date:
    return clock.now().astimezone(CHINA).date()


def _deadline(
    session: Session, application: Application, suspensions: Sequence[Suspension], clock: Clock
) -> DeadlineOut | None:
    if application.accepted_on is None or application.limit_value is None:
        return None
    today = _today(clock)
    if application.status not in ("in_progress", "supplement_requested", "submitted"):
        ended = max((e.at for e in repo.events(session, application.id)), default=clock.now())
        today = ended.astimezone(CHINA).date()  # the clock stopped when the process ended
    periods = [
        deadlines.Period(
            s.started_at.astimezone(CHINA).date(), s.ended_at.astimezone(CHINA).date() if s.ended_at else None
        )
        for s in suspensions
    ]
    try:
        st = deadlines.standing(
            calendar.working_calendar(session),
            limit=application.limit_value,
            unit=application.limit_unit or "working_day",
            started=application.accepted_on,
            today=today,
            suspensions=periods,
        )
    except CalendarUnknown:
        # The holiday schedule of a year the limit reaches is not loaded yet: say so, never guess.
        return DeadlineOut(
            limit=application.limit_value,
            unit=application.limit_unit or "working_day",
            accepted_on=application.accepted_on,
            used=0,
            suspended=0,
            due=None,
            paused=False,
            level="unknown",
        )
    return DeadlineOut(
        limit=st.limit,
        unit=st.unit,
        accepted_on=application.accepted_on,
        used=st.used,
        suspended=st.suspended,
        due=st.due,
        paused=st.paused,
        level=st.level,
    )


def _suspension_out(s: Suspension) -> SuspensionOut:
    return SuspensionOut(id=s.id, kind=s.kind, started_at=s.started_at, ended_at=s.ended_at, note=s.note)


def _open_suspension(
    session: Session, application: Application, kind: str, note: str, actor: str, clock: Clock
) -> Suspension:
    row = Suspension(
        application_id=application.id, kind=kind, started_at=clock.now(), note=note, started_by=actor
    )
    repo.add(session, row)
    return row


def _close_suspensions(session: Session, application: Application, kind: str, clock: Clock) -> None:
    for s in repo.suspensions(session, application.id):
        if s.kind == kind and s.ended_at is None:
            s.ended_at = clock.now()


def special_procedures(session: Session, item_code: str) -> list[str]:
    setting = repo.item_setting(session, item_code)
    return (
        list(setting.special_procedures)
        if setting is not None
        else list(deadlines.DEFAULT_SPECIAL_PROCEDURES)
    )


def set_special_procedures(
    session: Session, principal: Principal, item_code: str, procedures: Sequence[str], *, clock: Clock
) -> list[str]:
    """Configure the special procedures that may suspend an item's time limit."""
    principal.require(FORMS)
    catalog.get_item(session, principal, item_code)
    cleaned = list(dict.fromkeys(p.strip() for p in procedures if p.strip()))
    if deadlines.SUPPLEMENT in cleaned:
        raise InvalidInput(
            f"{deadlines.SUPPLEMENT} suspends the time limit by itself; list the other procedures"
        )
    setting = repo.item_setting(session, item_code)
    if setting is None:
        setting = ItemSetting(
            item_code=item_code,
            special_procedures=cleaned,
            updated_by=principal.username,
            updated_at=clock.now(),
        )
        repo.add(session, setting)
    else:
        setting.special_procedures, setting.updated_by, setting.updated_at = (
            cleaned,
            principal.username,
            clock.now(),
        )
    _audit(
        session,
        principal,
        "intake.item.special_procedures",
        "catalog_item",
        item_code,
        clock,
        {"special_procedures": cleaned},
    )
    return cleaned


def start_special_procedure(
    session: Session,
    principal: Principal,
    receipt_no: str,
    *,
    kind: str,
    note: str,
    clock: Clock,
    sealer: Sealer,
) -> ApplicationOut:
    """Suspend the time limit for a special procedure of the item (听证, 专家评审, 现场勘验 ...)."""
    application = _officer_application(session, principal, receipt_no)
    _may_handle(session, principal, application)
    allowed = special_procedures(session, application.item_code)
    if kind not in allowed:
        raise InvalidInput(f"kind: one of {', '.join(allowed) or '(none configured)'} for this item")
    if application.accepted_on is None or application.status not in ("in_progress", "supplement_requested"):
        raise Conflict("the time limit runs only for an accepted application still in progress")
    if any(s.kind == kind and s.ended_at is None for s in repo.suspensions(session, application.id)):
        raise Conflict(f"{kind} is already under way")
    _open_suspension(session, application, kind, note, principal.username, clock)
    before = application.status
    _event(session, application, principal.username, f"suspend:{kind}", before, note, clock)
    _audit(
        session,
        principal,
        "intake.application.suspend",
        "intake_application",
        receipt_no,
        clock,
        {"kind": kind},
    )
    return _officer_out(session, principal, application, sealer=sealer, clock=clock)


def end_special_procedure(
    session: Session,
    principal: Principal,
    receipt_no: str,
    suspension_id: int,
    *,
    note: str,
    clock: Clock,
    sealer: Sealer,
) -> ApplicationOut:
    application = _officer_application(session, principal, receipt_no)
    _may_handle(session, principal, application)
    row = next((s for s in repo.suspensions(session, application.id) if s.id == suspension_id), None)
    if row is None:
        raise NotFound(f"no suspension {suspension_id} on {receipt_no}")
    if row.kind == deadlines.SUPPLEMENT:
        raise Conflict("补正 ends when the applicant submits the supplementary material")
    if row.ended_at is not None:
        raise Conflict(f"{row.kind} has already ended")
    row.ended_at = clock.now()
    _event(session, application, principal.username, f"resume:{row.kind}", application.status, note, clock)
    _audit(
        session,
        principal,
        "intake.application.resume",
        "intake_application",
        receipt_no,
        clock,
        {"kind": row.kind},
    )
    return _officer_out(session, principal, application, sealer=sealer, clock=clock)


def monitor(
    session: Session,
    principal: Principal,
    *,
    department: str | None,
    level: str | None,
    clock: Clock,
    limit: int = 500,
) -> list[MonitorRow]:
    """Running applications against their time limits, most urgent first (a department's monitoring page)."""
    principal.require(MONITOR)
    apps = repo.running_applications(session, department=department, limit=limit)
    susp = repo.suspensions_of(session, [a.id for a in apps])
    rows = []
    for a in apps:
        d = _deadline(session, a, susp[a.id], clock)
        if d is None or (level is not None and d.level != level):
            continue
        rows.append(
            MonitorRow(
                receipt_no=a.receipt_no,
                item_code=a.item_code,
                item_name=a.item_name,
                department=a.department,
                status=a.status,
                deadline=d,
                escalated_at=a.escalated_at,
            )
        )
    order = {"red": 0, "unknown": 1, "yellow": 2, "green": 3, "paused": 4}
    rows.sort(key=lambda r: (order[r.deadline.level], r.deadline.due or dt.date.max, r.receipt_no))
    return rows


def escalate_overdue(session: Session, *, clock: Clock) -> list[str]:
    """Escalate every overdue application not yet escalated (once each): an event the applicant sees not,
    an audit record, and the supervisor's monitoring page shows it. Idempotent."""
    out = []
    apps = repo.running_applications(session, department=None, limit=100_000)
    susp = repo.suspensions_of(session, [a.id for a in apps])
    for a in apps:
        if a.escalated_at is not None:
            continue
        d = _deadline(session, a, susp[a.id], clock)
        if d is None or d.level != "red":
            continue
        a.escalated_at = clock.now()
        unit = "自然日" if d.unit == "calendar_day" else "工作日"
        _event(
            session,
            a,
            "system",
            "escalate",
            a.status,
            f"逾期：已用{d.used}个{unit}，承诺时限{d.limit}个{unit}",
            clock,
        )
        _audit(
            session,
            "system",
            "intake.application.escalate",
            "intake_application",
            a.receipt_no,
            clock,
            {"used": d.used, "limit": d.limit, "department": a.department},
        )
        out.append(a.receipt_no)
    return out


# --- pages support -----------------------------------------------------------------------------------
# Read-only helpers of the HTML pages (``tongban.intake.pages``); callers have authorised the receipt first.


def has_published_form(session: Session, item_code: str) -> bool:
    """Whether the item can be applied for online here (it has a published application form)."""
    return repo.published_form(session, item_code) is not None


def form_input(definition: formdef.FormDefinition, values: Mapping[str, Any]) -> dict[str, Any]:
    """Stored (normalised) values as form input again: money back from fen to yuan, in tables too."""
    return _as_input(definition.fields, values)


def my_uploads(session: Session, principal: Principal, ids: Sequence[str]) -> list[UploadOut]:
    """The caller's own uploads among ``ids`` that are not part of an application yet (others left out)."""
    if principal.account_id is None:
        return []
    found = {u.id: u for u in repo.uploads(session, list(dict.fromkeys(ids)))}
    return [
        _upload_out(u)
        for i in dict.fromkeys(ids)
        if (u := found.get(i)) is not None
        and u.owner_account_id == principal.account_id
        and u.application_id is None
    ]


def form_definition_of(session: Session, receipt_no: str) -> dict[str, Any]:
    """The form definition (the version) an application was submitted with."""
    application = repo.application_by_receipt(session, receipt_no)
    if application is None:
        raise NotFound(f"no application {receipt_no!r}")
    return _form_of(session, application).model_dump(mode="json", exclude_none=True)


def supplement_definition(
    session: Session, principal: Principal, receipt_no: str, *, clock: Clock
) -> dict[str, Any]:
    """The form the applicant answers a request for supplementary material with, as ``supplement`` checks
    it: the submitted version without the file fields of the materials the platform supplies."""
    application = repo.application_by_receipt(session, receipt_no)
    if application is None or application.applicant_account_id != principal.account_id:
        raise NotFound(f"no application {receipt_no!r}")
    item = catalog.get_item(session, principal, application.item_code)
    owned = repo.profiles_of_owner(session, application.applicant_account_id, ProfileKind.PERSON.value)
    statuses = material_status(session, owned[0] if owned else None, _needs(item), clock=clock)
    shown = _without_exempt(_form_of(session, application), statuses)
    return shown.model_dump(mode="json", exclude_none=True)


def deadlines_of(
    session: Session, receipt_nos: Sequence[str], *, clock: Clock
) -> dict[str, DeadlineOut | None]:
    """Where applications stand against their time limits (None: not accepted yet, or no limit)."""
    out: dict[str, DeadlineOut | None] = {}
    for receipt_no in dict.fromkeys(receipt_nos):
        application = repo.application_by_receipt(session, receipt_no)
        if application is not None:
            suspended = repo.suspensions(session, application.id)
            out[receipt_no] = _deadline(session, application, suspended, clock)
    return out


def step_decisions(session: Session, receipt_no: str) -> dict[str, tuple[str, ...]]:
    """The decisions each waiting step of an application takes (task id → words ``act`` accepts)."""
    application = repo.application_by_receipt(session, receipt_no)
    if application is None:
        return {}
    waiting = repo.work_items_of(session, application.id)
    return {w.task_id: _step_decisions(application, w.step) for w in waiting}


# --- departments, notices, documents -----------------------------------------------------------------
# Hooks of the process (called from _sync, _start_process and _advance): steps in a lane ``dept_<code>``
# go to the department's own system; the applicant is told of each change (portal, email, SMS); a result
# document is issued when the application ends. Then: departments' signed callbacks, downloads of result
# documents, and the outbox worker. See docs/intake.md.

#: Permission to register departments' own systems (administrators).
DEPARTMENTS = departments.MANAGE


def _person_profile(session: Session, application: Application) -> Profile | None:
    if application.profile_id is not None:
        return repo.profile(session, application.profile_id)
    found = repo.profiles_of_owner(session, application.applicant_account_id, ProfileKind.PERSON.value)
    return found[0] if found else None


def _contact(session: Session, application: Application, *, sealer: Sealer) -> tuple[str | None, str | None]:
    """The applicant's email address and mobile number from their profile (either may be missing)."""
    profile = _person_profile(session, application)
    if profile is None:
        return None, None
    values = current_values(session, profile, sealer=sealer)
    email, mobile = values.get("person.email"), values.get("person.mobile")
    return (str(email[0]) if email else None), (str(mobile[0]) if mobile else None)


def _notify(session: Session, application: Application, status: str, *, sealer: Sealer, clock: Clock) -> None:
    email, mobile = _contact(session, application, sealer=sealer)
    notices.notify(session, application, status, email=email, mobile=mobile, sealer=sealer, clock=clock)


def _dispatch_departments(
    session: Session, application: Application, ready: Sequence[WorkItem], *, sealer: Sealer, clock: Clock
) -> None:
    """Queue the newly ready steps of departments with an active system for those systems (outbox)."""
    targets = departments.systems_for(session, ready)
    if not targets:
        return
    snapshot = {
        # Unmasked: the department decides on them.
        "values": json.loads(sealer.open(application.values_sealed, f"intake_application:{application.id}")),
        "materials": application.materials,
        "uploads": [_upload_out(u).model_dump(mode="json") for u in repo.uploads_of(session, application.id)],
    }
    for item, system in targets:
        departments.send_task(session, application, item, system, snapshot, sealer=sealer, clock=clock)


def _applicant_name(session: Session, application: Application, *, sealer: Sealer) -> str:
    profile = _person_profile(session, application)
    if profile is not None:
        name = current_values(session, profile, sealer=sealer).get("person.name")
        if name:
            return str(name[0])
    account = session.get(Account, application.applicant_account_id)
    return account.display_name if account is not None else ""


def _reasons(session: Session, application: Application, note: str) -> str:
    """The reasons of the decision: the note of the step that ended the application, else the latest note
    of a decision before it (the 决定 of a process that ends with 送达)."""
    if note.strip():
        return note.strip()
    for e in reversed(repo.events(session, application.id)):
        if (
            e.note.strip()
            and ":" in e.action
            and not e.action.endswith(":supplement")
            and not e.action.startswith(("department:", "suspend:", "resume:"))
        ):
            return e.note.strip()
    return ""


def _after_change(
    session: Session,
    application: Application,
    before: str,
    *,
    note: str,
    sealer: Sealer,
    files: FileStore | None,
    clock: Clock,
) -> None:
    """After a step: the result document when the application ended, and the applicant's notice."""
    if application.status == before:
        return
    if application.status in documents.KINDS:
        if files is None:
            raise RuntimeError("the application ended: pass the file store (files=) for its result document")
        documents.issue(
            session,
            application,
            applicant=_applicant_name(session, application, sealer=sealer),
            reasons=_reasons(session, application, note),
            files=files,
            clock=clock,
        )
    _notify(session, application, application.status, sealer=sealer, clock=clock)
    if application.status not in _RUNNING:
        # Rating (好差评) and quality monitoring take the closed case from here.
        events.emit(session, CLOSED_EVENT, clock=clock, receipt_no=application.receipt_no, sealer=sealer)


def department_callback(
    session: Session,
    code: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    sealer: Sealer,
    files: FileStore,
    clock: Clock,
) -> tuple[int, dict[str, Any], bool]:
    """A department system's signed callback: ``task.status`` records an event (and tells the applicant),
    ``task.completed`` completes the step as an officer's decision would (actor ``dept:<code>``, audited).

    Returns the HTTP status, the answer and whether it is a replay: a callback is deduplicated on its
    ``webhook-id``, and a repeat gets the first answer and changes nothing. A bad or stale signature, an
    unknown step or a step of another lane is refused and nothing is stored."""
    system = departments.system_for_callback(session, code)
    message_id = departments.verify(departments.secret_of(system, sealer), body, headers, now=clock.now())
    actor, path = f"dept:{code}", departments.callback_path(code)
    stored = idempotency.lookup(session, key=message_id, actor=actor, method="POST", path=path, body=body)
    if stored is not None:
        return stored.status, json.loads(stored.body), True
    callback = departments.parse_callback(body)
    item = repo.work_item(session, callback.task_id)
    if item is None:
        raise NotFound(f"no step {callback.task_id!r} is waiting (it may have been completed already)")
    if item.role != departments.lane(code):
        raise Forbidden(
            f"the step {callback.task_id!r} is not in this department's lane {departments.lane(code)!r}"
        )
    application = session.get(Application, item.application_id, with_for_update=True)
    if application is None or application.status not in _RUNNING:
        raise Conflict("the application is not running any more")
    if repo.work_item(session, callback.task_id) is None:  # completed while we waited for the lock
        raise NotFound(f"no step {callback.task_id!r} is waiting (it may have been completed already)")
    if isinstance(callback, departments.TaskStatus):
        said = [e.action for e in repo.events(session, application.id) if e.action.startswith("department:")]
        _event(
            session,
            application,
            actor,
            f"department:{callback.status}",
            application.status,
            callback.note,
            clock,
        )
        _audit(
            session,
            actor,
            "intake.application.department_status",
            "intake_application",
            application.receipt_no,
            clock,
            {"step": item.step, "task_id": item.task_id, "status": callback.status, "message_id": message_id},
        )
        if f"department:{callback.status}" not in said:  # the applicant hears of each stage once
            _notify(
                session, application, notices.DEPARTMENT_PREFIX + callback.status, sealer=sealer, clock=clock
            )
    else:
        allowed = _step_decisions(application, item.step)
        if callback.decision not in allowed:
            raise InvalidInput(f"decision: one of {', '.join(allowed)} for the step {item.name}")
        if callback.decision in NEEDS_REASON and len(callback.note.strip()) < 4:
            raise InvalidInput("note: say what is missing or why, for the applicant (at least 4 characters)")
        _advance(
            session,
            application,
            item.task_id,
            {"decision": callback.decision},
            actor=actor,
            action=f"{item.step}:{callback.decision}",
            note=callback.note.strip(),
            clock=clock,
            sealer=sealer,
            files=files,
        )
        _audit(
            session,
            actor,
            "intake.application.step",
            "intake_application",
            application.receipt_no,
            clock,
            {
                "step": item.step,
                "decision": callback.decision,
                "status": application.status,
                "message_id": message_id,
            },
        )
    answer: dict[str, Any] = {
        "receipt_no": application.receipt_no,
        "task_id": item.task_id,
        "type": callback.type,
        "status": application.status,
    }
    idempotency.remember(
        session,
        key=message_id,
        actor=actor,
        method="POST",
        path=path,
        body=body,
        status=200,
        response_body=json.dumps(answer),
        clock=clock,
    )
    return 200, answer, False


def my_document(
    session: Session, principal: Principal, receipt_no: str, document_id: int, *, files: FileStore
) -> tuple[str, bytes]:
    """A result document of one of the caller's applications: (file name, PDF bytes)."""
    application = repo.application_by_receipt(session, receipt_no)
    if application is None or application.applicant_account_id != principal.account_id:
        raise NotFound(f"no application {receipt_no!r}")
    row = documents.find(session, application, document_id)
    if row is None:
        raise NotFound(f"no document {document_id} of application {receipt_no}")
    return documents.filename(application, row), files.get(row.file_key)


def officer_document(
    session: Session,
    principal: Principal,
    receipt_no: str,
    document_id: int,
    *,
    files: FileStore,
    clock: Clock,
) -> tuple[str, bytes]:
    """A result document for an officer (audited)."""
    application = _officer_application(session, principal, receipt_no)
    row = documents.find(session, application, document_id)
    if row is None:
        raise NotFound(f"no document {document_id} of application {receipt_no}")
    _audit(
        session,
        principal,
        "intake.document.download",
        "intake_application",
        receipt_no,
        clock,
        {"document_id": row.id, "kind": row.kind},
    )
    return documents.filename(application, row), files.get(row.file_key)


def outbox_transports(settings: Settings, sealer: Sealer) -> dict[str, outbox.Transport]:
    """The configured transport of each outbox channel (close them with :func:`close_transports`)."""
    return {
        outbox.DEPARTMENT: departments.DepartmentTransport(
            sealer=sealer, public_url=settings.resolved_public_url(), timeout_s=settings.notify_timeout_s
        ),
        outbox.EMAIL: notices.EmailTransport(notify.email_sender(settings)),
        outbox.SMS: notices.SmsTransport(notify.sms_sender(settings)),
    }


def close_transports(transports: Mapping[str, object]) -> None:
    for transport in transports.values():
        close = getattr(transport, "close", None)
        if callable(close):
            close()


def deliver_outbox(
    sessions: sessionmaker[Session],
    transports: Mapping[str, outbox.Transport],
    *,
    settings: Settings,
    sealer: Sealer,
    clock: Clock,
    limit: int = 100,
) -> outbox.DeliveryReport:
    """One delivery pass over the due outbox messages (one transaction each; see :mod:`.outbox`)."""
    return outbox.deliver_due(
        sessions,
        transports,
        sealer=sealer,
        clock=clock,
        limit=limit,
        max_attempts=settings.outbox_max_attempts,
    )


# --- ratings and quality monitoring --------------------------------------------------------------------
# The rating domain (above this one) reads closed applications through these functions and the event.

#: Emitted in the transaction that ends an application: ``receipt_no``, ``sealer``.
CLOSED_EVENT = "intake.application.closed"


@dataclass(frozen=True)
class CaseFacts:
    """What quality monitoring needs of a closed application (the row of its fact table)."""

    receipt_no: str
    applicant_account_id: int
    item_code: str
    item_name: str
    department: str
    region: str
    region_code: str | None
    channel: str
    submitted_at: dt.datetime
    closed_at: dt.datetime
    outcome: str
    #: The promised limit and the time used, in working days (None: never accepted or no limit).
    limit_days: int | None
    work_days: int | None
    on_time: bool | None
    materials_total: int
    materials_exempted: int
    precheck_findings: int
    supplements: int
    #: ``[{"step", "hours"}]``: the time from the previous event to each step's completion.
    steps: list[dict[str, Any]]


def application_standing(session: Session, receipt_no: str) -> tuple[int, str] | None:
    """The applicant's account and the status of an application (None: no such application)."""
    application = repo.application_by_receipt(session, receipt_no)
    if application is None:
        return None
    return application.applicant_account_id, application.status


def case_facts(session: Session, receipt_no: str, *, clock: Clock) -> CaseFacts | None:
    """The facts of a closed application (None while it runs or when there is none)."""
    application = repo.application_by_receipt(session, receipt_no)
    if application is None or application.status in _RUNNING:
        return None
    history = repo.events(session, application.id)
    closed_at = max((e.at for e in history), default=application.updated_at)
    limit_days = work_days = None
    on_time = None
    suspensions = repo.suspensions(session, application.id)
    d = _deadline(session, application, suspensions, clock)
    if d is not None and d.level != "unknown":
        on_time = d.used <= d.limit
        if d.unit == "working_day":
            limit_days = d.limit
        used = _deadline_in_working_days(session, application, suspensions, closed_at)
        work_days = used if used is not None else (d.used if d.unit == "working_day" else None)
    steps: list[dict[str, Any]] = []
    previous = application.submitted_at
    for e in history:
        if e.action in ("submit", "escalate") or e.action.startswith(("department:", "suspend:", "resume:")):
            continue
        hours = max(0, int((e.at - previous).total_seconds() // 3600))
        steps.append({"step": e.action.split(":", 1)[0], "hours": hours})
        previous = e.at
    needed = [m for m in application.materials if m.get("status") in ("exempt", "upload")]
    region = catalog.item_region(session, application.item_code) or ("", None)
    return CaseFacts(
        receipt_no=application.receipt_no,
        applicant_account_id=application.applicant_account_id,
        item_code=application.item_code,
        item_name=application.item_name,
        department=application.department,
        region=region[0],
        region_code=region[1],
        channel="online",
        submitted_at=application.submitted_at,
        closed_at=closed_at,
        outcome=application.status,
        limit_days=limit_days,
        work_days=work_days,
        on_time=on_time,
        materials_total=len(needed),
        materials_exempted=sum(1 for m in needed if m.get("status") == "exempt"),
        precheck_findings=len(application.findings),
        supplements=sum(1 for e in history if e.action.endswith(":supplement")),
        steps=steps,
    )


def _deadline_in_working_days(
    session: Session, application: Application, suspensions: Sequence[Suspension], closed_at: dt.datetime
) -> int | None:
    if application.accepted_on is None:
        return None
    try:
        st = deadlines.standing(
            calendar.working_calendar(session),
            limit=max(1, application.limit_value or 1),
            unit="working_day",
            started=application.accepted_on,
            today=closed_at.astimezone(CHINA).date(),
            suspensions=[
                deadlines.Period(
                    s.started_at.astimezone(CHINA).date(),
                    s.ended_at.astimezone(CHINA).date() if s.ended_at else None,
                )
                for s in suspensions
            ],
        )
    except CalendarUnknown:
        return None
    return st.used


def closed_receipts(session: Session, *, after_id: int = 0, limit: int = 1000) -> list[tuple[int, str]]:
    """Closed applications by id, for backfilling the quality fact table: ``[(id, receipt_no)]``."""
    return repo.closed_receipts(session, after_id=after_id, limit=limit)


def rating_notice(session: Session, receipt_no: str, what: str, *, sealer: Sealer, clock: Clock) -> None:
    """A portal notice (and email/SMS) inviting the applicant to rate, reminding them, or asking for the
    follow-up rating after a rectification; ``what`` is ``invite``, ``reminder`` or ``follow_up``."""
    if what not in ("invite", "reminder", "follow_up"):
        raise ValueError(what)
    application = repo.application_by_receipt(session, receipt_no)
    if application is None:
        raise NotFound(f"no application {receipt_no}")
    _notify(session, application, notices.RATING_PREFIX + what, sealer=sealer, clock=clock)


def queue_message(
    session: Session,
    *,
    channel: str,
    to: str,
    event: str,
    text: str,
    subject: str = "",
    sealer: Sealer,
    clock: Clock,
) -> str:
    """Queue an SMS (``channel`` ``sms``) or an email (``email``) for another domain (the hotline's notices
    to requesters) in the caller's transaction; delivered by the outbox worker. Returns the message id."""
    if channel == outbox.SMS:
        payload: dict[str, Any] = {"text": text}
    elif channel == outbox.EMAIL:
        payload = {"subject": subject or text[:60], "body": text}
    else:
        raise ValueError(f"not a notice channel: {channel!r}")
    return outbox.enqueue(
        session,
        channel=channel,
        target=to,
        event=event,
        payload=payload,
        application_id=None,
        sealer=sealer,
        clock=clock,
    ).id


def verified_subjects(session: Session, account_id: int) -> list[tuple[str, str]]:
    """``(kind, subject digest)`` of the profiles an account acts for whose identifier was verified (an
    e-licence or shared data): what other domains' records about that person or enterprise are keyed by
    (the policy runs' grants)."""
    out = []
    for kind in ("person", "enterprise"):
        for profile in repo.profiles_of_owner(session, account_id, kind):
            if profile.subject_digest:
                out.append((kind, profile.subject_digest))
    return out
