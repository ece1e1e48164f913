"""Chinese numerals and Traditional script, shared by the catalogue, the knowledge hub and consultation."""

from __future__ import annotations

import pytest

from tongban.core.text import arabic_numbers, chinese_number, to_traditional


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("15", 15),
        ("十五", 15),
        ("两", 2),
        ("二十", 20),
        ("一百零五", 105),
        ("一千二百万", 12_000_000),
        ("零", 0),
    ],
)
def test_chinese_number(text: str, value: int) -> None:
    assert chinese_number(text) == value


def test_not_a_number() -> None:
    assert chinese_number("份") is None
    assert chinese_number("") is None


def test_arabic_numbers_keep_words_and_big_units() -> None:
    assert (
        arabic_numbers("承诺十五个工作日，一律免费，补助五十万元") == "承诺15个工作日，一律免费，补助50万元"
    )


def test_to_traditional() -> None:
    assert to_traditional("缓缴社会保险费") == "緩繳社會保險費"
