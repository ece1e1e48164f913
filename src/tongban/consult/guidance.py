"""Situation guidance (情形引导): ask the questions that tell an item's situations apart, one at a time, then
give the applicant's own checklist (conditions, materials, time limit, place, fees, where to apply).

An item's ``situation_questions`` say which situations stay possible with each answer. Answers are applied
in the questions' order; the next question is the first unanswered one that still splits the remaining
situations, so a question that no longer tells anything apart is skipped. An item with two or more
situations but no questions asks one implicit question whose options are the situations. Only published
items are read, through the catalogue's service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import quote

from sqlalchemy.orm import Session

from tongban.catalog import service as catalog_service
from tongban.catalog.schemas import ItemContent, Material, SituationOption, SituationQuestion, TimeLimit
from tongban.catalog.vocab import MaterialSource, label
from tongban.core.auth import ANONYMOUS
from tongban.core.errors import InvalidInput, NotFound
from tongban.core.text import to_traditional

LANGUAGES = ("zh-Hans", "zh-Hant", "en")
#: The key of the implicit question of an item with situations but no questions of its own.
IMPLICIT_QUESTION = "situation"
_IMPLICIT_TEXT = ("您属于以下哪种情形？", "Which of these applies to you?")
_SUPPLIED = frozenset({MaterialSource.E_LICENCE, MaterialSource.SHARED_DATA})


@dataclass(frozen=True)
class GuidanceOption:
    key: str
    label: str


@dataclass(frozen=True)
class GuidanceQuestion:
    key: str
    text: str
    #: Only the options that some remaining situation is compatible with, in their defined order.
    options: list[GuidanceOption]


@dataclass(frozen=True)
class ChecklistMaterial:
    name: str
    copies: int
    #: The form as a display label in the requested language (原件 / Original), or None.
    form: str | None
    required: bool
    #: The platform fetches it (e-licence or shared data): the applicant need not bring it.
    supplied: bool
    note: str | None


@dataclass(frozen=True)
class Checklist:
    #: Names of the situations the answers leave (empty for an item without situations).
    situations: list[str]
    conditions: list[str]
    materials: list[ChecklistMaterial]
    time_limit: str | None
    place: str | None
    office_hours: str | None
    fees: list[str]
    phone: str | None
    online_url: str | None
    apply_url: str


@dataclass(frozen=True)
class GuidanceStep:
    item_code: str
    item_name: str
    #: (question text, option label) of each answer, in the questions' order.
    answered: list[tuple[str, str]]
    #: The next question, or None when the checklist is ready.
    question: GuidanceQuestion | None
    checklist: Checklist | None


def items_with_situations(session: Session) -> list[tuple[str, str]]:
    """(code, name) of the published items with two or more situations, sorted by name."""
    found = [(c.code, c.name) for c in catalog_service.export_items(session) if len(c.situations) >= 2]
    return sorted(found, key=lambda pair: (pair[1], pair[0]))


def guided(session: Session, codes: Iterable[str]) -> set[str]:
    """Which of ``codes`` are published items with two or more situations (reads only those items)."""
    out = set()
    for code in dict.fromkeys(codes):
        try:
            if len(catalog_service.get_item(session, ANONYMOUS, code).content.situations) >= 2:
                out.add(code)
        except NotFound:
            continue
    return out


def guide(
    session: Session, code: str, answers: Mapping[str, str], *, language: str = "zh-Hans"
) -> GuidanceStep:
    """The next question for a published item given the answers so far, or the checklist when none is left.

    ``answers`` maps question keys to option keys. Raises ``NotFound`` for an unknown or unpublished item and
    ``InvalidInput`` for an unknown question or option, or answers that leave no situation.
    """
    content = catalog_service.get_item(session, ANONYMOUS, code).content
    return guide_item(content, answers, language=language)


def guide_item(
    content: ItemContent, answers: Mapping[str, str], *, language: str = "zh-Hans"
) -> GuidanceStep:
    """:func:`guide` for given content (no database)."""
    if language not in LANGUAGES:
        raise InvalidInput(f"unknown language {language!r}; known: {', '.join(LANGUAGES)}")
    en = language == "en"
    questions = situation_questions(content)
    known = {q.key for q in questions}
    unknown = sorted(set(answers) - known)
    if unknown:
        raise InvalidInput(f"item {content.code!r} has no question {unknown[0]!r}")
    candidates = [s.key for s in content.situations]
    answered: list[tuple[SituationQuestion, SituationOption]] = []
    for q in questions:
        if q.key not in answers:
            continue
        option = next((o for o in q.options if o.key == answers[q.key]), None)
        if option is None:
            raise InvalidInput(f"question {q.key!r} has no option {answers[q.key]!r}")
        remaining = [c for c in candidates if c in option.situations]
        if not remaining:
            raise InvalidInput(
                f"the answer {option.key!r} to question {q.key!r} contradicts the earlier answers: "
                "no situation is left"
            )
        candidates = remaining
        answered.append((q, option))
    step = GuidanceStep(
        item_code=content.code,
        item_name=(content.name_en or content.name) if en else content.name,
        answered=[(_text(q, en), _label(o, en)) for q, o in answered],
        question=None,
        checklist=None,
    )
    following = next((q for q in questions if q.key not in answers and _splits(q, candidates)), None)
    if following is not None:
        shown = [
            GuidanceOption(o.key, _label(o, en))
            for o in following.options
            if set(o.situations) & set(candidates)
        ]
        step = replace(step, question=GuidanceQuestion(following.key, _text(following, en), shown))
    else:
        step = replace(step, checklist=_checklist(content, candidates, language))
    return _hant_step(step) if language == "zh-Hant" else step


def situation_questions(content: ItemContent) -> list[SituationQuestion]:
    """The item's questions, or the implicit one when it has two or more situations and no questions."""
    if content.situation_questions or len(content.situations) < 2:
        return list(content.situation_questions)
    options = [
        SituationOption(key=s.key, label=s.name, label_en=s.name_en, situations=[s.key])
        for s in content.situations
    ]
    return [
        SituationQuestion(
            key=IMPLICIT_QUESTION, text=_IMPLICIT_TEXT[0], text_en=_IMPLICIT_TEXT[1], options=options
        )
    ]


