"""Import file formats: time limits, materials, Guangdong guides, JSONL and CSV reading. No database."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from tongban.catalog import formats
from tongban.catalog.formats import (
    CSV_COLUMNS,
    MAX_LINE_BYTES,
    FileFormatError,
    ParsedRow,
    RowError,
    content_to_csv_row,
    detect_format,
    guangdong_to_content,
    parse_materials,
    parse_time_limit,
    read_items,
)
from tongban.catalog.schemas import ItemContent, TimeLimit
from tongban.catalog.vocab import (
    Audience,
    Channel,
    ItemType,
    Level,
    LimitUnit,
    MaterialForm,
    MaterialSource,
)

GUIDES = Path("/work/shared/data/service_guides/guides.jsonl")
WD = LimitUnit.WORKING_DAY
CD = LimitUnit.CALENDAR_DAY


def guangdong_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "TASK_CODE": "11440000006939756B2440101007000",
        "matter_name": "临时价格干预范围事项提价申报",
        "DEPT_NAME": "广东省发展和改革委员会",
        "AREA_CODE_TEXT": "广东省",
        "matter_type": "行政许可",
        "matter_level": "省级",
        "accept_standard": "依据《中华人民共和国价格法》和《广东省价格条例》，以及《中华人民共和国价格法》。",
        "material_intro": ["提价申报申请报告"],
        "handle_time": "30(工作日)",
        "handle_time_limit": "7(工作日)",
        "handle_location": "办理地点：广州市越秀区东风中路305号",
        "consult_phone": "020-34121084",
        "complain_phone": "020-83134173",
        "service_object_name": ["企业法人", "自然人", "其他组织"],
        "theme_category": ["其他", ""],
        "visit_number": "1",
        "co_department": "无",
    }
    row.update(changes)
    return row


def item(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "code": "TB-0001",
        "name": "测试事项",
        "item_type": "public_service",
        "department": "测试局",
        "region": "广州市",
        "level": "municipal",
        "audiences": ["natural_person"],
    }
    data.update(changes)
    return data


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- time limits


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [
        ("30(工作日)", 30, WD),
        ("30（工作日）", 30, WD),
        ("30个工作日", 30, WD),
        ("30工作日", 30, WD),
        (" 20 (工作日) ", 20, WD),
        ("90(自然日)", 90, CD),
        ("90（自然日）", 90, CD),
        ("90个自然日", 90, CD),
        ("90天", 90, CD),
        ("90日", 90, CD),
        ("即办", 0, WD),
        ("即时办结", 0, WD),
        ("当场办结", 0, WD),
        ("0(工作日)", 0, WD),
    ],
)
def test_parse_time_limit_forms(text: str, value: int, unit: LimitUnit) -> None:
    assert parse_time_limit(text) == TimeLimit(value=value, unit=unit)


@pytest.mark.parametrize("text", [None, "", "  ", "无", "/"])
def test_parse_time_limit_empty(text: str | None) -> None:
    assert parse_time_limit(text) is None


@pytest.mark.parametrize("text", ["三十天", "30周", "30(工作时)", "约30个工作日", "-5天", "9999天"])
def test_parse_time_limit_rejects(text: str) -> None:
    with pytest.raises(RowError) as exc:
        parse_time_limit(text)
    assert text in str(exc.value)


# ---------------------------------------------------------------------------------------------- materials


def test_parse_materials_list_one_material_per_string() -> None:
    got = parse_materials(["1、申请表；含签字", " 身份证原件。", "无", "", "身份证原件", "营业执照复印件"])
    assert [m.name for m in got] == ["申请表；含签字", "身份证原件", "营业执照复印件"]
    assert [m.form for m in got] == [None, MaterialForm.ORIGINAL, MaterialForm.COPY]
    assert all(m.source is MaterialSource.APPLICANT and m.required for m in got)


@pytest.mark.parametrize("value", [None, "", "无", [], ["无", " "]])
def test_parse_materials_empty(value: Any) -> None:
    assert parse_materials(value) == []


def test_parse_materials_html_paragraphs() -> None:
    html = "<p>1、身份证原件及复印件（2份）</p><p>2、营业执照复印件；3、如有委托，提供授权委托书</p>"
    got = parse_materials(html)
    assert [m.name for m in got] == ["身份证原件及复印件", "营业执照复印件", "如有委托，提供授权委托书"]
    id_card, licence, proxy = got
    assert (id_card.form, id_card.copies, id_card.required) == (MaterialForm.ORIGINAL_AND_COPY, 2, True)
    assert (licence.form, licence.copies, licence.required) == (MaterialForm.COPY, 1, True)
    assert proxy.required is False
    assert proxy.note == "如有委托"


def test_parse_materials_br_entities_and_circled_numbers() -> None:
    html = (
        "申请表&lt;A类&gt;<br/>法定代表人身份证明&amp;授权书<BR>"
        "<div>①场地证明原件和复印件②电子版平面图 ③ 章程一式两份</div>"
        "<span>&nbsp;</span><p>无</p>"
    )
    got = parse_materials(html)
    assert [m.name for m in got] == [
        "申请表<A类>",
        "法定代表人身份证明&授权书",
        "场地证明原件和复印件",
        "电子版平面图",
        "章程一式两份",
    ]
    assert got[2].form is MaterialForm.ORIGINAL_AND_COPY
    assert got[3].form is MaterialForm.ELECTRONIC
    assert got[4].copies == 2


def test_parse_materials_numbering_without_separators() -> None:
    got = parse_materials("1、申请书2、身份证复印件（一份）（3）委托书；(4)其他")
    assert [m.name for m in got] == ["申请书", "身份证复印件", "委托书", "其他"]
    assert got[1].copies == 1


def test_parse_materials_does_not_split_numbers_or_ordinals() -> None:
    got = parse_materials("1.5米以上的图纸；第2、3项所列证明")
    assert [m.name for m in got] == ["1.5米以上的图纸", "第2、3项所列证明"]


def test_parse_materials_strips_other_tags_and_scripts() -> None:
    got = parse_materials(
        '<table><tr><td><b>申请表</b></td></tr><tr><td><a href="x">章程</a></td></tr></table>'
        "<script>var a = 1;</script>"
    )
    assert [m.name for m in got] == ["申请表", "章程"]


def test_parse_materials_deduplicates_keeping_first() -> None:
    got = parse_materials("<p>1、申请表</p><p>2、申请表。</p><p>3、章程</p>")
    assert [m.name for m in got] == ["申请表", "章程"]


@pytest.mark.parametrize(
    ("name", "note"),
    [
        ("授权委托书（如有）", "如有"),
        ("若委托代理人办理，提供授权委托书", "若委托代理人办理"),
        ("委托他人办理的，提交授权委托书及受托人身份证", "委托他人办理的"),
        ("外商投资企业的，需提供批准证书", "外商投资企业的"),
        ("其他材料（选填）", "选填"),
        ("现场照片，必要时提供", "必要时提供"),
    ],
)
def test_parse_materials_optional(name: str, note: str) -> None:
    (m,) = parse_materials([name])
    assert m.required is False
    assert m.note == note


def test_parse_materials_statement_of_truth_is_not_optional() -> None:
    (m,) = parse_materials(["如实填写的申请表"])
    assert m.required is True
    assert m.note is None


def test_parse_materials_long_name_truncated_with_full_note() -> None:
    long = "材料" * 150
    (m,) = parse_materials([long])
    assert len(m.name) == 200
    assert m.note == long


# ---------------------------------------------------------------------------------------------- Guangdong


def test_guangdong_mapping() -> None:
    content, warnings = guangdong_to_content(guangdong_row())
    assert warnings == []
    assert content.code == "11440000006939756B2440101007000"
    assert content.item_type is ItemType.ADMINISTRATIVE_LICENCE
    assert content.level is Level.PROVINCIAL
    assert content.legal_basis == "《中华人民共和国价格法》；《广东省价格条例》"
    assert content.statutory_limit == TimeLimit(value=30, unit=WD)
    assert content.promised_limit == TimeLimit(value=7, unit=WD)
    assert content.location == "广州市越秀区东风中路305号"
    assert content.channels == [Channel.ONLINE, Channel.OFFLINE]
    assert content.audiences == [Audience.NATURAL_PERSON, Audience.LEGAL_PERSON]
    assert content.audience_detail == ["企业法人", "自然人", "其他组织"]
    assert content.themes == ["其他"]
    assert content.visits == 1
    assert content.co_departments is None
    assert content.complaint_phone == "020-83134173"
    assert content.charges_fee is None
    assert [m.name for m in content.materials] == ["提价申报申请报告"]


def test_guangdong_real_row() -> None:
    if not GUIDES.exists():
        pytest.skip("shared guides file not present")
    with GUIDES.open(encoding="utf-8") as f:
        raw = json.loads(f.readline())
    content, _ = guangdong_to_content(raw)
    assert content.code == raw["TASK_CODE"]
    assert content.name == raw["matter_name"]
    assert content.department == raw["DEPT_NAME"]
    assert content.region == raw["AREA_CODE_TEXT"]
    assert content.conditions == raw["accept_standard"]
    assert content.audience_detail == raw["service_object_name"]
    assert Audience.NATURAL_PERSON in content.audiences or "自然人" not in raw["service_object_name"]
    assert content.visits == int(raw["visit_number"])


def test_guangdong_no_office_means_online_only() -> None:
    content, _ = guangdong_to_content(
        guangdong_row(handle_location="无线下办理窗口", service_object_name=["自然人"])
    )
    assert content.location is None
    assert content.channels == [Channel.ONLINE]
    assert content.audiences == [Audience.NATURAL_PERSON]


def test_guangdong_office_named_none() -> None:
    content, _ = guangdong_to_content(guangdong_row(handle_location="办理地点：无"))
    assert content.location is None
    assert content.channels == [Channel.ONLINE]


def test_guangdong_legal_persons_only() -> None:
    content, _ = guangdong_to_content(guangdong_row(service_object_name=["行政机关", "企业法人"]))
    assert content.audiences == [Audience.LEGAL_PERSON]


def test_guangdong_unknown_field() -> None:
    with pytest.raises(RowError, match=r"unknown field\(s\): extra_a, extra_b"):
        guangdong_to_content(guangdong_row(extra_a=1, extra_b="x"))


@pytest.mark.parametrize("key", ["TASK_CODE", "matter_name", "DEPT_NAME", "matter_type"])
def test_guangdong_missing_field(key: str) -> None:
    row = guangdong_row()
    del row[key]
    with pytest.raises(RowError, match=key):
        guangdong_to_content(row)
    with pytest.raises(RowError, match=key):
        guangdong_to_content(guangdong_row(**{key: "无"}))


def test_guangdong_bad_type_lists_known_ones() -> None:
    with pytest.raises(RowError) as exc:
        guangdong_to_content(guangdong_row(matter_type="行政审批"))
    assert "行政审批" in str(exc.value)
    assert "行政许可" in str(exc.value)
    assert "公共服务" in str(exc.value)


def test_guangdong_bad_level() -> None:
    with pytest.raises(RowError, match="matter_level"):
        guangdong_to_content(guangdong_row(matter_level="宇宙级"))


@pytest.mark.parametrize("visits", ["两次", "-1", "1.5"])
def test_guangdong_bad_visit_number(visits: str) -> None:
    with pytest.raises(RowError, match="visit_number"):
        guangdong_to_content(guangdong_row(visit_number=visits))


def test_guangdong_odd_time_limit_is_a_warning() -> None:
    content, warnings = guangdong_to_content(guangdong_row(handle_time="三十天"))
    assert content.statutory_limit is None
    assert content.promised_limit == TimeLimit(value=7, unit=WD)
    assert len(warnings) == 1
    assert "handle_time" in warnings[0]
    assert "三十天" in warnings[0]


def test_guangdong_promised_over_statutory_is_dropped() -> None:
    content, warnings = guangdong_to_content(
        guangdong_row(handle_time="5(工作日)", handle_time_limit="10(工作日)")
    )
    assert content.statutory_limit == TimeLimit(value=5, unit=WD)
    assert content.promised_limit is None
    assert any("promised" in w for w in warnings)


def test_guangdong_different_units_are_kept() -> None:
    content, warnings = guangdong_to_content(
        guangdong_row(handle_time="5(工作日)", handle_time_limit="10(自然日)")
    )
    assert content.promised_limit == TimeLimit(value=10, unit=CD)
    assert warnings == []


def test_guangdong_long_phone_keeps_numbers() -> None:
    text = (
        "咨询岗位职责和权限："
        + "工作人员有义务准确回答申请人的疑问。" * 12
        + "咨询电话号码：020-86350153，邮编510405。"
    )
    content, warnings = guangdong_to_content(guangdong_row(consult_phone=text))
    assert content.consult_phone == "020-86350153"
    assert warnings
    assert "consult_phone" in warnings[0]


def test_guangdong_validation_error_names_the_portal_field() -> None:
    with pytest.raises(RowError) as exc:
        guangdong_to_content(guangdong_row(matter_name="名" * 201))
    assert "matter_name" in str(exc.value)
    assert "200 characters" in str(exc.value)


def test_guangdong_html_materials() -> None:
    content, _ = guangdong_to_content(guangdong_row(material_intro="<p>1、申请表</p><p>2、章程</p>"))
    assert [m.name for m in content.materials] == ["申请表", "章程"]


# ---------------------------------------------------------------------------------------------- JSONL files


def test_read_guangdong_file_goes_on_past_bad_lines(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "gd.jsonl",
        [
            json.dumps(guangdong_row(), ensure_ascii=False),
            "",
            "{not json",
            json.dumps(guangdong_row(TASK_CODE="11440000006939756B2440101007001", matter_type="?")),
            "[1, 2]",
            "   ",
            json.dumps(guangdong_row(TASK_CODE="11440000006939756B2440101007002", handle_time="很快")),
        ],
    )
    rows = list(read_items(path))
    assert [r.line for r in rows] == [1, 3, 4, 5, 7]
    ok, not_json, bad_type, array, odd = rows
    assert ok.error is None
    assert ok.content is not None
    assert ok.code == "11440000006939756B2440101007000"
    assert not_json.content is None
    assert not_json.error is not None
    assert "not valid JSON" in not_json.error
    assert bad_type.content is None
    assert bad_type.error is not None
    assert "matter_type" in bad_type.error
    assert bad_type.code == "11440000006939756B2440101007001"
    assert array.error == "expected a JSON object, got an array"
    assert odd.error is None
    assert odd.content is not None
    assert odd.content.statutory_limit is None
    assert len(odd.warnings) == 1
    assert "很快" in odd.warnings[0]


def test_read_oversized_line(tmp_path: Path) -> None:
    big = json.dumps(item(conditions="x" * (MAX_LINE_BYTES + 10)))
    path = write_lines(tmp_path / "items.jsonl", [json.dumps(item()), big, json.dumps(item(code="TB-0002"))])
    rows = list(read_items(path))
    assert [r.line for r in rows] == [1, 2, 3]
    assert rows[1].content is None
    assert rows[1].error is not None
    assert "longer than" in rows[1].error
    assert rows[2].content is not None
    assert rows[2].content.code == "TB-0002"


def test_read_tongban_jsonl_rejects_extra_field(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "items.jsonl",
        [json.dumps(item()), json.dumps(item(code="TB-0002", colour="red"))],
    )
    assert detect_format(path) == "tongban-jsonl"
    rows = list(read_items(path))
    assert rows[0].content == ItemContent.model_validate(item())
    assert rows[1].content is None
    assert rows[1].code == "TB-0002"
    assert rows[1].error == "colour: Extra inputs are not permitted"


def test_read_tongban_jsonl_validation_error_names_path(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "items.jsonl", [json.dumps(item(materials=[{"name": "材" * 201}]))])
    (row,) = read_items(path)
    assert row.error is not None
    assert row.error.startswith("materials.0.name: String should have at most 200 characters")


def test_read_accepts_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps(item()).encode() + b"\r\n" + json.dumps(item(code="X1")).encode()
    )
    rows = list(read_items(path))
    assert [r.error for r in rows] == [
        None,
        "code: String should match pattern '^[0-9A-Za-z][0-9A-Za-z_.-]{3,63}$'",
    ]


def test_invalid_utf8_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(json.dumps(item()).encode() + b"\n" + b'{"code": "\xff\xfe"}\n')
    with pytest.raises(FileFormatError, match=r"UTF-8.*line 2"):
        read_items(path)


@pytest.mark.parametrize("body", [b"", b"\n\n  \n", b"\xef\xbb\xbf"])
def test_empty_file_is_a_file_error(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(body)
    with pytest.raises(FileFormatError, match="empty"):
        read_items(path)


def test_binary_file_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(FileFormatError, match="binary"):
        read_items(path)


def test_missing_file_is_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="not found"):
        read_items(tmp_path / "nope.jsonl")


def test_unknown_format_cannot_be_detected(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", ["garbage", json.dumps({"title": "x"})])
    with pytest.raises(FileFormatError, match="cannot tell the format"):
        read_items(path)


def test_nothing_parseable_is_a_file_error(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", ["garbage", "[1]"])
    with pytest.raises(FileFormatError, match="no JSON object"):
        read_items(path)


def test_explicit_format_skips_detection(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", ["garbage", json.dumps(item())])
    rows = list(read_items(path, "tongban-jsonl"))
    assert [r.error is None for r in rows] == [False, True]
    with pytest.raises(ValueError, match="unknown format"):
        read_items(path, "xml")


def test_detect_format() -> None:
    assert detect_format(Path("a.CSV")) == "tongban-csv"
    assert detect_format(Path("a.jsonl"), {"TASK_CODE": "x"}) == "guangdong"
    assert detect_format(Path("a.jsonl"), {"matter_name": "x"}) == "guangdong"
    assert detect_format(Path("a.jsonl"), {"code": "x"}) == "tongban-jsonl"
    with pytest.raises(FileFormatError):
        detect_format(Path("a.jsonl"), {"name": "x"})


# ---------------------------------------------------------------------------------------------- CSV


def rich_content() -> ItemContent:
    return ItemContent.model_validate(
        item(
            basic_code="BASIC-01",
            name_en="Test item",
            co_departments="财政局",
            region_code="440100",
            audiences=["natural_person", "legal_person"],
            audience_detail=["自然人", "企业法人"],
            legal_basis="《条例》",
            conditions='第一行，含"引号"和逗号,\n第二行',
            materials=[
                {"name": "申请表", "form": "original", "copies": 2, "situations": ["proxy"]},
                {"name": "授权委托书", "required": False, "note": "如有委托"},
                {"name": "营业执照", "source": "e_licence", "source_ref": "营业执照"},
            ],
            statutory_limit={"value": 20, "unit": "working_day"},
            promised_limit={"value": 5, "unit": "working_day"},
            charges_fee=True,
            fees=[{"name": "工本费", "amount_fen": 1000}],
            location="某路1号",
            office_hours="周一至周五",
            consult_phone="020-1",
            complaint_phone="12345",
            channels=["online", "offline"],
            online_url="https://example.gov.cn/x",
            visits=1,
            situations=[{"key": "proxy", "name": "委托办理"}],
            themes=["纳税", "A|B"],
        )
    )


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] = CSV_COLUMNS) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_csv_columns_cover_every_field() -> None:
    assert sorted(CSV_COLUMNS) == sorted(ItemContent.model_fields)


def test_csv_round_trip(tmp_path: Path) -> None:
    contents = [rich_content(), ItemContent.model_validate(item(code="TB-0002", charges_fee=False))]
    path = write_csv(tmp_path / "items.csv", [content_to_csv_row(c) for c in contents])
    rows = list(read_items(path))
    assert [r.error for r in rows] == [None, None]
    assert [r.content for r in rows] == contents
    # The first record spans two physical lines (the newline in ``conditions``).
    assert [r.line for r in rows] == [2, 4]
    assert [r.code for r in rows] == ["TB-0001", "TB-0002"]


def test_csv_cells(tmp_path: Path) -> None:
    row = content_to_csv_row(rich_content())
    assert row["audiences"] == "natural_person|legal_person"
    assert row["statutory_limit"] == "20 working_day"
    assert row["charges_fee"] == "true"
    assert row["themes"] == '["纳税", "A|B"]'
    assert json.loads(row["materials"])[0] == {
        "name": "申请表",
        "form": "original",
        "copies": 2,
        "situations": ["proxy"],
    }
    assert row["name_en"] == "Test item"


def test_csv_bad_rows_are_reported(tmp_path: Path) -> None:
    good = content_to_csv_row(ItemContent.model_validate(item()))
    rows = [
        good,
        {**good, "code": "TB-0002", "materials": "[{not json"},
        {**good, "code": "TB-0003", "statutory_limit": "三十天"},
        {**good, "code": "TB-0004", "level": "galactic"},
    ]
    path = write_csv(tmp_path / "items.csv", rows)
    parsed = list(read_items(path))
    assert [r.line for r in parsed] == [2, 3, 4, 5]
    assert parsed[0].error is None
    assert parsed[1].error is not None
    assert parsed[1].error.startswith("field 'materials': not a JSON array")
    assert parsed[2].error is not None
    assert "statutory_limit" in parsed[2].error
    assert parsed[3].error is not None
    assert parsed[3].error.startswith("level: ")
    assert [r.code for r in parsed] == ["TB-0001", "TB-0002", "TB-0003", "TB-0004"]


def test_csv_accepts_chinese_limits_and_subset_of_columns(tmp_path: Path) -> None:
    columns = ["code", "name", "item_type", "department", "region", "level", "audiences", "statutory_limit"]
    row = {k: v for k, v in content_to_csv_row(ItemContent.model_validate(item())).items() if k in columns}
    path = write_csv(tmp_path / "items.csv", [{**row, "statutory_limit": "30(工作日)"}], columns)
    (parsed,) = read_items(path)
    assert parsed.content is not None
    assert parsed.content.statutory_limit == TimeLimit(value=30, unit=WD)


def test_csv_unknown_column_is_a_file_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "items.csv", [], [*CSV_COLUMNS, "colour", "size"])
    with pytest.raises(FileFormatError, match=r"unknown column.*colour, size"):
        read_items(path)


def test_csv_without_header_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("TB-0001,测试事项,public_service\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match="unknown column"):
        read_items(path)


def test_csv_missing_required_column_is_a_file_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "items.csv", [], [c for c in CSV_COLUMNS if c != "level"])
    with pytest.raises(FileFormatError, match=r"lacks required column.*level"):
        read_items(path)


def test_csv_too_many_cells(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    header = "code,name,item_type,department,region,level,audiences"
    path.write_text(
        f"{header}\nTB-0001,名,public_service,局,市,municipal,natural_person,extra\n", encoding="utf-8"
    )
    (row,) = read_items(path)
    assert row.error == "row has 8 cells but the header has 7 columns"


# ---------------------------------------------------------------------------------------------- the real file


def test_whole_shared_guides_file_parses() -> None:
    if not GUIDES.exists():
        pytest.skip("shared guides file not present")
    assert detect_format(GUIDES) == "guangdong"
    rows: list[ParsedRow] = list(read_items(GUIDES))
    errors = [(r.line, r.error) for r in rows if r.error]
    assert errors == []
    assert len(rows) >= 1800
    assert all(r.content is not None and r.code == r.content.code for r in rows)
    assert len({r.code for r in rows}) == len(rows)


def test_module_exports() -> None:
    assert set(formats.__all__) >= {
        "ParsedRow",
        "FileFormatError",
        "RowError",
        "detect_format",
        "read_items",
        "guangdong_to_content",
        "parse_materials",
        "parse_time_limit",
        "content_to_csv_row",
        "CSV_COLUMNS",
        "MAX_LINE_BYTES",
    }


def test_documented_example_line_is_a_valid_item(tmp_path: Path) -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "catalog-import.md"
    if not doc.exists():
        pytest.skip("docs/catalog-import.md not present")
    text = doc.read_text(encoding="utf-8")
    example = text.split("A full example line:", 1)[1].split("```json\n", 1)[1].split("\n```", 1)[0]
    path = write_lines(tmp_path / "example.jsonl", [example])
    (row,) = read_items(path)
    assert row.error is None
    assert row.content is not None
    assert content_to_csv_row(row.content)["audiences"] == "natural_person|legal_person"
