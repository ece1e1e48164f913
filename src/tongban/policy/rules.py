"""Policy items as code: the rule files, checked, and what follows from them alone.

A **rule set** is what a policy office maintains in review: the *variables* (the facts about a person, a
household or an enterprise that rules may read, each with the data that proves it) and the *items*
(政策事项: one benefit each, with its conditions, amount, stacking and budget, and test cases). Both are
YAML or JSON; :func:`load_rule_set` checks everything a reviewer should not have to (names, types of every
expression, citations, proofs, tests) and refuses the file with the reasons otherwise.

Conditions are of a closed set of types; each compiles to one boolean expression of :mod:`.expr`:

============  ==========================================================================================
type          meaning
============  ==========================================================================================
region        ``variable`` is in one of ``codes`` (GB/T 2260; a province or city covers its districts)
industry      ``variable`` is in one of ``codes`` (GB/T 4754; a section letter or a code prefix)
compare       ``variable`` ``op`` ``value`` (=, <>, <, <=, >, >=)
range         ``min`` <= ``variable`` <= ``max`` (either bound may be left out)
one_of        ``variable`` is one of ``values``
flag          the yes/no ``variable`` is ``value`` (default yes)
consecutive   the yes/no monthly (or yearly) ``variable`` was yes in each of the last ``periods`` periods
growth        the periodic ``variable`` grew by at least ``min_percent`` % over ``periods`` periods (the
              earlier value must be positive)
expr          any boolean expression of the language (:mod:`.expr`)
============  ==========================================================================================

Every condition cites its legal ``source`` and names the data that prove it: by default the proofs of the
variables it reads; a condition may say ``proof: applicant`` (the applicant must supply it). An item
whose conditions are all proven by shared data or e-licences may be granted without application (免申即享);
otherwise it is a fast application (直达快享) prefilled with what is known.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tongban.policy import expr as E

Entity = Literal["person", "household", "enterprise"]
ProofKind = Literal["shared_data", "e_licence", "applicant"]
Support = Literal["减免", "奖补", "权益", "资质"]
Result = Literal["eligible", "not_eligible", "undetermined"]

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{1,79}$")


class RuleError(ValueError):
    """A rule set that cannot be used, with every reason found."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    zh: str = Field(min_length=1, max_length=300)
    en: str = Field(default="", max_length=300)


class Proof(_Strict):
    """The data that prove a fact: a shared-data item or an e-licence (by its catalogue name), or the
    applicant's own statement or document."""

    kind: ProofKind
    name: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _named(self) -> Proof:
        if self.kind != "applicant" and not self.name.strip():
            raise ValueError("a shared-data item or e-licence proof names its source")
        return self

    @property
    def data_bound(self) -> bool:
        return self.kind != "applicant"


class Source(_Strict):
    """Where the law says it: the document's number (文号) and the article, with the words quoted."""

    document: str = Field(default="", max_length=200)
    article: str = Field(min_length=1, max_length=100)
    quote: str = Field(default="", max_length=2000)


class Aggregate(_Strict):
    """A household's fact computed over its members (the persons whose ``household_id`` is the
    household's): the ``count`` of members for whom ``where`` holds; the ``sum``, ``min`` or ``max`` of
    ``of`` (a person expression) over them; whether ``any`` or ``all`` of them have ``of`` (yes/no).
    Unknown spreads: a member for whom ``where`` or ``of`` is unknown makes the result unknown unless the
    others already decide it (one member with ``of`` true decides ``any``)."""

    fn: Literal["count", "sum", "min", "max", "any", "all"]
    of: str | None = None
    where: str | None = None

    @model_validator(mode="after")
    def _of(self) -> Aggregate:
        if (self.fn == "count") != (self.of is None):
            raise ValueError("count takes no 'of'; sum, min, max, any and all take one")
        return self