def _splits(question: SituationQuestion, candidates: list[str]) -> bool:
    """Whether answering tells the candidates apart: two options leave different, non-empty sets."""
    outcomes = {frozenset(candidates) & frozenset(o.situations) for o in question.options}
    outcomes.discard(frozenset())
    return len(outcomes) >= 2


def _text(question: SituationQuestion, en: bool) -> str:
    return (question.text_en or question.text) if en else question.text


def _label(option: SituationOption, en: bool) -> str:
    return (option.label_en or option.label) if en else option.label


# -- the checklist ------------------------------------------------------------------------------------------


def _checklist(content: ItemContent, candidates: list[str], language: str) -> Checklist:
    en = language == "en"
    situations = [s for s in content.situations if s.key in candidates]
    names = {s.key: (s.name_en or s.name) if en else s.name for s in situations}
    conditions = [content.conditions] if content.conditions else []
    for s in situations:
        if s.extra_conditions:
            prefix = (f"{names[s.key]}: " if en else f"{names[s.key]}：") if len(situations) > 1 else ""
            conditions.append(prefix + s.extra_conditions)
    materials = [m for m in (_material(mat, candidates, names, language) for mat in content.materials) if m]
    return Checklist(
        situations=[names[s.key] for s in situations],
        conditions=conditions,
        materials=materials,
        time_limit=_time_limit(content.promised_limit, content.statutory_limit, language),
        place=content.location,
        office_hours=content.office_hours,
        fees=_fees(content, en),
        phone=content.consult_phone,
        online_url=content.online_url,
        apply_url=f"/catalog/items/{quote(content.code, safe='')}",
    )


