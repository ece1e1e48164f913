"""Document readers and passage splitter for the knowledge base.

Readers turn files (JSONL, Markdown, HTML, PDF, DOCX) into :class:`SourceDocument` objects made of
:class:`Section` objects (a heading path plus whitespace-normalised body text). :func:`split_passages`
cuts a document into :class:`Passage` objects whose offsets point into :func:`document_body`, so that
``document_body(doc)[p.start:p.end] == p.text`` always holds.
"""

from __future__ import annotations

import codecs
import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "FORMATS",
    "IngestError",
    "Passage",
    "Section",
    "SourceDocument",
    "detect_format",
    "document_body",
    "read_bytes",
    "read_path",
    "split_passages",
]

FORMATS = ("jsonl", "markdown", "html", "pdf", "docx")

_SUFFIXES: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}


@dataclass(frozen=True)
class Section:
    """A run of body text under one heading path."""

    heading: tuple[str, ...]
    text: str
    page: int | None = None


@dataclass(frozen=True)
class SourceDocument:
    """One document as read from a source, before splitting."""

    external_id: str
    title: str
    sections: tuple[Section, ...]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Passage:
    """A retrieval unit: a slice ``[start, end)`` of :func:`document_body` within one section."""

    seq: int
    heading: tuple[str, ...]
    text: str
    start: int
    end: int
    page: int | None


class IngestError(ValueError):
    """A source could not be read; the message names the file (and line) and the problem."""


# --------------------------------------------------------------------------------------------------
# Whitespace normalisation
# --------------------------------------------------------------------------------------------------

_INVISIBLE = dict.fromkeys(map(ord, "\u3000\u200b\u200c\u200d\u2060\ufeff"))
_SPACES = re.compile(r"[ \t\f\v\xa0\u1680\u2000-\u200a\u202f\u205f]+")
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029\x85]")


def _clean_line(line: str) -> str:
    """Drop ideographic spaces and zero-width characters, collapse spaces/tabs, strip."""
    return _SPACES.sub(" ", line.translate(_INVISIBLE)).strip()


def _clean_lines(text: str) -> list[str]:
    """Split ``text`` into normalised, non-empty lines."""
    return [c for c in (_clean_line(x) for x in _LINE_BREAKS.split(text)) if c]


def _one_line(text: str) -> str:
    return " ".join(_clean_lines(text))


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (
        0x2E80 <= o <= 0x9FFF  # radicals, CJK punctuation, kana, unified ideographs
        or 0xF900 <= o <= 0xFAFF
        or 0xFF00 <= o <= 0xFFEF  # full-width forms
        or 0x20000 <= o <= 0x3FFFF
    )


def _wrap_join(left: str, right: str) -> str:
    """Join two pieces of a line that was wrapped: no space around CJK text, one space otherwise."""
    if not left:
        return right
    if not right:
        return left
    if _is_cjk(left[-1]) or _is_cjk(right[0]):
        return left + right
    return left + " " + right