class Variable(_Strict):
    """A fact about an entity that rules may read."""

    name: str
    entity: Entity
    kind: Literal["bool", "int", "money", "text", "date", "code"]
    #: ``month`` or ``year``: the fact has a value per period (``prev(name, n)`` reads earlier ones).
    period: Literal["month", "year"] | None = None
    label: Text
    #: What proves it (a derived variable is proven by what it is derived from).
    proof: Proof | None = None
    #: A derived variable: an expression over the entity's other variables (no periods).
    expr: str | None = None
    #: A household's fact over its members (with ``proof``: the register of who the members are).
    aggregate: Aggregate | None = None
    #: Personal-data class (PIPL): ``sensitive`` facts are shown only to officers with the right.
    classification: Literal["public", "personal", "sensitive"] = "personal"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return E.check_name(v, "variable")

    @model_validator(mode="after")
    def _proof_or_expr(self) -> Variable:
        if self.aggregate is not None:
            if self.entity != "household" or self.expr is not None or self.period is not None:
                raise ValueError(f"{self.name}: an aggregate is a household's, without expr or periods")
            if self.proof is None:
                raise ValueError(f"{self.name}: an aggregate's proof names the register of the members")
            return self
        if (self.proof is None) == (self.expr is None):
            raise ValueError(f"{self.name}: give either proof (a fact) or expr (a derived variable)")
        if self.expr is not None and self.period is not None:
            raise ValueError(f"{self.name}: a derived variable has no periods")
        return self

    @property
    def given(self) -> bool:
        """A fact given as it is (neither derived nor an aggregate over members)."""
        return self.expr is None and self.aggregate is None


class Condition(_Strict):
    id: str
    text: Text
    type: Literal["region", "industry", "compare", "range", "one_of", "flag", "consecutive", "growth", "expr"]
    variable: str | None = None
    codes: list[str] = Field(default_factory=list)
    op: Literal["=", "<>", "<", "<=", ">", ">="] | None = None
    value: Any = None
    values: list[Any] = Field(default_factory=list)
    min: Any = None
    max: Any = None
    periods: int | None = Field(default=None, ge=1, le=120)
    min_percent: int | None = Field(default=None, ge=-100, le=100_000)
    expr: str | None = None
    source: Source
    #: Overrides the variables' proofs (``{kind: applicant}``: the applicant must supply it).
    proof: Proof | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return E.check_name(v, "condition")


class Amount(_Strict):
    """The benefit in fen: an integer expression, capped, rounded down to a multiple of ``round_to_fen``."""

    expr: str
    cap_fen: int | None = Field(default=None, ge=0)
    round_to_fen: int = Field(default=1, ge=1)


class Stacking(_Strict):
    """Items of one ``group`` are not all enjoyed: ``exclusive`` (不重复享受: the first granted) or
    ``highest`` (就高: the largest amount)."""

    group: str
    rule: Literal["exclusive", "highest"]


class Budget(_Strict):
    pool: str
    total_fen: int = Field(ge=0)


class Expected(_Strict):
    result: Result
    amount_fen: int | None = None
    #: Variables named as missing (``name`` or ``name@n`` for n periods back), for an undetermined result.
    missing: list[str] | None = None
    failed: list[str] | None = None


class Case(_Strict):
    name: str = Field(min_length=1, max_length=200)
    #: The reference date the case is decided on (ages, periods and the window follow from it).
    date: dt.date
    inputs: dict[str, Any]
    expect: Expected


class Window(_Strict):
    start: dt.date | None = Field(default=None, alias="from")
    end: dt.date | None = Field(default=None, alias="to")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Item(_Strict):
    id: str
    version: int = Field(ge=1)
    title: Text
    entity: Entity
    support: Support
    #: The policy document (文号) this item comes from.
    document: str = Field(min_length=1, max_length=200)
    window: Window = Window()
    conditions: list[Condition] = Field(min_length=1)
    amount: Amount | None = None
    stacking: Stacking | None = None
    budget: Budget | None = None
    tests: list[Case] = Field(default_factory=list)
    #: Free topic tags (the other tags are derived from the rules).
    topics: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(f"item id {v!r}: lowercase letters, digits, '.', '_' or '-'")
        return v


class RuleFile(_Strict):
    variables: list[Variable] = Field(default_factory=list)
    items: list[Item] = Field(default_factory=list)


# --- checked and compiled -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedCondition:
    spec: Condition
    expr: E.Expr
    proofs: tuple[Proof, ...]

    @property
    def data_bound(self) -> bool:
        return all(p.data_bound for p in self.proofs)


