"""The extractive reader: picks the span of the retrieved documents that answers a question.

No language model. In each retrieved document the sentences that share most of the question's terms are
found (terms weighted within the document), and candidates are cut around what the question echoes:
the parts of a sentence the question does not repeat, what follows the last repeated part, the sentence
and the sentences after it. Each candidate is described by features (its kind and length, how much of
the question it and its sentence cover, whether it sits where the question word sits in the echoed
text, whether it holds what the question type asks for — a number for 多少, a date for 何时, an
organisation for 哪家, a list for 哪些 — and the retrieval scores of its document and passage) and ranked
by a LightGBM LambdaRank model fitted by ``scripts/train_reader.py`` (labels: character-F1 against gold
answers). The model ships in ``data/reader.lgb.txt``. The answer is always a verbatim slice of one
document, so it quotes its source.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tongban.consult.question import content_terms
from tongban.knowledge.service import normalize_text

MAX_CHARS = 220
#: Documents the reader looks into (in retrieval order).
READ_DOCS = 3

_CLAUSE = re.compile(r"[^，,；;。！？!?：:\n]+[，,；;。！？!?：:\n]*|[，,；;。！？!?：:\n]+")
_SENT_END = frozenset("。！？!?；;\n")
_HAN_RUN = re.compile(r"[\u3400-\u9fff]+")
_ALNUM = re.compile(r"[a-z0-9]+")
_PUNCT = frozenset("，,；;。！？!?：:、（）()【】[]“”\"'‘’《》<>…—-·．. \u3000\n\t/")
_QTYPE = {
    "num": re.compile(r"多少|几|数量|金额|比例|标准|上限|最高|多大|多长|幅度"),
    "time": re.compile(r"何时|什么时候|时间|期限|截至|日期|多久|哪天|几月|至什么|延长至|起止"),
    "list": re.compile(r"哪些|哪几|举措|措施|方面|内容|要求|政策|做法|部署|工作|包括"),
    "who": re.compile(r"哪家|谁|哪个|部门|单位|机构|企业|哪里|地点|渠道|途径|平台|电话|网站|在哪"),
    "how": re.compile(r"如何|怎么|怎样|流程|方式|办法|程序"),
}
_DIGIT = re.compile(r"\d|[一二三四五六七八九十百千万亿]+(?:元|万|%|个|家|天|日|月|年|人|件|倍)")
_DATE = re.compile(r"\d{1,4}年|\d{1,2}月|\d{1,2}日|月底|年底|之前|以前|以后|期间|截至")
_ORG = re.compile(r"公司|局|委|厅|部|中心|医院|银行|平台|app|网|热线|电话|政府|办公室|协会|学校|机构")

#: Kinds of candidate: the parts of a sentence the question does not repeat (a gap, or a gap to the end
#: of its clause), the rest of the sentence after the last repeated part, the sentence, the sentence with
#: the one to three that follow, and the next sentence alone.
KINDS = ("gap", "gap_clause", "rest", "sentence", "window1", "window2", "window3", "next")
FEATURES = (
    *(f"kind_{k}" for k in KINDS),
    "sentence_rank",
    "sentence_wcover",
    "sentence_cover",
    "sentence_echo",
    "sentence_position",
    "inner_gap",
    "gap_at_start",
    "gap_at_end",
    "gap_chars",
    "gaps_in_sentence",
    "left_echo",
    "right_echo",
    "aligned",
    "after_colon",
    "log_chars",
    "commas",
    "list_marks",
    "enumerations",
    "novelty",
    "cover",
    "has_digit",
    "has_date",
    "has_org",
    "has_quote",
    "q_num",
    "q_time",
    "q_list",
    "q_who",
    "q_how",
    "q_what",
    "q_terms",
    "q_chars",
    "num_x_digit",
    "time_x_date",
    "who_x_org",
    "list_x_chars",
    "doc_rank",
    "doc_score",
    "doc_semantic",
    "doc_cover",
    "passage_semantic",
    "passage_semantic_gap",
    "passage_semantic_rank",
    "from_semantic_passage",
)


@dataclass(frozen=True)
class Passage:
    seq: int
    text: str
    heading: str = ""
    start: int = 0
    end: int = 0
    #: Closeness in meaning to the question (the knowledge hub's embedding), when known.
    semantic: float | None = None


@dataclass(frozen=True)
class Document:
    """A retrieved knowledge entry with its passages in order and its retrieval scores."""

    id: str
    title: str
    version: int
    passages: tuple[Passage, ...]
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.passages)

    def passages_between(self, start: int, end: int) -> list[Passage]:
        """The passages that the slice [start, end) of :attr:`text` overlaps."""
        out, pos = [], 0
        for p in self.passages:
            lo, hi = pos, pos + len(p.text)
            if lo < end and start < hi:
                out.append(p)
            pos = hi + 1
        return out


@dataclass(frozen=True)
class Candidate:
    doc: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Reading:
    """The reader's choice: the best candidate, its score, and how well the documents cover the question."""

    candidate: Candidate | None
    score: float
    #: Share of the question's content terms in the best-matching clause of the chosen document.
    clause_cover: float
    #: Share of the question's content terms found anywhere in the chosen document.
    doc_cover: float


