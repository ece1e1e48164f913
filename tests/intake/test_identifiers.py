"""Chinese identifiers: resident identity numbers, unified social credit codes, mobile numbers."""

from __future__ import annotations

import datetime as dt

import pytest
from stdnum.cn import ric, uscc

from tongban.intake.identifiers import (
    IdentifierError,
    check_credit_code,
    check_id_number,
    check_mobile,
    mask_id_number,
    mask_mobile,
)


def make_id(first17: str) -> str:
    """A number with the correct check character, computed by python-stdnum."""
    return first17 + ric.calc_check_digit(first17 + "0")


def make_id_with_check(check: str) -> str:
    for seq in range(100, 1000):
        number = make_id(f"11010119900307{seq}")
        if number[-1] == check:
            return number
    raise AssertionError(f"no sequence gives check character {check}")  # pragma: no cover


def wrong_check(number: str) -> str:
    return number[:-1] + ("1" if number[-1] != "1" else "2")


def test_valid_id_number_decodes_birth_date_sex_and_region() -> None:
    number = make_id("11010119900307001")
    assert ric.is_valid(number)
    parsed = check_id_number(number)
    assert parsed.number == number
    assert parsed.birth_date == dt.date(1990, 3, 7)
    assert parsed.sex == "male"
    assert parsed.region_code == "110101"
    assert check_id_number(make_id("11010119900307002")).sex == "female"


def test_lower_case_x_and_spaces_are_normalised() -> None:
    number = make_id_with_check("X")
    messy = f" {number[:6]} {number[6:14]} {number[14:-1]}x "
    assert check_id_number(messy).number == number


def test_wrong_check_character_is_told_apart_and_names_the_expected_one() -> None:
    number = make_id("44030519851231123")
    bad = wrong_check(number)
    with pytest.raises(IdentifierError) as info:
        check_id_number(bad)
    assert info.value.code == "id.check_char"
    assert f"应为{number[-1]}" in info.value.message_zh
    assert f"should be {number[-1]}" in info.value.message_en


def test_impossible_birth_date_with_a_correct_check_character() -> None:
    number = make_id("11010119900230001")  # 30 February
    assert number[-1] == ric.calc_check_digit(number)
    with pytest.raises(IdentifierError) as info:
        check_id_number(number)
    assert info.value.code == "id.birth_date"
    assert "1990-02-30" in info.value.message_zh


def test_birth_date_in_the_future_is_rejected() -> None:
    number = make_id("11010120300101001")
    with pytest.raises(IdentifierError) as info:
        check_id_number(number, today=dt.date(2026, 3, 2))
    assert info.value.code == "id.birth_date"


@pytest.mark.parametrize(
    "value",
    [
        "1101011990030700",
        "11010119900307001X1",
        "11010119900307A011",
        "110101900307001",
        "X10101199003070011",
    ],
)
def test_malformed_id_numbers_are_format_errors(value: str) -> None:
    with pytest.raises(IdentifierError) as info:
        check_id_number(value)
    assert info.value.code == "id.format"
    assert info.value.message_zh
    assert info.value.message_en


def test_unknown_region_code_is_a_format_error() -> None:
    with pytest.raises(IdentifierError) as info:
        check_id_number(make_id("99999919900307001"))
    assert info.value.code == "id.format"
    assert "999999" in info.value.message_zh


def test_credit_code_valid_and_normalised() -> None:
    assert check_credit_code("91110000600037341L") == "91110000600037341L"
    body = "91440300MA5DA1B2C"
    code = body + uscc.calc_check_digit(body)
    assert check_credit_code(code.lower()) == code


def test_credit_code_wrong_check_character() -> None:
    with pytest.raises(IdentifierError) as info:
        check_credit_code("91110000600037341M")
    assert info.value.code == "uscc.check_char"
    assert "应为L" in info.value.message_zh


@pytest.mark.parametrize("value", ["9111000060003734", "A1110000600037341L", "9111000060003734IL"])
def test_credit_code_format_errors(value: str) -> None:
    with pytest.raises(IdentifierError) as info:
        check_credit_code(value)
    assert info.value.code == "uscc.format"


@pytest.mark.parametrize(
    "value", ["13800138000", "138 0013 8000", "138-0013-8000", "+86 138 0013 8000", "0086-13800138000"]
)
def test_mobile_numbers_with_separators_and_prefixes(value: str) -> None:
    assert check_mobile(value) == "13800138000"


@pytest.mark.parametrize("value", ["12800138000", "1380013800", "138001380001", "+85213800138000", "abc"])
def test_bad_mobile_numbers(value: str) -> None:
    with pytest.raises(IdentifierError) as info:
        check_mobile(value)
    assert info.value.code == "mobile.format"


def test_masks() -> None:
    assert mask_id_number("11010119900307002X") == "110101********002X"
    assert mask_mobile("13800138000") == "138****8000"