@dataclass(frozen=True)
class CheckedItem:
    spec: Item
    conditions: tuple[CheckedCondition, ...]
    amount: E.Expr | None

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def automatic(self) -> bool:
        """Granted without application (免申即享): every condition is proven by shared data or e-licences."""
        return all(c.data_bound for c in self.conditions)

    @cached_property
    def refs(self) -> frozenset[E.Ref]:
        out: set[E.Ref] = set()
        for c in self.conditions:
            out |= c.expr.refs
        if self.amount is not None:
            out |= self.amount.refs
        return frozenset(out)


@dataclass(frozen=True)
class RuleSet:
    variables: dict[str, Variable]
    items: dict[str, CheckedItem]

    def types(self, entity: str) -> dict[str, E.VarType]:
        return {
            v.name: E.VarType(v.kind, v.period is not None)
            for v in self.variables.values()
            if v.entity == entity
        }

    def derived(self, entity: str) -> list[tuple[Variable, E.Expr]]:
        """The entity's derived variables in an order that computes each after what it reads."""
        return _derived_order(self, entity)

    def aggregates(self, entity: str) -> list[tuple[Variable, E.Expr | None, E.Expr | None]]:
        """The entity's aggregates over members: (variable, ``where``, ``of``) parsed over persons."""
        person = self.types("person")
        out = []
        for v in self.variables.values():
            if v.entity == entity and v.aggregate is not None:
                a = v.aggregate
                where = E.parse(a.where, person, want="bool") if a.where else None
                of = (
                    E.parse(a.of, person, want=_AGG_KIND[a.fn] or E._kind_of(E.VarType(v.kind)))
                    if a.of
                    else None
                )
                out.append((v, where, of))
        return out


def _condition_source(c: Condition, variables: Mapping[str, Variable]) -> str:
    """The expression of a condition of any type."""

    def lit(value: Any, var: Variable) -> str:
        if value is None:
            raise ValueError(f"{c.id}: a value is empty")
        if var.kind == "date":
            return f"DATE '{dt.date.fromisoformat(str(value)).isoformat()}'"
        if var.kind in ("text", "code"):
            if not isinstance(value, str):
                raise ValueError(f"{c.id}: {value!r} is not a text (quote it)")
            return "'" + value.replace("'", "''") + "'"
        if var.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{c.id}: {value!r} is not yes/no")
            return "TRUE" if value else "FALSE"
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{c.id}: {value!r} is not a whole number (amounts are in fen)")
        return str(value)

    if c.type == "expr":
        if not c.expr:
            raise ValueError(f"{c.id}: an expr condition needs expr")
        return c.expr
    if c.variable is None:
        raise ValueError(f"{c.id}: a {c.type} condition needs variable")
    var = variables.get(c.variable)
    if var is None:
        raise ValueError(f"{c.id}: unknown variable {c.variable!r}")
    name = c.variable
    if c.type in ("region", "industry"):
        if not c.codes:
            raise ValueError(f"{c.id}: list the codes")
        fn = "in_region" if c.type == "region" else "in_industry"
        return f"{fn}({name}, " + ", ".join("'" + code + "'" for code in c.codes) + ")"
    if c.type == "compare":
        if c.op is None or c.value is None:
            raise ValueError(f"{c.id}: a compare condition needs op and value")
        return f"{name} {c.op} {lit(c.value, var)}"
    if c.type == "range":
        parts = []
        if c.min is not None:
            parts.append(f"{name} >= {lit(c.min, var)}")
        if c.max is not None:
            parts.append(f"{name} <= {lit(c.max, var)}")
        if not parts:
            raise ValueError(f"{c.id}: a range needs min or max")
        return " AND ".join(parts)
    if c.type == "one_of":
        if not c.values:
            raise ValueError(f"{c.id}: list the values")
        return f"{name} IN (" + ", ".join(lit(v, var) for v in c.values) + ")"
    if c.type == "flag":
        return f"{name} = {lit(True if c.value is None else c.value, var)}"
    if c.type == "consecutive":
        if var.period is None or var.kind != "bool" or c.periods is None:
            raise ValueError(f"{c.id}: consecutive needs a yes/no variable with periods, and periods")
        return " AND ".join([name] + [f"prev({name}, {k})" for k in range(1, c.periods)])
    if c.type == "growth":
        if var.period is None or var.kind not in ("int", "money") or c.min_percent is None:
            raise ValueError(f"{c.id}: growth needs a number with periods, and min_percent")
        back = c.periods or 1
        # cross-multiplied, so it stays in whole numbers: now * 100 >= before * (100 + p), before > 0
        return f"prev({name}, {back}) > 0 AND {name} * 100 >= prev({name}, {back}) * {100 + c.min_percent}"
    raise ValueError(f"{c.id}: unknown type {c.type}")  # pragma: no cover - the schema is closed


