"""Validation of Chinese identifiers: resident identity numbers, unified social credit codes, mobiles.

The arithmetic (check characters, region codes) comes from ``python-stdnum``; this module adds the
distinction between kinds of mistakes (format, birth date, check character) and bilingual messages
that tell the applicant what to correct.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError as StdnumValidationError

__all__ = [
    "IdNumber",
    "IdentifierError",
    "check_credit_code",
    "check_id_number",
    "check_mobile",
    "mask_id_number",
    "mask_mobile",
]

#: Mainland China does not observe daylight saving; UTC+8 all year.
CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")

_ID_RE = re.compile(r"^\d{17}[\dX]$")
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
_SEPARATORS_RE = re.compile(r"[\s\-\u2010-\u2015\u00a0\u3000]")


class IdentifierError(ValueError):
    """An identifier failed validation. ``code`` is stable; the messages tell the applicant what to do."""

    def __init__(self, code: str, message_zh: str, message_en: str) -> None:
        super().__init__(f"{code}: {message_en}")
        self.code = code
        self.message_zh = message_zh
        self.message_en = message_en


@dataclass(frozen=True, slots=True)
class IdNumber:
    """A validated 18-character resident identity number and what it encodes."""

    number: str
    birth_date: dt.date
    sex: Literal["male", "female"]
    region_code: str


def _compact(value: object) -> str:
    return _SEPARATORS_RE.sub("", str(value)).upper()


def check_id_number(value: object, *, today: dt.date | None = None) -> IdNumber:
    """Validate a resident identity number (居民身份证号码, GB 11643).

    Checks, in order: format (17 digits then a digit or ``X``), birth date (a real date, not before 1900,
    not in the future), check character, and the plausibility of the region code as ``python-stdnum``
    judges it (a county code known for the year of birth). Spaces are ignored and ``x`` is upper-cased.

    Raises :class:`IdentifierError` with code ``id.format``, ``id.birth_date`` or ``id.check_char``.
    """
    number = _compact(value)
    if len(number) == 15 and number.isdigit():
        raise IdentifierError(
            "id.format",
            "请填写18位居民身份证号码（15位旧号码已停用，请按新身份证填写）。",
            "Enter the 18-character resident identity number (old 15-digit numbers are no longer used).",
        )
    if len(number) != 18:
        raise IdentifierError(
            "id.format",
            f"居民身份证号码应为18位，当前为{len(number)}位，请核对。",
            f"A resident identity number has 18 characters; you entered {len(number)}. Please check it.",
        )
    if not _ID_RE.match(number):
        raise IdentifierError(
            "id.format",
            "居民身份证号码前17位应为数字，第18位为数字或字母X，请核对。",
            "The first 17 characters must be digits and the 18th a digit or the letter X. Please check it.",
        )
    try:
        birth_date = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        birth_date = None
    if today is None:
        today = dt.datetime.now(tz=CHINA_TZ).date()
    if birth_date is None or birth_date.year < 1900 or birth_date > today:
        raw = f"{number[6:10]}-{number[10:12]}-{number[12:14]}"
        raise IdentifierError(
            "id.birth_date",
            f"居民身份证号码第7至14位表示出生日期，{raw}不是有效日期，请核对。",
            f"Characters 7 to 14 of the identity number encode the birth date; {raw} is not a valid date. "
            "Please check it.",
        )
    expected = ric.calc_check_digit(number)
    if number[-1] != expected:
        raise IdentifierError(
            "id.check_char",
            f"居民身份证号码校验不通过：按前17位计算，第18位校验码应为{expected}，当前为{number[-1]}。"
            "请逐位核对号码（常见原因是某一位数字录入错误）。",
            f"The identity number does not check out: from the first 17 characters the 18th should be "
            f"{expected}, not {number[-1]}. Please check every digit (usually one digit was mistyped).",
        )
    try:
        ric.get_birth_place(number)
    except StdnumValidationError:
        raise IdentifierError(
            "id.format",
            f"居民身份证号码前6位地区码{number[:6]}不存在或与出生年份不符，请核对。",
            f"The region code {number[:6]} (first 6 digits) does not exist or did not exist in the year "
            "of birth. Please check it.",
        ) from None
    sex: Literal["male", "female"] = "male" if int(number[16]) % 2 == 1 else "female"
    return IdNumber(number=number, birth_date=birth_date, sex=sex, region_code=number[:6])


def check_credit_code(value: object) -> str:
    """Validate a unified social credit code (统一社会信用代码, GB 32100) and return it upper-cased.

    Raises :class:`IdentifierError` with code ``uscc.format`` or ``uscc.check_char``.
    """
    code = _compact(value)
    if len(code) != 18:
        raise IdentifierError(
            "uscc.format",
            f"统一社会信用代码应为18位，当前为{len(code)}位，请按营业执照核对。",
            f"A unified social credit code has 18 characters; you entered {len(code)}. "
            "Please copy it from the business licence.",
        )
    if not code[:8].isdigit() or any(c not in _USCC_ALPHABET for c in code[8:]):
        raise IdentifierError(
            "uscc.format",
            "统一社会信用代码前8位应为数字，其余为数字或大写字母（不含I、O、Z、S、V），请按营业执照核对。",
            "The first 8 characters must be digits and the rest digits or capital letters other than "
            "I, O, Z, S and V. Please copy it from the business licence.",
        )
    expected = uscc.calc_check_digit(code)
    if code[-1] != expected:
        raise IdentifierError(
            "uscc.check_char",
            f"统一社会信用代码校验不通过：按前17位计算，第18位校验码应为{expected}，当前为{code[-1]}。"
            "请按营业执照逐位核对。",
            f"The credit code does not check out: from the first 17 characters the 18th should be "
            f"{expected}, not {code[-1]}. Please check every character against the business licence.",
        )
    try:
        return str(uscc.validate(code))
    except StdnumValidationError:  # pragma: no cover - the checks above are stdnum's own
        raise IdentifierError(
            "uscc.format",
            "统一社会信用代码格式不正确，请按营业执照核对。",
            "The unified social credit code is not well formed. Please copy it from the business licence.",
        ) from None


def check_mobile(value: object) -> str:
    """Validate a mainland mobile number and return its 11 digits.

    Spaces and hyphens are ignored, as is a ``+86`` / ``0086`` country prefix.
    Raises :class:`IdentifierError` with code ``mobile.format``.
    """
    number = _SEPARATORS_RE.sub("", str(value))
    number = number.replace("(", "").replace(")", "").replace("（", "").replace("）", "")
    if number.startswith("+86"):
        number = number[3:]
    elif number.startswith("0086"):
        number = number[4:]
    if not _MOBILE_RE.match(number):
        raise IdentifierError(
            "mobile.format",
            "手机号码应为以13至19开头的11位数字，请核对（无需填写+86）。",
            "A mainland mobile number has 11 digits starting with 13 to 19. Please check it "
            "(the +86 prefix is not needed).",
        )
    return number


def mask_id_number(number: str) -> str:
    """Mask an identity number for display: first 6 and last 4 characters, e.g. ``110101********002X``."""
    number = _compact(number)
    if len(number) <= 10:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def mask_mobile(number: str) -> str:
    """Mask a mobile number for display: first 3 and last 4 digits, e.g. ``138****5678``."""
    number = _SEPARATORS_RE.sub("", number)
    if len(number) <= 7:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]
