"""What a question asks about: its content terms (without the question words) and the names it is
specific about (places, years, document numbers, quoted programme names).

A document that answers a question has to mention the specific names the question gives: a question
about 拉萨市 is not answered by a notice of 成都市, nor one about 2023 by a notice of 2020. The reader uses
the content terms to find the answer; the consultation refuses when a specific name is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jieba  # type: ignore[import-untyped]

from tongban.knowledge.service import normalize_text

jieba.setLogLevel(60)

#: Question words and fillers: they say what kind of answer is wanted, not what it is about.
QUESTION_WORDS = (
    "有哪些",
    "是什么",
    "有什么",
    "为什么",
    "怎么样",
    "什么",
    "哪些",
    "哪个",
    "哪家",
    "哪几",
    "哪里",
    "哪儿",
    "如何",
    "怎么",
    "怎样",
    "是否",
    "多少",
    "为何",
    "有何",
    "何时",
    "请问",
    "具体",
    "主要",
    "能否",
    "可否",
    "可以",
    "需要",
    "应该",
    "应当",
    "一下",
    "我想",
    "想问",
    "咨询",
    "的",
    "了",
    "吗",
    "呢",
    "啊",
    "吧",
)
_QW_RE = re.compile("|".join(re.escape(w) for w in sorted(QUESTION_WORDS, key=len, reverse=True)))
_HAN_RUN = re.compile(r"[\u3400-\u9fff]+")
_ALNUM = re.compile(r"[a-z0-9]+")

_ADMIN_SUFFIX = "省|市|自治区|自治州|地区|州|盟|县|旗|区|镇|乡"
#: Administrative names: two to six characters before a suffix, not starting with a generic word.
_PLACE = re.compile(rf"([\u4e00-\u9fff]{{2,6}}?)(?:{_ADMIN_SUFFIX})")
_GENERIC_PLACE = re.compile(
    r"^(?:全|本|各|我|该|此|外|城|市|省|县|区|辖|地|社|小|园|片|景|街|新|老|疫|重点|高风险|中风险|低风险|风险|"
    r"行政|自治|特别|经济|开发|示范|试验|保税|功能|城乡|农村|山区|牧区|灾区|疫区|发达|贫困|相关|所在|当地|"
    r"居住|生活|工作|管辖|同一|其他|境内|境外|市场|服务|商业|住宅|工业|产业|校|厂|矿|湖北以外|以外)"
)
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})\s*年")
_DOC_NUMBER = re.compile(r"[〔\[（(]\s*(\d{4})\s*[〕\]）)]\s*(\d+)\s*号")
_QUOTED = re.compile(r"[“\"「『]([^“”\"「」『』]{2,20})[”\"」』]")


def content_terms(question: str) -> set[str]:
    """Character bigrams (and letter/digit words) of the question with the question words removed."""
    text = _QW_RE.sub(" ", normalize_text(question))
    out: set[str] = set()
    for run in _HAN_RUN.findall(text):
        if len(run) == 1:
            out.add(run)
        else:
            out.update(run[i : i + 2] for i in range(len(run) - 1))
    out.update(_ALNUM.findall(_HAN_RUN.sub(" ", text)))
    return out


@dataclass(frozen=True)
class Specifics:
    """Names a question is specific about, each as the core that a supporting text must contain."""

    places: tuple[str, ...]
    years: tuple[str, ...]
    documents: tuple[str, ...]
    quoted: tuple[str, ...]

    def missing_in(self, text: str) -> list[str]:
        """The names of the question that ``text`` (normalised) does not mention."""
        norm = normalize_text(text)
        squeezed = re.sub(r"\s+", "", norm)
        missing = [p for p in self.places if p not in norm]
        missing += [f"{y}年" for y in self.years if y not in norm]
        missing += [d for d in self.documents if d not in squeezed]
        missing += [q for q in self.quoted if q not in norm]
        return missing


_GENERIC_NS = frozenset(
    {
        "城市",
        "全国",
        "国家",
        "农村",
        "地区",
        "城乡",
        "乡村",
        "社区",
        "境外",
        "境内",
        "国内",
        "国外",
        "东西",
        "南北",
        "中外",
    }
)


_PLACE_ENDINGS = frozenset("山江河湖海岛州城关口特齐泰尔古林庆阳安京津沙门港澳湾原宁南北东西")


def _places(text: str) -> list[str]:
    """Place names: words jieba tags as places, and a name followed by 省/市/区/县… where the name is one
    word (怀柔 + 区) — never a phrase that happens to end in such a character (管理部向湖北 + 省)."""
    import jieba.posseg as pseg  # type: ignore[import-untyped]  # 1.3 s to load: only when asked

    tokens = [(w, f) for w, f in pseg.lcut(text)]
    cores: list[str] = []
    starts: dict[int, int] = {}
    pos = 0
    for n, (word, flag) in enumerate(tokens):
        starts[pos] = n
        pos += len(word)
        if flag.startswith("ns") and len(word) >= 2 and word not in _GENERIC_NS:
            core = re.sub(rf"(?:{_ADMIN_SUFFIX})$", "", word)
            # jieba tags some phrases as places (确保安全): a long name without a suffix must end like one
            if core == word and len(core) >= 4 and core[-1] not in _PLACE_ENDINGS:
                continue
            if len(core) >= 2 and not _GENERIC_PLACE.match(core) and core not in _GENERIC_NS:
                cores.append(core)
    for match in _PLACE.finditer(text):
        at = starts.get(match.start())
        if at is None:
            continue
        word = tokens[at][0]
        following = tokens[at + 1][0] if at + 1 < len(tokens) else ""
        if not (
            word == match.group(0) or (word == match.group(1) and following == match.group(0)[len(word) :])
        ):
            continue
        core = match.group(1)
        if _GENERIC_PLACE.match(core) or _QW_RE.search(core) or core in _GENERIC_NS:
            continue
        cores.append(core)
    return list(dict.fromkeys(cores))


def specifics(question: str) -> Specifics:
    text = normalize_text(question)
    documents = [f"〔{y}〕{n}号" for y, n in _DOC_NUMBER.findall(text)]
    return Specifics(
        places=tuple(_places(text)),
        years=tuple(dict.fromkeys(_YEAR.findall(text))),
        documents=tuple(dict.fromkeys(normalize_text(d) for d in documents)),
        quoted=tuple(dict.fromkeys(q.strip() for q in _QUOTED.findall(text) if q.strip())),
    )