class _SectionBuilder:
    """Accumulates paragraphs under a heading path; a new heading starts a new section."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []
        self._paragraphs: list[str] = []
        self._page: int | None = None
        self.sections: list[Section] = []

    def heading(self, level: int, text: str) -> None:
        text = _one_line(text)
        if not text:
            return
        self.flush()
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))

    def page(self, number: int) -> None:
        self.flush()
        self._page = number

    def add(self, text: str) -> None:
        self._paragraphs.extend(_clean_lines(text))

    def flush(self) -> None:
        if self._paragraphs:
            heading = tuple(t for _, t in self._stack)
            self.sections.append(Section(heading, "\n".join(self._paragraphs), self._page))
            self._paragraphs = []


def _short_title(text: str) -> str:
    lines = _clean_lines(text)
    first = lines[0] if lines else ""
    return first if len(first) <= 40 else first[:30] + "…"


# --------------------------------------------------------------------------------------------------
# Format detection and entry points
# --------------------------------------------------------------------------------------------------


def detect_format(path: Path) -> str:
    """Return the format name for ``path`` from its suffix, or raise :class:`IngestError`."""
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise IngestError(f"{path}: unsupported file type {path.suffix or '(no suffix)'!r}")
    return fmt


def _check_format(fmt: str, name: str) -> str:
    if fmt not in FORMATS:
        raise IngestError(f"{name}: unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    return fmt


def _is_hidden(rel: PurePosixPath) -> bool:
    return any(part.startswith((".", "~$")) for part in rel.parts)


def read_path(path: Path, *, fmt: str | None = None) -> Iterator[SourceDocument]:
    """Read a file, or every supported file below a folder (recursively, sorted, hidden ones skipped).

    ``external_id`` of non-JSONL documents is the file path relative to the folder given (for a single
    file: its name). With ``fmt`` and a folder, only files of that format are read.
    """
    if path.is_dir():
        if fmt is not None:
            _check_format(fmt, str(path))
        found: list[tuple[str, Path, str]] = []
        for candidate in path.rglob("*"):
            rel = PurePosixPath(candidate.relative_to(path).as_posix())
            if _is_hidden(rel) or not candidate.is_file():
                continue
            kind = _SUFFIXES.get(candidate.suffix.lower())
            if kind is None or (fmt is not None and kind != fmt):
                continue
            found.append((rel.as_posix(), candidate, kind))
        for rel_name, file, kind in sorted(found):
            yield from _read_file(file, rel_name, kind)
    elif path.is_file():
        kind = _check_format(fmt, path.name) if fmt is not None else detect_format(path)
        yield from _read_file(path, path.name, kind)
    else:
        raise IngestError(f"{path}: no such file or folder")


def _read_file(path: Path, name: str, fmt: str) -> Iterator[SourceDocument]:
    try:
        if fmt == "jsonl":
            with path.open("rb") as fh:
                yield from _iter_jsonl(fh, name)
            return
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{name}: cannot read file: {exc.strerror or exc}") from exc
    yield from _parse(data, name, fmt)


def read_bytes(data: bytes, *, filename: str, fmt: str | None = None) -> list[SourceDocument]:
    """Read an uploaded file held in memory; ``filename`` gives the format and the external id."""
    name = filename.replace("\\", "/")
    kind = _check_format(fmt, name) if fmt is not None else detect_format(Path(name))
    return list(_parse(data, name, kind))


def _parse(data: bytes, name: str, fmt: str) -> Iterator[SourceDocument]:
    if fmt == "jsonl":
        yield from _iter_jsonl(io.BytesIO(data), name)
    elif fmt == "markdown":
        yield _read_markdown(data, name)
    elif fmt == "html":
        yield _read_html(data, name)
    elif fmt == "pdf":
        yield _read_pdf(data, name)
    elif fmt == "docx":
        yield _read_docx(data, name)
    else:  # pragma: no cover - guarded by _check_format/detect_format
        raise IngestError(f"{name}: unknown format {fmt!r}")


def _stem(name: str) -> str:
    return PurePosixPath(name).stem


def _decode_utf8(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{name}: not valid UTF-8 (byte offset {exc.start})") from exc


# --------------------------------------------------------------------------------------------------
# JSONL
# --------------------------------------------------------------------------------------------------


def _iter_jsonl(lines: Iterable[bytes], name: str) -> Iterator[SourceDocument]:
    for lineno, raw in enumerate(lines, start=1):
        if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IngestError(f"{name}: line {lineno}: not valid UTF-8 (column {exc.start + 1})") from exc
        if not line.strip():
            continue
        yield _jsonl_record(line, name, lineno)


def _jsonl_record(line: str, name: str, lineno: int) -> SourceDocument:
    where = f"{name}: line {lineno}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise IngestError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from exc
    if not isinstance(obj, dict):
        raise IngestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    id_key = "id" if "id" in obj else "docid"
    doc_id = obj.get(id_key)
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise IngestError(f"{where}: missing or empty string field 'id' (or 'docid')")
    text = obj.get("text")
    if not isinstance(text, str) or not _clean_lines(text):
        raise IngestError(f"{where}: missing or empty string field 'text'")
    title = obj.get("title")
    if title is not None and not isinstance(title, str):
        raise IngestError(f"{where}: field 'title' must be a string")
    paragraphs = _clean_lines(text)
    metadata = {k: v for k, v in obj.items() if k not in {id_key, "text", "title"}}
    metadata.setdefault("source", name)
    return SourceDocument(
        external_id=doc_id.strip(),
        title=_one_line(title or "") or _short_title(text),
        sections=(Section((), "\n".join(paragraphs)),),
        metadata=metadata,
    )


# --------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------


def _inline_text(children: list[Any] | None) -> str:
    """Plain text of a markdown-it inline token's children; soft line breaks are re-joined."""
    lines: list[list[str]] = [[""]]
    for child in children or []:
        kind = child.type
        if kind in {"text", "code_inline"}:
            lines[-1][-1] += child.content
        elif kind == "image":
            lines[-1][-1] += _inline_text(child.children)
        elif kind == "softbreak":
            lines[-1].append("")
        elif kind == "hardbreak":
            lines.append([""])
    out: list[str] = []
    for pieces in lines:
        joined = ""
        for piece in pieces:
            joined = _wrap_join(joined, piece.strip())
        out.append(joined)
    return "\n".join(out)