def _grams(norm: str) -> set[str]:
    out: set[str] = set()
    for run in _HAN_RUN.findall(norm):
        if len(run) > 1:
            out.update(run[i : i + 2] for i in range(len(run) - 1))
    out.update(_ALNUM.findall(_HAN_RUN.sub(" ", norm)))
    return out


def clean_chars(text: str) -> list[str]:
    """Characters as answers are compared: normalised, without spaces and punctuation."""
    return [c for c in normalize_text(text) if not c.isspace() and c not in _PUNCT]


def char_f1(predicted: str, gold: str) -> float:
    """Character-level F1 of two answers (multiset overlap of :func:`clean_chars`)."""
    p, g = clean_chars(predicted), clean_chars(gold)
    if not p or not g:
        return 0.0
    remaining: dict[str, int] = {}
    for c in g:
        remaining[c] = remaining.get(c, 0) + 1
    common = 0
    for c in p:
        if remaining.get(c, 0) > 0:
            remaining[c] -= 1
            common += 1
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def clauses(text: str) -> list[tuple[int, int]]:
    """[start, end) of each clause of ``text``; whitespace between two clauses is not part of either."""
    out: list[tuple[int, int]] = []
    for match in _CLAUSE.finditer(text):
        pos = match.start()
        for part in re.split(r"(\s+)", match.group(0)):
            if part and not part.isspace():
                out.append((pos, pos + len(part)))
            pos += len(part)
    return out


_ENUM = re.compile(r"[一二三四五六七八九十]+是|[（(][一二三四五六七八九十\d]+[)）]|(?:^|\s)\d+[.、．]")
_QUOTE_OPEN = frozenset('“「《"')
_SENTENCE = re.compile(r"[^。！？!?；;\n]+[。！？!?；;]*")
_STRIP = '，,；;。！？!?：:、“”"（）() \u3000\n\t'
_CLAUSE_END = frozenset("，,；;。！？!?")
#: Sentences per document the reader looks at (those sharing the most weighted terms with the question).
SENTENCES_PER_DOC = 3


_WH = re.compile(r"哪家|哪些|哪个|哪里|哪几|哪|什么|多少|几|何时|何种|何|如何|怎么|怎样|谁")


def _wh_context(question: str) -> tuple[str, str]:
    """The two characters before and after the question word (到[哪家企业]进行 → 到, 进行)."""
    norm = normalize_text(question)
    match = _WH.search(norm)
    if match is None:
        return "", ""
    left = norm[: match.start()].rstrip(_STRIP)[-2:]
    after = norm[match.end() :].lstrip("的")
    # skip the noun the question word governs (哪家企业 → the answer replaces 企业 too)
    right = after.lstrip(_STRIP)
    return left, right


def _question_pairs(question: str) -> set[str]:
    norm = normalize_text(question)
    return {norm[i : i + 2] for i in range(len(norm) - 1) if not any(c in _STRIP for c in norm[i : i + 2])}


@dataclass(frozen=True)
class _Question:
    text: str
    terms: set[str]
    pairs: set[str]
    wh_left: str
    wh_right: str
    qtypes: tuple[float, ...]
    what: float
    chars: set[str]


@dataclass
class _Sentence:
    """What every candidate cut from one sentence shares."""

    text: str
    norm: str
    rank: int
    base: list[float]
    gaps: int
    doc: list[float]


