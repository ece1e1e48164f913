"""All SQL of intake."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

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
    ReceiptCounter,
    Suspension,
    Upload,
    WorkItem,
)


def profile(session: Session, profile_id: int) -> Profile | None:
    return session.get(Profile, profile_id)


def profiles_of_owner(session: Session, account_id: int, kind: str) -> list[Profile]:
    stmt = (
        select(Profile)
        .where(Profile.owner_account_id == account_id, Profile.kind == kind)
        .order_by(Profile.id)
    )
    return list(session.scalars(stmt))


def profile_by_digest(session: Session, kind: str, digest: str) -> Profile | None:
    stmt = select(Profile).where(Profile.kind == kind, Profile.subject_digest == digest)
    return session.scalars(stmt).first()


def add(session: Session, row: object) -> None:
    session.add(row)
    session.flush()


def current_data(session: Session, profile_id: int, keys: Iterable[str] | None = None) -> list[ProfileDatum]:
    stmt = select(ProfileDatum).where(
        ProfileDatum.profile_id == profile_id, ProfileDatum.superseded_at.is_(None)
    )
    if keys is not None:
        stmt = stmt.where(ProfileDatum.key.in_(list(keys)))
    return list(session.scalars(stmt.order_by(ProfileDatum.key)))


def history(session: Session, profile_id: int, key: str) -> list[ProfileDatum]:
    stmt = (
        select(ProfileDatum)
        .where(ProfileDatum.profile_id == profile_id, ProfileDatum.key == key)
        .order_by(ProfileDatum.recorded_at.desc(), ProfileDatum.id.desc())
    )
    return list(session.scalars(stmt))


def supersede(session: Session, datum_id: int, at: dt.datetime) -> None:
    session.execute(update(ProfileDatum).where(ProfileDatum.id == datum_id).values(superseded_at=at))


def consents(session: Session, profile_id: int) -> list[Consent]:
    stmt = (
        select(Consent)
        .where(Consent.profile_id == profile_id)
        .order_by(Consent.granted_at.desc(), Consent.id.desc())
    )
    return list(session.scalars(stmt))


def active_consent(session: Session, profile_id: int, purpose: str, now: dt.datetime) -> Consent | None:
    stmt = (
        select(Consent)
        .where(
            Consent.profile_id == profile_id,
            Consent.purpose == purpose,
            Consent.revoked_at.is_(None),
            (Consent.expires_at.is_(None)) | (Consent.expires_at > now),
        )
        .order_by(Consent.granted_at.desc())
    )
    return session.scalars(stmt).first()


def licences(session: Session, profile_id: int) -> list[ELicence]:
    stmt = (
        select(ELicence)
        .where(ELicence.holder_profile_id == profile_id)
        .order_by(ELicence.licence_type, ELicence.id)
    )
    return list(session.scalars(stmt))


def licence_by_number(session: Session, licence_type: str, digest: str) -> ELicence | None:
    stmt = select(ELicence).where(ELicence.licence_type == licence_type, ELicence.number_digest == digest)
    return session.scalars(stmt).first()


# --- forms and applications --------------------------------------------------------------------------


def forms(session: Session, item_code: str) -> list[IntakeForm]:
    stmt = select(IntakeForm).where(IntakeForm.item_code == item_code).order_by(IntakeForm.version.desc())
    return list(session.scalars(stmt))


def latest_form(session: Session, item_code: str) -> IntakeForm | None:
    found = forms(session, item_code)
    return found[0] if found else None


def form(session: Session, item_code: str, version: int) -> IntakeForm | None:
    stmt = select(IntakeForm).where(IntakeForm.item_code == item_code, IntakeForm.version == version)
    return session.scalars(stmt).first()


def published_form(session: Session, item_code: str) -> IntakeForm | None:
    stmt = select(IntakeForm).where(IntakeForm.item_code == item_code, IntakeForm.state == "published")
    return session.scalars(stmt).first()


def processes(session: Session, item_code: str) -> list[ItemProcess]:
    stmt = select(ItemProcess).where(ItemProcess.item_code == item_code).order_by(ItemProcess.version.desc())
    return list(session.scalars(stmt))


def item_process(session: Session, item_code: str, version: int) -> ItemProcess | None:
    stmt = select(ItemProcess).where(ItemProcess.item_code == item_code, ItemProcess.version == version)
    return session.scalars(stmt).first()


def published_process(session: Session, item_code: str) -> ItemProcess | None:
    stmt = select(ItemProcess).where(ItemProcess.item_code == item_code, ItemProcess.state == "published")
    return session.scalars(stmt).first()


def process_by_id(session: Session, process_id: int) -> ItemProcess:
    return session.get_one(ItemProcess, process_id)


def uploads(session: Session, ids: Iterable[str]) -> list[Upload]:
    wanted = list(ids)
    if not wanted:
        return []
    return list(session.scalars(select(Upload).where(Upload.id.in_(wanted))))


def uploads_of(session: Session, application_id: int) -> list[Upload]:
    stmt = (
        select(Upload).where(Upload.application_id == application_id).order_by(Upload.created_at, Upload.id)
    )
    return list(session.scalars(stmt))


def upload_exists(session: Session, key: str) -> bool:
    return session.scalar(select(Upload.id).where(Upload.id == key)) is not None


def stale_uploads(session: Session, cutoff: dt.datetime) -> list[Upload]:
    stmt = select(Upload).where(Upload.application_id.is_(None), Upload.created_at < cutoff)
    return list(session.scalars(stmt))


def application_by_receipt(
    session: Session, receipt_no: str, *, for_update: bool = False
) -> Application | None:
    stmt = select(Application).where(Application.receipt_no == receipt_no)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def applications_of(session: Session, account_id: int, *, limit: int) -> list[Application]:
    stmt = (
        select(Application)
        .where(Application.applicant_account_id == account_id)
        .order_by(Application.submitted_at.desc(), Application.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def events(session: Session, application_id: int) -> list[ApplicationEvent]:
    stmt = (
        select(ApplicationEvent)
        .where(ApplicationEvent.application_id == application_id)
        .order_by(ApplicationEvent.id)
    )
    return list(session.scalars(stmt))


def next_receipt(session: Session, day: str) -> int:
    """The next sequence number of ``day``; concurrent submissions wait on the counter row's lock."""
    bumped = session.execute(
        update(ReceiptCounter).where(ReceiptCounter.day == day).values(last=ReceiptCounter.last + 1)
    )
    if bumped.rowcount == 0:  # type: ignore[attr-defined]
        try:
            with session.begin_nested():
                session.add(ReceiptCounter(day=day, last=1))
            return 1
        except IntegrityError:  # another transaction created the row first
            session.execute(
                update(ReceiptCounter).where(ReceiptCounter.day == day).values(last=ReceiptCounter.last + 1)
            )
    return int(session.scalar(select(ReceiptCounter.last).where(ReceiptCounter.day == day)) or 0)


