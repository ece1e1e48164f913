"""Chinese text helpers every domain shares: numerals written out in Chinese, and Traditional script."""

from __future__ import annotations

import re
from functools import lru_cache

import opencc

NUMERAL_CHARS = "零〇一二两三四五六七八九十百千万亿"
_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_BIG = {"万": 10_000, "亿": 100_000_000}


def chinese_number(text: str) -> int | None:
    """The value of a number written in Arabic digits or Chinese numerals (十五 → 15, 一千二百万 →
    12000000, 两 → 2); None when ``text`` is not one."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    total, section, current = 0, 0, 0
    seen = False
    for ch in text:
        if ch in _DIGITS:
            current = _DIGITS[ch]
            seen = True
        elif ch in _UNITS:
            section += (current or 1) * _UNITS[ch]
            current = 0
            seen = True
        elif ch in _BIG:
            total += (section + current) * _BIG[ch]
            section, current = 0, 0
        else:
            return None
    return total + section + current if seen else None


def arabic_numbers(text: str) -> str:
    """Chinese numerals written out (十五, 二百五十, 一千二百万) become Arabic digits.

    A single ``一`` or ``两`` alone is left as it is (一律, 两会 are words, not numbers); runs that end in
    万 or 亿 keep that unit (五十万元 → 50万元), as amounts are written in the documents.
    """

    def repl(match: re.Match[str]) -> str:
        run = match.group(0)
        big = ""
        if run[-1] in _BIG and len(run) > 1:
            run, big = run[:-1], run[-1]
        if len(run) == 1 and run in "一两万亿千百":
            return match.group(0)
        value = chinese_number(run)
        return match.group(0) if value is None else f"{value}{big}"

    return re.sub(rf"[{NUMERAL_CHARS}]+", repl, text)


@lru_cache(maxsize=1)
def _s2t() -> opencc.OpenCC:
    return opencc.OpenCC("s2t")


def to_traditional(text: str) -> str:
    """Simplified Chinese in Traditional script (OpenCC ``s2t``)."""
    return str(_s2t().convert(text))
