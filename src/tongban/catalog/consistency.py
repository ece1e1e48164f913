"""审批标准一致性校验: the same item offered by several regions or departments, compared side by side.

Items are the same item when they share a basic code (基本编码) or, lacking one, the same normalised name
and item type. The implementations compared are the (region, department) pairs offering it; when one
department offers the item under several codes (业务办理项, one per situation), its codes are taken together
(their materials united, their differing conditions and limits joined). A group is inconsistent in a
dimension (conditions, materials, fees, time limits) when implementations say different things; the
report lists each variant with the implementations that use it.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field

from tongban.catalog.schemas import ItemContent, TimeLimit

DIMENSIONS = ("conditions", "materials", "fees", "statutory_limit", "promised_limit")
_SPACE = re.compile(r"\s+")
_TRAILING = re.compile(r"[；;。，,、\s]+$")


def normalise(text: str | None) -> str:
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text)
    return _TRAILING.sub("", _SPACE.sub("", text))


def _limit(limit: TimeLimit | None) -> str:
    return "" if limit is None else f"{limit.value} {limit.unit.value}"


def _fees(item: ItemContent) -> str:
    if item.charges_fee is None and not item.fees:
        return ""
    if item.charges_fee is False:
        return "free"
    return "; ".join(
        f"{normalise(f.name)}={f.amount_fen if f.amount_fen is not None else '?'}" for f in item.fees
    )


def _materials(item: ItemContent) -> frozenset[str]:
    return frozenset(f"{normalise(m.name)}{'' if m.required else ' (optional)'}" for m in item.materials)


@dataclass(frozen=True)
class Member:
    """One implementation: a department in a region, with the item code(s) it uses."""

    code: str
    region: str
    department: str
    codes: tuple[str, ...] = ()


@dataclass
class Variant:
    value: str
    members: list[Member] = field(default_factory=list)


@dataclass
class Difference:
    dimension: str
    variants: list[Variant]
    #: For materials: what every member asks for, and what only some do (per member).
    common: list[str] = field(default_factory=list)
    extra: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Group:
    key: str
    name: str
    members: list[Member]
    differences: list[Difference]


@dataclass
class ConsistencyReport:
    items_checked: int
    groups_checked: int
    groups: list[Group]

    @property
    def inconsistent(self) -> list[Group]:
        return [g for g in self.groups if g.differences]

    def totals(self) -> dict[str, int]:
        counts = dict.fromkeys(DIMENSIONS, 0)
        for g in self.groups:
            for d in g.differences:
                counts[d.dimension] += 1
        return counts


def group_key(item: ItemContent) -> str:
    if item.basic_code:
        return f"basic:{item.basic_code}"
    return f"name:{normalise(item.name)}|{item.item_type.value}"


def _joined(values: list[str]) -> str:
    return " | ".join(sorted(set(values)))


def _dimension_value(dimension: str, items: list[ItemContent]) -> str:
    if dimension == "conditions":
        return _joined([normalise(i.conditions) for i in items])
    if dimension == "materials":
        return "\n".join(sorted(frozenset().union(*(_materials(i) for i in items))))
    if dimension == "fees":
        return _joined([_fees(i) for i in items])
    return _joined([_limit(getattr(i, dimension)) for i in items])


def build_report(items: list[ItemContent]) -> ConsistencyReport:
    buckets: dict[str, list[ItemContent]] = defaultdict(list)
    for item in items:
        buckets[group_key(item)].append(item)
    groups: list[Group] = []
    for key, members in sorted(buckets.items()):
        by_place: dict[tuple[str, str], list[ItemContent]] = defaultdict(list)
        for m in sorted(members, key=lambda m: (m.region, m.department, m.code)):
            by_place[(m.region, m.department)].append(m)
        if len(by_place) < 2:
            # One department's several codes of one item are its situations, not a consistency question.
            continue
        refs = {
            place: Member(its[0].code, place[0], place[1], tuple(i.code for i in its))
            for place, its in by_place.items()
        }
        differences: list[Difference] = []
        for dimension in DIMENSIONS:
            values: dict[str, Variant] = {}
            for place, its in by_place.items():
                value = _dimension_value(dimension, its)
                values.setdefault(value, Variant(value)).members.append(refs[place])
            if len(values) < 2:
                continue
            diff = Difference(dimension, sorted(values.values(), key=lambda v: -len(v.members)))
            if dimension == "materials":
                sets = {
                    refs[place].code: frozenset().union(*(_materials(i) for i in its))
                    for place, its in by_place.items()
                }
                common = frozenset.intersection(*sets.values())
                diff.common = sorted(common)
                diff.extra = {code: sorted(s - common) for code, s in sets.items() if s - common}
            differences.append(diff)
        groups.append(Group(key, members[0].name, list(refs.values()), differences))
    return ConsistencyReport(items_checked=len(items), groups_checked=len(groups), groups=groups)