def form_by_id(session: Session, form_id: int) -> IntakeForm:
    found = session.get(IntakeForm, form_id)
    if found is None:
        raise LookupError(f"form {form_id} is gone")
    return found


def replace_work_items(session: Session, application_id: int, items: list[WorkItem]) -> None:
    current = {w.task_id: w for w in work_items_of(session, application_id)}
    wanted = {w.task_id for w in items}
    for task_id, row in current.items():
        if task_id not in wanted:
            session.delete(row)
    for w in items:
        if w.task_id not in current:  # a step still waiting keeps the time it became ready
            session.add(w)
    session.flush()


def work_items_of(session: Session, application_id: int) -> list[WorkItem]:
    stmt = select(WorkItem).where(WorkItem.application_id == application_id).order_by(WorkItem.ready_at)
    return list(session.scalars(stmt))


def work_item(session: Session, task_id: str) -> WorkItem | None:
    return session.get(WorkItem, task_id)


def work_items(session: Session, roles: list[str], *, limit: int) -> list[tuple[WorkItem, Application]]:
    stmt = (
        select(WorkItem, Application)
        .join(Application, Application.id == WorkItem.application_id)
        .where(WorkItem.role.in_(roles))
        .order_by(WorkItem.ready_at, WorkItem.application_id)
        .limit(limit)
    )
    return [(w, a) for w, a in session.execute(stmt)]


def suspensions(session: Session, application_id: int) -> list[Suspension]:
    stmt = select(Suspension).where(Suspension.application_id == application_id).order_by(Suspension.id)
    return list(session.scalars(stmt))


def suspensions_of(session: Session, application_ids: list[int]) -> dict[int, list[Suspension]]:
    out: dict[int, list[Suspension]] = {i: [] for i in application_ids}
    if application_ids:
        stmt = (
            select(Suspension).where(Suspension.application_id.in_(application_ids)).order_by(Suspension.id)
        )
        for s in session.scalars(stmt):
            out[s.application_id].append(s)
    return out


def running_applications(session: Session, *, department: str | None, limit: int) -> list[Application]:
    """Accepted applications whose process has not ended, oldest acceptance first."""
    stmt = select(Application).where(
        Application.accepted_on.is_not(None),
        Application.status.in_(("in_progress", "supplement_requested", "submitted")),
        Application.limit_value.is_not(None),
    )
    if department:
        stmt = stmt.where(Application.department == department)
    return list(session.scalars(stmt.order_by(Application.accepted_on, Application.id).limit(limit)))


def item_setting(session: Session, item_code: str) -> ItemSetting | None:
    return session.get(ItemSetting, item_code)


def attach_upload(session: Session, upload_id: str, application_id: int, owner_account_id: int) -> bool:
    """Attach an unattached upload of ``owner_account_id``; False when it is gone or taken."""
    result = session.execute(
        update(Upload)
        .where(
            Upload.id == upload_id,
            Upload.application_id.is_(None),
            Upload.owner_account_id == owner_account_id,
        )
        .values(application_id=application_id)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def closed_receipts(session: Session, *, after_id: int, limit: int) -> list[tuple[int, str]]:
    stmt = (
        select(Application.id, Application.receipt_no)
        .where(
            Application.id > after_id,
            Application.status.not_in(("in_progress", "supplement_requested", "submitted")),
        )
        .order_by(Application.id)
        .limit(limit)
    )
    return [(i, r) for i, r in session.execute(stmt)]