def _read_markdown(data: bytes, name: str) -> SourceDocument:
    from markdown_it import MarkdownIt
    from selectolax.lexbor import LexborHTMLParser

    text = _decode_utf8(data, name)
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    builder = _SectionBuilder()
    title: str | None = None
    heading_level: int | None = None
    row: list[str] | None = None
    in_cell = False
    item_prefix: str | None = None
    for tok in tokens:
        kind = tok.type
        if kind == "heading_open":
            heading_level = int(tok.tag[1])
        elif kind == "heading_close":
            heading_level = None
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close":
            if row is not None and any(row):
                builder.add(" | ".join(row))
            row = None
        elif kind in {"th_open", "td_open"}:
            in_cell = True
        elif kind in {"th_close", "td_close"}:
            in_cell = False
        elif kind == "list_item_open":
            item_prefix = f"{tok.info}{tok.markup} " if tok.info else None
        elif kind == "inline":
            content = _inline_text(tok.children)
            if heading_level is not None:
                if heading_level == 1 and title is None:
                    title = _one_line(content)
                builder.heading(heading_level, content)
            elif in_cell and row is not None:
                row.append(_one_line(content))
            else:
                if item_prefix is not None:
                    content, item_prefix = item_prefix + content, None
                builder.add(content)
        elif kind in {"fence", "code_block"}:
            builder.add(tok.content)
        elif kind == "html_block":
            root = LexborHTMLParser(tok.content).root
            if root is not None:
                builder.add(root.text(separator="\n"))
    builder.flush()
    return SourceDocument(
        external_id=name,
        title=title or _stem(name),
        sections=tuple(builder.sections),
        metadata={"source": name},
    )


# --------------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030"}
_DROP_TAGS = ["script", "style", "nav", "header", "footer", "noscript", "template"]
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCK_TAGS = frozenset(
    {
        *("p", "div", "li", "ul", "ol", "dl", "dt", "dd", "pre", "blockquote", "table", "thead", "tbody"),
        *("tfoot", "caption", "section", "article", "main", "aside", "address", "figure", "figcaption"),
        *("form", "fieldset", "center", "hr", "details", "summary", "body"),
    }
)


