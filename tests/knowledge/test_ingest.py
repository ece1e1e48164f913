"""Tests for the knowledge-base document readers and the passage splitter."""

from __future__ import annotations

import datetime as dt
import io
import json
import random
from pathlib import Path

import docx
import pytest
from docx.enum.style import WD_STYLE_TYPE
from pypdf import PdfWriter

from tests.conftest import SHARED_DATA
from tongban.knowledge.ingest import (
    FORMATS,
    IngestError,
    Passage,
    Section,
    SourceDocument,
    detect_format,
    document_body,
    read_bytes,
    read_path,
    split_passages,
)

GUIDES = SHARED_DATA / "service_guides" / "guides.jsonl"
SENTENCE_ENDS = "。！？；!?;"


# --------------------------------------------------------------------------------------------------
# Fixture builders
# --------------------------------------------------------------------------------------------------


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def make_pdf(pages: list[list[str]], *, title: str | None = None) -> bytes:
    """A minimal valid PDF: Helvetica text, one line per entry, with a correct xref table."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (" ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages))).encode(), len(pages)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, lines in enumerate(pages):
        ops = [
            "BT",
            "/F1 12 Tf",
            "14 TL",
            "72 720 Td",
            *(f"{_pdf_string(line)} Tj T*" for line in lines),
            "ET",
        ]
        stream = "\n".join(ops).encode("latin-1")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    info = ""
    if title is not None:
        objects.append(f"<< /Title {_pdf_string(title)} /Author (Test Office) >>".encode("latin-1"))
        info = f" /Info {len(objects)} 0 R"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


PDF_PAGES = [
    [
        "Requirements for applicants",
        "who live in the city.",
        "1. Bring your ID card",
        "2. Bring the application form",
        "signed by the applicant.",
    ],
    ["Processing takes five", "working days:", "the office replies by mail."],
]

MARKDOWN = """\
# 居民身份证办理指南

本指南适用于本市户籍居民。\u3000办理前请预约。

## 第一章 申请条件

### （一）个人

年满十六周岁的
中国公民，应当申请领取居民身份证。

1. 携带户口簿；
2. 携带近期照片\u200b。

### （二）代办

未满十六周岁的，由监护人代为申请。

## 第二章 收费标准

| 项目 | 费用 |
| --- | --- |
| 首次申领 | 20元 |
| 补领 | 40元 |

```
咨询电话：12345
```
"""

HTML = """\
<!DOCTYPE html>
<html><head>
<meta charset="utf-8">
<title>社保卡申领 办事指南</title>
<meta name="keywords" content="社保卡,申领">
<meta name="author" content="市人社局">
<style>p { color: red }</style>
<script>var tracking = "不应出现";</script>
</head><body>
<header><h1>门户网站</h1></header>
<nav><a href="/">首页</a> <a href="/x">导航不应出现</a></nav>
<h1>社保卡申领</h1>
<div>办理对象：参保人员<br>办理地点：各区服务中心</div>
<h2>申请材料</h2>
<ul><li>身份证原件</li><li>一寸照片  一张</li></ul>
<h3>注意事项</h3>
<p>材料须真实有效。遗失补办的，
需先挂失。</p>
<table><tr><th>事项</th><th>时限</th></tr><tr><td>首次申领</td><td>5个工作日</td></tr></table>
<blockquote>引用的政策原文。</blockquote>
<pre>第一行
第二行</pre>
<footer>版权所有 页脚不应出现</footer>
</body></html>
"""

GBK_HTML = """\
<html><head>
<meta http-equiv="Content-Type" content="text/html; charset=gb2312">
<meta name="description" content="公积金提取">
</head><body>
<h1>住房公积金提取指南</h1>
<h2>提取条件</h2>
<p>职工购买自住住房的，可以提取住房公积金。</p>
</body></html>
"""

JSONL_RECORDS: list[dict[str, object]] = [
    {
        "id": "g-1",
        "title": "护照办理",
        "text": "第一段：携带身份证。\n\n第二段：缴纳费用。",
        "dept": "出入境",
    },
    {"docid": "g-2", "text": "短标题\n正文内容在这里。"},
    {
        "id": "g-3",
        "text": "这是一段非常长的第一行文本，用来检验在没有标题的时候"
        "会截取前三十个字符再加上省略号作为标题。",
    },
]


def write_docx(path: Path) -> None:
    document = docx.Document()
    document.core_properties.title = "营业执照办理"
    document.core_properties.author = "市场监管局"
    document.core_properties.created = dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.UTC)
    document.add_paragraph("营业执照办理（封面）", style="Title")
    document.add_paragraph("前言段落。")
    document.add_heading("一、设立登记", level=1)
    document.add_heading("（一）申请材料", level=2)
    document.add_paragraph("申请书、章程\u3000及  股东身份证明。")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([["材料", "份数"], ["申请书", "1份"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    cn_heading = document.styles.add_style("标题 1", WD_STYLE_TYPE.PARAGRAPH)
    document.add_paragraph("二、变更登记", style=cn_heading)
    document.add_paragraph("变更事项应在三十日内申请。")
    document.save(str(path))


def write_jsonl(path: Path, records: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A folder with one file of every format, nested folders, and files that must be skipped."""
    root = tmp_path / "corpus"
    (root / "guides" / "nested").mkdir(parents=True)
    (root / ".hidden_dir").mkdir()
    write_jsonl(root / "records.jsonl", JSONL_RECORDS)
    (root / "guides" / "id_card.md").write_text(MARKDOWN, encoding="utf-8")
    (root / "guides" / "nested" / "card.html").write_text(HTML, encoding="utf-8")
    (root / "guides" / "nested" / "fund.htm").write_bytes(GBK_HTML.encode("gbk"))
    (root / "scan.pdf").write_bytes(make_pdf(PDF_PAGES, title="Residence Guide"))
    write_docx(root / "guides" / "license.docx")
    (root / "notes.txt").write_text("不支持的格式", encoding="utf-8")
    (root / ".secret.md").write_text("# 隐藏文件", encoding="utf-8")
    (root / ".hidden_dir" / "x.md").write_text("# 隐藏目录", encoding="utf-8")
    (root / "guides" / "~$license.docx").write_bytes(b"lock file")
    return root


