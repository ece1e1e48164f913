"""Result documents (决定书, 通知书): a PDF issued when an application ends, stored sealed.

When an application is approved, refused or not accepted, the platform writes the decision as a PDF —
准予许可决定书, 不予许可决定书 or 不予受理通知书 (with the English title under the Chinese one): document
number (the receipt number), applicant, item, department, decision, reasons (the officer's note), the
date in Beijing time and the applicant's right to administrative review and litigation. The text is set
in ReportLab's built-in CID font STSong-Light (the reader's own Song typeface; no font file is shipped or
fetched). The file is written to the file store first, sealed; its row is added in the transaction of the
decision. If that transaction rolls back the file has no row, and ``tongban intake sweep-uploads`` removes
it after the grace period like any unreferenced file (``service.sweep_uploads`` asks :func:`file_known`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import dataclass
from functools import lru_cache
from xml.sax.saxutils import escape

from reportlab.lib.enums import TA_CENTER, TA_RIGHT  # type: ignore[import-untyped]
from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped]
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.pdfbase.cidfonts import UnicodeCIDFont  # type: ignore[import-untyped]
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.orm import Session

from tongban.core.clock import Clock
from tongban.core.files import FileStore, new_file_key
from tongban.intake.models import Application, ResultDocument
from tongban.intake.schemas import DocumentOut

CHINA = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
FONT = "STSong-Light"


@dataclass(frozen=True)
class Kind:
    kind: str
    title: str
    title_en: str
    #: The decision, with ``{item}`` for the item's name.
    decision: str
    #: Said when the officer gave no reason.
    default_reason: str


#: The document issued for each end status.
KINDS: dict[str, Kind] = {
    "approved": Kind(
        "approval",
        "准予许可决定书",
        "Decision to Grant the Licence",
        "你（单位）提出的“{item}”申请，经审查，符合法定条件、标准。根据《中华人民共和国行政许可法》"
        "第三十八条第一款的规定，决定准予许可。",
        "申请材料齐全、符合法定形式，符合法定条件、标准。",
    ),
    "refused": Kind(
        "refusal",
        "不予许可决定书",
        "Decision to Refuse the Licence",
        "你（单位）提出的“{item}”申请，经审查，不符合法定条件、标准。根据《中华人民共和国行政许可法》"
        "第三十八条第二款的规定，决定不予许可。",
        "（未说明）",
    ),
    "not_accepted": Kind(
        "non_acceptance",
        "不予受理通知书",
        "Notice of Non-acceptance",
        "你（单位）提出的“{item}”申请，根据《中华人民共和国行政许可法》第三十二条的规定，决定不予受理。",
        "（未说明）",
    ),
}
RIGHTS = (
    "如不服本决定，可以自收到本决定之日起六十日内依法申请行政复议，"
    "或者自收到本决定之日起六个月内依法向人民法院提起行政诉讼。"
)


@lru_cache(maxsize=1)
def _font() -> str:
    pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    return FONT


def _styles() -> dict[str, ParagraphStyle]:
    font = _font()
    base = ParagraphStyle("body", fontName=font, fontSize=12, leading=20, wordWrap="CJK")
    return {
        "title": ParagraphStyle("title", parent=base, fontSize=20, leading=28, alignment=TA_CENTER),
        "title_en": ParagraphStyle(
            "title_en", parent=base, fontName="Helvetica", fontSize=11, leading=16, alignment=TA_CENTER
        ),
        "number": ParagraphStyle("number", parent=base, alignment=TA_CENTER),
        "body": base,
        "label": ParagraphStyle("label", parent=base, fontSize=11),
        "right": ParagraphStyle("right", parent=base, alignment=TA_RIGHT),
        "small": ParagraphStyle("small", parent=base, fontSize=10, leading=16),
    }


def chinese_date(when: dt.datetime) -> str:
    day = when.astimezone(CHINA).date()
    return f"{day.year}年{day.month}月{day.day}日"


def render(
    application: Application, *, kind: Kind, applicant: str, reasons: str, issued_at: dt.datetime
) -> bytes:
    """The document as PDF bytes (the same inputs give the same bytes)."""
    s = _styles()
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=25 * mm,
        rightMargin=25 * mm,
        topMargin=25 * mm,
        bottomMargin=25 * mm,
        title=f"{kind.title} {application.receipt_no}",
        author=application.department,
        subject=kind.title_en,
        creator="tongban",
        invariant=True,
    )

    def p(text: str, style: str = "body") -> Paragraph:
        return Paragraph(escape(text).replace("\n", "<br/>"), s[style])

    rows = [
        [p("申请人", "label"), p(applicant or "—")],
        [p("申请事项", "label"), p(f"{application.item_name}（{application.item_code}）")],
        [p("承办部门", "label"), p(application.department)],
        [p("受理编号", "label"), p(application.receipt_no)],
    ]
    table = Table(rows, colWidths=[28 * mm, None])
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, "#999999"),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
            ]
        )
    )
    story = [
        p(kind.title, "title"),
        Paragraph(escape(kind.title_en), s["title_en"]),
        Spacer(1, 4 * mm),
        p(f"文书编号：{application.receipt_no}", "number"),
        Spacer(1, 6 * mm),
        table,
        Spacer(1, 6 * mm),
        p("决定", "label"),
        p(kind.decision.format(item=application.item_name)),
        Spacer(1, 3 * mm),
        p("理由", "label"),
        p(reasons.strip() or kind.default_reason),
        Spacer(1, 3 * mm),
        p("权利告知", "label"),
        p(RIGHTS),
        Spacer(1, 12 * mm),
        p(application.department, "right"),
        p(chinese_date(issued_at), "right"),
        Spacer(1, 10 * mm),
        p("本文书由通办平台生成，可凭受理编号在平台核验。", "small"),
    ]
    doc.build(story)
    return buffer.getvalue()


def issue(
    session: Session,
    application: Application,
    *,
    applicant: str,
    reasons: str,
    files: FileStore,
    clock: Clock,
) -> ResultDocument | None:
    """Write the result document of the application's end status (none for other statuses): the file
    first, then its row in the caller's transaction."""
    kind = KINDS.get(application.status)
    if kind is None:
        return None
    now = clock.now()
    data = render(application, kind=kind, applicant=applicant, reasons=reasons, issued_at=now)
    key = new_file_key()
    files.put(key, data)
    row = ResultDocument(
        application_id=application.id,
        kind=kind.kind,
        file_key=key,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def of_application(session: Session, application_id: int) -> list[ResultDocument]:
    stmt = (
        select(ResultDocument)
        .where(ResultDocument.application_id == application_id)
        .order_by(ResultDocument.created_at, ResultDocument.id)
    )
    return list(session.scalars(stmt))


def title_of(kind: str) -> tuple[str, str]:
    found = next((k for k in KINDS.values() if k.kind == kind), None)
    return (found.title, found.title_en) if found else (kind, kind)


def listing(session: Session, application: Application, *, officer: bool) -> list[DocumentOut]:
    """The application's documents with their download address (the applicant's or the officers')."""
    base = "/api/v1/intake/applications" if officer else "/api/v1/me/applications"
    out = []
    for d in of_application(session, application.id):
        title, title_en = title_of(d.kind)
        out.append(
            DocumentOut(
                id=d.id,
                kind=d.kind,
                title=title,
                title_en=title_en,
                created_at=d.created_at,
                size=d.size,
                sha256=d.sha256,
                download_url=f"{base}/{application.receipt_no}/documents/{d.id}",
            )
        )
    return out


def find(session: Session, application: Application, document_id: int) -> ResultDocument | None:
    row = session.get(ResultDocument, document_id)
    return row if row is not None and row.application_id == application.id else None


def filename(application: Application, row: ResultDocument) -> str:
    return f"{application.receipt_no}-{row.kind}.pdf"


def file_known(session: Session, key: str) -> bool:
    """Whether a result document refers to the stored file ``key`` (the file sweep keeps those)."""
    return (
        session.scalar(select(ResultDocument.id).where(ResultDocument.file_key == key).limit(1)) is not None
    )
