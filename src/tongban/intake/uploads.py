"""What can be learnt from an uploaded file's bytes: its real type, whether it reads, whether it is blank,
and its text (PDF, through pypdf), for the pre-check.

A file's type is decided by its content (magic bytes), not by its name or the declared type, so a
renamed executable is not a PDF.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from tongban.intake.formdef import Field, Finding, Upload

#: Largest file accepted at all (a form field may allow less).
MAX_BYTES = 20 * 1024 * 1024
#: Text kept per file for the pre-check (enough to find a name or an ID number in a certificate).
MAX_TEXT = 20_000

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
#: Types accepted for upload at all.
ALLOWED = frozenset({"application/pdf", "image/png", "image/jpeg", "image/tiff", "application/ofd"})


@dataclass
class Inspection:
    content_type: str | None
    readable: bool
    blank: bool
    pages: int | None = None
    text: str | None = None
    problems: list[str] = dataclass_field(default_factory=list)


def sniff(data: bytes) -> str | None:
    """The type the content shows, or None when it is none we accept."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data.startswith(b"PK\x03\x04") and b"OFD.xml" in data[:4096]:
        return "application/ofd"  # 版式文件 (GB/T 33190), a zip container with OFD.xml first
    return None


def _pdf(data: bytes) -> Inspection:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            return Inspection("application/pdf", readable=False, blank=False, problems=["encrypted"])
        pages = len(reader.pages)
        parts: list[str] = []
        images = 0
        for page in reader.pages:
            if sum(len(p) for p in parts) < MAX_TEXT:
                parts.append(page.extract_text() or "")
            try:
                images += len(page.images)
            except Exception:  # an image pypdf cannot decode still counts as content
                images += 1
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        return Inspection("application/pdf", readable=False, blank=False, problems=[type(exc).__name__])
    text = "".join(parts)[:MAX_TEXT]
    blank = pages == 0 or (not text.strip() and images == 0)
    return Inspection("application/pdf", readable=True, blank=blank, pages=pages, text=text or None)


def inspect(data: bytes) -> Inspection:
    kind = sniff(data)
    if kind is None:
        return Inspection(None, readable=False, blank=False, problems=["unknown type"])
    if kind == "application/pdf":
        return _pdf(data)
    # Images: a file that is nearly all one byte value holds no picture worth reading.
    sample = data[64 : 64 + 65536]
    blank = len(data) < 200 or (bool(sample) and sample.count(sample[0]) / len(sample) > 0.98)
    return Inspection(kind, readable=True, blank=blank)


def check_upload(
    field: Field, upload: Upload, *, path: str, applicant: Mapping[str, Any] | None
) -> Iterable[Finding]:
    """The pre-check's content check of one upload: a material that should name the applicant and can be
    read does name them (by name or ID number)."""
    if upload.text is None or not applicant or not field.material:
        return []
    wanted = [str(applicant.get(k) or "") for k in ("person.name", "person.id_number", "enterprise.name")]
    wanted = [w for w in wanted if len(w) >= 2]
    compact = "".join(upload.text.split())
    if not wanted or any(w in compact for w in wanted):
        return []
    return [
        Finding(
            code="file.no_mention",
            field=path,
            severity="warning",
            message=f"《{upload.name}》中未找到申请人的姓名或证件号码，请确认上传的是申请人本人的{field.material}。",
            message_en=f"{upload.name} does not mention the applicant's name or ID number; check that it is "
            f"the applicant's own {field.material}.",
        )
    ]
