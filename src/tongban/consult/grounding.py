"""Grounding checks: every sentence of an answer is supported by a cited passage, and every fact in it
(numbers, dates, amounts, time limits, fees, percentages, document and material names) occurs in one.

The check runs on every answer before it leaves the service, whichever way it was composed. An answer that
fails is repaired by dropping the sentences that carry the failure; when nothing supported is left, it is
refused. Comparison is on normalised text (NFKC, Traditional → Simplified, lower case, no spaces), and
numbers written in Chinese numerals (十五个工作日, 五十万元) equal Arabic ones (15个工作日, 50万元).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tongban.core.text import NUMERAL_CHARS, arabic_numbers
from tongban.knowledge.service import normalize_text

#: A sentence written in Chinese is supported when this share of its character bigrams occurs in one
#: cited passage (a quotation scores 1.0; a light paraphrase about 0.6–0.8; an unrelated claim below 0.3).
LEXICAL_SUPPORT = 0.5
#: A sentence in another language (an English answer over Chinese sources) is supported when the
#: multilingual embedding of the sentence is this close to a cited passage.
SEMANTIC_SUPPORT = 0.83

_SENTENCE = re.compile(r"[^。！？!?；;\n]+(?:[。！？!?；;]+|\n|$)|(?<=[.])\s+")
_LATIN_SENTENCE = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9\"'(])")
_HAN = re.compile(r"[\u3400-\u9fff]")
_HAN_RUN = re.compile(r"[\u3400-\u9fff]+")
_ALNUM = re.compile(r"[a-z0-9]+")
#: Units that make a number a fact worth checking (amounts, limits, shares, counts, dates).
_UNIT = (
    r"(?:个工作日|工作日|自然日|个月|小时|分钟|周岁|年度|万元|亿元|千元|元|%|％|‰|倍|天|日|月|年|岁|人次|人|户|"
    r"家|件|项|批|次|个|所|座|张|份|台|套|辆|吨|公斤|千克|米|平方米|亩|公里|号|条|款|级|类|届|期|名)?"
)
_ARABIC_FACT = re.compile(r"\d+(?:[.,]\d+)*\s*" + _UNIT)
_CN_FACT = re.compile(
    rf"[{NUMERAL_CHARS}]{{2,}}{_UNIT}|[零〇一二两三四五六七八九十](?:个工作日|工作日|个月|万元|亿元|元|倍|天|周岁|岁)"
)
_DATE = re.compile(r"\d{4}\s*年\s*\d{1,2}\s*月(?:\s*\d{1,2}\s*日)?|\d{1,2}\s*月\s*\d{1,2}\s*日")
_TITLE = re.compile(r"《[^《》]{1,60}》|〔\d{4}〕\d+号|\[\d{4}\]\d+号")
#: Names of documents and materials: certificates, permits, forms, contracts, copies.
_MATERIAL = re.compile(
    r"[\u3400-\u9fffA-Za-z0-9（）()]{2,16}?(?:证明书|证明|证书|许可证|执照|登记表|申请表|申报表|审批表|"
    r"登记证|身份证|户口簿|协议书|协议|合同|复印件|原件|照片|回执|凭证|发票|报告)"
)
_MATERIAL_TAIL = re.compile(
    r"(?:证明书|证明|证书|许可证|执照|登记表|申请表|申报表|审批表|登记证|身份证|户口簿|协议书|协议|合同|复印件|原件|"
    r"照片|回执|凭证|发票|报告)$"
)
_QUOTED = re.compile(r"[“\"「]([^“”\"「」]{2,30})[”\"」]")


def normalise(text: str) -> str:
    """Text as the checks compare it: normalised, spaces removed, Chinese numerals in Arabic digits."""
    return re.sub(r"\s+", "", arabic_numbers(normalize_text(text)))


def sentences(text: str) -> list[str]:
    """The sentences of an answer, in order, each with its closing punctuation."""
    out: list[str] = []
    for part in re.split(r"(?<=[。！？!?；;])|\n", text):
        out.extend(s for s in _LATIN_SENTENCE.split(part))
    return [s.strip() for s in out if s.strip() and re.search(r"\w", s)]


def facts(text: str) -> list[str]:
    """The checkable facts of a text: dates, numbers with their units, document numbers and titles,
    material names and quoted terms; earlier kinds win where matches overlap."""
    taken: list[tuple[int, int]] = []
    found: list[str] = []
    for pattern in (_TITLE, _DATE, _ARABIC_FACT, _CN_FACT, _MATERIAL):
        for m in pattern.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            taken.append(m.span())
            found.append(m.group(0))
    found.extend(m.group(1) for m in _QUOTED.finditer(text))
    return [f.strip() for f in dict.fromkeys(found) if f.strip()]


def grounded(fact: str, haystack: str) -> bool:
    key = _fact_key(fact)
    if key in haystack:
        return True
    material = _MATERIAL_TAIL.search(key)
    if material is None:
        return False
    # A material name may have picked up a word before it (和居民身份证): any ending of it that keeps two
    # characters before the material word is enough (居民身份证), an invented qualifier is not.
    least = len(material.group(0)) + 2
    return any(key[i:] in haystack for i in range(0, len(key) - least + 1))


def _bigrams(norm: str) -> set[str]:
    out: set[str] = set()
    for run in _HAN_RUN.findall(norm):
        out.update(run[i : i + 2] for i in range(len(run) - 1)) if len(run) > 1 else out.add(run)
    out.update(_ALNUM.findall(_HAN_RUN.sub(" ", norm)))
    return out


def _fact_key(fact: str) -> str:
    key = normalise(fact)
    return key.replace("％", "%").replace(",", "")


@dataclass(frozen=True)
class SentenceCheck:
    sentence: str
    #: Index of the cited passage that supports the sentence best, or None.
    passage: int | None
    support: float
    supported: bool
    #: Facts of the sentence found in no cited passage.
    ungrounded: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GroundingReport:
    checks: list[SentenceCheck]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.supported and not c.ungrounded for c in self.checks)

    @property
    def ungrounded_facts(self) -> list[str]:
        return [f for c in self.checks for f in c.ungrounded]

    def repaired(self) -> str:
        """The answer with every failing sentence removed ('' when none survives)."""
        kept = [c.sentence for c in self.checks if c.supported and not c.ungrounded]
        joiner = "" if any(_HAN.search(s) for s in kept) else " "
        return joiner.join(kept)

    def used_passages(self) -> list[int]:
        return sorted({c.passage for c in self.checks if c.passage is not None and c.supported})


#: Embeds a batch of texts into unit vectors (the knowledge hub's model); optional.
Embed = Callable[[Sequence[str]], Sequence[Sequence[float]]]


def check(answer: str, passages: Sequence[str], *, embed: Embed | None = None) -> GroundingReport:
    """Check each sentence of ``answer`` against the cited ``passages``."""
    norm_passages = [normalise(p) for p in passages]
    grams = [_bigrams(p) for p in norm_passages]
    joined = "\n".join(norm_passages)
    checks: list[SentenceCheck] = []
    foreign: list[int] = []
    for sentence in sentences(answer):
        norm = normalise(sentence)
        ungrounded = [f for f in facts(sentence) if not grounded(f, joined)]
        if _HAN.search(norm):
            mine = _bigrams(norm)
            best, best_i = 0.0, None
            for i, g in enumerate(grams):
                score = len(mine & g) / len(mine) if mine else 0.0
                if score > best:
                    best, best_i = score, i
            checks.append(SentenceCheck(sentence, best_i, best, best >= LEXICAL_SUPPORT, ungrounded))
        else:
            foreign.append(len(checks))
            checks.append(SentenceCheck(sentence, None, 0.0, False, ungrounded))
    if foreign and embed is not None and passages:
        vectors = list(embed([checks[i].sentence for i in foreign] + list(passages)))
        sent_vecs, pass_vecs = vectors[: len(foreign)], vectors[len(foreign) :]
        for i, vec in zip(foreign, sent_vecs, strict=True):
            sims = [sum(a * b for a, b in zip(vec, p, strict=True)) for p in pass_vecs]
            best_i = max(range(len(sims)), key=sims.__getitem__)
            c = checks[i]
            checks[i] = SentenceCheck(
                c.sentence, best_i, float(sims[best_i]), sims[best_i] >= SEMANTIC_SUPPORT, c.ungrounded
            )
    return GroundingReport(checks)
