"""One rule, two fast paths: the checked items of a :class:`~tongban.policy.rules.RuleSet` evaluated for one
person or enterprise (compiled Python, with an explanation of every condition), and for a whole population
(one SQL statement per entity type, for DuckDB, PostgreSQL or Spark). Both read the same expressions
(:mod:`.expr`) with the same three-valued meaning, and :func:`run_cases` checks the items' own test cases.

Values are given per *column*: a variable's name for its value in the reference period (the last complete
month or year before the reference date, for a variable with periods), ``name__pN`` for ``N`` periods
before that (:func:`columns_from_periods` turns ``{"revenue": {"2025": …, "2024": …}}`` into columns).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

from tongban.policy import expr as E
from tongban.policy.rules import CheckedItem, Result, RuleError, RuleSet, Variable

#: The key of a household's members in its facts (each a person's facts), for its aggregates.
MEMBERS = "members"
#: The column of a person's household in a population table.
HOUSEHOLD_ID = "household_id"

#: The letters of a condition's result in the stored explanations: true, false, unknown.
MARKS = {True: "T", False: "F", None: "U"}


@dataclass(frozen=True)
class ConditionResult:
    id: str
    #: True (met), False (failed) or None (undetermined).
    value: bool | None
    #: For an undetermined condition: the columns without a value it needs.
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    item_id: str
    version: int
    result: Result
    #: The benefit in fen (eligible items with an amount); None otherwise.
    amount_fen: int | None
    conditions: tuple[ConditionResult, ...]
    #: Every column the undetermined conditions (or the amount) need.
    missing: tuple[str, ...]
    #: Granted without application (every condition proven by shared data or e-licences).
    automatic: bool

    @property
    def marks(self) -> str:
        return "".join(MARKS[c.value] for c in self.conditions)


def reference_period(period: str, ref_date: dt.date, back: int = 0) -> str:
    """The label of the reference period of a variable with periods (the last complete one before
    ``ref_date``), or of ``back`` periods before it: ``2025`` or ``2025-11``."""
    if period == "year":
        return str(ref_date.year - 1 - back)
    months = ref_date.year * 12 + (ref_date.month - 1) - 1 - back
    return f"{months // 12:04d}-{months % 12 + 1:02d}"


def columns_from_periods(
    rules: RuleSet, entity: str, facts: Mapping[str, Any], ref_date: dt.date
) -> dict[str, Any]:
    """Columns from facts where a variable with periods is given per period label (``{"2025": …}``);
    every label must be one of the periods the rules read."""
    depth = 1 + max(
        (r.back for item in rules.items.values() if item.spec.entity == entity for r in item.refs), default=0
    )
    out: dict[str, Any] = {}
    for name, value in facts.items():
        if name == MEMBERS and rules.aggregates(entity):
            if not isinstance(value, list) or not all(isinstance(m, Mapping) for m in value):
                raise RuleError([f"{MEMBERS}: give a list of the members' facts"])
            out[MEMBERS] = [columns_from_periods(rules, "person", m, ref_date) for m in value]
            continue
        var = rules.variables.get(name)
        if var is None or var.entity != entity:
            raise RuleError([f"{name!r} is not a variable of a {entity}"])
        if not var.given:
            raise RuleError([f"{name} is computed (derived, or over the members), not given"])
        if var.period is None:
            out[name] = _coerce(var, value)
            continue
        if not isinstance(value, Mapping):
            raise RuleError([f"{name} has a value per {var.period}: give {{period: value}}"])
        labels = {reference_period(var.period, ref_date, back): back for back in range(depth)}
        unknown = sorted(str(k) for k in value if str(k) not in labels)
        if unknown:
            example = next(iter(labels))
            raise RuleError(
                [f"{name}: no rule reads the period(s) {', '.join(unknown)} (labels like {example})"]
            )
        for label, v in value.items():
            out[E.Ref(name, labels[str(label)]).column] = _coerce(var, v)
    return out


def _coerce(var: Variable, value: Any) -> Any:
    """A given value checked against its variable's type (None stays unknown)."""
    if value is None:
        return None
    kind = var.kind
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "bool" and type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"):
        return bool(value)  # numpy's, from a data frame
    if kind in ("int", "money") and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in ("text", "code") and isinstance(value, str):
        return value
    if kind == "date":
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
    raise RuleError([f"{var.name}: {value!r} is not {'a whole number of fen' if kind == 'money' else kind}"])