#: What ``of`` must be for each aggregate (None: the variable's own kind).
_AGG_KIND: dict[str, str | None] = {
    "count": None,
    "sum": "int",
    "min": None,
    "max": None,
    "any": "bool",
    "all": "bool",
}
_AGG_VAR_KINDS: dict[str, tuple[str, ...]] = {
    "count": ("int",),
    "sum": ("int", "money"),
    "min": ("int", "money", "date"),
    "max": ("int", "money", "date"),
    "any": ("bool",),
    "all": ("bool",),
}


def _proofs_of(
    expression: E.Expr, variables: Mapping[str, Variable], seen: frozenset[str] = frozenset()
) -> list[Proof]:
    out: list[Proof] = []
    for ref in sorted(expression.refs, key=lambda r: (r.name, r.back)):
        var = variables[ref.name]
        if var.proof is not None:
            out.append(var.proof)
        if var.aggregate is not None and var.name not in seen:
            person = {
                k: E.VarType(v.kind, v.period is not None)
                for k, v in variables.items()
                if v.entity == "person"
            }
            for source in (var.aggregate.where, var.aggregate.of):
                if source:
                    out.extend(_proofs_of(E.parse(source, person), variables, seen | {var.name}))
        elif var.expr is not None and var.name not in seen:
            inner = E.parse(
                var.expr,
                {
                    k: E.VarType(v.kind, v.period is not None)
                    for k, v in variables.items()
                    if v.entity == var.entity
                },
            )
            out.extend(_proofs_of(inner, variables, seen | {var.name}))
    unique: dict[tuple[str, str], Proof] = {}
    for p in out:
        unique.setdefault((p.kind, p.name), p)
    return list(unique.values())


def _derived_order(rules: RuleSet, entity: str) -> list[tuple[Variable, E.Expr]]:
    types = rules.types(entity)
    derived = {v.name: v for v in rules.variables.values() if v.entity == entity and v.expr is not None}
    parsed = {name: E.parse(v.expr or "", types) for name, v in derived.items()}
    order: list[tuple[Variable, E.Expr]] = []
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in path:
            raise RuleError([f"derived variables refer to each other: {' → '.join((*path, name))}"])
        for ref in parsed[name].refs:
            if ref.name in derived:
                visit(ref.name, (*path, name))
        done.add(name)
        order.append((derived[name], parsed[name]))

    for name in sorted(derived):
        visit(name, ())
    return order


def check(raw: RuleFile, *, base: RuleSet | None = None) -> RuleSet:
    """Check a rule file (with the variables and items of ``base`` known too); every problem is
    reported at once."""
    problems: list[str] = []
    variables: dict[str, Variable] = dict(base.variables) if base else {}
    for v in raw.variables:
        if v.name in variables and variables[v.name] != v and not (base and v.name in base.variables):
            problems.append(f"variable {v.name} is declared twice")
        variables[v.name] = v
    provisional = RuleSet(variables, {})
    for entity in ("person", "household", "enterprise"):
        types = provisional.types(entity)
        for v in variables.values():
            if v.entity == entity and v.expr is not None:
                try:
                    E.parse(v.expr, types, want=E._kind_of(E.VarType(v.kind)))
                except E.ExprError as exc:
                    problems.append(f"variable {v.name}: {exc}")
        for v in variables.values():
            if v.entity == entity and v.aggregate is not None:
                problems.extend(_check_aggregate(v, provisional))
        if not problems:
            try:
                _derived_order(provisional, entity)
            except RuleError as exc:
                problems.extend(exc.problems)
    items: dict[str, CheckedItem] = dict(base.items) if base else {}
    seen_ids: set[str] = set()
    for item in raw.items:
        if item.id in seen_ids:
            problems.append(f"item {item.id} appears twice")
        seen_ids.add(item.id)
        checked = _check_item(item, variables, problems)
        if checked is not None:
            items[item.id] = checked
    if problems:
        raise RuleError(problems)
    return RuleSet(variables, items)