def assert_passages_valid(doc: SourceDocument, passages: list[Passage], max_chars: int) -> None:
    body = document_body(doc)
    sections = [s for s in doc.sections if s.text]
    assert [p.seq for p in passages] == list(range(len(passages)))
    previous_end = 0
    for p in passages:
        assert body[p.start : p.end] == p.text
        assert p.text
        assert p.text == p.text.strip()
        assert p.start >= previous_end
        previous_end = p.end
        assert len(p.text) <= max_chars
        # every passage lies inside one section's text and carries that section's heading
        owners = [s for s in sections if p.text in s.text and s.heading == p.heading and s.page == p.page]
        assert owners, p
    # no text is lost: the passages cover every non-space character of the sections
    covered = "".join(p.text for p in passages)
    expected = "".join(s.text for s in sections)
    assert "".join(covered.split()) == "".join(expected.split())


# --------------------------------------------------------------------------------------------------
# Format detection and entry points
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.jsonl", "jsonl"),
        ("a.NDJSON", "jsonl"),
        ("a.md", "markdown"),
        ("a.markdown", "markdown"),
        ("a.html", "html"),
        ("a.HTM", "html"),
        ("a.pdf", "pdf"),
        ("a.docx", "docx"),
    ],
)
def test_detect_format(name: str, fmt: str) -> None:
    assert detect_format(Path(name)) == fmt
    assert fmt in FORMATS


@pytest.mark.parametrize("name", ["a.txt", "a.doc", "README"])
def test_detect_format_rejects_unsupported(name: str) -> None:
    with pytest.raises(IngestError, match="unsupported file type"):
        detect_format(Path(name))