def _and3(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _or3(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def _aggregate(fn: str, members: Sequence[Mapping[str, Any]], where: Any, of: Any) -> Any:
    """An aggregate over members, with the SQL path's three-valued meaning (see ``rules.Aggregate``)."""
    incl = [True if where is None else where(m) for m in members]
    vals = [None if of is None else of(m) for m in members]
    if fn == "count":
        return None if any(i is None for i in incl) else sum(1 for i in incl if i)
    if fn in ("sum", "min", "max"):
        if any(i is None or (i and v is None) for i, v in zip(incl, vals, strict=True)):
            return None
        xs: list[Any] = [v for i, v in zip(incl, vals, strict=True) if i]
        if fn == "sum":
            return sum(xs)
        return (min(xs) if fn == "min" else max(xs)) if xs else None
    if fn == "any":
        xs = [_and3(i, v) for i, v in zip(incl, vals, strict=True)]
        return True if True in xs else (None if None in xs else False)
    ys = [_or3(None if i is None else not i, v) for i, v in zip(incl, vals, strict=True)]
    return False if False in ys else (None if None in ys else True)


def _final_amount(cap_fen: int | None, round_to_fen: int) -> E.Expr:
    """An item's amount from its rule's amount ``_raw``: never below 0, capped, rounded down to the item's
    multiple (both paths compute ``_raw`` once and then this over it)."""
    out = "GREATEST(_raw, 0)"
    if cap_fen is not None:
        out = f"LEAST({out}, {cap_fen})"
    if round_to_fen > 1:
        out = f"(({out}) // {round_to_fen}) * {round_to_fen}"
    return E.parse(out, {"_raw": E.VarType("int")}, want="int")


@dataclass(frozen=True)
class _Compiled:
    item: CheckedItem
    function: Callable[[Mapping[str, Any]], tuple[tuple[bool | None, ...], int | None]]
    in_window: bool


class Matcher:
    """The rule set compiled for one reference date: :meth:`evaluate` one entity against its items."""

    def __init__(self, rules: RuleSet, ref_date: dt.date) -> None:
        self.rules = rules
        self.ref_date = ref_date
        self._derived: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._items: dict[str, list[_Compiled]] = {}
        self._screens: dict[str, Callable[[Mapping[str, Any]], list[int]]] = {}
        #: Derived variables by name, per entity (what an unknown derived value is missing).
        self._derived_by_name: dict[str, dict[str, E.Expr]] = {
            entity: {var.name: expression for var, expression in rules.derived(entity)}
            for entity in ("person", "household", "enterprise")
        }
        #: Per entity: (variable, function, ``where``, ``of``) of its aggregates over members.
        self._aggregates: dict[str, list[tuple[str, str, Any, Any]]] = {
            entity: [
                (
                    var.name,
                    var.aggregate.fn,
                    E.compile_function(where, ref_date) if where is not None else None,
                    E.compile_function(of, ref_date) if of is not None else None,
                )
                for var, where, of in rules.aggregates(entity)
                if var.aggregate is not None
            ]
            for entity in ("person", "household", "enterprise")
        }
        for entity in ("person", "household", "enterprise"):
            self._derived[entity] = self._compile_derived(entity)
            self._items[entity] = [
                self._compile_item(item) for item in rules.items.values() if item.spec.entity == entity
            ]
            self._screens[entity] = self._compile_screen(entity)

    def _compile_derived(self, entity: str) -> Callable[[dict[str, Any]], None]:
        consts: dict[str, Any] = {}
        lines = ["def _derive(d):"]
        derived = self.rules.derived(entity)
        if not derived:
            lines.append("    return None")
        for var, expression in derived:
            for column in sorted({r.column for r in expression.refs}):
                lines.append(f"    v_{column} = d.get({column!r})")
            lines.append(f"    d[{var.name!r}] = {E.python_source(expression, self.ref_date, consts)}")
        namespace: dict[str, Any] = dict(consts)
        exec(compile("\n".join(lines), f"<derived {entity}>", "exec"), namespace)  # noqa: S102
        function: Callable[[dict[str, Any]], None] = namespace["_derive"]
        return function

    def _compile_item(self, item: CheckedItem) -> _Compiled:
        consts: dict[str, Any] = {}
        lines = ["def _item(d):"]
        lines += [f"    v_{c} = d.get({c!r})" for c in sorted({r.column for r in item.refs})]
        names = []
        for n, c in enumerate(item.conditions):
            lines.append(f"    c{n} = {E.python_source(c.expr, self.ref_date, consts)}")
            names.append(f"c{n}")
        conditions = "(" + "".join(f"{n}, " for n in names) + ")"
        spec = item.spec.amount
        if spec is None:
            lines.append(f"    return {conditions}, None")
        else:
            raw = E.parse(spec.expr, self.rules.types(item.spec.entity), want="int")
            final = _final_amount(spec.cap_fen, spec.round_to_fen)
            lines.append(f"    if {' and '.join(f'{n} is True' for n in names)}:")
            lines.append(f"        v__raw = {E.python_source(raw, self.ref_date, consts)}")
            lines.append(f"        return {conditions}, {E.python_source(final, self.ref_date, consts)}")
            lines.append(f"    return {conditions}, None")
        namespace: dict[str, Any] = dict(consts)
        exec(compile("\n".join(lines), f"<item {item.id}>", "exec"), namespace)  # noqa: S102
        window = item.spec.window
        in_window = (window.start is None or window.start <= self.ref_date) and (
            window.end is None or self.ref_date <= window.end
        )
        return _Compiled(item, namespace["_item"], in_window)

    def _compile_screen(self, entity: str) -> Callable[[Mapping[str, Any]], list[int]]:
        """One function over all the entity's items that stops at an item's first failed condition and
        returns the positions of the items not failed (the fast path of :meth:`match`)."""
        compiled = self._items[entity]
        columns = sorted({r.column for c in compiled for r in c.item.refs})
        consts: dict[str, Any] = {}
        lines = ["def _screen(d):"]
        lines += [f"    v_{c} = d.get({c!r})" for c in columns]
        lines.append("    out = []")
        for position, c in enumerate(compiled):
            if not c.in_window:
                continue
            lines.append("    while True:")
            for condition in c.item.conditions:
                lines.append(f"        if {E.python_source(condition.expr, self.ref_date, consts)} is False:")
                lines.append("            break")
            lines.append(f"        out.append({position})")
            lines.append("        break")
        lines.append("    return out")
        namespace: dict[str, Any] = dict(consts)
        exec(compile("\n".join(lines), f"<screen {entity}>", "exec"), namespace)  # noqa: S102
        function: Callable[[Mapping[str, Any]], list[int]] = namespace["_screen"]
        return function

    def _values(self, entity: str, columns: Mapping[str, Any]) -> dict[str, Any]:
        """The given columns checked against their variables' types (a wrong type is refused, never
        compared), with the derived variables computed."""
        values: dict[str, Any] = {}
        members = None
        for column, value in columns.items():
            if column == MEMBERS and self._aggregates[entity]:
                members = [self._values("person", m) for m in value]
                continue
            var = self.rules.variables.get(column.split("__p")[0])
            if var is None or var.entity != entity or not var.given:
                raise RuleError([f"{column!r} is not a given fact of a {entity}"])
            values[column] = _coerce(var, value)
        for name, fn, where, of in self._aggregates[entity]:
            values[name] = None if members is None else _aggregate(fn, members, where, of)
        self._derived[entity](values)
        return values

    def screen(self, entity: str, columns: Mapping[str, Any]) -> list[str]:
        """The ids of the items ``columns`` do not fail (eligible or undetermined), without explanations:
        the fastest answer to "what may this person or enterprise have"."""
        values = self._values(entity, columns)
        compiled = self._items[entity]
        return [compiled[i].item.id for i in self._screens[entity](values)]

    def match(self, entity: str, columns: Mapping[str, Any]) -> list[Decision]:
        """The items ``columns`` are eligible for or undetermined on, decided and explained; items failed
        are left out without building their explanation (the per-request path over many items)."""
        values = self._values(entity, columns)
        compiled = self._items[entity]
        decisions = (self._decide(compiled[i], values) for i in self._screens[entity](values))
        return [d for d in decisions if d.result != "not_eligible"]

    def evaluate(
        self, entity: str, columns: Mapping[str, Any], *, items: Iterable[str] | None = None
    ) -> list[Decision]:
        """Every item for ``entity`` (or those named) decided for one entity's ``columns``."""
        values = self._values(entity, columns)
        wanted = set(items) if items is not None else None
        out = []
        for compiled in self._items[entity]:
            if wanted is not None and compiled.item.id not in wanted:
                continue
            out.append(self._decide(compiled, values))
        return out

    def _decide(self, compiled: _Compiled, values: Mapping[str, Any]) -> Decision:
        item = compiled.item
        results, amount = compiled.function(values)
        conditions = []
        missing: set[str] = set()
        for c, value in zip(item.conditions, results, strict=True):
            gaps: tuple[str, ...] = ()
            if value is None:
                gaps = tuple(sorted(self._gaps(item.spec.entity, c.expr, values)))
                missing.update(gaps)
            conditions.append(ConditionResult(c.spec.id, value, gaps))
        if not compiled.in_window:
            conditions.append(ConditionResult("window", False))
        result: Result
        if any(r.value is False for r in conditions):
            result, amount = "not_eligible", None
        elif any(r.value is None for r in conditions):
            result, amount = "undetermined", None
        else:
            result = "eligible"
            if item.amount is not None and amount is None:
                result = "undetermined"
                missing.update(self._gaps(item.spec.entity, item.amount, values))
        return Decision(
            item_id=item.id,
            version=item.spec.version,
            result=result,
            amount_fen=amount,
            conditions=tuple(conditions),
            missing=tuple(sorted(missing)),
            automatic=item.automatic,
        )

    def _gaps(self, entity: str, expression: E.Expr, values: Mapping[str, Any]) -> set[str]:
        """The given columns without a value behind an unknown result (through derived variables)."""
        out: set[str] = set()
        for ref in expression.refs:
            if values.get(ref.column) is not None:
                continue
            derived = self._derived_by_name[entity].get(ref.name)
            if derived is None:
                out.add(ref.column)
            else:
                out |= self._gaps(entity, derived, values)
        return out


# --- test cases -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseFailure:
    item_id: str
    case: str
    problem: str


def run_cases(rules: RuleSet, *, items: Iterable[str] | None = None) -> list[CaseFailure]:
    """Run the items' test cases, each on its own reference date; the failures (none: every case passed)."""
    matchers: dict[dt.date, Matcher] = {}
    failures = []
    wanted = set(items) if items is not None else None
    for item in rules.items.values():
        if wanted is not None and item.id not in wanted:
            continue
        for case in item.spec.tests:
            ref_date = case.date
            matcher = matchers.get(ref_date) or matchers.setdefault(ref_date, Matcher(rules, ref_date))
            try:
                columns = columns_from_periods(rules, item.spec.entity, case.inputs, ref_date)
                decision = matcher.evaluate(item.spec.entity, columns, items=[item.id])[0]
            except RuleError as exc:
                failures.append(CaseFailure(item.id, case.name, str(exc)))
                continue
            want = case.expect
            problems = []
            if decision.result != want.result:
                problems.append(f"result {decision.result}, expected {want.result}")
            if want.amount_fen is not None and decision.amount_fen != want.amount_fen:
                problems.append(f"amount {decision.amount_fen} fen, expected {want.amount_fen}")
            if want.missing is not None and sorted(_label(m) for m in decision.missing) != sorted(
                want.missing
            ):
                problems.append(
                    f"missing {sorted(_label(m) for m in decision.missing)}, expected {sorted(want.missing)}"
                )
            if want.failed is not None:
                failed = sorted(c.id for c in decision.conditions if c.value is False)
                if failed != sorted(want.failed):
                    problems.append(f"failed {failed}, expected {sorted(want.failed)}")
            failures.extend(CaseFailure(item.id, case.name, p) for p in problems)
    return failures


def _label(column: str) -> str:
    """``revenue__p1`` → ``revenue@1`` (how test cases name a missing earlier period)."""
    name, _, back = column.partition("__p")
    return f"{name}@{back}" if back else name


# --- the population path -----------------------------------------------------------------------------------


def _with_derived(rules: RuleSet, entity: str, source: exp.Expr, ref_date: dt.date, dialect: str) -> exp.Expr:
    """``source`` with the entity's derived variables as columns, each after what it reads."""
    for var, expression in rules.derived(entity):
        source = exp.select(
            exp.Star(), exp.alias_(E.sql_tree(expression, ref_date, dialect), var.name, quoted=True)
        ).from_(exp.Subquery(this=source, alias=exp.TableAlias(this=exp.to_identifier("b"))))
    return source


#: An aggregate's value for a household without members.
_EMPTY = {"count": "0", "sum": "0", "min": "NULL", "max": "NULL", "any": "FALSE", "all": "TRUE"}


def _members_joined(
    rules: RuleSet, entity: str, table: str, members_table: str, ref_date: dt.date, dialect: str
) -> exp.Expr:
    """``table`` with the entity's aggregates over its members (``members_table``, grouped by
    ``household_id``) as columns; the same three-valued meaning as the per-request path."""
    aggregates = rules.aggregates(entity)
    base: exp.Expr = exp.select(exp.Star()).from_(exp.to_table(table))
    if not aggregates:
        return base
    members = _with_derived(
        rules, "person", exp.select(exp.Star()).from_(exp.to_table(members_table)), ref_date, dialect
    )

    def sql(expression: E.Expr | None, default: str) -> str:
        return f"({E.to_sql(expression, ref_date, dialect)})" if expression is not None else default

    def n(condition: str) -> str:
        return f"sum(CASE WHEN {condition} THEN 1 ELSE 0 END)"

    columns = []
    outer = []
    for var, where, of in aggregates:
        fn, w, v = var.aggregate.fn if var.aggregate else "count", sql(where, "TRUE"), sql(of, "NULL")
        if fn == "count":
            value = f"CASE WHEN {n(f'{w} IS NULL')} > 0 THEN NULL ELSE {n(w)} END"
        elif fn in ("sum", "min", "max"):
            pick = f"CASE WHEN {w} THEN {v} ELSE {'0' if fn == 'sum' else 'NULL'} END"
            value = (
                f"CASE WHEN {n(f'{w} IS NULL OR ({w} AND {v} IS NULL)')} > 0 THEN NULL ELSE {fn}({pick}) END"
            )
        elif fn == "any":
            x = f"({w} AND {v})"
            value = f"CASE WHEN {n(x)} > 0 THEN TRUE WHEN {n(f'{x} IS NULL')} > 0 THEN NULL ELSE FALSE END"
        else:
            y = f"(NOT {w} OR {v})"
            failed, unknown = n(f"NOT {y}"), n(f"{y} IS NULL")
            value = f"CASE WHEN {failed} > 0 THEN FALSE WHEN {unknown} > 0 THEN NULL ELSE TRUE END"
        columns.append(f"{value} AS {_q(var.name, dialect)}")
        outer.append(
            f"CASE WHEN a.{_q('_hh', dialect)} IS NULL THEN {_EMPTY[fn]} ELSE a.{_q(var.name, dialect)} END "
            f"AS {_q(var.name, dialect)}"
        )
    members_sql = members.sql(dialect=dialect)
    hh = _q(HOUSEHOLD_ID, dialect)
    grouped = (
        f"SELECT CAST(m.{hh} AS VARCHAR) AS {_q('_hh', dialect)}, {', '.join(columns)} "  # noqa: S608 - our columns
        f"FROM ({members_sql}) AS m GROUP BY m.{hh}"
    )
    text = (
        f"SELECT t.*, {', '.join(outer)} FROM {table} AS t "  # noqa: S608 - our table and columns
        f"LEFT JOIN ({grouped}) AS a ON a.{_q('_hh', dialect)} = CAST(t.{_q('id', dialect)} AS VARCHAR)"
    )
    return sqlglot.parse_one(text, read=dialect)


def _q(name: str, dialect: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect=dialect)


def batch_sql(
    rules: RuleSet,
    entity: str,
    ref_date: dt.date,
    *,
    dialect: str,
    table: str,
    items: Sequence[str] | None = None,
    keep_not_eligible: bool = False,
    members_table: str = "person",
) -> str:
    """One statement deciding every row of ``table`` (an ``id`` and a column per given value) for the
    entity's items: ``id``, ``item_id``, ``version``, ``result``, ``amount_fen``, ``marks`` (a letter per
    condition: T, F or U). Rows not eligible are left out unless ``keep_not_eligible``. A household's
    aggregates read ``members_table`` (persons with a ``household_id``)."""
    if dialect not in E.DIALECTS:
        raise RuleError([f"unknown SQL dialect {dialect!r}; known: {', '.join(E.DIALECTS)}"])
    chosen = [
        item
        for item in rules.items.values()
        if item.spec.entity == entity and (items is None or item.id in items)
    ]
    if not chosen:
        raise RuleError([f"no item for a {entity} to evaluate"])
    types = rules.types(entity)
    source = _with_derived(
        rules,
        entity,
        _members_joined(rules, entity, table, members_table, ref_date, dialect),
        ref_date,
        dialect,
    )
    parts = []
    for item in chosen:
        window = item.spec.window
        in_window = (window.start is None or window.start <= ref_date) and (
            window.end is None or ref_date <= window.end
        )
        conds = [E.sql_tree(c.expr, ref_date, dialect) for c in item.conditions]
        inner_cols: list[exp.Expr] = [exp.column("id", quoted=True)]
        inner_cols += [exp.alias_(c, f"_c{n}", quoted=True) for n, c in enumerate(conds)]
        names = [exp.column(f"_c{n}", quoted=True) for n in range(len(conds))]
        all_met: exp.Expr = names[0].copy()
        for n in names[1:]:
            all_met = exp.And(this=all_met, expression=n.copy())
        if not in_window:
            all_met = exp.And(this=all_met, expression=exp.false())
        has_amount = item.spec.amount is not None
        inner: exp.Expr
        if item.spec.amount is not None:
            # The rule's amount is computed only where every condition is met (the columns it reads pass
            # through), once, as a column; the floor at 0, the cap and the rounding then read that column
            # (written around the expression, each would repeat it).
            raw = E.parse(item.spec.amount.expr, types, want="int")
            inner_cols += [exp.column(c, quoted=True) for c in sorted({r.column for r in raw.refs})]
            conditions_only = exp.select(*inner_cols).from_(exp.to_table("policy_facts"))
            with_raw = exp.select(
                exp.column("id", quoted=True),
                *[n.copy() for n in names],
                exp.alias_(
                    exp.Case(ifs=[exp.If(this=all_met.copy(), true=E.sql_tree(raw, ref_date, dialect))]),
                    "_raw",
                    quoted=True,
                ),
            ).from_(exp.Subquery(this=conditions_only, alias=exp.TableAlias(this=exp.to_identifier("m"))))
            spec = item.spec.amount
            final = _final_amount(spec.cap_fen, spec.round_to_fen)
            inner = exp.select(
                exp.column("id", quoted=True),
                *[n.copy() for n in names],
                exp.alias_(E.sql_tree(final, ref_date, dialect), "amt", quoted=True),
            ).from_(exp.Subquery(this=with_raw, alias=exp.TableAlias(this=exp.to_identifier("w"))))
        else:
            inner = exp.select(*inner_cols).from_(exp.to_table("policy_facts"))
        amount_ok = (
            exp.And(this=all_met.copy(), expression=exp.Not(this=E._is_null(exp.column("amt", quoted=True))))
            if has_amount
            else all_met.copy()
        )
        result = exp.Case(
            ifs=[
                exp.If(
                    this=exp.Not(this=exp.Paren(this=all_met.copy())), true=exp.Literal.string("not_eligible")
                ),
                exp.If(this=amount_ok, true=exp.Literal.string("eligible")),
            ],
            default=exp.Literal.string("undetermined"),
        )
        amount_col: exp.Expr = (
            exp.column("amt", quoted=True) if has_amount else exp.cast(exp.Null(), "BIGINT")
        )
        marks: exp.Expr | None = None
        for n in names:
            mark = exp.Case(
                ifs=[
                    exp.If(this=n.copy(), true=exp.Literal.string("T")),
                    exp.If(this=exp.Not(this=n.copy()), true=exp.Literal.string("F")),
                ],
                default=exp.Literal.string("U"),
            )
            marks = mark if marks is None else exp.DPipe(this=marks, expression=mark)
        if not in_window and marks is not None:  # the window, as the Python path explains it
            marks = exp.DPipe(this=marks, expression=exp.Literal.string("F"))
        outer = exp.select(
            exp.column("id", quoted=True),
            exp.alias_(exp.Literal.string(item.id), "item_id", quoted=True),
            exp.alias_(exp.Literal.number(item.spec.version), "version", quoted=True),
            exp.alias_(result, "result", quoted=True),
            exp.alias_(amount_col, "amount_fen", quoted=True),
            exp.alias_(marks if marks is not None else exp.Literal.string(""), "marks", quoted=True),
        ).from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("e"))))
        if not keep_not_eligible:
            outer = (
                exp.select(exp.Star())
                .from_(exp.Subquery(this=outer, alias=exp.TableAlias(this=exp.to_identifier("r"))))
                .where(
                    exp.NEQ(
                        this=exp.column("result", quoted=True), expression=exp.Literal.string("not_eligible")
                    )
                )
            )
        parts.append(outer)
    statement: exp.Expr = parts[0]
    for p in parts[1:]:
        statement = exp.union(statement, p, distinct=False)
    # The table with its derived variables, computed once for every item (Spark has no MATERIALIZED).
    statement = statement.with_("policy_facts", as_=source, materialized=True if dialect != "spark" else None)  # type: ignore[attr-defined]
    return str(statement.sql(dialect))
