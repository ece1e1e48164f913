"""The expression language of policy rules: a closed subset of SQL expressions, parsed by sqlglot, with one
meaning on every path — compiled to Python for one person or enterprise at a time, and rendered as SQL for
DuckDB, PostgreSQL and Spark for a whole population.

What an expression may contain (anything else is refused when the rule is checked):

* variables (``employees``, ``region_code``), integer, string, ``TRUE``/``FALSE`` and ``DATE 'YYYY-MM-DD'``
  literals; ``prev(var, n)``: a periodic variable ``n`` periods before the reference period;
* ``+ - *`` on integers, ``x // n`` (floor division by a positive integer literal), unary minus, ``ABS``;
* comparisons, ``BETWEEN``, ``IN (literals)``, ``AND``, ``OR``, ``NOT``;
* ``CASE WHEN … THEN … [ELSE …] END``, ``LEAST``, ``GREATEST``;
* ``in_region(code, '110000', …)`` (GB/T 2260: a province, city or district code covers the codes under it),
  ``in_industry(code, 'C', 'I65', …)`` (GB/T 4754: a section letter or a code prefix), ``years_since(date)``
  (whole years from a date to the reference date).

Missing data are never defaulted. A variable without a value is unknown (SQL's NULL), and unknown spreads
as in SQL's three-valued logic (Kleene): ``unknown AND false`` is false, ``unknown AND true`` is unknown.
Where SQL itself would quietly choose — ``LEAST``/``GREATEST`` skip NULLs on all three engines, ``CASE``
treats an unknown condition as false — the rendering here makes the result unknown instead, and the
Python path does the same. There is no ``COALESCE``, ``IS NULL`` or division with a remainder dropped
silently: a rule that wants a default has to say so with data.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

#: Engines the batch SQL is rendered for.
DIALECTS = ("duckdb", "postgres", "spark")

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_COMPARE: dict[type[exp.Expr], str] = {
    exp.EQ: "==",
    exp.NEQ: "!=",
    exp.GT: ">",
    exp.GTE: ">=",
    exp.LT: "<",
    exp.LTE: "<=",
}
_ARITH: dict[type[exp.Expr], str] = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*"}


class ExprError(ValueError):
    """An expression outside the language, or one that does not fit its variables."""


@dataclass(frozen=True)
class Ref:
    """A variable as an expression reads it: ``name`` at ``back`` periods before the reference period
    (0 for a variable without periods)."""

    name: str
    back: int = 0

    @property
    def column(self) -> str:
        """The column (SQL) and the key (Python) of this value: ``revenue`` or ``revenue__p1``."""
        return self.name if self.back == 0 else f"{self.name}__p{self.back}"


@dataclass
class Expr:
    """A checked expression: its tree (sqlglot), the values it reads, and its type."""

    source: str
    tree: exp.Expr
    refs: frozenset[Ref]
    kind: str  # "bool", "int", "text", "date"
    _py: str = field(default="", repr=False)


@dataclass(frozen=True)
class VarType:
    """What an expression needs to know of a variable: its type and whether it has periods."""

    kind: str  # "bool", "int", "money", "text", "date", "code"
    periodic: bool = False


def _kind_of(var: VarType) -> str:
    return {"money": "int", "code": "text"}.get(var.kind, var.kind)


def parse(source: str, variables: Mapping[str, VarType], *, want: str | None = None) -> Expr:
    """Parse and check ``source`` against the declared ``variables``; ``want`` is the type it must have."""
    text = source.strip()
    if not text:
        raise ExprError("the expression is empty")
    if len(text) > 4000:
        raise ExprError("the expression is longer than 4,000 characters")
    try:
        tree = sqlglot.parse_one(text, read="duckdb")
    except ParseError as exc:
        raise ExprError(f"cannot parse {text!r}: {str(exc).splitlines()[0]}") from exc
    refs: set[Ref] = set()
    kind = _check(tree, variables, refs)
    if want is not None and kind != want:
        raise ExprError(f"{text!r} is {_article(kind)}, not {_article(want)}")
    return Expr(source=text, tree=tree, refs=frozenset(refs), kind=kind)


def _article(kind: str) -> str:
    return {
        "bool": "a condition",
        "int": "a number",
        "text": "a text",
        "date": "a date",
    }.get(kind, kind)


def _literal_int(node: exp.Expr) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string and re.fullmatch(r"\d+", node.this):
        return int(node.this)
    if isinstance(node, exp.Neg):
        inner = _literal_int(node.this)
        return -inner if inner is not None else None
    return None


def _date_literal(node: exp.Expr) -> dt.date | None:
    if (
        isinstance(node, exp.Cast)
        and isinstance(node.this, exp.Literal)
        and node.this.is_string
        and node.to.this == exp.DataType.Type.DATE
    ):
        try:
            return dt.date.fromisoformat(node.this.this)
        except ValueError as exc:
            raise ExprError(f"not a date: {node.this.this!r}") from exc
    return None


def _check(node: exp.Expr, variables: Mapping[str, VarType], refs: set[Ref]) -> str:
    """The type of ``node`` (raising :class:`ExprError` for anything outside the language)."""

    def sub(n: exp.Expr) -> str:
        return _check(n, variables, refs)

    def same(a: exp.Expr, b: exp.Expr, what: str) -> str:
        ka, kb = sub(a), sub(b)
        if ka != kb:
            raise ExprError(f"{what} compares {_article(ka)} with {_article(kb)}: {node.sql('duckdb')}")
        return ka

    if isinstance(node, exp.Paren):
        return sub(node.this)
    if isinstance(node, exp.Boolean):
        return "bool"
    if isinstance(node, exp.Literal):
        if node.is_string:
            return "text"
        if not re.fullmatch(r"\d+", node.this):
            raise ExprError(f"only whole numbers are allowed (amounts are in fen): {node.this}")
        return "int"
    if _date_literal(node) is not None:
        return "date"
    if isinstance(node, exp.Column):
        if node.table:
            raise ExprError(f"write a variable without a prefix: {node.sql('duckdb')}")
        return _ref(node.name, 0, variables, refs)
    if isinstance(node, exp.Anonymous):
        return _function(node, variables, refs)
    if isinstance(node, (exp.And, exp.Or)):
        for side in (node.this, node.expression):
            if sub(side) != "bool":
                raise ExprError(f"AND/OR join conditions: {side.sql('duckdb')}")
        return "bool"
    if isinstance(node, exp.Not):
        if sub(node.this) != "bool":
            raise ExprError(f"NOT applies to a condition: {node.sql('duckdb')}")
        return "bool"
    if type(node) in _COMPARE:
        kind = same(node.this, node.expression, "the comparison")
        if kind == "bool" and type(node) not in (exp.EQ, exp.NEQ):
            raise ExprError(f"conditions are compared with = or <> only: {node.sql('duckdb')}")
        if kind == "text" and type(node) not in (exp.EQ, exp.NEQ):
            # the order of texts is the database's collation on PostgreSQL, code points elsewhere
            raise ExprError(f"texts are compared with = <> or IN only: {node.sql('duckdb')}")
        return "bool"
    if isinstance(node, exp.Between):
        if node.args.get("symmetric"):
            raise ExprError(f"write BETWEEN low AND high (no SYMMETRIC): {node.sql('duckdb')}")
        kind = sub(node.this)
        if kind == "text":
            raise ExprError(f"texts are compared with = <> or IN only: {node.sql('duckdb')}")
        for bound in (node.args["low"], node.args["high"]):
            if sub(bound) != kind:
                raise ExprError(f"BETWEEN needs bounds of the same type: {node.sql('duckdb')}")
        return "bool"
    if isinstance(node, exp.In):
        kind = sub(node.this)
        if node.args.get("query") is not None or not node.expressions:
            raise ExprError(f"IN takes a list of values: {node.sql('duckdb')}")
        for item in node.expressions:
            if not (
                isinstance(item, exp.Literal)
                or _date_literal(item) is not None
                or _literal_int(item) is not None
            ):
                raise ExprError(f"IN takes literal values only: {item.sql('duckdb')}")
            if sub(item) != kind:
                raise ExprError(f"IN compares {_article(kind)} with {item.sql('duckdb')}")
        return "bool"
    if type(node) in _ARITH:
        for side in (node.this, node.expression):
            if sub(side) != "int":
                raise ExprError(f"arithmetic is on numbers only: {node.sql('duckdb')}")
        return "int"
    if isinstance(node, exp.IntDiv):
        if sub(node.this) != "int":
            raise ExprError(f"// divides a number: {node.sql('duckdb')}")
        divisor = _literal_int(node.expression)
        if divisor is None or divisor <= 0:
            raise ExprError(f"// divides by a positive whole number written out: {node.sql('duckdb')}")
        return "int"
    if isinstance(node, exp.Div):
        raise ExprError(f"use // (floor division by a whole number): {node.sql('duckdb')}")
    if isinstance(node, (exp.Neg, exp.Abs)):
        if sub(node.this) != "int":
            raise ExprError(f"- and ABS apply to numbers: {node.sql('duckdb')}")
        return "int"
    if isinstance(node, (exp.Least, exp.Greatest)):
        args = [node.this, *node.expressions]
        kinds = {sub(a) for a in args}
        if len(kinds) != 1 or kinds & {"bool", "text"}:
            raise ExprError(f"LEAST/GREATEST compare values of one type: {node.sql('duckdb')}")
        return kinds.pop()
    if isinstance(node, exp.Case):
        if node.this is not None:
            raise ExprError(f"write CASE WHEN condition THEN …: {node.sql('duckdb')}")
        kinds = set()
        for branch in node.args["ifs"]:
            if sub(branch.this) != "bool":
                raise ExprError(f"CASE WHEN needs a condition: {branch.this.sql('duckdb')}")
            kinds.add(sub(branch.args["true"]))
        if node.args.get("default") is not None:
            kinds.add(sub(node.args["default"]))
        if len(kinds) != 1:
            raise ExprError(f"every branch of CASE must have one type: {node.sql('duckdb')}")
        return kinds.pop()
    if isinstance(node, (exp.Coalesce, exp.Is)):
        raise ExprError("missing data cannot be defaulted in a rule (no COALESCE or IS NULL)")
    raise ExprError(f"not allowed in a rule: {node.sql('duckdb')} ({type(node).__name__})")


def _ref(name: str, back: int, variables: Mapping[str, VarType], refs: set[Ref]) -> str:
    var = variables.get(name)
    if var is None:
        raise ExprError(f"unknown variable {name!r}")
    if back and not var.periodic:
        raise ExprError(f"{name} has no periods: prev() does not apply")
    refs.add(Ref(name, back))
    return _kind_of(var)


def _function(node: exp.Anonymous, variables: Mapping[str, VarType], refs: set[Ref]) -> str:
    name = node.name.lower()
    args = node.expressions
    if name == "prev":
        if len(args) != 2 or not isinstance(args[0], exp.Column) or _literal_int(args[1]) is None:
            raise ExprError(f"write prev(variable, n): {node.sql('duckdb')}")
        back = _literal_int(args[1]) or 0
        if not 1 <= back <= 120:
            raise ExprError(f"prev() goes 1 to 120 periods back: {node.sql('duckdb')}")
        return _ref(args[0].name, back, variables, refs)
    if name in ("in_region", "in_industry"):
        if len(args) < 2 or _check(args[0], variables, refs) != "text":
            raise ExprError(f"write {name}(code, 'prefix', …): {node.sql('duckdb')}")
        for a in args[1:]:
            if not (isinstance(a, exp.Literal) and a.is_string and a.this):
                raise ExprError(f"{name} takes codes as text literals: {a.sql('duckdb')}")
            _code_prefix(name, a.this)
        return "bool"
    if name == "years_since":
        if len(args) != 1 or _check(args[0], variables, refs) != "date":
            raise ExprError(f"write years_since(date): {node.sql('duckdb')}")
        return "int"
    raise ExprError(f"unknown function {node.name}()")


def _code_prefix(function: str, code: str) -> str:
    """The prefix a region (GB/T 2260) or industry (GB/T 4754) code covers."""
    if function == "in_region":
        if not re.fullmatch(r"\d{6}(\d{3}(\d{3})?)?", code):
            raise ExprError(f"a region code has 6, 9 or 12 digits (GB/T 2260): {code!r}")
        prefix = code
        while len(prefix) > 6 and prefix.endswith("000"):  # village and township levels: 3 digits each
            prefix = prefix[:-3]
        if len(prefix) == 6:
            while len(prefix) > 2 and prefix.endswith("00"):  # county, city, province: 2 digits each
                prefix = prefix[:-2]
        return prefix
    if not re.fullmatch(r"[A-T](\d{2,4})?", code):
        raise ExprError(f"an industry code is a section letter A–T and 2–4 digits (GB/T 4754): {code!r}")
    return code


# --- Python --------------------------------------------------------------------------------------------


class _PyGen:
    """Python source for an expression, with SQL's three-valued logic (None is unknown)."""

    def __init__(self, ref_date: dt.date, consts: dict[str, Any]) -> None:
        self.ref_date = ref_date
        self.consts = consts
        self.n = 0

    def tmp(self) -> str:
        self.n += 1
        return f"_t{self.n}"

    def const(self, value: Any) -> str:
        name = f"_c{len(self.consts)}"
        self.consts[name] = value
        return name

    def unary(self, a: str, body: Callable[[str], str]) -> str:
        t = self.tmp()
        return f"(None if ({t} := {a}) is None else {body(t)})"

    def binary(self, a: str, b: str, body: Callable[[str, str], str]) -> str:
        ta, tb = self.tmp(), self.tmp()
        return f"(None if ({ta} := {a}) is None or ({tb} := {b}) is None else {body(ta, tb)})"

    def gen(self, node: exp.Expr) -> str:
        if isinstance(node, exp.Paren):
            return self.gen(node.this)
        if isinstance(node, exp.Boolean):
            return "True" if node.this else "False"
        if (d := _date_literal(node)) is not None:
            return self.const(d)
        if isinstance(node, exp.Literal):
            return repr(node.this) if node.is_string else str(int(node.this))
        if isinstance(node, exp.Column):
            return _local(Ref(node.name, 0))
        if isinstance(node, exp.Anonymous):
            return self.function(node)
        if isinstance(node, exp.And):
            a, b = self.gen(node.this), self.gen(node.expression)
            ta, tb = self.tmp(), self.tmp()
            return (
                f"(False if ({ta} := {a}) is False or ({tb} := {b}) is False "
                f"else (None if {ta} is None or {tb} is None else True))"
            )
        if isinstance(node, exp.Or):
            a, b = self.gen(node.this), self.gen(node.expression)
            ta, tb = self.tmp(), self.tmp()
            return (
                f"(True if ({ta} := {a}) is True or ({tb} := {b}) is True "
                f"else (None if {ta} is None or {tb} is None else False))"
            )
        if isinstance(node, exp.Not):
            return self.unary(self.gen(node.this), lambda t: f"(not {t})")
        if type(node) in _COMPARE:
            op = _COMPARE[type(node)]
            return self.binary(self.gen(node.this), self.gen(node.expression), lambda a, b: f"({a} {op} {b})")
        if isinstance(node, exp.Between):
            x, lo, hi = self.gen(node.this), self.gen(node.args["low"]), self.gen(node.args["high"])
            tx, tl, th = self.tmp(), self.tmp(), self.tmp()
            return (
                f"(None if ({tx} := {x}) is None or ({tl} := {lo}) is None or ({th} := {hi}) is None "
                f"else {tl} <= {tx} <= {th})"
            )
        if isinstance(node, exp.In):
            values = frozenset(_literal_value(v) for v in node.expressions)
            c = self.const(values)
            return self.unary(self.gen(node.this), lambda t: f"({t} in {c})")
        if type(node) in _ARITH:
            op = _ARITH[type(node)]
            return self.binary(self.gen(node.this), self.gen(node.expression), lambda a, b: f"({a} {op} {b})")
        if isinstance(node, exp.IntDiv):
            divisor = _literal_int(node.expression)
            return self.unary(self.gen(node.this), lambda t: f"({t} // {divisor})")
        if isinstance(node, exp.Neg):
            return self.unary(self.gen(node.this), lambda t: f"(-{t})")
        if isinstance(node, exp.Abs):
            return self.unary(self.gen(node.this), lambda t: f"abs({t})")
        if isinstance(node, (exp.Least, exp.Greatest)):
            fn = "min" if isinstance(node, exp.Least) else "max"
            args = [self.gen(a) for a in (node.this, *node.expressions)]
            temps = [self.tmp() for _ in args]
            test = " or ".join(f"({t} := {a}) is None" for t, a in zip(temps, args, strict=True))
            return f"(None if {test} else {fn}({', '.join(temps)}))"
        if isinstance(node, exp.Case):
            out = self.gen(node.args["default"]) if node.args.get("default") is not None else "None"
            for branch in reversed(node.args["ifs"]):
                cond, value = self.gen(branch.this), self.gen(branch.args["true"])
                t = self.tmp()
                out = f"(None if ({t} := {cond}) is None else ({value} if {t} else {out}))"
            return out
        raise ExprError(f"cannot compile {node.sql('duckdb')}")  # pragma: no cover - checked before

    def function(self, node: exp.Anonymous) -> str:
        name = node.name.lower()
        args = node.expressions
        if name == "prev":
            return _local(Ref(args[0].name, _literal_int(args[1]) or 0))
        if name in ("in_region", "in_industry"):
            prefixes = tuple(_code_prefix(name, a.this) for a in args[1:])
            c = self.const(prefixes)
            return self.unary(self.gen(args[0]), lambda t: f"{t}.startswith({c})")
        if name == "years_since":
            ref = self.ref_date.year * 10000 + self.ref_date.month * 100 + self.ref_date.day
            return self.unary(
                self.gen(args[0]),
                lambda t: f"(({ref} - ({t}.year * 10000 + {t}.month * 100 + {t}.day)) // 10000)",
            )
        raise ExprError(f"unknown function {node.name}()")  # pragma: no cover - checked before