def _row(
    q: _Question,
    ctx: _Sentence,
    kind: str,
    a: int,
    b: int,
    gap: tuple[bool, bool, bool] = (False, False, False),
    sides: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> tuple[list[float], Candidate] | None:
    text = ctx.text
    while a < b and text[a] in _STRIP:
        a += 1
    while b > a and text[b - 1] in _STRIP:
        b -= 1
    if b <= a or b - a > MAX_CHARS:
        return None
    piece = text[a:b]
    lowered = ctx.norm[a:b]
    chars = clean_chars(piece)
    if not chars:
        return None
    novelty = sum(1 for c in chars if c not in q.chars) / len(chars)
    digit = 1.0 if _DIGIT.search(lowered) else 0.0
    date = 1.0 if _DATE.search(lowered) else 0.0
    org = 1.0 if _ORG.search(lowered) else 0.0
    log_len = math.log(len(chars) + 1)
    qt = q.qtypes
    row = [
        *(1.0 if k == kind else 0.0 for k in KINDS),
        *ctx.base,
        *(1.0 if g else 0.0 for g in gap),
        float(len(chars)) if kind in ("gap", "gap_clause") else 0.0,
        float(ctx.gaps),
        *sides,
        1.0 if a > 0 and text[a - 1] in "：:" else 0.0,
        log_len,
        float(sum(piece.count(c) for c in "，,")),
        float(piece.count("、")),
        float(len(_ENUM.findall(piece))),
        novelty,
        len(_grams(lowered) & q.terms) / max(len(q.terms), 1),
        digit,
        date,
        org,
        1.0 if any(c in _QUOTE_OPEN for c in piece) else 0.0,
        *qt,
        q.what,
        float(len(q.terms)),
        math.log(len(q.text) + 1),
        qt[0] * digit,
        qt[1] * date,
        qt[3] * org,
        qt[2] * log_len,
        *ctx.doc,
    ]
    return row, Candidate(ctx.rank, a, b, piece)


def _passage_sims(doc: Document) -> list[tuple[int, int, float]]:
    """[start, end) of each passage in :attr:`Document.text` with its closeness in meaning."""
    bounds, pos = [], 0
    for p in doc.passages:
        bounds.append((pos, pos + len(p.text), p.semantic if p.semantic is not None else 0.0))
        pos += len(p.text) + 1
    return bounds


def _sim_at(bounds: list[tuple[int, int, float]], offset: int) -> float:
    return next((sim for lo, hi, sim in bounds if lo <= offset < hi), 0.0)


def _cut(
    q: _Question, ctx: _Sentence, s: int, e: int, following: list[tuple[int, int]]
) -> list[tuple[list[float], Candidate] | None]:
    """The candidates of the sentence [s, e): gaps in the echo, the rest, the sentence and windows."""
    sent = ctx.norm[s:e]
    mask = [False] * len(sent)
    for i in range(len(sent) - 1):
        if sent[i : i + 2] in q.pairs:
            mask[i] = mask[i + 1] = True
    ctx.gaps = sum(1 for k in range(len(sent)) if not mask[k] and (k == 0 or mask[k - 1]))
    ctx.base[3] = sum(mask) / max(len(sent), 1)  # how much of the sentence the question echoes
    out = []
    i = 0
    while i < len(sent):
        if mask[i]:
            i += 1
            continue
        j = i
        while j < len(sent) and not mask[j]:
            j += 1
        gap = (i > 0 and j < len(sent), i == 0, j == len(sent))
        left, right = sent[max(0, i - 2) : i], sent[j : j + 4]
        left_echo = 1.0 if q.wh_left and left and left[-1:] == q.wh_left[-1:] else 0.0
        right_echo = 1.0 if q.wh_right and right[:2] and right[:2] in q.wh_right[:6] else 0.0
        out.append(_row(q, ctx, "gap", s + i, s + j, gap, (left_echo, right_echo, left_echo * right_echo)))
        k = j
        while k < len(sent) and sent[k] not in _CLAUSE_END:
            k += 1
        if k > j:
            out.append(_row(q, ctx, "gap_clause", s + i, s + k, gap, (left_echo, 0.0, 0.0)))
        i = j
    last = max((k for k, m in enumerate(mask) if m), default=-1)
    if 0 <= last < len(sent) - 1:
        out.append(_row(q, ctx, "rest", s + last + 1, e))
    out.append(_row(q, ctx, "sentence", s, e))
    for extra, (_, end) in enumerate(following[:3], 1):
        out.append(_row(q, ctx, f"window{extra}", s, end))
    if following:
        out.append(_row(q, ctx, "next", *following[0]))
    return out


def candidates(
    question: str, docs: Sequence[Document]
) -> tuple[npt.NDArray[np.float64], list[Candidate], list[tuple[float, float]]]:
    """Feature matrix and candidates for ``question``; per document (best sentence cover, document cover).

    In each document the sentences sharing most of the question's terms are found, terms weighted
    within the document (a term in many of its sentences, like the place or topic of the notice, says
    little; a term in one sentence says a lot), plus the best sentence of the passage closest in meaning.
    Questions are mostly written by echoing the text they ask about, so the candidates are cut around the
    echo: what the question does not repeat (the company in 到…进行督导检查), what follows the last
    repeated part, the sentence and the sentences after it.
    """
    terms = content_terms(question)
    n_terms = max(len(terms), 1)
    wh_left, wh_right = _wh_context(question)
    q = _Question(
        text=question,
        terms=terms,
        pairs=_question_pairs(question),
        wh_left=wh_left,
        wh_right=wh_right,
        qtypes=tuple(
            1.0 if _QTYPE[k].search(question) else 0.0 for k in ("num", "time", "list", "who", "how")
        ),
        what=1.0 if re.search(r"什么|何|哪", question) else 0.0,
        chars=set(clean_chars(question)),
    )
    rows: list[list[float]] = []
    cands: list[Candidate] = []
    covers: list[tuple[float, float]] = []
    top = docs[0].scores.get("fused", 0.0) if docs else 0.0
    for rank, doc in enumerate(docs[:READ_DOCS]):
        text = doc.text
        norm = normalize_text(text)
        sents = [(m.start(), m.end()) for m in _SENTENCE.finditer(text) if m.group(0).strip()]
        if not sents:
            covers.append((0.0, 0.0))
            continue
        n = len(sents)
        grams = [_grams(norm[s:e]) & terms for s, e in sents]
        df: dict[str, int] = {}
        for g in grams:
            for t in g:
                df[t] = df.get(t, 0) + 1
        ceiling = math.log(n + 1) + 1.0
        weight = {t: (math.log((n + 1) / (df[t] + 0.5)) if t in df else ceiling) for t in terms}
        total = sum(weight.values()) or 1.0
        wc = [sum(weight[t] for t in g) / total for g in grams]
        plain = [len(g) / n_terms for g in grams]
        doc_cover = len(set().union(*grams)) / n_terms
        covers.append((max(plain), doc_cover))
        bounds = _passage_sims(doc)
        sims = sorted({b[2] for b in bounds}, reverse=True)
        best_sim = sims[0] if sims else 0.0
        order = sorted(range(n), key=lambda i: -wc[i])[:SENTENCES_PER_DOC]
        semantic_pick = max(range(n), key=lambda i: (_sim_at(bounds, sents[i][0]), wc[i]))
        from_semantic = semantic_pick not in order
        if from_semantic:
            order.append(semantic_pick)
        doc_features = [
            float(rank),
            doc.scores.get("fused", 0.0) / top if top > 0 else 0.0,
            doc.scores.get("semantic", 0.0),
            doc_cover,
        ]
        for srank, si in enumerate(order):
            s, e = sents[si]
            psim = _sim_at(bounds, s)
            ctx = _Sentence(
                text=text,
                norm=norm,
                rank=rank,
                base=[float(srank), wc[si], plain[si], 0.0, si / n],
                gaps=0,
                doc=[
                    *doc_features,
                    psim,
                    best_sim - psim,
                    float(sims.index(psim)) if psim in sims else float(len(sims)),
                    1.0 if from_semantic and si == semantic_pick else 0.0,
                ],
            )
            for made in _cut(q, ctx, s, e, sents[si + 1 : si + 4]):
                if made is not None:
                    rows.append(made[0])
                    cands.append(made[1])
    matrix = np.asarray(rows, dtype=np.float64) if rows else np.zeros((0, len(FEATURES)))
    return matrix, cands, covers


class Ranker:
    """Scores candidates with a LightGBM ranking model (LambdaRank over the features above)."""

    def __init__(self, model_text: str) -> None:
        import lightgbm

        self._booster = lightgbm.Booster(model_str=model_text)
        names = list(self._booster.feature_name())
        if names != [f.replace(" ", "_") for f in FEATURES]:
            raise ValueError("the reader model was fitted for other features; run scripts/train_reader.py")

    @classmethod
    def load(cls, path: Path) -> Ranker:
        return cls(path.read_text(encoding="utf-8"))

    def score(self, matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if not len(matrix):
            return np.zeros(0)
        return np.asarray(self._booster.predict(matrix, num_threads=1), dtype=np.float64)


@lru_cache(maxsize=1)
def shipped_ranker() -> Ranker:
    return Ranker(
        (resources.files("tongban.consult") / "data" / "reader.lgb.txt").read_text(encoding="utf-8")
    )


def read(question: str, docs: Sequence[Document], ranker: Ranker | None = None) -> Reading:
    matrix, cands, covers = candidates(question, docs)
    if not cands:
        return Reading(None, 0.0, 0.0, 0.0)
    scores = (ranker or shipped_ranker()).score(matrix)
    best = int(np.argmax(scores))
    chosen = cands[best]
    clause_cover, doc_cover = covers[chosen.doc]
    return Reading(chosen, float(scores[best]), clause_cover, doc_cover)
