"""The pre-check (智能预检): field checks, built-in cross-field checks, rules, ordering, uploads."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from stdnum.cn import ric

from tongban.intake.formdef import Field, FormDefinition, Upload
from tongban.intake.precheck import Finding, precheck


def make_id(first17: str) -> str:
    return first17 + ric.calc_check_digit(first17 + "0")


MALE_1990 = make_id("11010119900307001")  # born 1990-03-07, 17th digit odd
FEMALE_1985 = make_id("44030519851231124")  # born 1985-12-31, 17th digit even


def fld(key: str, type_: str = "text", **extra: Any) -> dict[str, Any]:
    return {"key": key, "label": f"标签{key}", "label_en": f"Label {key}", "type": type_, **extra}


SEX = [
    {"value": "male", "label": "男", "label_en": "Male"},
    {"value": "female", "label": "女", "label_en": "Female"},
]
PDF = ["application/pdf", "image/*"]


def upload(name: str, content: bytes, content_type: str = "application/pdf") -> dict[str, Any]:
    return {
        "name": name,
        "content_type": content_type,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }


DEFINITION = FormDefinition.model_validate(
    {
        "fields": [
            fld("name", required=True, profile_key="person.name"),
            fld("id_number", "id_number", required=True, profile_key="person.id_number"),
            fld("birth_date", "date"),
            fld("sex", "choice", options=SEX),
            fld(
                "members",
                "table",
                columns=[
                    fld("name", required=True),
                    fld("id_number", "id_number", required=True),
                    fld("birth_date", "date"),
                    fld("sex", "choice", options=SEX),
                ],
            ),
            fld("a_fen", "money"),
            fld("b_fen", "money"),
            fld("total_fen", "money", required=True),
            fld("licence", "file", accept=PDF, max_bytes=1000, material="营业执照"),
            fld("lease", "file", accept=PDF),
        ],
        "rules": [
            {
                "key": "amounts_add_up",
                "check": {"==": [{"var": "total_fen"}, {"+": [{"var": "a_fen"}, {"var": "b_fen"}]}]},
                "message": "合计金额应等于A项与B项之和，请核对。",
                "message_en": "The total must equal A plus B; please check.",
                "fields": ["total_fen", "a_fen", "b_fen"],
            },
            {
                "key": "big_total",
                "when": {">": [{"var": "total_fen"}, 1000000]},
                "check": {"!": [{"missing": ["lease"]}]},
                "message": "合计超过1万元时建议上传租赁合同。",
                "message_en": "For totals over CNY 10,000 please upload the lease.",
                "fields": ["lease"],
                "severity": "warning",
            },
        ],
    }
)


def good(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "张三",
        "id_number": MALE_1990,
        "birth_date": "1990-03-07",
        "sex": "male",
        "members": [{"name": "李四", "id_number": FEMALE_1985, "birth_date": "1985-12-31", "sex": "female"}],
        "a_fen": "100.00",
        "b_fen": "20.50",
        "total_fen": "120.50",
        "licence": [upload("licence.pdf", b"licence")],
        "lease": [upload("lease.pdf", b"lease")],
    }
    raw.update(changes)
    return raw


def found(result: Any) -> list[tuple[str, str | None, str]]:
    return [(f.code, f.field, f.severity) for f in result.findings]


def test_a_correct_application_passes() -> None:
    result = precheck(DEFINITION, good())
    assert result.findings == ()
    assert result.ok
    assert result.values["total_fen"] == 12050
    assert result.values["licence"][0] == Upload(
        "licence.pdf", "application/pdf", 7, hashlib.sha256(b"licence").hexdigest()
    )


def test_check_character_of_a_table_cell_points_at_the_cell() -> None:
    bad = FEMALE_1985[:-1] + ("0" if FEMALE_1985[-1] != "0" else "1")
    members = [good()["members"][0], {"name": "王五", "id_number": bad}]
    result = precheck(DEFINITION, good(members=members))
    assert found(result) == [("id.check_char", "members.1.id_number", "error")]
    assert f"应为{FEMALE_1985[-1]}" in result.findings[0].message
    assert not result.ok


def test_birth_date_and_sex_must_agree_with_the_id_number() -> None:
    result = precheck(DEFINITION, good(birth_date="1990-03-08", sex="female"))
    assert found(result) == [
        ("id.birth_date_mismatch", "birth_date", "error"),
        ("id.sex_mismatch", "sex", "error"),
    ]
    assert "1990年03月07日" in result.findings[0].message
    assert "性别应为男" in result.findings[1].message
    assert result.findings[0].related_fields == ("id_number",)


def test_mismatch_inside_a_table_row() -> None:
    members = [{"name": "李四", "id_number": FEMALE_1985, "birth_date": "1985-12-31", "sex": "male"}]
    assert found(precheck(DEFINITION, good(members=members))) == [
        ("id.sex_mismatch", "members.0.sex", "error")
    ]


def test_pairs_by_key_prefix_when_several_people_are_on_the_form() -> None:
    definition = FormDefinition.model_validate(
        {
            "fields": [
                fld("applicant_id_number", "id_number"),
                fld("applicant_birth_date", "date"),
                fld("spouse_id_number", "id_number"),
                fld("spouse_birth_date", "date"),
            ]
        }
    )
    raw = {
        "applicant_id_number": MALE_1990,
        "applicant_birth_date": "1990-03-07",
        "spouse_id_number": FEMALE_1985,
        "spouse_birth_date": "1990-03-07",
    }
    assert found(precheck(definition, raw)) == [("id.birth_date_mismatch", "spouse_birth_date", "error")]


def test_no_mismatch_finding_on_top_of_an_invalid_id_number() -> None:
    wrong = MALE_1990[:-1] + ("X" if MALE_1990[-1] != "X" else "0")
    result = precheck(DEFINITION, good(id_number=wrong))
    assert found(result) == [("id.check_char", "id_number", "error")]


def test_rule_amounts_add_up_fails_with_the_rule_message() -> None:
    result = precheck(DEFINITION, good(total_fen="120.00"))
    assert found(result) == [("rule.amounts_add_up", "total_fen", "error")]
    assert result.findings[0].message == "合计金额应等于A项与B项之和，请核对。"
    assert result.findings[0].related_fields == ("a_fen", "b_fen")


def test_rule_is_skipped_when_a_referenced_field_is_invalid_or_missing() -> None:
    result = precheck(DEFINITION, good(a_fen="1.234", total_fen="1.00"))
    assert found(result) == [("field.format", "a_fen", "error")]
    result = precheck(DEFINITION, good(total_fen=""))
    assert found(result) == [("field.required", "total_fen", "error")]


def test_warning_rule_with_when_does_not_block() -> None:
    raw = good(a_fen="10000.00", b_fen="0.01", total_fen="10000.01", lease=[])
    result = precheck(DEFINITION, raw)
    assert found(result) == [("rule.big_total", "lease", "warning")]
    assert result.ok
    # Below the threshold the rule does not apply.
    assert precheck(DEFINITION, good(lease=[])).findings == ()


def test_errors_come_first_then_form_order() -> None:
    raw = good(
        name="",
        sex="female",
        total_fen="1.00",
        lease=[upload("dup.pdf", b"licence")],
        unexpected="x",
    )
    result = precheck(DEFINITION, raw)
    assert found(result) == [
        ("field.required", "name", "error"),
        ("id.sex_mismatch", "sex", "error"),
        ("rule.amounts_add_up", "total_fen", "error"),
        ("form.unknown_field", "unexpected", "error"),
        ("file.duplicate", "lease", "warning"),
    ]
    assert not result.ok


def test_duplicate_upload_is_a_warning_naming_both_files() -> None:
    result = precheck(DEFINITION, good(lease=[upload("copy.pdf", b"licence")]))
    assert found(result) == [("file.duplicate", "lease", "warning")]
    assert "copy.pdf" in result.findings[0].message
    assert "licence.pdf" in result.findings[0].message
    assert result.ok


def test_upload_type_and_size_limits() -> None:
    raw = good(
        licence=[upload("scan.docx", b"x" * 2000, "application/msword")],
        lease=[upload("p.png", b"p", "image/png")],
    )
    result = precheck(DEFINITION, raw)
    assert found(result) == [("file.type", "licence", "error"), ("file.size", "licence", "error")]
    assert "application/pdf" in result.findings[0].message


def test_profile_mismatch_is_a_warning_and_case_of_x_does_not_matter() -> None:
    x_id = next(n for n in (make_id(f"11010119900307{s:03d}") for s in range(100, 400)) if n.endswith("X"))
    raw = good(id_number=x_id, birth_date="", sex="")
    applicant = {"person": {"name": "张三丰", "id_number": x_id.lower()}}
    result = precheck(DEFINITION, raw, applicant=applicant)
    assert found(result) == [("profile.mismatch", "name", "warning")]
    assert precheck(DEFINITION, raw, applicant={"person.name": "张三"}).findings == ()


def test_upload_hook_is_called_for_each_upload() -> None:
    seen: list[tuple[str, str]] = []

    def hook(
        field: Field, upload: Upload, *, path: str, applicant: Mapping[str, Any] | None
    ) -> Iterable[Finding]:
        seen.append((path, upload.name))
        if upload.name == "lease.pdf":
            yield Finding("file.blank", path, "error", "文件为空白页，请重新上传。", "The file is blank.")

    result = precheck(DEFINITION, good(), check_upload=hook)
    assert seen == [("licence", "licence.pdf"), ("lease", "lease.pdf")]
    assert found(result) == [("file.blank", "lease", "error")]