def _literal_value(node: exp.Expr) -> Any:
    if (d := _date_literal(node)) is not None:
        return d
    if (i := _literal_int(node)) is not None:
        return i
    return node.this


def _local(ref: Ref) -> str:
    return f"v_{ref.column}"


def python_source(expr: Expr, ref_date: dt.date, consts: dict[str, Any]) -> str:
    """A Python expression computing ``expr`` from locals ``v_<column>`` (None: unknown); constants it
    needs are added to ``consts``."""
    return _PyGen(ref_date, consts).gen(expr.tree)


def compile_function(expr: Expr, ref_date: dt.date) -> Callable[[Mapping[str, Any]], Any]:
    """``expr`` as a Python function of a mapping of columns to values (absent or None: unknown)."""
    consts: dict[str, Any] = {}
    body = python_source(expr, ref_date, consts)
    columns = sorted({r.column for r in expr.refs})
    lines = ["def _f(d):"]
    lines += [f"    v_{c} = d.get({c!r})" for c in columns]
    lines.append(f"    return {body}")
    namespace: dict[str, Any] = dict(consts)
    exec(compile("\n".join(lines), f"<rule {expr.source[:40]!r}>", "exec"), namespace)  # noqa: S102
    function: Callable[[Mapping[str, Any]], Any] = namespace["_f"]
    return function