def test_read_path_missing(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no such file"):
        list(read_path(tmp_path / "nope.md"))


def test_unknown_format_override(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="unknown format 'rtf'"):
        read_bytes(b"x", filename="a.md", fmt="rtf")


def test_folder_is_recursive_sorted_and_skips_hidden(corpus: Path) -> None:
    docs = list(read_path(corpus))
    ids = [d.external_id for d in docs]
    assert ids == [
        "guides/id_card.md",
        "guides/license.docx",
        "guides/nested/card.html",
        "guides/nested/fund.htm",
        "g-1",
        "g-2",
        "g-3",
        "scan.pdf",
    ]
    sources = {d.external_id: d.metadata["source"] for d in docs}
    assert sources["g-2"] == "records.jsonl"
    assert sources["guides/nested/card.html"] == "guides/nested/card.html"
    assert all("隐藏" not in d.title for d in docs)


def test_folder_with_format_filter(corpus: Path) -> None:
    docs = list(read_path(corpus, fmt="html"))
    assert [d.external_id for d in docs] == ["guides/nested/card.html", "guides/nested/fund.htm"]


def test_single_file_id_is_its_name(corpus: Path) -> None:
    (doc,) = read_path(corpus / "guides" / "id_card.md")
    assert doc.external_id == "id_card.md"


def test_fmt_override_for_a_file(tmp_path: Path) -> None:
    path = tmp_path / "guide.txt"
    path.write_text("# 标题\n正文。", encoding="utf-8")
    (doc,) = read_path(path, fmt="markdown")
    assert doc.title == "标题"


def test_read_bytes_matches_read_path(corpus: Path) -> None:
    for path in sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix != ".txt"):
        if path.name.startswith((".", "~$")) or path.parent.name.startswith("."):
            continue
        from_bytes = read_bytes(path.read_bytes(), filename=path.name)
        assert from_bytes == list(read_path(path)), path


# --------------------------------------------------------------------------------------------------
# JSONL
# --------------------------------------------------------------------------------------------------


def test_jsonl_records(corpus: Path) -> None:
    docs = list(read_path(corpus / "records.jsonl"))
    assert [d.external_id for d in docs] == ["g-1", "g-2", "g-3"]
    first, second, third = docs
    assert first.title == "护照办理"
    assert first.sections == (Section((), "第一段：携带身份证。\n第二段：缴纳费用。"),)
    assert first.metadata == {"dept": "出入境", "source": "records.jsonl"}
    assert second.title == "短标题"
    assert third.title == JSONL_RECORDS[2]["text"][:30] + "…"  # type: ignore[index]