def _material(
    material: Material, candidates: list[str], names: Mapping[str, str], language: str
) -> ChecklistMaterial | None:
    """The material as the remaining situations need it; None when none of them needs it."""
    en = language == "en"
    required = material.required and material.source != MaterialSource.EXEMPT
    notes = [material.note] if material.note else []
    if material.source == MaterialSource.EXEMPT:
        notes.append(label(MaterialSource.EXEMPT, language))
    if material.situations and candidates:
        applies = [c for c in candidates if c in material.situations]
        if not applies:
            return None
        if len(applies) < len(candidates):
            required = False
            which = (", " if en else "、").join(names[c] for c in applies)
            notes.append(f"Only for: {which}" if en else f"仅适用于：{which}")
    return ChecklistMaterial(
        name=material.name,
        copies=material.copies,
        form=label(material.form, language) if material.form else None,
        required=required,
        supplied=material.source in _SUPPLIED,
        note=("; " if en else "；").join(notes) or None,
    )


def _time_limit(promised: TimeLimit | None, statutory: TimeLimit | None, language: str) -> str | None:
    """``承诺 5 个工作日（法定 20 个工作日）`` or ``Promised: 5 working days (statutory limit: ...)``."""
    if language == "en":
        if promised and statutory:
            return f"Promised: {_en_limit(promised)} (statutory limit: {_en_limit(statutory)})"
        if promised:
            return f"Promised: {_en_limit(promised)}"
        return f"Statutory limit: {_en_limit(statutory)}" if statutory else None
    if promised and statutory:
        return f"承诺{_zh_limit(promised)}（法定{_zh_limit(statutory)}）"
    if promised:
        return f"承诺{_zh_limit(promised)}"
    return f"法定{_zh_limit(statutory)}" if statutory else None


def _zh_limit(limit: TimeLimit) -> str:
    return f" {limit.value} {label(limit.unit, 'zh-Hans')}" if limit.value else "即办"


def _en_limit(limit: TimeLimit) -> str:
    if not limit.value:
        return "on the spot"
    unit = label(limit.unit, "en")
    return f"1 {unit.removesuffix('s')}" if limit.value == 1 else f"{limit.value} {unit}"


def _fees(content: ItemContent, en: bool) -> list[str]:
    if content.charges_fee is False:
        return ["Free of charge" if en else "免费"]
    out = []
    for fee in content.fees:
        text = fee.name
        if fee.amount_fen is not None:
            yuan, fen = divmod(fee.amount_fen, 100)
            amount = f"{yuan}.{fen:02d}" if fen else str(yuan)
            text += f": CNY {amount}" if en else f"：{amount} 元"
        if fee.basis:
            text += f" ({fee.basis})" if en else f"（{fee.basis}）"
        out.append(text)
    return out


# -- Traditional Chinese ------------------------------------------------------------------------------------


def _hant(text: str) -> str:
    return to_traditional(text)


def _opt(convert: Callable[[str], str], text: str | None) -> str | None:
    return None if text is None else convert(text)


def _hant_step(step: GuidanceStep) -> GuidanceStep:
    """The step with every displayed Chinese text in Traditional characters (keys and links unchanged)."""
    c = _hant
    question = step.question
    if question is not None:
        question = replace(
            question, text=c(question.text), options=[replace(o, label=c(o.label)) for o in question.options]
        )
    checklist = step.checklist
    if checklist is not None:
        checklist = replace(
            checklist,
            situations=[c(s) for s in checklist.situations],
            conditions=[c(s) for s in checklist.conditions],
            materials=[
                replace(m, name=c(m.name), form=_opt(c, m.form), note=_opt(c, m.note))
                for m in checklist.materials
            ],
            time_limit=_opt(c, checklist.time_limit),
            place=_opt(c, checklist.place),
            office_hours=_opt(c, checklist.office_hours),
            fees=[c(f) for f in checklist.fees],
            phone=_opt(c, checklist.phone),
        )
    return replace(
        step,
        item_name=c(step.item_name),
        answered=[(c(q), c(a)) for q, a in step.answered],
        question=question,
        checklist=checklist,
    )