# --- SQL ------------------------------------------------------------------------------------------------


def sql_tree(expr: Expr, ref_date: dt.date, dialect: str) -> exp.Expr:
    """``expr`` as a sqlglot tree over the columns ``Ref.column``, with the unknown-spreading meaning
    of the Python path on ``dialect``."""
    return _to_sql(expr.tree.copy(), ref_date, dialect)


def to_sql(expr: Expr, ref_date: dt.date, dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ExprError(f"unknown SQL dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    return sql_tree(expr, ref_date, dialect).sql(dialect)


def _is_null(node: exp.Expr) -> exp.Expr:
    return exp.Is(this=exp.Paren(this=node.copy()), expression=exp.Null())


def _null_if_any_null(args: Iterable[exp.Expr], then: exp.Expr) -> exp.Expr:
    tests = [_is_null(a) for a in args]
    condition = tests[0]
    for t in tests[1:]:
        condition = exp.Or(this=condition, expression=t)
    return exp.Case(ifs=[exp.If(this=condition, true=exp.Null())], default=then)


def _to_sql(node: exp.Expr, ref_date: dt.date, dialect: str) -> exp.Expr:
    def rec(n: exp.Expr) -> exp.Expr:
        return _to_sql(n, ref_date, dialect)

    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        args = node.expressions
        if name == "prev":
            return exp.column(Ref(args[0].name, _literal_int(args[1]) or 0).column, quoted=True)
        if name in ("in_region", "in_industry"):
            target = rec(args[0])
            tests: list[exp.Expr] = [
                exp.Like(this=target.copy(), expression=exp.Literal.string(_code_prefix(name, a.this) + "%"))
                for a in args[1:]
            ]
            out = tests[0]
            for t in tests[1:]:
                out = exp.Or(this=out, expression=t)
            return exp.Paren(this=out)
        if name == "years_since":
            d = rec(args[0])
            ymd = exp.Add(
                this=exp.Add(
                    this=exp.Mul(
                        this=exp.Extract(this=exp.var("YEAR"), expression=d.copy()),
                        expression=exp.Literal.number(10000),
                    ),
                    expression=exp.Mul(
                        this=exp.Extract(this=exp.var("MONTH"), expression=d.copy()),
                        expression=exp.Literal.number(100),
                    ),
                ),
                expression=exp.Extract(this=exp.var("DAY"), expression=d.copy()),
            )
            ref = ref_date.year * 10000 + ref_date.month * 100 + ref_date.day
            diff = exp.Sub(this=exp.Literal.number(ref), expression=exp.Paren(this=ymd))
            return _floor_div(exp.Paren(this=diff), 10000, dialect)
    if isinstance(node, exp.Column):
        return exp.column(node.name, quoted=True)
    if isinstance(node, exp.IntDiv):
        return _floor_div(rec(node.this), _literal_int(node.expression) or 1, dialect)
    if isinstance(node, (exp.Least, exp.Greatest)):
        args = [rec(a) for a in (node.this, *node.expressions)]
        cls = type(node)
        # ignore_nulls: sqlglot renders it plainly on every engine (it would wrap DuckDB's once more)
        inner = cls(this=args[0].copy(), expressions=[a.copy() for a in args[1:]], ignore_nulls=True)
        return exp.Paren(this=_null_if_any_null(args, inner))
    if isinstance(node, exp.Case):
        ifs: list[exp.Expr] = []
        for branch in node.args["ifs"]:
            cond = rec(branch.this)
            ifs.append(exp.If(this=_is_null(cond), true=exp.Null()))
            ifs.append(exp.If(this=cond, true=rec(branch.args["true"])))
        default = node.args.get("default")
        return exp.Paren(this=exp.Case(ifs=ifs, default=rec(default) if default is not None else None))
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expr):
            node.set(key, rec(value))
        elif isinstance(value, list):
            node.set(key, [rec(v) if isinstance(v, exp.Expr) else v for v in value])
    return node


def _floor_div(numerator: exp.Expr, divisor: int, dialect: str) -> exp.Expr:
    """``numerator // divisor`` rounded towards minus infinity, exactly, on each engine: integer division
    truncates on all three (DuckDB's ``//`` too), so the remainder is taken off first and the division is
    then exact: ``(a - mod(mod(a, n) + n, n)) / n``."""
    n = exp.Literal.number(divisor)
    remainder = exp.Mod(
        this=exp.Paren(
            this=exp.Add(this=exp.Mod(this=numerator.copy(), expression=n.copy()), expression=n.copy())
        ),
        expression=n.copy(),
    )
    exact = exp.Paren(this=exp.Sub(this=numerator.copy(), expression=remainder))
    return exp.Paren(this=exp.IntDiv(this=exact, expression=n.copy()))


def check_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise ExprError(f"{what} {name!r}: lowercase letters, digits and _, starting with a letter")
    return name