def test_jsonl_bom_and_blank_lines(tmp_path: Path) -> None:
    data = (
        "\ufeff"
        + json.dumps({"id": "a", "text": "甲。"})
        + "\n\n   \n"
        + json.dumps({"id": "b", "text": "乙"})
    )
    docs = read_bytes(data.encode("utf-8"), filename="x.ndjson")
    assert [d.external_id for d in docs] == ["a", "b"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "x", "text": ', "invalid JSON"),
        ('["a"]', "expected a JSON object"),
        ('{"text": "无编号"}', "'id'"),
        ('{"id": "", "text": "空编号"}', "'id'"),
        ('{"id": 7, "text": "数字编号"}', "'id'"),
        ('{"id": "x"}', "'text'"),
        ('{"id": "x", "text": " \\u3000 "}', "'text'"),
        ('{"id": "x", "text": "正文", "title": 3}', "'title'"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"id": "ok", "text": "正常。"}, ensure_ascii=False)
    path.write_text(f"{good}\n\n{line}\n{good}\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"bad\.jsonl: line 3: ") as info:
        list(read_path(path))
    assert message in str(info.value)


def test_jsonl_undecodable(tmp_path: Path) -> None:
    data = json.dumps({"id": "a", "text": "好"}).encode() + b"\n" + '{"id": "b", "text": "坏"}'.encode("gbk")
    with pytest.raises(IngestError, match=r"up\.jsonl: line 2: not valid UTF-8"):
        read_bytes(data, filename="up.jsonl")


def test_real_service_guides(tmp_path: Path) -> None:
    if not GUIDES.exists():
        pytest.skip("shared service guide data not available")
    records = []
    with GUIDES.open(encoding="utf-8") as fh:
        for line, _ in zip(fh, range(3), strict=False):
            raw = json.loads(line)
            text = "\n".join(
                [
                    raw["accept_standard"],
                    "申请材料：" + "、".join(raw["material_intro"]) + "。",
                    raw["handle_location"],
                    "咨询电话：" + raw["consult_phone"],
                ]
            )
            records.append({"id": raw["TASK_CODE"], "title": raw["matter_name"], "text": text})
    path = tmp_path / "guides.jsonl"
    write_jsonl(path, records)
    docs = list(read_path(path))
    assert [d.external_id for d in docs] == [r["id"] for r in records]
    for doc in docs:
        for max_chars, min_chars in [(300, 40), (80, 20), (25, 10)]:
            passages = split_passages(doc, max_chars=max_chars, min_chars=min_chars)
            assert len(passages) >= (2 if len(doc.sections[0].text) > max_chars else 1)
            assert_passages_valid(doc, passages, max_chars)
    # full-width characters are kept as they are (no NFKC)
    assert "１４２" in docs[1].sections[0].text


# --------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------


def test_markdown_structure(corpus: Path) -> None:
    (doc,) = read_path(corpus / "guides" / "id_card.md")
    assert doc.title == "居民身份证办理指南"
    title = "居民身份证办理指南"
    assert doc.sections == (
        Section((title,), "本指南适用于本市户籍居民。办理前请预约。"),
        Section(
            (title, "第一章 申请条件", "（一）个人"),
            "年满十六周岁的中国公民，应当申请领取居民身份证。\n1. 携带户口簿；\n2. 携带近期照片。",
        ),
        Section((title, "第一章 申请条件", "（二）代办"), "未满十六周岁的，由监护人代为申请。"),
        Section((title, "第二章 收费标准"), "项目 | 费用\n首次申领 | 20元\n补领 | 40元\n咨询电话：12345"),
    )
    assert doc.metadata == {"source": "id_card.md"}


def test_markdown_without_h1_uses_file_stem_and_joins_latin_lines() -> None:
    (doc,) = read_bytes(b"## Intro\n\nHello\nworld.  \nNext line\n", filename="docs/guide-2024.md")
    assert doc.title == "guide-2024"
    assert doc.external_id == "docs/guide-2024.md"
    assert doc.sections == (Section(("Intro",), "Hello world.\nNext line"),)


def test_markdown_rejects_non_utf8() -> None:
    with pytest.raises(IngestError, match=r"x\.md: not valid UTF-8"):
        read_bytes("# 标题".encode("gbk"), filename="x.md")


# --------------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------------


def test_html_structure(corpus: Path) -> None:
    (doc,) = read_path(corpus / "guides" / "nested" / "card.html")
    assert doc.title == "社保卡申领 办事指南"
    assert doc.metadata == {"keywords": "社保卡,申领", "author": "市人社局", "source": "card.html"}
    assert doc.sections == (
        Section(("社保卡申领",), "办理对象：参保人员\n办理地点：各区服务中心"),
        Section(("社保卡申领", "申请材料"), "身份证原件\n一寸照片 一张"),
        Section(
            ("社保卡申领", "申请材料", "注意事项"),
            "材料须真实有效。遗失补办的，需先挂失。\n事项 | 时限\n首次申领 | 5个工作日\n"
            "引用的政策原文。\n第一行\n第二行",
        ),
    )
    body = document_body(doc)
    for unwanted in ("不应出现", "门户网站", "tracking", "color"):
        assert unwanted not in body


def test_html_gbk_declared_by_http_equiv(corpus: Path) -> None:
    (doc,) = read_path(corpus / "guides" / "nested" / "fund.htm")
    assert doc.title == "住房公积金提取指南"  # no <title>: first <h1>
    assert doc.metadata["description"] == "公积金提取"
    assert doc.sections == (
        Section(("住房公积金提取指南", "提取条件"), "职工购买自住住房的，可以提取住房公积金。"),
    )


def test_html_gbk_meta_charset_and_undeclared_fallback() -> None:
    page = (
        '<html><head><meta charset="GBK"><title>医保报销</title></head>'
        "<body><p>门诊费用报销。</p></body></html>"
    )
    (doc,) = read_bytes(page.encode("gbk"), filename="m.html")
    assert doc.title == "医保报销"
    assert doc.sections == (Section((), "门诊费用报销。"),)
    undeclared = page.replace('<meta charset="GBK">', "")
    (doc2,) = read_bytes(undeclared.encode("gbk"), filename="m.html")
    assert doc2.sections == doc.sections


def test_html_without_title_or_h1_uses_stem() -> None:
    (doc,) = read_bytes(b"<p>Only\n  text.</p><p>Next</p>", filename="plain.html")
    assert doc.title == "plain"
    assert doc.sections == (Section((), "Only text.\nNext"),)


# --------------------------------------------------------------------------------------------------
# PDF
# --------------------------------------------------------------------------------------------------


def test_pdf_pages_and_line_joining(corpus: Path) -> None:
    (doc,) = read_path(corpus / "scan.pdf")
    assert doc.title == "Residence Guide"
    assert doc.metadata["author"] == "Test Office"
    assert doc.metadata["pages"] == 2
    assert doc.sections == (
        Section(
            (),
            "Requirements for applicants who live in the city.\n1. Bring your ID card\n"
            "2. Bring the application form signed by the applicant.",
            page=1,
        ),
        Section((), "Processing takes five working days:\nthe office replies by mail.", page=2),
    )
    passages = split_passages(doc, max_chars=60, min_chars=10)
    assert {p.page for p in passages} == {1, 2}
    assert_passages_valid(doc, passages, 60)


def test_pdf_line_joining_for_chinese_text() -> None:
    from tongban.knowledge.ingest import _join_pdf_lines

    extracted = (
        "第一条 为了规范政务服务\n管理，制定本办法。\n第二条 本办法适用于\n全省。申请人应当提交\n下列材料：\n"
        "（一）身份证明\n（二）申请表\n一、总则\n1. 第一项\n2.5 万元以下的\n罚款"
    )
    assert _join_pdf_lines(extracted) == [
        "第一条 为了规范政务服务管理，制定本办法。",
        "第二条 本办法适用于全省。申请人应当提交下列材料：",
        "（一）身份证明",
        "（二）申请表",
        "一、总则",
        "1. 第一项2.5 万元以下的罚款",
    ]


def test_pdf_without_metadata_title_uses_first_line() -> None:
    (doc,) = read_bytes(make_pdf([["", "Notice to residents", "Second line."]]), filename="n.pdf")
    assert doc.title == "Notice to residents"


def test_encrypted_pdf_is_rejected() -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=72, height=72)
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(IngestError, match=r"locked\.pdf: PDF is encrypted"):
        read_bytes(buffer.getvalue(), filename="locked.pdf")


