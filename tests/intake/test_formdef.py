"""The declarative form definition: validation at load time and normalisation of applicant input."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError
from stdnum.cn import ric

from tongban.intake.formdef import (
    ALLOWED_OPERATORS,
    EvaluationError,
    ExpressionError,
    FieldType,
    FormDefinition,
    check_expression,
    evaluate,
    jsonable,
    normalise,
)


def fld(key: str, type_: str = "text", **extra: Any) -> dict[str, Any]:
    return {"key": key, "label": f"标签{key}", "label_en": f"Label {key}", "type": type_, **extra}


def form(*fields: dict[str, Any], rules: list[dict[str, Any]] | None = None) -> FormDefinition:
    return FormDefinition.model_validate({"fields": list(fields), "rules": rules or []})


def rejected(*fields: dict[str, Any], rules: list[dict[str, Any]] | None = None) -> str:
    with pytest.raises(ValidationError) as info:
        form(*fields, rules=rules)
    return str(info.value)


def codes(findings: list[Any]) -> list[tuple[str, str | None]]:
    return [(f.code, f.field) for f in findings]


ID = "11010119900307001" + ric.calc_check_digit("110101199003070010")


# -- loading -----------------------------------------------------------------------------------------


def test_definition_round_trips_through_json() -> None:
    definition = form(
        fld("name", required=True, profile_key="person.name"),
        fld("kind", "choice", options=[{"value": "a", "label": "甲", "label_en": "A"}]),
        fld("extra", show_if={"==": [{"var": "kind"}, "a"]}),
    )
    again = FormDefinition.model_validate_json(definition.model_dump_json())
    assert again == definition
    assert again.fields[1].type is FieldType.CHOICE


def test_duplicate_field_keys_are_rejected() -> None:
    assert "duplicate field keys: name" in rejected(fld("name"), fld("name"))


def test_bad_key_and_extra_attributes_are_rejected() -> None:
    assert "key" in rejected(fld("Name"))
    assert "extra" in rejected(fld("name", colour="red")).lower()


def test_unknown_variable_reference_names_the_path() -> None:
    message = rejected(fld("a"), fld("b", show_if={"and": [True, {"==": [{"var": "nope"}, 1]}]}))
    assert "fields[1](b).show_if.and[1].==[0].var" in message
    assert "unknown field 'nope'" in message


def test_disallowed_operator_is_rejected_with_its_path() -> None:
    message = rejected(fld("a"), fld("b", show_if={"!": {"log": [{"var": "a"}]}}))
    assert "show_if.![0]" in message
    assert "'log' is not allowed" in message
    with pytest.raises(ExpressionError, match="'filter' is not allowed"):
        check_expression({"filter": [[1, 2], True]})
    assert "filter" not in ALLOWED_OPERATORS


def test_malformed_expressions_are_rejected() -> None:
    with pytest.raises(ExpressionError, match="exactly one key"):
        check_expression({"==": [1, 1], "!=": [1, 2]})
    with pytest.raises(ExpressionError, match="expects 2 argument"):
        check_expression({"/": [1]})
    with pytest.raises(ExpressionError, match="deeper"):
        check_expression(json.loads("[" * 30 + "]" * 30))


def test_computed_cycle_is_rejected() -> None:
    message = rejected(
        fld("a_fen", "money", computed={"+": [{"var": "b_fen"}, 1]}),
        fld("b_fen", "money", computed={"+": [{"var": "a_fen"}, 1]}),
    )
    assert "cycle: a_fen -> b_fen -> a_fen" in message


def test_table_columns_must_be_unique_and_scalar() -> None:
    assert "duplicate column keys: x" in rejected(fld("t", "table", columns=[fld("x"), fld("x")]))
    assert "only have scalar columns" in rejected(fld("t", "table", columns=[fld("f", "file")]))


def test_bounds_and_rule_fields_are_checked() -> None:
    assert "whole numbers" in rejected(fld("m", "money", max=12.5))
    assert "ISO dates" in rejected(fld("d", "date", min="01/02/2024"))
    assert "min/max do not apply" in rejected(fld("t", min=1))
    rule = {"key": "r", "check": True, "message": "错", "message_en": "Wrong", "fields": ["ghost"]}
    assert "unknown field 'ghost'" in rejected(fld("a"), rules=[rule])


def test_map_and_reduce_must_iterate_over_a_table() -> None:
    message = rejected(fld("a"), fld("s", "money", computed={"reduce": [[1, 2], {"var": "current"}, 0]}))
    assert "must iterate over a table" in message
    message = rejected(
        fld("t", "table", columns=[fld("amount_fen", "money")]),
        fld("s", "money", computed={"reduce": [{"var": "t"}, {"var": "current.nope"}, 0]}),
    )
    assert "current.<column>" in message


# -- normalisation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fen"),
    [("12.3", 1230), ("12.34", 1234), ("¥1,234.50", 123450), ("8元", 800), (12.34, 1234), (7, 700)],
)
def test_money_is_stored_in_integer_fen(raw: object, fen: int) -> None:
    values, findings = normalise(form(fld("fee", "money")), {"fee": raw})
    assert findings == []
    assert values == {"fee": fen}
    assert isinstance(values["fee"], int)


@pytest.mark.parametrize("raw", ["12.345", 0.001])
def test_money_with_more_than_two_decimals_is_rejected(raw: object) -> None:
    values, findings = normalise(form(fld("fee", "money")), {"fee": raw})
    assert values == {}
    assert codes(findings) == [("field.format", "fee")]
    assert "两位小数" in findings[0].message


def test_scalar_coercions() -> None:
    definition = form(
        fld("when", "date"),
        fld("agree", "boolean"),
        fld("count", "integer"),
        fld("ratio", "decimal"),
        fld("idno", "id_number"),
        fld("phone", "mobile"),
        fld("tags", "multi_choice", options=[{"value": v, "label": v, "label_en": v} for v in "ab"]),
    )
    raw = {
        "when": "2024-05-01",
        "agree": "on",
        "count": "12",
        "ratio": "0.25",
        "idno": ID.lower(),
        "phone": "+86 138 0013 8000",
        "tags": ["b", "a", "b"],
    }
    values, findings = normalise(definition, raw)
    assert findings == []
    assert values == {
        "when": dt.date(2024, 5, 1),
        "agree": True,
        "count": 12,
        "ratio": Decimal("0.25"),
        "idno": ID.upper(),
        "phone": "13800138000",
        "tags": ["b", "a"],
    }
    assert jsonable(values)["when"] == "2024-05-01"


def test_type_and_format_problems_do_not_raise() -> None:
    definition = form(
        fld("when", "date"), fld("count", "integer"), fld("mail", "email"), fld("idno", "id_number")
    )
    raw = {"when": "2024-02-30", "count": "12.5", "mail": "not-an-email", "idno": ID[:-1] + "0"}
    values, findings = normalise(definition, raw)
    assert values == {}
    assert codes(findings) == [
        ("field.format", "when"),
        ("field.type", "count"),
        ("field.format", "mail"),
        ("id.check_char", "idno"),
    ]


def test_unknown_keys_are_errors() -> None:
    _, findings = normalise(form(fld("a")), {"a": "x", "b": "y"})
    assert codes(findings) == [("form.unknown_field", "b")]
    assert findings[0].severity == "error"


def test_required_ranges_lengths_patterns_and_choices() -> None:
    definition = form(
        fld("name", required=True),
        fld("fee", "money", min=100, max=100000),
        fld("code", pattern=r"[A-Z]{3}", max_length=3),
        fld("kind", "choice", options=[{"value": "a", "label": "甲", "label_en": "A"}]),
    )
    _, findings = normalise(definition, {"name": "  ", "fee": "0.50", "code": "abcd", "kind": "z"})
    assert codes(findings) == [
        ("field.required", "name"),
        ("field.range", "fee"),
        ("field.length", "code"),
        ("field.format", "code"),
        ("field.choice", "kind"),
    ]
    assert "1.00元" in findings[1].message


def test_show_if_hides_drops_values_and_required_ness() -> None:
    definition = form(
        fld("married", "boolean"),
        fld("spouse_name", required=True, show_if={"==": [{"var": "married"}, True]}),
    )
    values, findings = normalise(definition, {"married": "false", "spouse_name": "李四"})
    assert values == {"married": False}
    assert findings == []
    values, findings = normalise(definition, {"married": "true"})
    assert codes(findings) == [("field.required", "spouse_name")]


def test_required_checkbox_must_be_ticked() -> None:
    definition = form(fld("pledge", "boolean", required=True))
    assert codes(normalise(definition, {"pledge": "0"})[1]) == [("field.required", "pledge")]
    assert normalise(definition, {"pledge": "1"}) == ({"pledge": True}, [])


TABLE = fld(
    "items",
    "table",
    min_rows=1,
    columns=[
        fld("what", required=True),
        fld("qty", "integer"),
        fld("price_fen", "money"),
        fld("amount_fen", "money", computed={"*": [{"var": "qty"}, {"var": "price_fen"}]}),
    ],
)
TOTAL = fld(
    "total_fen",
    "money",
    computed={
        "reduce": [{"var": "items"}, {"+": [{"var": "accumulator"}, {"var": "current.amount_fen"}]}, 0]
    },
)


def test_computed_total_of_a_table_money_column() -> None:
    raw = {
        "items": [
            {"what": "A", "qty": "3", "price_fen": "1.10"},
            {"what": "", "qty": "", "price_fen": ""},  # a blank row from the HTML form
            {"what": "B", "qty": 2, "price_fen": 0.05},
        ],
        "total_fen": "999",  # typed by a client: ignored, always computed
    }
    values, findings = normalise(form(TABLE, TOTAL), raw)
    assert findings == []
    assert [row["amount_fen"] for row in values["items"]] == [330, 10]
    assert values["total_fen"] == 340


def test_flattened_html_table_keys_and_cell_paths() -> None:
    raw = {"items.0.what": "A", "items.0.qty": "1", "items.0.price_fen": "2", "items.1.qty": "x"}
    values, findings = normalise(form(TABLE, TOTAL), raw)
    assert codes(findings) == [("field.required", "items.1.what"), ("field.type", "items.1.qty")]
    assert "第2行" in findings[0].message
    # The total depends on a table with an error: left out rather than computed from half the rows.
    assert "total_fen" not in values
    assert values["items"][0] == {"what": "A", "qty": 1, "price_fen": 200, "amount_fen": 200}


def test_table_row_counts() -> None:
    _, findings = normalise(form(TABLE), {"items": []})
    assert findings == []  # not required, and empty
    bounded = form({**TABLE, "required": True, "min_rows": 2, "max_rows": 2})
    assert codes(normalise(bounded, {"items": []})[1]) == [("field.required", "items")]
    assert codes(normalise(bounded, {"items": [{"what": "A"}]})[1]) == [("field.rows", "items")]


def test_money_arithmetic_rounds_half_up_without_float_drift() -> None:
    # 50 fen x 1.15 = 57.5 fen exactly; binary floating point gives 57.49999999999999.
    assert 50 * 1.15 < 57.5
    definition = form(
        fld("base_fen", "money"),
        fld("with_tax_fen", "money", computed={"*": [{"var": "base_fen"}, 1.15]}),
        fld("third_fen", "money", computed={"/": [{"var": "base_fen"}, 3]}),
    )
    values, findings = normalise(definition, {"base_fen": "0.50"})
    assert findings == []
    assert values == {"base_fen": 50, "with_tax_fen": 58, "third_fen": 17}


def test_evaluate_uses_decimal_arithmetic_and_reports_failures() -> None:
    assert evaluate({"+": [0.1, 0.2]}, {}) == 0.3
    assert evaluate({"==": [{"+": [0.1, 0.2]}, 0.3]}, {}) is True
    with pytest.raises(EvaluationError):
        evaluate({"/": [1, {"var": "zero"}]}, {"zero": 0})


def test_division_by_zero_in_a_computed_field_is_a_warning() -> None:
    definition = form(
        fld("total", "integer"),
        fld("count", "integer"),
        fld("average", "integer", computed={"/": [{"var": "total"}, {"var": "count"}]}),
    )
    values, findings = normalise(definition, {"total": "10", "count": "0"})
    assert "average" not in values
    assert [(f.code, f.field, f.severity) for f in findings] == [("field.computed", "average", "warning")]
