"""Chinese text analysis for search: normalisation, segmentation, character bigrams, synonym expansion.

Every text the index holds and every query pass through one :class:`Analyzer`, so both sides agree:

* **normalise**: Unicode NFKC (full-width letters and digits become ASCII), Traditional → Simplified
  (OpenCC ``t2s``), lower case. A Traditional query finds Simplified content and the reverse.
* **words**: jieba in search mode with the governed user dictionary, so 一网通办, 免申即享 or a licence name
  stay one token; item codes and other letter/digit runs are never split.
* **grams**: overlapping character bigrams of every Han run, plus whole letter/digit tokens. Bigrams make
  recall independent of segmentation mistakes; words add precision. Both are indexed and scored.
* **synonyms**: the governed table maps colloquial and short names to official ones (社保卡 → 社会保障卡).
  A query is expanded both ways: the official term is added for an alias, and the aliases for an official
  term (content written colloquially is found by the official name too).
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jieba  # type: ignore[import-untyped]
import opencc

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_ALNUM = re.compile(r"[0-9a-z][0-9a-z\-_./]*[0-9a-z]|[0-9a-z]")
_TOKEN_OK = re.compile(r"[\w]", re.UNICODE)
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2060\ufeff]")

jieba.setLogLevel(logging.WARNING)

#: English function words dropped from queries with no Chinese in them (they would match codes such as
#: "A卡" or stray Latin text in Chinese content and drown the meaning-based signal).
ENGLISH_STOPWORDS = frozenset(
    """a an the i me my we our you your he she it its they their this that these those is are was were be
    been am do does did doing have has had can could should would will shall may might must to of in on at
    by for with from into about as and or but if not no so than then there here what which who whom whose
    when where why how all any some each every get got want need needs please help tell know like just
    also only one s t""".split()  # noqa: SIM905 - a word list reads better as text
)


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def normalize(text: str) -> str:
    """The comparable form of a text: NFKC, Simplified, lower case, invisible characters removed."""
    text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))
    return str(_t2s().convert(text)).lower()


@dataclass(frozen=True)
class Lexicon:
    """The governed vocabulary an analyzer uses: dictionary terms and alias → canonical synonyms."""

    terms: tuple[tuple[str, int, str], ...] = ()
    synonyms: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def builtin(cls) -> Lexicon:
        """The seed lexicon shipped with the package (``knowledge/data``)."""
        return cls(terms=tuple(builtin_terms()), synonyms=builtin_synonyms())

    def merged(self, terms: Iterable[tuple[str, int, str]], synonyms: Mapping[str, str]) -> Lexicon:
        merged_synonyms = dict(self.synonyms)
        merged_synonyms.update(synonyms)
        return Lexicon(terms=(*self.terms, *terms), synonyms=merged_synonyms)


def _data(name: str) -> str:
    return resources.files("tongban.knowledge").joinpath("data", name).read_text(encoding="utf-8")


def builtin_terms() -> list[tuple[str, int, str]]:
    out: list[tuple[str, int, str]] = []
    for raw in _data("lexicon_terms.txt").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        word = parts[0]
        freq = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 5000
        tag = parts[2] if len(parts) > 2 else "nz"
        out.append((word, freq, tag))
    return out


def builtin_synonyms() -> dict[str, str]:
    """The seed synonym table plus the English glossary (English names of official Chinese terms)."""
    out: dict[str, str] = {}
    for name in ("synonyms.tsv", "glossary_en.tsv"):
        try:
            text = _data(name)
        except FileNotFoundError:  # pragma: no cover - both ship with the package
            continue
        for i, raw in enumerate(text.splitlines()):
            if i == 0 or not raw.strip() or raw.startswith("#"):
                continue
            cols = raw.split("\t")
            if len(cols) >= 2 and cols[0].strip() and cols[1].strip():
                out.setdefault(cols[0].strip(), cols[1].strip())
    return out


_LATIN_HYPHEN = re.compile(r"(?<=[a-z])-(?=[a-z])")


@dataclass(frozen=True)
class QueryTerms:
    """An analysed query: the terms of the text itself and those added by synonym expansion."""

    text: str
    words: list[str]
    grams: list[str]
    expanded_words: list[str]
    expanded_grams: list[str]
    #: The query with aliases replaced by official terms (what the embedding model sees).
    rewritten: str
    synonyms_applied: list[tuple[str, str]]
    #: Whether the query has Chinese in it (if not, lexical matching against Chinese content is weak).
    han: bool = True
    #: A query without Chinese whose glossary expansions added Chinese terms.
    translated: bool = False


class Analyzer:
    """Segmentation and expansion with one lexicon. Thread-safe; build once per lexicon."""

    def __init__(self, lexicon: Lexicon | None = None) -> None:
        self.lexicon = lexicon or Lexicon.builtin()
        self._lock = threading.Lock()
        tokenizer = jieba.Tokenizer()
        tokenizer.tmp_dir = str(Path(tempfile.gettempdir()))
        tokenizer.initialize()
        for word, freq, tag in self.lexicon.terms:
            tokenizer.add_word(normalize(word), freq, tag)
        self._tokenizer = tokenizer
        known = {normalize(word) for word, _, _ in self.lexicon.terms}
        synonyms: dict[str, str] = {}
        for alias, canonical in self.lexicon.synonyms.items():
            a, c = _LATIN_HYPHEN.sub(" ", normalize(alias)), normalize(canonical)
            if a and c and a != c:
                synonyms[a] = c
                for word in (a, c):
                    if word not in known:
                        tokenizer.add_word(word, 3000, "nz")
                        known.add(word)
        self._synonyms = synonyms
        self._aliases_of: dict[str, list[str]] = {}
        for a, c in synonyms.items():
            self._aliases_of.setdefault(c, []).append(a)
        keys = sorted({*synonyms, *self._aliases_of}, key=len, reverse=True)
        # Latin aliases match whole words only ("card" must not fire inside "cardiology").
        patterns = [rf"\b{re.escape(k)}\b" if k.isascii() else re.escape(k) for k in keys]
        self._synonym_re = re.compile("|".join(patterns)) if patterns else None

    # -- tokens -----------------------------------------------------------------------------------------

    def words(self, text: str, *, normalized: bool = False) -> list[str]:
        """Search-mode word tokens (dictionary-aware), punctuation and whitespace dropped."""
        norm = text if normalized else normalize(text)
        with self._lock:
            tokens = self._tokenizer.lcut_for_search(norm, HMM=True)
        return [t for t in (tok.strip() for tok in tokens) if t and _TOKEN_OK.search(t)]

    @staticmethod
    def grams(text: str, *, normalized: bool = False) -> list[str]:
        """Character bigrams of Han runs (a lone character stands for itself) and whole letter/digit runs."""
        norm = text if normalized else normalize(text)
        out: list[str] = []
        for run in _HAN.findall(norm):
            if len(run) == 1:
                out.append(run)
            else:
                out.extend(run[i : i + 2] for i in range(len(run) - 1))
        out.extend(_ALNUM.findall(_HAN.sub(" ", norm)))
        return out

    # -- queries ----------------------------------------------------------------------------------------

    def analyze_query(self, text: str) -> QueryTerms:
        norm = normalize(text)
        applied: list[tuple[str, str]] = []
        additions: list[str] = []
        rewritten = norm
        if self._synonym_re is not None:
            # "joint-stock" and "joint stock" are the same English term for the glossary.
            spaced = rewritten = _LATIN_HYPHEN.sub(" ", norm)
            for found in dict.fromkeys(m.group(0) for m in self._synonym_re.finditer(spaced)):
                if found in self._synonyms:
                    canonical = self._synonyms[found]
                    if canonical not in norm:
                        additions.append(canonical)
                        applied.append((found, canonical))
                        rewritten = rewritten.replace(found, canonical)
                else:
                    for alias in self._aliases_of.get(found, []):
                        if alias.isascii():  # English names only help English questions
                            continue
                        additions.append(alias)
                        applied.append((found, alias))
        words = self.words(norm, normalized=True)
        grams = self.grams(norm, normalized=True)
        han = bool(_HAN.search(norm))
        translated = False
        if not han:  # an English query: drop function words; note whether the glossary translated part of it
            translated = bool(_HAN.search(" ".join(additions)))
            words = [w for w in words if w not in ENGLISH_STOPWORDS]
            grams = [g for g in grams if g not in ENGLISH_STOPWORDS]
        extra = " ".join(additions)
        return QueryTerms(
            text=norm,
            words=words,
            grams=grams,
            expanded_words=[w for w in self.words(extra, normalized=True) if w not in words],
            expanded_grams=[g for g in self.grams(extra, normalized=True) if g not in grams],
            rewritten=rewritten,
            synonyms_applied=applied,
            han=han,
            translated=translated,
        )

    def highlight_terms(self, query: QueryTerms) -> list[str]:
        """Terms worth marking in a snippet: query words and expansions, longest first, no single letters."""
        terms = {t for t in (*query.words, *query.expanded_words) if len(t) > 1 or _HAN.fullmatch(t)}
        return sorted(terms, key=len, reverse=True)