def _decode_html(data: bytes, name: str) -> str:
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace").lstrip("\ufeff")
    match = _META_CHARSET.search(data[:4096])
    if match:
        label = match.group(1).decode("ascii").lower()
        label = _CHARSET_ALIASES.get(label, label)
        try:
            codecs.lookup(label)
        except LookupError:
            pass
        else:
            try:
                return data.decode(label)
            except UnicodeDecodeError:
                return data.decode(label, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise IngestError(f"{name}: cannot decode HTML (no usable charset declared, not UTF-8)") from exc


_SOURCE_WRAP = re.compile(r"(?<=(\S))[ \t\r\f]*\n\s*(?=(\S))")


def _unwrap_source_lines(text: str) -> str:
    """Collapse HTML source line breaks inside running text: dropped between CJK text, else a space."""
    text = _SOURCE_WRAP.sub(lambda m: "" if _is_cjk(m[1]) or _is_cjk(m[2]) else " ", text)
    return _one_line(text)


def _read_html(data: bytes, name: str) -> SourceDocument:
    from selectolax.lexbor import LexborHTMLParser, LexborNode

    tree = LexborHTMLParser(_decode_html(data, name))
    metadata: dict[str, Any] = {}
    for meta in tree.css("meta[name]"):
        key = (meta.attributes.get("name") or "").strip()
        value = meta.attributes.get("content")
        if key and value is not None:
            metadata[key] = _one_line(value)
    metadata["source"] = name
    title_node = tree.css_first("title")
    title = _one_line(title_node.text()) if title_node is not None else ""
    if not title:
        h1 = tree.css_first("h1")
        title = _one_line(h1.text(separator=" ")) if h1 is not None else ""
    tree.strip_tags(_DROP_TAGS, recursive=True)

    builder = _SectionBuilder()
    buffer: list[str] = []

    def flush() -> None:
        if buffer:
            builder.add(_unwrap_source_lines("".join(buffer)))
            buffer.clear()

    root = tree.body or tree.root
    stack: list[LexborNode | None] = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if node is None:  # end of a block element
            flush()
            continue
        tag = node.tag or ""
        if node.is_text_node:
            buffer.append(node.text_content or "")
        elif tag.startswith("-") or tag in {"head", "title", "meta", "link"}:
            continue
        elif tag in _HEADINGS:
            flush()
            builder.heading(_HEADINGS[tag], node.text(separator=" "))
        elif tag == "tr":
            flush()
            cells = [_one_line(c.text(separator=" ")) for c in node.iter() if c.tag in {"td", "th"}]
            if any(cells):
                builder.add(" | ".join(cells))
        elif tag == "br":
            flush()
        elif tag == "pre":
            flush()
            builder.add(node.text())
        else:
            children = list(node.iter(include_text=True))
            if tag in _BLOCK_TAGS:
                flush()
                stack.append(None)
            stack.extend(reversed(children))
    flush()
    builder.flush()
    return SourceDocument(
        external_id=name, title=title or _stem(name), sections=tuple(builder.sections), metadata=metadata
    )


# --------------------------------------------------------------------------------------------------
# PDF
# --------------------------------------------------------------------------------------------------

_SENTENCE_END_CHARS = "。！？；：!?;:"
_CLOSERS = "”’」』）】》〉)]\"'"
_LIST_MARKER = re.compile(
    r"^(?:[一二三四五六七八九十百零〇]+[、.．]"
    r"|[（(][一二三四五六七八九十百零〇\d]+[）)]"
    r"|\d+(?:\.\d+)*[.．、)）](?!\d)"
    r"|第[一二三四五六七八九十百千零〇\d]+[条章节款项部分编]"
    r"|[①-⑳⑴-⒇]"
    r"|[•·●○■□▪◆◇\-*—]\s)"
)


def _join_pdf_lines(text: str) -> list[str]:
    """Re-join lines that a PDF wrapped in the middle of a sentence."""
    paragraphs: list[str] = []
    current = ""
    for raw in _LINE_BREAKS.split(text):
        line = _clean_line(raw)
        if not line:
            if current:
                paragraphs.append(current)
            current = ""
            continue
        if (
            current
            and current.rstrip(_CLOSERS)[-1:] not in _SENTENCE_END_CHARS
            and not _LIST_MARKER.match(line)
        ):
            current = _wrap_join(current, line)
        else:
            if current:
                paragraphs.append(current)
            current = line
    if current:
        paragraphs.append(current)
    return paragraphs


def _pdf_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return _one_line(str(value))


def _read_pdf(data: bytes, name: str) -> SourceDocument:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Owner-password-only PDFs (print/copy restrictions) open with an empty user password.
            try:
                opened = reader.decrypt("")
            except Exception as exc:
                raise IngestError(f"{name}: PDF is encrypted and cannot be opened ({exc})") from exc
            if not opened:
                raise IngestError(f"{name}: PDF is encrypted (password required)")
        builder = _SectionBuilder()
        first_line = ""
        for number, page in enumerate(reader.pages, start=1):
            builder.page(number)
            text = page.extract_text() or ""
            first_line = first_line or next(iter(_clean_lines(text)), "")
            for paragraph in _join_pdf_lines(text):
                builder.add(paragraph)
        builder.flush()
        info = reader.metadata
        metadata: dict[str, Any] = {"source": name, "pages": len(reader.pages)}
        title = ""
        if info is not None:
            title = _one_line(info.title or "")
            for key, value in (
                ("author", info.author),
                ("subject", info.subject),
                ("creator", info.creator),
                ("producer", info.producer),
                ("created", info.creation_date),
                ("modified", info.modification_date),
            ):
                if value:
                    metadata[key] = _pdf_value(value)
    except IngestError:
        raise
    except Exception as exc:  # pypdf raises many exception types on damaged files
        raise IngestError(f"{name}: unreadable PDF: {exc}") from exc
    title = title or first_line or _stem(name)
    return SourceDocument(external_id=name, title=title, sections=tuple(builder.sections), metadata=metadata)


# --------------------------------------------------------------------------------------------------
# DOCX
# --------------------------------------------------------------------------------------------------

_DOCX_HEADING = re.compile(r"^(?:heading|标题)\s*(\d)$", re.IGNORECASE)


def _read_docx(data: bytes, name: str) -> SourceDocument:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises zipfile/KeyError/PackageNotFoundError etc.
        raise IngestError(f"{name}: unreadable DOCX: {exc}") from exc
    builder = _SectionBuilder()
    style_title = ""
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            style = block.style.name if block.style is not None else None
            match = _DOCX_HEADING.match((style or "").strip())
            if match:
                builder.heading(int(match.group(1)), block.text)
            elif (style or "").strip().lower() == "title" and not style_title:
                style_title = _one_line(block.text)
            else:
                builder.add(block.text)
        elif isinstance(block, Table):
            for row in block.rows:
                cells: list[str] = []
                seen: list[object] = []
                for cell in row.cells:
                    if any(cell._tc is s for s in seen):  # merged cells repeat the same element
                        continue
                    seen.append(cell._tc)
                    cells.append(_one_line(cell.text))
                if any(cells):
                    builder.add(" | ".join(cells))
    builder.flush()
    props = document.core_properties
    metadata: dict[str, Any] = {"source": name}
    for key, value in (
        ("author", props.author),
        ("created", props.created),
        ("modified", props.modified),
        ("subject", props.subject),
        ("keywords", props.keywords),
        ("category", props.category),
    ):
        if value:
            metadata[key] = value.isoformat() if isinstance(value, dt.datetime) else _one_line(value)
    title = _one_line(props.title or "") or style_title or _stem(name)
    return SourceDocument(external_id=name, title=title, sections=tuple(builder.sections), metadata=metadata)


# --------------------------------------------------------------------------------------------------
# Body text and passages
# --------------------------------------------------------------------------------------------------


def _layout(doc: SourceDocument) -> tuple[str, list[int | None]]:
    """Return the body text and, per section, the offset of its text in it (None when empty)."""
    lines: list[str] = []
    offsets: list[int | None] = []
    pos = 0
    previous: tuple[str, ...] = ()
    for section in doc.sections:
        common = 0
        for a, b in zip(previous, section.heading, strict=False):
            if a != b:
                break
            common += 1
        for heading in section.heading[common:]:
            lines.append(heading)
            pos += len(heading) + 1
        previous = section.heading
        if section.text:
            offsets.append(pos)
            lines.append(section.text)
            pos += len(section.text) + 1
        else:
            offsets.append(None)
    return "\n".join(lines), offsets


def document_body(doc: SourceDocument) -> str:
    """The canonical body text that passage offsets refer to.

    Per section: the heading lines that differ from the previous section's heading path, then the
    section text; everything joined with ``"\\n"``.
    """
    return _layout(doc)[0]


_SENTENCE_END = frozenset("。！？；!?;")
_SOFT_BREAKS = "，,、"


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans: cut after 。！？；!?; (plus closing quotes/brackets) and at newlines."""
    spans: list[tuple[int, int]] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            spans.append((start, i))
            start = i + 1
        elif ch in _SENTENCE_END:
            j = i + 1
            while j < n and (text[j] in _SENTENCE_END or text[j] in _CLOSERS):
                j += 1
            spans.append((start, j))
            start = i = j
            continue
        i += 1
    spans.append((start, n))
    out = []
    for s, e in spans:
        s, e = _strip_span(text, s, e)
        if s < e:
            out.append((s, e))
    return out


def _hard_split(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut an over-long sentence into pieces of at most ``max_chars``, preferring commas, then spaces."""
    pieces: list[tuple[int, int]] = []
    floor = max(1, max_chars // 3)
    while end - start > max_chars:
        window = text[start : start + max_chars]
        cut = max(window.rfind(c) for c in _SOFT_BREAKS) + 1
        if cut < floor:
            cut = window.rfind(" ")
        if cut < floor:
            cut = max_chars
        s, e = _strip_span(text, start, start + cut)
        if s < e:
            pieces.append((s, e))
        start = _strip_span(text, start + cut, end)[0]
    if start < end:
        pieces.append((start, end))
    return pieces


def _rebalance(units: list[tuple[int, int]], max_chars: int, min_chars: int) -> int | None:
    """Best index k to cut ``units`` into [:k] and [k:], both within ``max_chars``, tail >= ``min_chars``."""
    best: tuple[int, int] | None = None
    first, last = units[0][0], units[-1][1]
    for k in range(1, len(units)):
        left, right = units[k - 1][1] - first, last - units[k][0]
        if left <= max_chars and min_chars <= right <= max_chars:
            score = min(left, right)
            if best is None or score > best[0]:
                best = (score, k)
    return None if best is None else best[1]


def _split_section(text: str, max_chars: int, min_chars: int) -> list[tuple[int, int]]:
    units: list[tuple[int, int]] = []
    for s, e in _sentences(text):
        units.extend(_hard_split(text, s, e, max_chars) if e - s > max_chars else [(s, e)])
    groups: list[list[tuple[int, int]]] = []
    for unit in units:
        if groups and unit[1] - groups[-1][0][0] <= max_chars:
            groups[-1].append(unit)
        else:
            groups.append([unit])
    if len(groups) >= 2 and groups[-1][-1][1] - groups[-1][0][0] < min_chars:
        # Greedy packing left a tiny tail; the two groups together exceed max_chars (else they would have
        # been packed together), so move sentences from the previous group into the tail instead.
        combined = groups[-2] + groups[-1]
        k = _rebalance(combined, max_chars, min_chars)
        if k is not None:
            groups[-2:] = [combined[:k], combined[k:]]
    return [(g[0][0], g[-1][1]) for g in groups]


def split_passages(doc: SourceDocument, *, max_chars: int = 300, min_chars: int = 40) -> list[Passage]:
    """Split a document into passages of at most ``max_chars`` characters, never across sections.

    Sentences (ending in 。！？；!?; or a newline) are kept whole unless one alone exceeds ``max_chars``.
    A section's last passage shorter than ``min_chars`` takes sentences from the previous passage of the
    same section when that keeps both within ``max_chars``.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    if min_chars < 0:
        raise ValueError("min_chars must not be negative")
    body, offsets = _layout(doc)
    passages: list[Passage] = []
    for section, offset in zip(doc.sections, offsets, strict=True):
        if offset is None:
            continue
        for s, e in _split_section(section.text, max_chars, min_chars):
            passages.append(
                Passage(
                    seq=len(passages),
                    heading=section.heading,
                    text=body[offset + s : offset + e],
                    start=offset + s,
                    end=offset + e,
                    page=section.page,
                )
            )
    return passages
