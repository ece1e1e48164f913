"""The applicant's e-material library (电子材料库): every document they submitted with an application and
every result document they received, reusable in a new application.

A document stays with the application it was submitted with (the record does not change); reusing it
makes a fresh, unattached upload of the same file owned by the applicant, which goes into a file field
like any upload — checked again (type, readable, not blank) and swept if never used.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from tongban.core.auth import Principal
from tongban.core.clock import Clock
from tongban.core.crypto import Sealer
from tongban.core.errors import InvalidInput, NotFound, Unauthenticated
from tongban.core.files import FileStore
from tongban.intake import formdef, service
from tongban.intake import repository as repo
from tongban.intake.models import Application, ResultDocument
from tongban.intake.models import Upload as UploadRow
from tongban.intake.schemas import UploadOut

#: How many of the applicant's applications the library looks through (newest first).
HORIZON = 200


class LibraryEntry(BaseModel):
    """A document in the applicant's library. ``id`` is ``upload:<id>`` or ``document:<id>``."""

    id: str
    kind: Literal["submitted", "received"]
    #: The catalogue material it was submitted as (submitted documents), or the result document's kind.
    material: str | None
    filename: str
    content_type: str
    size: int
    sha256: str
    receipt_no: str
    item_code: str
    item_name: str
    at: dt.datetime


def _materials_of(session: Session, application: Application, sealer: Sealer) -> dict[str, str]:
    """Upload id → the material of the file field it was submitted in."""
    form = repo.form_by_id(session, application.form_id)
    definition = formdef.FormDefinition.model_validate(form.definition)
    values = json.loads(sealer.open(application.values_sealed, f"intake_application:{application.id}"))
    out: dict[str, str] = {}
    for f in definition.fields:
        if f.type == formdef.FieldType.FILE and f.material:
            for upload_id in values.get(f.key) or []:
                if isinstance(upload_id, str):
                    out[upload_id] = f.material
    return out


def library(session: Session, principal: Principal, *, sealer: Sealer) -> list[LibraryEntry]:
    """The caller's documents, newest first: what they submitted and what they received."""
    if principal.account_id is None:
        raise Unauthenticated("sign in to see your materials")
    entries: list[LibraryEntry] = []
    for application in repo.applications_of(session, principal.account_id, limit=HORIZON):
        materials = _materials_of(session, application, sealer)
        for u in repo.uploads_of(session, application.id):
            entries.append(
                LibraryEntry(
                    id=f"upload:{u.id}",
                    kind="submitted",
                    material=materials.get(u.id),
                    filename=u.filename,
                    content_type=u.content_type,
                    size=u.size,
                    sha256=u.sha256,
                    receipt_no=application.receipt_no,
                    item_code=application.item_code,
                    item_name=application.item_name,
                    at=u.created_at,
                )
            )
        docs = session.scalars(select(ResultDocument).where(ResultDocument.application_id == application.id))
        for d in docs:
            entries.append(
                LibraryEntry(
                    id=f"document:{d.id}",
                    kind="received",
                    material=d.kind,
                    filename=f"{application.receipt_no}-{d.kind}.pdf",
                    content_type="application/pdf",
                    size=d.size,
                    sha256=d.sha256,
                    receipt_no=application.receipt_no,
                    item_code=application.item_code,
                    item_name=application.item_name,
                    at=d.created_at,
                )
            )
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries


def reuse(
    session: Session,
    principal: Principal,
    entry_id: str,
    *,
    files: FileStore,
    sealer: Sealer,
    clock: Clock,
) -> UploadOut:
    """A fresh upload of a library document, ready for a file field of a new application."""
    if principal.account_id is None:
        raise Unauthenticated("sign in to use your materials")
    kind, _, ref = entry_id.partition(":")
    if kind == "upload":
        row = session.get(UploadRow, ref)
        if row is None or row.owner_account_id != principal.account_id or row.application_id is None:
            raise NotFound(f"no submitted document {entry_id!r} in your library")
        return service.copy_upload(session, row, files=files, sealer=sealer, clock=clock)
    if kind == "document" and ref.isdigit():
        doc = session.get(ResultDocument, int(ref))
        application = session.get(Application, doc.application_id) if doc is not None else None
        if doc is None or application is None or application.applicant_account_id != principal.account_id:
            raise NotFound(f"no received document {entry_id!r} in your library")
        return service.upload_file(
            session,
            principal,
            filename=f"{application.receipt_no}-{doc.kind}.pdf",
            declared_type="application/pdf",
            data=files.get(doc.file_key),
            files=files,
            sealer=sealer,
            clock=clock,
        )
    raise InvalidInput("id: upload:<id> or document:<id> from GET /api/v1/me/materials")
