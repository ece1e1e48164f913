"""The drafting aid: from a policy text to the rule form of an item, for a person to review.

**Offline** (always): rules extract candidate thresholds, amounts, caps, percentages, periods, dates and
audiences from the text, each with its span, so a drafter writes conditions from what the text says.

**With an LLM endpoint**: the model proposes the whole item (YAML of the rule format) from the text and the
city's variables; the proposal is then checked — it must parse and check against the variables, every
condition must quote its source words verbatim from the text, and every number in its conditions and
amount must be one of the numbers the text states (yuan and 万元 converted to fen, percentages as
written) — and whatever fails is reported, never silently kept. A person approves by proposing it as an
item version (which runs its test cases).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml  # type: ignore[import-untyped]

from tongban.core.llm import ChatMessage, ChatModel, LLMError
from tongban.core.text import chinese_number
from tongban.policy.rules import RuleError, RuleFile, RuleSet, check, parse_text

_NUM = r"(\d+(?:\.\d+)?|[零〇一二两三四五六七八九十百千万]+)"


@dataclass(frozen=True)
class Candidate:
    """Something the text states that a rule may need."""

    #: ``age_min``, ``age_max``, ``amount``, ``cap``, ``percent``, ``growth``, ``months``, ``date``,
    #: ``window_start``, ``window_end``, ``audience``, ``region``, ``support``.
    kind: str
    #: A number (fen for money, years, percent, months), a date (ISO), or a word.
    value: Any
    start: int
    end: int
    quote: str


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        n = chinese_number(text)
        return float(n) if n is not None else None


def _fen(number: float, unit: str) -> int:
    scale = {"亿": 10**8, "万": 10**4}.get(unit, 1)
    return round(number * scale * 100)


_AUDIENCES = (
    "小微企业",
    "中小微企业",
    "中小企业",
    "个体工商户",
    "高新技术企业",
    "科技型中小企业",
    "企业",
    "高校毕业生",
    "老年人",
    "残疾人",
    "低保",
    "困难群众",
    "退役军人",
    "农民工",
    "失业人员",
    "户籍",
    "常住人口",
)
_SUPPORT = (
    ("补贴", "奖补"),
    ("奖励", "奖补"),
    ("资助", "奖补"),
    ("津贴", "权益"),
    ("免征", "减免"),
    ("减免", "减免"),
    ("减半", "减免"),
    ("退税", "减免"),
    ("缓缴", "减免"),
    ("认定", "资质"),
    ("资格", "资质"),
)


def extract(text: str) -> list[Candidate]:
    """Candidates the text states, in text order (the offline drafting aid)."""
    out: list[Candidate] = []

    def add(kind: str, value: Any, m: re.Match[str]) -> None:
        lo, hi = max(0, m.start() - 8), min(len(text), m.end() + 8)
        out.append(Candidate(kind, value, m.start(), m.end(), " ".join(text[lo:hi].split())))

    for m in re.finditer(rf"(?:年满|满){_NUM}周岁", text):
        if (n := _number(m.group(1))) is not None:
            add("age_min", int(n), m)
    for m in re.finditer(rf"{_NUM}[至到-]{_NUM}周岁", text):
        low, high = _number(m.group(1)), _number(m.group(2))
        if low is not None and high is not None:
            add("age_min", int(low), m)
            add("age_max", int(high), m)
    for m in re.finditer(rf"{_NUM}周岁(以上|及以上|以下|未满)", text):
        if (n := _number(m.group(1))) is not None:
            add("age_max" if m.group(2) in ("以下", "未满") else "age_min", int(n), m)
    for m in re.finditer(rf"{_NUM}\s*(亿|万)?元", text):
        n = _number(m.group(1))
        if n is None:
            continue
        before = text[max(0, m.start() - 8) : m.start()]
        kind = "cap" if re.search(r"最高|不超过|上限|最多", before) else "amount"
        add(kind, _fen(n, m.group(2) or ""), m)
    for m in re.finditer(rf"(?:百分之{_NUM}|{_NUM}\s*[%％])", text):
        raw = m.group(1) or m.group(2)
        if (n := _number(raw)) is None:
            continue
        before = text[max(0, m.start() - 6) : m.start()]
        add("growth" if "增长" in before else "percent", n, m)
    for m in re.finditer(rf"连续{_NUM}个月", text):
        if (n := _number(m.group(1))) is not None:
            add("months", int(n), m)
    for m in re.finditer(r"(\d{4})年(\d{1,2})月(\d{1,2})日", text):
        try:
            day = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            continue
        after = text[m.end() : m.end() + 3]
        before = text[max(0, m.start() - 3) : m.start()]
        kind = (
            "window_start" if "起" in after else "window_end" if ("至" in before or "止" in after) else "date"
        )
        add(kind, day.isoformat(), m)
    for word in sorted(_AUDIENCES, key=len, reverse=True):  # the longest name of a span, once
        for m in re.finditer(re.escape(word), text):
            if not any(c.kind == "audience" and c.start <= m.start() and m.end() <= c.end for c in out):
                add("audience", word, m)
    for m in re.finditer(r"本市|本区|全市", text):
        add("region", m.group(0), m)
    for word, support in _SUPPORT:
        for m in re.finditer(word, text):
            add("support", support, m)
    out.sort(key=lambda c: (c.start, c.kind))
    return out


@dataclass
class Proposal:
    """What the model proposed and what the checks found."""

    source: str = ""
    problems: list[str] = field(default_factory=list)
    #: Numbers of the proposal the text does not state (``conditions.aged.min: 85``).
    unsupported_numbers: list[str] = field(default_factory=list)
    #: Conditions whose quote is not found word for word in the text.
    unquoted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.source) and not (self.problems or self.unsupported_numbers or self.unquoted)


_FORMAT = """You write one policy item in tongban's rule format (YAML), from the policy text the user gives.
Fields: id (lowercase-with-dashes), version: 1, title {zh, en}, entity (person|household|enterprise),
support (减免|奖补|权益|资质), document (the document number), conditions, amount {expr, cap_fen,
round_to_fen}, tests (at least one case: name, date, inputs, expect {result, amount_fen}).
Each condition: id, text {zh, en}, type (region|industry|compare|range|one_of|flag|consecutive|growth|expr)
with its fields (variable, codes, op, value, values, min, max, periods, min_percent, expr), and
source {document, article, quote} where quote is the exact words of the text it comes from.
Money is whole fen (1 yuan = 100 fen). Use only these variables:
{variables}
Answer with the YAML only."""


def _normal(s: str) -> str:
    return re.sub(r"\s+", "", s)


def _numbers_in(value: Any, path: str) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    if isinstance(value, bool):
        return out
    if isinstance(value, int | float):
        out.append((path, float(value)))
    elif isinstance(value, str) and path.endswith(".expr"):
        out += [(path, float(n)) for n in re.findall(r"(?<![\w.])\d+(?:\.\d+)?", value)]
    elif isinstance(value, dict):
        for k, v in value.items():
            out += _numbers_in(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _numbers_in(v, f"{path}[{i}]")
    return out


def _stated(candidates: Sequence[Candidate], text: str) -> set[float]:
    """Every number the text states, in the units rules use (fen, years, percent, months), and as written."""
    out: set[float] = set()
    for c in candidates:
        if isinstance(c.value, int | float):
            out.add(float(c.value))
            if c.kind in ("amount", "cap"):
                out.add(float(c.value) / 100)  # as written in yuan
    for m in re.finditer(r"\d+(?:\.\d+)?", text):
        out.add(float(m.group(0)))
    return out


def propose(text: str, *, model: ChatModel, rules: RuleSet, entity: str | None = None) -> Proposal:
    """The model's proposal for an item of ``text``, checked (see the module's doc)."""
    variables = "\n".join(
        f"- {v.name} ({v.entity}, {v.kind}{', per ' + v.period if v.period else ''}): {v.label.zh}"
        for v in rules.variables.values()
        if entity is None or v.entity == entity
    )
    messages = [
        ChatMessage("system", _FORMAT.replace("{variables}", variables)),
        ChatMessage("user", text[:20_000]),
    ]
    try:
        reply = model.complete(messages, temperature=0.0)
    except LLMError as exc:
        return Proposal(problems=[f"the language model did not answer: {exc}"])
    source = re.sub(r"^```(?:yaml)?\s*|\s*```\s*$", "", reply.strip())
    proposal = Proposal(source=source)
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        proposal.problems.append(f"not YAML: {exc}")
        return proposal
    if not isinstance(data, dict):
        proposal.problems.append("not one item")
        return proposal
    try:
        raw = parse_text(yaml.safe_dump({"items": [data]}, allow_unicode=True))
        check(RuleFile(variables=list(rules.variables.values()), items=list(raw.items)))
    except RuleError as exc:
        proposal.problems.extend(exc.problems)
    flat = _normal(text)
    conditions = data.get("conditions")
    for raw_condition in conditions if isinstance(conditions, list) else []:
        condition: dict[str, Any] = raw_condition if isinstance(raw_condition, dict) else {}
        cited = condition.get("source")
        quote = str(cited.get("quote") or "") if isinstance(cited, dict) else ""
        if not quote or _normal(quote) not in flat:
            proposal.unquoted.append(str(condition.get("id", "?")))
    stated = _stated(extract(text), text)
    checked = {"conditions": data.get("conditions"), "amount": data.get("amount")}
    for path, number in _numbers_in(checked, "item"):
        if path.endswith(("round_to_fen", ".periods")) and number in (1, 100):
            continue  # rounding to the yuan, one period: conventions, not facts of the text
        if number not in stated and number != 0:
            proposal.unsupported_numbers.append(f"{path.removeprefix('item.')}: {number:g}")
    return proposal