def test_garbage_pdf_is_rejected() -> None:
    with pytest.raises(IngestError, match=r"junk\.pdf: unreadable PDF"):
        read_bytes(b"this is not a pdf at all", filename="junk.pdf")


# --------------------------------------------------------------------------------------------------
# DOCX
# --------------------------------------------------------------------------------------------------


def test_docx_structure(corpus: Path) -> None:
    (doc,) = read_path(corpus / "guides" / "license.docx")
    assert doc.title == "营业执照办理"
    assert doc.metadata["source"] == "license.docx"
    assert doc.metadata["author"] == "市场监管局"
    assert doc.metadata["created"] == "2024-05-01T08:30:00+00:00"
    json.dumps(doc.metadata)  # metadata stays JSON-serialisable
    assert doc.sections == (
        Section((), "前言段落。"),
        Section(
            ("一、设立登记", "（一）申请材料"), "申请书、章程及 股东身份证明。\n材料 | 份数\n申请书 | 1份"
        ),
        Section(("二、变更登记",), "变更事项应在三十日内申请。"),
    )
    assert "营业执照办理（封面）" not in document_body(doc)


def test_docx_title_style_used_without_core_title(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("公告", style="Title")
    document.add_paragraph("正文。")
    buffer = io.BytesIO()
    document.save(buffer)
    (doc,) = read_bytes(buffer.getvalue(), filename="notice.docx")
    assert doc.title == "公告"
    assert doc.sections == (Section((), "正文。"),)


def test_bad_docx_is_rejected() -> None:
    with pytest.raises(IngestError, match=r"broken\.docx: unreadable DOCX"):
        read_bytes(b"PK\x03\x04 not really a zip", filename="broken.docx")


# --------------------------------------------------------------------------------------------------
# Body text and passages
# --------------------------------------------------------------------------------------------------


def test_document_body_emits_only_changed_headings() -> None:
    doc = SourceDocument(
        external_id="d",
        title="t",
        sections=(
            Section(("A", "B"), "one"),
            Section(("A", "B"), "two"),
            Section(("A", "C"), "three"),
            Section(("D",), ""),
            Section(("D", "E"), "four"),
        ),
        metadata={},
    )
    assert document_body(doc) == "A\nB\none\ntwo\nC\nthree\nD\nE\nfour"


def test_offsets_property_on_every_fixture(corpus: Path) -> None:
    docs = list(read_path(corpus))
    assert {d.metadata["source"].rsplit(".", 1)[1] for d in docs} == {
        "jsonl",
        "md",
        "html",
        "htm",
        "pdf",
        "docx",
    }
    for doc in docs:
        for max_chars, min_chars in [(300, 40), (30, 8), (12, 4), (5, 2)]:
            assert_passages_valid(
                doc, split_passages(doc, max_chars=max_chars, min_chars=min_chars), max_chars
            )


def test_passages_carry_headings_and_pages(corpus: Path) -> None:
    (doc,) = read_path(corpus / "guides" / "id_card.md")
    passages = split_passages(doc)
    assert [p.heading for p in passages] == [s.heading for s in doc.sections]
    assert all(p.page is None for p in passages)
    assert [p.text for p in passages] == [s.text for s in doc.sections]


def _doc(*texts: str) -> SourceDocument:
    return SourceDocument("d", "t", tuple(Section(("H", str(i)), t) for i, t in enumerate(texts)), {})


def test_sentences_are_not_split() -> None:
    sentences = ["甲" * 8 + "。", "乙" * 8 + "！", "丙" * 8 + "？", "丁" * 8 + "；"]
    doc = _doc("".join(sentences))
    passages = split_passages(doc, max_chars=20, min_chars=0)
    assert [p.text for p in passages] == [sentences[0] + sentences[1], sentences[2] + sentences[3]]


def test_closing_quotes_stay_with_their_sentence() -> None:
    doc = _doc("他说：“请带好材料。”然后离开。")
    passages = split_passages(doc, max_chars=11, min_chars=0)
    assert [p.text for p in passages] == ["他说：“请带好材料。”", "然后离开。"]


def test_long_sentence_is_hard_split_at_a_comma() -> None:
    text = "一二三四五六七八，九十一二三四五六七八九十一二三四五、六七八九十一二三四五六七八九十。"
    passages = split_passages(_doc(text), max_chars=20, min_chars=0)
    assert [p.text for p in passages] == [
        "一二三四五六七八，",
        "九十一二三四五六七八九十一二三四五、",
        "六七八九十一二三四五六七八九十。",
    ]


def test_long_sentence_without_commas_is_cut_at_max_chars() -> None:
    passages = split_passages(_doc("字" * 45 + "。"), max_chars=20, min_chars=0)
    assert [len(p.text) for p in passages] == [20, 20, 6]


def test_tiny_tail_takes_sentences_from_previous_passage() -> None:
    sentences = ["甲" * 9 + "。", "乙" * 9 + "。", "丙" * 9 + "。", "丁。"]
    doc = _doc("".join(sentences))
    greedy = split_passages(doc, max_chars=30, min_chars=0)
    assert [len(p.text) for p in greedy] == [30, 2]
    balanced = split_passages(doc, max_chars=30, min_chars=5)
    assert [p.text for p in balanced] == [sentences[0] + sentences[1], sentences[2] + sentences[3]]
    assert_passages_valid(doc, balanced, 30)


def test_passages_never_cross_sections() -> None:
    doc = _doc("短。", "也短。")
    passages = split_passages(doc, max_chars=300, min_chars=40)
    assert [(p.heading, p.text) for p in passages] == [(("H", "0"), "短。"), (("H", "1"), "也短。")]


def test_empty_document_has_no_passages() -> None:
    assert split_passages(SourceDocument("e", "e", (), {})) == []
    assert split_passages(_doc("", "")) == []
    assert document_body(_doc("", "")) == "H\n0\n1"


def test_invalid_limits() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        split_passages(_doc("x"), max_chars=0)
    with pytest.raises(ValueError, match="min_chars"):
        split_passages(_doc("x"), min_chars=-1)


def test_random_texts_keep_invariants() -> None:
    rng = random.Random(20240501)
    alphabet = "申请人材料办理受理审核发证窗口时限 ab，、" + SENTENCE_ENDS + "\n"
    for _ in range(200):
        texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400))) for _ in range(3)]
        # raw (un-normalised) section text: blank lines, runs of spaces, leading/trailing whitespace
        doc = SourceDocument("r", "r", tuple(Section((f"h{i}",), t) for i, t in enumerate(texts)), {})
        max_chars = rng.randint(5, 120)
        min_chars = rng.randint(0, max_chars)
        assert_passages_valid(doc, split_passages(doc, max_chars=max_chars, min_chars=min_chars), max_chars)