def _check_aggregate(v: Variable, rules: RuleSet) -> list[str]:
    a = v.aggregate
    if a is None:
        return []
    problems = []
    if v.kind not in _AGG_VAR_KINDS[a.fn]:
        problems.append(f"variable {v.name}: {a.fn} gives {' or '.join(_AGG_VAR_KINDS[a.fn])}, not {v.kind}")
    person = rules.types("person")
    want = _AGG_KIND[a.fn] or E._kind_of(E.VarType(v.kind))
    for what, source, kind in (("where", a.where, "bool"), ("of", a.of, want)):
        if source is None:
            continue
        try:
            E.parse(source, person, want=kind)
        except E.ExprError as exc:
            problems.append(f"variable {v.name}, {what}: {exc}")
    return problems


def _check_item(item: Item, variables: Mapping[str, Variable], problems: list[str]) -> CheckedItem | None:
    where = f"item {item.id}"
    types = {
        v.name: E.VarType(v.kind, v.period is not None) for v in variables.values() if v.entity == item.entity
    }
    entity_vars = {k: v for k, v in variables.items() if v.entity == item.entity}
    conditions: list[CheckedCondition] = []
    ok = True
    ids: set[str] = set()
    for c in item.conditions:
        if c.id in ids:
            problems.append(f"{where}: condition {c.id} appears twice")
            ok = False
        ids.add(c.id)
        try:
            if c.variable is not None and c.variable not in entity_vars:
                raise ValueError(f"{c.variable!r} is not a variable of a {item.entity}")
            source = _condition_source(c, entity_vars)
            expression = E.parse(source, types, want="bool")
            proofs = [c.proof] if c.proof is not None else _proofs_of(expression, variables)
            conditions.append(CheckedCondition(c, expression, tuple(proofs)))
        except (ValueError, E.ExprError) as exc:
            problems.append(f"{where}, condition {c.id}: {exc}")
            ok = False
    amount = None
    if item.amount is not None:
        try:
            amount = E.parse(item.amount.expr, types, want="int")
        except E.ExprError as exc:
            problems.append(f"{where}, amount: {exc}")
            ok = False
    if item.window.start and item.window.end and item.window.start > item.window.end:
        problems.append(f"{where}: the window ends before it starts")
        ok = False
    return CheckedItem(item, tuple(conditions), amount) if ok else None


def parse_text(text: str, *, filename: str = "") -> RuleFile:
    """A rule file from YAML or JSON text."""
    try:
        data = json.loads(text) if filename.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise RuleError([f"{filename or 'the rule file'} is not valid YAML/JSON: {exc}"]) from exc
    if not isinstance(data, dict):
        raise RuleError([f"{filename or 'the rule file'}: expected a mapping with variables and items"])
    try:
        return RuleFile.model_validate(data)
    except ValidationError as exc:
        raise RuleError([f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]) from exc


def load_rule_set(paths: Iterable[Path]) -> RuleSet:
    """Read and check rule files (variables first is not required: all are read, then checked)."""
    variables: list[Variable] = []
    items: list[Item] = []
    for path in sorted(paths):
        raw = parse_text(path.read_text(encoding="utf-8"), filename=path.name)
        variables.extend(raw.variables)
        items.extend(raw.items)
    return check(RuleFile(variables=variables, items=items))


def derived_tags(item: CheckedItem) -> dict[str, list[str]]:
    """Tags that follow from the rules (never typed by hand): audience, region, industry, support type,
    how it is granted, and the item's topics."""
    regions: set[str] = set()
    industries: set[str] = set()
    for c in item.conditions:
        if c.spec.type == "region":
            regions.update(c.spec.codes)
        elif c.spec.type == "industry":
            industries.update(c.spec.codes)
    return {
        "audience": [item.spec.entity],
        "region": sorted(regions),
        "industry": sorted(industries),
        "support": [item.spec.support],
        "grant": ["automatic" if item.automatic else "fast_application"],
        "topic": sorted(set(item.spec.topics)),
    }
