"""Declarative application forms: the definition staff edit (stored as JSON) and input normalisation.

A :class:`FormDefinition` lists fields (with types, ranges, visibility conditions and computed values)
and cross-field rules. Conditions and computed values are written in `JSON Logic <https://jsonlogic.com>`_
and evaluated by the ``panzi-json-logic`` package, restricted to a closed allow-list of operators that is
checked when the definition is loaded (:data:`ALLOWED_OPERATORS`).

Expression data model: an expression sees the form's visible, valid values keyed by field key; dates as
ISO ``YYYY-MM-DD`` strings, money as integer fen, tables as lists of row objects, uploads as lists of
``{name, content_type, size}``. Absent values are absent (``var`` yields null). Inside ``map`` the data
is one row (column keys); inside ``reduce`` it is ``{accumulator, current}`` with ``current`` the row.
Expressions of table columns (``show_if``/``computed``) see the row's own columns only.

Arithmetic (``+ - * / min max``) is done in decimal, not binary floating point; a computed ``money`` or
``integer`` value is rounded half-up to a whole number (of fen).

:func:`normalise` turns raw applicant input (HTML form strings or JSON values) into typed values and
field-level :class:`Finding` objects. It never raises on bad input; only a bad definition raises (at
load time, as a pydantic ``ValidationError``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal, Self

from json_logic import jsonLogic  # type: ignore[import-untyped]
from json_logic.builtins import BUILTINS, to_bool  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, JsonValue, PrivateAttr, model_validator
from pydantic import Field as PydanticField

from tongban.intake.identifiers import IdentifierError, check_credit_code, check_id_number, check_mobile

__all__ = [
    "ALLOWED_OPERATORS",
    "EvaluationError",
    "ExpressionError",
    "Field",
    "FieldType",
    "Finding",
    "FormDefinition",
    "Normalised",
    "Option",
    "Rule",
    "Severity",
    "Upload",
    "check_expression",
    "coerce_value",
    "evaluate",
    "expression_data",
    "field_order",
    "jsonable",
    "normalise",
    "normalise_detailed",
    "truthy",
]

Severity = Literal["error", "warning"]

KEY_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
PROFILE_KEY_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"

_ARITY: dict[str, tuple[int, int | None]] = {
    "var": (1, 2),
    "==": (2, 2),
    "!=": (2, 2),
    "===": (2, 2),
    "!==": (2, 2),
    "<": (2, 3),
    "<=": (2, 3),
    ">": (2, 2),
    ">=": (2, 2),
    "!": (1, 1),
    "!!": (1, 1),
    "and": (1, None),
    "or": (1, None),
    "if": (1, None),
    "in": (2, 2),
    "+": (1, None),
    "-": (1, 2),
    "*": (1, None),
    "/": (2, 2),
    "min": (1, None),
    "max": (1, None),
    "missing": (1, None),
    "cat": (1, None),
    "reduce": (2, 3),
    "map": (2, 2),
}
#: The JSON Logic operators a definition may use. Anything else is rejected when the definition loads.
ALLOWED_OPERATORS: frozenset[str] = frozenset(_ARITY)
MAX_EXPRESSION_DEPTH = 24
MAX_EXPRESSION_NODES = 1000
#: No table accepts more rows than this, whatever its ``max_rows`` says.
HARD_MAX_ROWS = 500


class FieldType(StrEnum):
    TEXT = "text"
    TEXTAREA = "textarea"
    ID_NUMBER = "id_number"
    CREDIT_CODE = "credit_code"
    MOBILE = "mobile"
    EMAIL = "email"
    ADDRESS = "address"
    DATE = "date"
    MONEY = "money"
    INTEGER = "integer"
    DECIMAL = "decimal"
    CHOICE = "choice"
    MULTI_CHOICE = "multi_choice"
    BOOLEAN = "boolean"
    TABLE = "table"
    FILE = "file"


_LENGTH_TYPES = frozenset({FieldType.TEXT, FieldType.TEXTAREA, FieldType.ADDRESS, FieldType.EMAIL})
_PATTERN_TYPES = frozenset({FieldType.TEXT, FieldType.TEXTAREA, FieldType.ADDRESS})
_WHOLE_TYPES = frozenset({FieldType.MONEY, FieldType.INTEGER})
_RANGE_TYPES = frozenset({FieldType.MONEY, FieldType.INTEGER, FieldType.DECIMAL, FieldType.DATE})
_CHOICE_TYPES = frozenset({FieldType.CHOICE, FieldType.MULTI_CHOICE})
_DEFAULT_MAX_LENGTH = {
    FieldType.TEXT: 200,
    FieldType.ADDRESS: 300,
    FieldType.EMAIL: 254,
    FieldType.TEXTAREA: 5000,
}
_MIME_RE = re.compile(r"^[a-z]+/([a-z0-9][a-z0-9.+\-]*|\*)$")
_EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INT_RE = re.compile(r"^[+-]?\d{1,18}$")
_DECIMAL_RE = re.compile(r"^[+-]?(\d{1,18}(\.\d{0,12})?|\.\d{1,12})$")
_MONEY_RE = re.compile(r"^[+-]?\d{1,15}(\.\d{0,20})?$")
_CELL_PATH_RE = re.compile(r"^([a-z][a-z0-9_]{0,39})\.(\d{1,6})\.([a-z][a-z0-9_]{0,39})$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TRUE_WORDS = frozenset({"on", "true", "1", "yes", "y", "是", "checked"})
_FALSE_WORDS = frozenset({"off", "false", "0", "no", "n", "否"})


# --------------------------------------------------------------------------------------------------
# Findings and uploads


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in an application.

    ``code`` is stable and machine-readable (``field.required``, ``id.check_char``, ``rule.<key>``…);
    ``field`` is the dotted path of the field it points at (``members.2.id_number`` for a table cell),
    or ``None`` for the form as a whole; ``severity`` ``"error"`` blocks submission, ``"warning"`` does
    not. ``related_fields`` lists further fields a cross-field finding concerns.
    """

    code: str
    field: str | None
    severity: Severity
    message: str
    message_en: str
    related_fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Upload:
    """What the form engine knows about one uploaded file (the bytes live elsewhere)."""

    name: str
    content_type: str
    size: int
    sha256: str
    text: str | None = None


# --------------------------------------------------------------------------------------------------
# Expressions


class ExpressionError(ValueError):
    """A JSON Logic expression is malformed, uses a disallowed operator or references an unknown field."""


class EvaluationError(Exception):
    """Evaluating an expression failed on the data (division by zero, incomparable values…)."""


def _args_of(node: Mapping[str, JsonValue]) -> tuple[str, list[JsonValue]]:
    (op, args), *_ = node.items()
    return op, args if isinstance(args, list) else [args]


def check_expression(expr: JsonValue, where: str = "$") -> None:
    """Check the structure of a JSON Logic expression: allow-listed operators, arity, size and depth.

    Raises :class:`ExpressionError` naming the path of the offending node (``show_if.and[1]``).
    """
    count = 0

    def walk(node: JsonValue, path: str, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_EXPRESSION_NODES:
            raise ExpressionError(f"{where}: expression has more than {MAX_EXPRESSION_NODES} nodes")
        if depth > MAX_EXPRESSION_DEPTH:
            raise ExpressionError(f"{path}: expression is nested deeper than {MAX_EXPRESSION_DEPTH}")
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]", depth + 1)
            return
        if isinstance(node, float) and not math.isfinite(node):
            raise ExpressionError(f"{path}: numbers must be finite")
        if not isinstance(node, dict):
            return
        if len(node) != 1:
            raise ExpressionError(
                f"{path}: an operator node must have exactly one key (the operator), got {sorted(node)}"
            )
        op, args = _args_of(node)
        if op not in ALLOWED_OPERATORS:
            raise ExpressionError(
                f"{path}: operator {op!r} is not allowed; allowed: {', '.join(sorted(ALLOWED_OPERATORS))}"
            )
        low, high = _ARITY[op]
        if len(args) < low or (high is not None and len(args) > high):
            expected = f"{low}" if low == high else f"{low}..{high if high is not None else 'n'}"
            raise ExpressionError(f"{path}.{op}: expects {expected} argument(s), got {len(args)}")
        if op == "var" and not isinstance(args[0], str):
            raise ExpressionError(f"{path}.var: the variable name must be a literal string")
        if op == "missing":
            names = args[0] if len(args) == 1 and isinstance(args[0], list) else args
            if not all(isinstance(name, str) for name in names):
                raise ExpressionError(f"{path}.missing: arguments must be literal field names")
        if op == "reduce" and len(args) == 3 and isinstance(args[2], dict | list):
            raise ExpressionError(f"{path}.reduce: the initial value must be a literal number or string")
        for i, arg in enumerate(args):
            walk(arg, f"{path}.{op}[{i}]", depth + 1)

    walk(expr, where, 0)


class _Row:
    """Marks a scope entry (``current`` in ``reduce``) that is one row of a table."""

    __slots__ = ("columns",)

    def __init__(self, columns: Mapping[str, Field]) -> None:
        self.columns = columns


_ScopeEntry = Any  # Field | _Row | None (an opaque value such as the accumulator)


@dataclass
class _Refs:
    """Top-level keys an expression references; ``strict`` ones are read by ``var`` without a default."""

    all: set[str] = dc_field(default_factory=set)
    strict: set[str] = dc_field(default_factory=set)


def _resolve_var(path: str, scope: Mapping[str, _ScopeEntry], where: str) -> str:
    if path == "":
        if "" in scope:
            return ""
        raise ExpressionError(f"{where}: an empty variable name is only meaningful inside map")
    head, *rest = path.split(".")
    if head not in scope:
        known = ", ".join(sorted(k for k in scope if k)) or "(none)"
        raise ExpressionError(f"{where}: unknown field {head!r} (known here: {known})")
    target = scope[head]
    if not rest:
        return head
    if isinstance(target, _Row):
        if len(rest) == 1 and rest[0] in target.columns:
            return head
        raise ExpressionError(
            f"{where}: {path!r} must be {head}.<column>, one of {', '.join(sorted(target.columns))}"
        )
    if isinstance(target, Field) and target.type is FieldType.TABLE:
        columns = {c.key for c in target.columns}
        if len(rest) == 2 and rest[0].isdigit() and rest[1] in columns:
            return head
        raise ExpressionError(f"{where}: {path!r} must be {head} or {head}.<row number>.<column>")
    raise ExpressionError(f"{where}: {head!r} has no parts; use {{'var': {head!r}}}")


def _collect_refs(expr: JsonValue, scope: Mapping[str, _ScopeEntry], where: str) -> _Refs:
    """Check that every variable an expression reads exists in ``scope`` and collect the references."""
    refs = _Refs()

    def iter_scope(node: JsonValue, path: str, outer: Mapping[str, _ScopeEntry]) -> Mapping[str, Any]:
        # What the items of the list that map/reduce iterate over look like.
        if isinstance(node, dict) and len(node) == 1:
            op, args = _args_of(node)
            if op == "var" and isinstance(args[0], str) and "." not in args[0]:
                target = outer.get(args[0])
                if isinstance(target, Field) and target.type is FieldType.TABLE:
                    return {c.key: c for c in target.columns}
            if op == "map":
                return {"": None}
        raise ExpressionError(
            f"{path}: map/reduce must iterate over a table field ({{'var': '<table key>'}}) "
            "or over the result of a map"
        )

    def walk(node: JsonValue, path: str, scope: Mapping[str, _ScopeEntry], root: bool) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]", scope, root)
            return
        if not isinstance(node, dict):
            return
        op, args = _args_of(node)
        here = f"{path}.{op}"
        if op == "var":
            head = _resolve_var(str(args[0]), scope, here)
            if root and head:
                refs.all.add(head)
                if len(args) == 1:
                    refs.strict.add(head)
            if len(args) == 2:
                walk(args[1], f"{here}[1]", scope, root)
            return
        if op == "missing":
            names = args[0] if len(args) == 1 and isinstance(args[0], list) else args
            for name in names:
                head = _resolve_var(str(name), scope, here)
                if root and head:
                    refs.all.add(head)
            return
        if op in ("map", "reduce"):
            walk(args[0], f"{here}[0]", scope, root)
            items = iter_scope(args[0], f"{here}[0]", scope)
            if op == "map":
                inner: Mapping[str, _ScopeEntry] = items
            else:
                current: _ScopeEntry = None if "" in items else _Row(items)
                inner = {"accumulator": None, "current": current}
            walk(args[1], f"{here}[1]", inner, False)
            return
        for i, arg in enumerate(args):
            walk(arg, f"{here}[{i}]", scope, root)

    walk(expr, where, scope, True)
    return refs


def _to_decimal(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if value is None:
        return Decimal(0)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return Decimal(0)
        return Decimal(text) if _DECIMAL_RE.match(text) else None
    return None


def _from_decimal(value: Decimal | None) -> int | float:
    if value is None or not value.is_finite():
        return math.nan
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def _decimals(args: Iterable[object]) -> list[Decimal] | None:
    out = []
    for arg in args:
        number = _to_decimal(arg)
        if number is None:
            return None
        out.append(number)
    return out


def _op_add(_data: object, *args: object) -> int | float:
    numbers = _decimals(args)
    return math.nan if numbers is None else _from_decimal(sum(numbers, Decimal(0)))


def _op_mul(_data: object, *args: object) -> int | float:
    numbers = _decimals(args)
    if numbers is None:
        return math.nan
    product = Decimal(1)
    for number in numbers:
        product *= number
    return _from_decimal(product)


def _op_sub(_data: object, a: object = None, b: object = None, *_ignored: object) -> int | float:
    numbers = _decimals([a] if b is None else [a, b])
    if numbers is None:
        return math.nan
    return _from_decimal(-numbers[0] if b is None else numbers[0] - numbers[1])


def _op_div(_data: object, a: object = None, b: object = None, *_ignored: object) -> int | float:
    numbers = _decimals([a, b])
    if numbers is None:
        return math.nan
    if numbers[1] == 0:
        raise ZeroDivisionError("division by zero")
    return _from_decimal(numbers[0] / numbers[1])


def _op_min(_data: object, *args: object) -> int | float:
    numbers = _decimals(args)
    return math.nan if not numbers else _from_decimal(min(numbers))


def _op_max(_data: object, *args: object) -> int | float:
    numbers = _decimals(args)
    return math.nan if not numbers else _from_decimal(max(numbers))


_OPERATIONS: dict[str, Any] = {op: BUILTINS[op] for op in ALLOWED_OPERATORS if op in BUILTINS}
_OPERATIONS.update({"+": _op_add, "*": _op_mul, "-": _op_sub, "/": _op_div, "min": _op_min, "max": _op_max})


def evaluate(expr: JsonValue, data: Mapping[str, Any]) -> Any:
    """Evaluate an allow-listed JSON Logic expression against ``data``.

    Raises :class:`ExpressionError` for a malformed or disallowed expression and :class:`EvaluationError`
    when the data makes it fail (division by zero, values that cannot be compared).
    """
    check_expression(expr)
    try:
        return jsonLogic(expr, dict(data), _OPERATIONS)
    except (ArithmeticError, InvalidOperation, TypeError, ValueError, LookupError, ReferenceError) as exc:
        raise EvaluationError(f"{type(exc).__name__}: {exc}") from exc


def truthy(value: object) -> bool:
    """JSON Logic truthiness (``0``, ``""``, ``[]``, ``null`` and NaN are false)."""
    return bool(to_bool(value))


# --------------------------------------------------------------------------------------------------
# The definition


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Option(_Model):
    """One option of a ``choice`` or ``multi_choice`` field."""

    value: str = PydanticField(min_length=1, max_length=100)
    label: str = PydanticField(min_length=1, max_length=200)
    label_en: str = PydanticField(min_length=1, max_length=200)


class Field(_Model):
    """One field of a form. See the module docstring for the meaning of expressions."""

    key: str = PydanticField(pattern=KEY_PATTERN)
    label: str = PydanticField(min_length=1, max_length=200)
    label_en: str = PydanticField(min_length=1, max_length=200)
    type: FieldType
    required: bool = False
    help: str | None = PydanticField(default=None, max_length=2000)
    help_en: str | None = PydanticField(default=None, max_length=2000)
    #: Bounds: numbers for integer/decimal, integer fen for money, ISO date strings for dates.
    min: int | float | str | None = None
    max: int | float | str | None = None
    min_length: int | None = PydanticField(default=None, ge=0, le=20000)
    max_length: int | None = PydanticField(default=None, ge=1, le=20000)
    pattern: str | None = PydanticField(default=None, max_length=500)
    options: list[Option] = PydanticField(default_factory=list, max_length=500)
    columns: list[Field] = PydanticField(default_factory=list, max_length=50)
    min_rows: int | None = PydanticField(default=None, ge=0, le=HARD_MAX_ROWS)
    max_rows: int | None = PydanticField(default=None, ge=1, le=HARD_MAX_ROWS)
    accept: list[str] = PydanticField(default_factory=list, max_length=50)
    max_bytes: int | None = PydanticField(default=None, ge=1)
    material: str | None = PydanticField(default=None, min_length=1, max_length=200)
    profile_key: str | None = PydanticField(default=None, pattern=PROFILE_KEY_PATTERN, max_length=100)
    show_if: JsonValue = None
    computed: JsonValue = None

    @model_validator(mode="after")
    def _check_field(self) -> Self:
        t = self.type
        k = self.key

        def bad(message: str) -> ValueError:
            return ValueError(f"field {k!r}: {message}")

        if (self.min_length is not None or self.max_length is not None) and t not in _LENGTH_TYPES:
            raise bad(f"min_length/max_length do not apply to {t.value} fields")
        if self.min_length is not None and self.max_length is not None and self.min_length > self.max_length:
            raise bad("min_length is greater than max_length")
        if self.pattern is not None:
            if t not in _PATTERN_TYPES:
                raise bad(f"pattern does not apply to {t.value} fields")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise bad(f"pattern is not a valid regular expression: {exc}") from None
        self._check_bounds(bad)
        if t in _CHOICE_TYPES:
            if not self.options:
                raise bad("choice fields need options")
            values = [o.value for o in self.options]
            if len(set(values)) != len(values):
                raise bad("option values must be unique")
        elif self.options:
            raise bad(f"options do not apply to {t.value} fields")
        if t is FieldType.TABLE:
            self._check_table(bad)
        elif self.columns or self.min_rows is not None or self.max_rows is not None:
            raise bad("columns/min_rows/max_rows apply to table fields only")
        if t is FieldType.FILE:
            for mime in self.accept:
                if not _MIME_RE.match(mime):
                    raise bad(f"accept entry {mime!r} is not a MIME type such as application/pdf or image/*")
        elif self.accept or self.max_bytes is not None or self.material is not None:
            raise bad("accept/max_bytes/material apply to file fields only")
        if self.computed is not None and t in (FieldType.TABLE, FieldType.FILE):
            raise bad(f"{t.value} fields cannot be computed")
        for name in ("show_if", "computed"):
            expr = getattr(self, name)
            if expr is not None:
                try:
                    check_expression(expr, f"{name}")
                except ExpressionError as exc:
                    raise bad(str(exc)) from None
        return self

    def _check_bounds(self, bad: Any) -> None:
        t = self.type
        bounds = [b for b in (self.min, self.max) if b is not None]
        if not bounds:
            return
        if t not in _RANGE_TYPES:
            raise bad(f"min/max do not apply to {t.value} fields (use min_length/max_length for text)")
        for bound in bounds:
            if t is FieldType.DATE:
                if not isinstance(bound, str) or _parse_iso_date(bound) is None:
                    raise bad(f"date bounds must be ISO dates (YYYY-MM-DD), got {bound!r}")
            elif isinstance(bound, str | bool):
                raise bad(f"bounds of {t.value} fields must be numbers, got {bound!r}")
            elif t in _WHOLE_TYPES and not isinstance(bound, int):
                raise bad(f"bounds of {t.value} fields must be whole numbers (money in fen), got {bound!r}")
        if self.min is not None and self.max is not None and _bound(self, self.min) > _bound(self, self.max):
            raise bad("min is greater than max")

    def _check_table(self, bad: Any) -> None:
        if not self.columns:
            raise bad("a table needs at least one column")
        keys = [c.key for c in self.columns]
        dupes = sorted({key for key in keys if keys.count(key) > 1})
        if dupes:
            raise bad(f"duplicate column keys: {', '.join(dupes)}")
        for column in self.columns:
            if column.type in (FieldType.TABLE, FieldType.FILE):
                raise bad(
                    f"column {column.key!r}: tables may only have scalar columns, not {column.type.value}"
                )
        if self.min_rows is not None and self.max_rows is not None and self.min_rows > self.max_rows:
            raise bad("min_rows is greater than max_rows")
        scope = {c.key: c for c in self.columns}
        deps: dict[str, set[str]] = {}
        for column in self.columns:
            deps[column.key] = set()
            for name in ("show_if", "computed"):
                expr = getattr(column, name)
                if expr is not None:
                    try:
                        deps[column.key] |= _collect_refs(expr, scope, f"columns.{column.key}.{name}").all
                    except ExpressionError as exc:
                        raise bad(str(exc)) from None
        try:
            _topological(keys, deps)
        except ExpressionError as exc:
            raise bad(str(exc)) from None

    @property
    def effective_max_length(self) -> int | None:
        """``max_length``, or the built-in cap for text-like fields."""
        return self.max_length if self.max_length is not None else _DEFAULT_MAX_LENGTH.get(self.type)

    @property
    def effective_max_rows(self) -> int:
        return self.max_rows if self.max_rows is not None else HARD_MAX_ROWS


class Rule(_Model):
    """A cross-field rule: when ``when`` holds (or always), ``check`` must be true."""

    key: str = PydanticField(pattern=KEY_PATTERN)
    when: JsonValue = None
    check: JsonValue
    message: str = PydanticField(min_length=1, max_length=1000)
    message_en: str = PydanticField(min_length=1, max_length=1000)
    fields: list[str] = PydanticField(default_factory=list, max_length=50)
    severity: Severity = "error"

    @model_validator(mode="after")
    def _check_rule(self) -> Self:
        if self.check is None:
            raise ValueError(f"rule {self.key!r}: check must be an expression")
        for name in ("when", "check"):
            expr = getattr(self, name)
            if expr is not None or name == "check":
                try:
                    check_expression(expr, name)
                except ExpressionError as exc:
                    raise ValueError(f"rule {self.key!r}: {exc}") from None
        return self


@dataclass(frozen=True)
class _Plan:
    order: tuple[str, ...]
    column_order: dict[str, tuple[str, ...]]
    computed_refs: dict[str, frozenset[str]]
    column_computed_refs: dict[str, dict[str, frozenset[str]]]
    rule_refs: dict[str, tuple[frozenset[str], frozenset[str]]]


def _topological(keys: list[str], deps: Mapping[str, set[str]]) -> tuple[str, ...]:
    """Order keys so that dependencies come first, otherwise keeping form order. Rejects cycles."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(key: str, trail: list[str]) -> None:
        if state.get(key) == 2:
            return
        if state.get(key) == 1:
            cycle = [*trail[trail.index(key) :], key]
            raise ExpressionError(f"computed/show_if dependency cycle: {' -> '.join(cycle)}")
        state[key] = 1
        for dep in sorted(deps.get(key, ()), key=keys.index):
            visit(dep, [*trail, key])
        state[key] = 2
        order.append(key)

    for key in keys:
        visit(key, [])
    return tuple(order)


class FormDefinition(_Model):
    """A whole application form: fields in display order and cross-field rules."""

    version: int = PydanticField(default=1, ge=1)
    fields: list[Field] = PydanticField(min_length=1, max_length=300)
    rules: list[Rule] = PydanticField(default_factory=list, max_length=100)

    _plan: _Plan | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_definition(self) -> Self:
        keys = [f.key for f in self.fields]
        dupes = sorted({key for key in keys if keys.count(key) > 1})
        if dupes:
            raise ValueError(f"duplicate field keys: {', '.join(dupes)}")
        rule_keys = [r.key for r in self.rules]
        dupes = sorted({key for key in rule_keys if rule_keys.count(key) > 1})
        if dupes:
            raise ValueError(f"duplicate rule keys: {', '.join(dupes)}")
        scope = {f.key: f for f in self.fields}
        deps: dict[str, set[str]] = {}
        computed_refs: dict[str, frozenset[str]] = {}
        for i, f in enumerate(self.fields):
            deps[f.key] = set()
            for name in ("show_if", "computed"):
                expr = getattr(f, name)
                if expr is None:
                    continue
                try:
                    refs = _collect_refs(expr, scope, f"fields[{i}]({f.key}).{name}")
                except ExpressionError as exc:
                    raise ValueError(str(exc)) from None
                deps[f.key] |= refs.all
                if name == "computed":
                    computed_refs[f.key] = frozenset(refs.all)
        try:
            order = _topological(keys, deps)
        except ExpressionError as exc:
            raise ValueError(str(exc)) from None
        rule_refs: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        for i, rule in enumerate(self.rules):
            every: set[str] = set()
            strict: set[str] = set()
            for name in ("when", "check"):
                expr = getattr(rule, name)
                if expr is None:
                    continue
                try:
                    refs = _collect_refs(expr, scope, f"rules[{i}]({rule.key}).{name}")
                except ExpressionError as exc:
                    raise ValueError(str(exc)) from None
                every |= refs.all
                strict |= refs.strict
            for name in rule.fields:
                if name not in scope:
                    raise ValueError(f"rules[{i}]({rule.key}).fields: unknown field {name!r}")
            rule_refs[rule.key] = (frozenset(every), frozenset(strict))
        column_order: dict[str, tuple[str, ...]] = {}
        column_computed_refs: dict[str, dict[str, frozenset[str]]] = {}
        for f in self.fields:
            if f.type is not FieldType.TABLE:
                continue
            row_scope = {c.key: c for c in f.columns}
            row_deps: dict[str, set[str]] = {}
            column_computed_refs[f.key] = {}
            for c in f.columns:
                row_deps[c.key] = set()
                for name in ("show_if", "computed"):
                    expr = getattr(c, name)
                    if expr is not None:
                        refs = _collect_refs(expr, row_scope, f"{f.key}.{c.key}.{name}")
                        row_deps[c.key] |= refs.all
                        if name == "computed":
                            column_computed_refs[f.key][c.key] = frozenset(refs.all)
            column_order[f.key] = _topological([c.key for c in f.columns], row_deps)
        self._plan = _Plan(order, column_order, computed_refs, column_computed_refs, rule_refs)
        return self

    @property
    def plan(self) -> _Plan:
        if self._plan is None:  # pragma: no cover - set by the validator
            raise RuntimeError("FormDefinition was not validated")
        return self._plan

    def field(self, key: str) -> Field:
        """The top-level field with this key (``KeyError`` if none)."""
        for f in self.fields:
            if f.key == key:
                return f
        raise KeyError(key)


Field.model_rebuild()


# --------------------------------------------------------------------------------------------------
# Helpers for values


def _parse_iso_date(text: str) -> dt.date | None:
    if not _DATE_RE.match(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _bound(f: Field, bound: int | float | str) -> Any:
    if f.type is FieldType.DATE:
        return _parse_iso_date(str(bound))
    return _to_decimal(bound)


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def _show_bound(f: Field, bound: int | float | str) -> str:
    if f.type is FieldType.MONEY and isinstance(bound, int):
        return f"{_yuan(bound)}元"
    return str(bound)


def _show_bound_en(f: Field, bound: int | float | str) -> str:
    if f.type is FieldType.MONEY and isinstance(bound, int):
        return f"CNY {_yuan(bound)}"
    return str(bound)


def _round_half_up(value: object) -> int | None:
    if value is None or isinstance(value, str | bool):
        return None
    number = _to_decimal(value)
    if number is None:
        return None
    return int(number.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _eval_value(f: Field, value: Any) -> Any:
    """The form a typed value takes in expression data."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _from_decimal(value)
    if f.type is FieldType.FILE:
        return [{"name": u.name, "content_type": u.content_type, "size": u.size} for u in value]
    if f.type is FieldType.TABLE:
        columns = {c.key: c for c in f.columns}
        return [{k: _eval_value(columns[k], v) for k, v in row.items()} for row in value]
    return value


def expression_data(definition: FormDefinition, values: Mapping[str, Any]) -> dict[str, Any]:
    """Normalised values in the form expressions see them (dates as ISO strings, decimals as numbers…)."""
    return {f.key: _eval_value(f, values[f.key]) for f in definition.fields if f.key in values}


def coerce_value(f: Field, raw: object) -> Any:
    """Coerce one raw value the way :func:`normalise` would; ``None`` when empty or invalid."""
    value = _coerce(f, raw, _Where(f.key, f.label, f.label_en))
    if value is _ABSENT or isinstance(value, _Invalid) or _check_value(f, value, _Where(f.key, "", "")):
        return None
    return value


def jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    """Normalised values as plain JSON data (dates as ISO strings, decimals as strings, uploads as dicts)."""

    def conv(value: Any) -> Any:
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, Upload):
            return {
                "name": value.name,
                "content_type": value.content_type,
                "size": value.size,
                "sha256": value.sha256,
            }
        if isinstance(value, list):
            return [conv(v) for v in value]
        if isinstance(value, dict):
            return {k: conv(v) for k, v in value.items()}
        return value

    return {k: conv(v) for k, v in values.items()}


# --------------------------------------------------------------------------------------------------
# Normalisation


@dataclass(frozen=True)
class _Where:
    path: str
    zh: str
    en: str


class _Invalid:
    """Coercion failed; the findings say why."""

    __slots__ = ("findings",)

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings


_ABSENT = object()


def _error(code: str, where: _Where, zh: str, en: str) -> Finding:
    return Finding(code, where.path, "error", zh, en)


def _is_empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, list | tuple | dict):
        return len(value) == 0
    return False


def _single(value: object) -> object:
    # HTML multi-dicts may deliver a list for a scalar field.
    if isinstance(value, list | tuple) and len(value) == 1:
        return value[0]
    return value


def _type_error(f: Field, where: _Where) -> Finding:
    return _error(
        "field.type",
        where,
        f"{where.zh}的填写内容无法识别，请重新填写。",
        f"{where.en}: the value could not be understood. Please fill it in again.",
    )


def _coerce(f: Field, raw: object, where: _Where) -> object:
    """Raw input → typed value, ``_ABSENT``, or ``_Invalid``. Format checks included, ranges not."""
    t = f.type
    if t is FieldType.MULTI_CHOICE:
        if _is_empty(raw):
            return _ABSENT
        items = raw if isinstance(raw, list | tuple) else [raw]
        out: list[str] = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, str | int):
                return _Invalid([_type_error(f, where)])
            text = str(item).strip()
            if text and text not in out:
                out.append(text)
        return out or _ABSENT
    if t is FieldType.FILE:
        return _coerce_uploads(f, raw, where)
    raw = _single(raw)
    if _is_empty(raw):
        return _ABSENT
    if t is FieldType.BOOLEAN:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str) and raw.strip().lower() in _TRUE_WORDS:
            return True
        if isinstance(raw, str) and raw.strip().lower() in _FALSE_WORDS:
            return False
        return _Invalid([_type_error(f, where)])
    if t is FieldType.MONEY:
        return _coerce_money(f, raw, where)
    if t in (FieldType.INTEGER, FieldType.DECIMAL):
        return _coerce_number(f, raw, where)
    if t is FieldType.DATE:
        if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
            return raw
        parsed = _parse_iso_date(raw.strip()) if isinstance(raw, str) else None
        if parsed is None:
            return _Invalid(
                [
                    _error(
                        "field.format",
                        where,
                        f"{where.zh}应为有效日期，请按“年-月-日”格式填写，例如2024-05-01。",
                        f"{where.en}: enter a valid date as YYYY-MM-DD, for example 2024-05-01.",
                    )
                ]
            )
        return parsed
    # Everything else is text-based.
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return _Invalid([_type_error(f, where)])
    text = _CONTROL_RE.sub("", str(raw)).replace("\r\n", "\n").replace("\r", "\n").strip()
    if t is not FieldType.TEXTAREA:
        text = re.sub(r"\s*\n\s*", " ", text)
    if not text:
        return _ABSENT
    try:
        if t is FieldType.ID_NUMBER:
            return check_id_number(text).number
        if t is FieldType.CREDIT_CODE:
            return check_credit_code(text)
        if t is FieldType.MOBILE:
            return check_mobile(text)
    except IdentifierError as exc:
        return _Invalid(
            [_error(exc.code, where, f"{where.zh}：{exc.message_zh}", f"{where.en}: {exc.message_en}")]
        )
    if t is FieldType.EMAIL and not _EMAIL_RE.match(text):
        return _Invalid(
            [
                _error(
                    "field.format",
                    where,
                    f"{where.zh}不是有效的电子邮箱地址，请按 name@example.com 的格式填写。",
                    f"{where.en}: not a valid e-mail address; use the form name@example.com.",
                )
            ]
        )
    return text


def _coerce_money(f: Field, raw: object, where: _Where) -> object:
    number: Decimal | None = None
    if isinstance(raw, bool):
        number = None
    elif isinstance(raw, int):
        number = Decimal(raw)
    elif isinstance(raw, float):
        number = Decimal(repr(raw)) if math.isfinite(raw) else None
    elif isinstance(raw, str):
        text = raw.strip().replace(",", "").replace("，", "").replace(" ", "")
        text = text.lstrip("¥￥").removesuffix("元")
        number = Decimal(text) if _MONEY_RE.match(text) else None
    if number is None:
        return _Invalid(
            [
                _error(
                    "field.type",
                    where,
                    f"{where.zh}应为金额（单位：元），例如 1234.50。",
                    f"{where.en}: enter an amount in yuan, for example 1234.50.",
                )
            ]
        )
    if number != number.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP):
        return _Invalid(
            [
                _error(
                    "field.format",
                    where,
                    f"{where.zh}最多保留两位小数（精确到分），请修改。",
                    f"{where.en}: use at most two decimal places (to the fen).",
                )
            ]
        )
    return int(number * 100)


def _coerce_number(f: Field, raw: object, where: _Where) -> object:
    whole = f.type is FieldType.INTEGER
    number: Decimal | None = None
    if isinstance(raw, bool):
        number = None
    elif isinstance(raw, int):
        number = Decimal(raw)
    elif isinstance(raw, float):
        number = Decimal(repr(raw)) if math.isfinite(raw) else None
    elif isinstance(raw, str):
        text = raw.strip()
        number = Decimal(text) if _DECIMAL_RE.match(text) else None
    if number is not None and whole and number != number.to_integral_value():
        number = None
    if number is None:
        zh, en = ("整数", "a whole number") if whole else ("数字", "a number")
        return _Invalid([_error("field.type", where, f"{where.zh}应填写{zh}。", f"{where.en}: enter {en}.")])
    return int(number) if whole else number


def _coerce_uploads(f: Field, raw: object, where: _Where) -> object:
    items = raw if isinstance(raw, list | tuple) else [] if raw is None else [raw]
    uploads: list[Upload] = []
    for item in items:
        if isinstance(item, Upload):
            uploads.append(item)
            continue
        if not isinstance(item, Mapping):
            return _Invalid([_type_error(f, where)])
        name, ctype, size, sha = (item.get(k) for k in ("name", "content_type", "size", "sha256"))
        text = item.get("text")
        if (
            not isinstance(name, str)
            or not name
            or not isinstance(ctype, str)
            or isinstance(size, bool)
            or not isinstance(size, int)
            or size < 0
            or not isinstance(sha, str)
            or not _SHA256_RE.match(sha.lower())
            or (text is not None and not isinstance(text, str))
        ):
            return _Invalid([_type_error(f, where)])
        uploads.append(Upload(name, ctype.split(";")[0].strip().lower(), size, sha.lower(), text))
    return uploads or _ABSENT


def _check_value(f: Field, value: Any, where: _Where) -> list[Finding]:
    """Range, length, pattern, option and upload checks on a typed value."""
    t = f.type
    out: list[Finding] = []
    if t in _LENGTH_TYPES and isinstance(value, str):
        limit = f.effective_max_length
        if f.min_length is not None and len(value) < f.min_length:
            out.append(
                _error(
                    "field.length",
                    where,
                    f"{where.zh}至少应填写{f.min_length}个字，当前{len(value)}个字。",
                    f"{where.en}: enter at least {f.min_length} characters (now {len(value)}).",
                )
            )
        if limit is not None and len(value) > limit:
            out.append(
                _error(
                    "field.length",
                    where,
                    f"{where.zh}最多填写{limit}个字，当前{len(value)}个字，请精简。",
                    f"{where.en}: enter at most {limit} characters (now {len(value)}); please shorten it.",
                )
            )
    if f.pattern is not None and isinstance(value, str) and not re.fullmatch(f.pattern, value):
        hint_zh = f"（{f.help}）" if f.help else ""
        hint_en = f" ({f.help_en})" if f.help_en else ""
        out.append(
            _error(
                "field.format",
                where,
                f"{where.zh}的格式不符合要求{hint_zh}，请核对。",
                f"{where.en}: the format is not as required{hint_en}. Please check it.",
            )
        )
    if t in _RANGE_TYPES and not isinstance(value, bool):
        current: Any = value if t is FieldType.DATE else _to_decimal(value)
        if f.min is not None and current < _bound(f, f.min):
            out.append(
                _error(
                    "field.range",
                    where,
                    f"{where.zh}不得早于{f.min}，请核对。"
                    if t is FieldType.DATE
                    else f"{where.zh}不得小于{_show_bound(f, f.min)}，请核对。",
                    f"{where.en}: must not be before {f.min}."
                    if t is FieldType.DATE
                    else f"{where.en}: must be at least {_show_bound_en(f, f.min)}.",
                )
            )
        if f.max is not None and current > _bound(f, f.max):
            out.append(
                _error(
                    "field.range",
                    where,
                    f"{where.zh}不得晚于{f.max}，请核对。"
                    if t is FieldType.DATE
                    else f"{where.zh}不得大于{_show_bound(f, f.max)}，请核对。",
                    f"{where.en}: must not be after {f.max}."
                    if t is FieldType.DATE
                    else f"{where.en}: must be at most {_show_bound_en(f, f.max)}.",
                )
            )
        if t is FieldType.MONEY and f.min is None and isinstance(value, int) and value < 0:
            out.append(
                _error(
                    "field.range",
                    where,
                    f"{where.zh}不能为负数。",
                    f"{where.en}: must not be negative.",
                )
            )
    if t in _CHOICE_TYPES:
        allowed = {o.value for o in f.options}
        chosen = value if isinstance(value, list) else [value]
        wrong = [v for v in chosen if v not in allowed]
        if wrong:
            labels = "、".join(o.label for o in f.options)
            labels_en = ", ".join(o.label_en for o in f.options)
            out.append(
                _error(
                    "field.choice",
                    where,
                    f"{where.zh}的选项“{wrong[0]}”无效，请从以下选项中选择：{labels}。",
                    f"{where.en}: {wrong[0]!r} is not one of the options; choose from: {labels_en}.",
                )
            )
    if t is FieldType.FILE:
        for upload in value:
            if f.accept and not _accepts(f.accept, upload.content_type):
                out.append(
                    _error(
                        "file.type",
                        where,
                        f"{where.zh}中的文件“{upload.name}”类型为{upload.content_type or '未知'}，"
                        f"仅接受{'、'.join(f.accept)}，请转换格式后重新上传。",
                        f"{where.en}: {upload.name!r} is {upload.content_type or 'of unknown type'}; only "
                        f"{', '.join(f.accept)} accepted. Please convert it and upload again.",
                    )
                )
            if f.max_bytes is not None and upload.size > f.max_bytes:
                out.append(
                    _error(
                        "file.size",
                        where,
                        f"{where.zh}中的文件“{upload.name}”大小为{_size(upload.size)}，"
                        f"超过上限{_size(f.max_bytes)}，请压缩后重新上传。",
                        f"{where.en}: {upload.name!r} is {_size(upload.size)}, over the limit of "
                        f"{_size(f.max_bytes)}. Please compress it and upload again.",
                    )
                )
    return out


def _accepts(accept: Iterable[str], content_type: str) -> bool:
    for mime in accept:
        if mime == content_type or (mime.endswith("/*") and content_type.startswith(mime[:-1])):
            return True
    return False


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} B"


def _coerce_computed(f: Field, result: object) -> object:
    """A computed result → typed value, ``_ABSENT`` (null result) or ``_Invalid``."""
    if result is None:
        return _ABSENT
    t = f.type
    if t in _WHOLE_TYPES:
        rounded = _round_half_up(result)
        return _Invalid([]) if rounded is None else rounded
    if t is FieldType.DECIMAL:
        number = None if isinstance(result, str | bool) else _to_decimal(result)
        return _Invalid([]) if number is None else number
    if t is FieldType.BOOLEAN:
        return truthy(result)
    if t is FieldType.MULTI_CHOICE:
        return [str(v) for v in result] if isinstance(result, list) else _Invalid([])
    if isinstance(result, float) and math.isfinite(result) and result == int(result):
        result = int(result)
    if isinstance(result, float | list | dict):
        return _Invalid([])
    where = _Where(f.key, "", "")
    value = _coerce(f, result, where)
    return _Invalid([]) if isinstance(value, _Invalid) else value


def _required_message(f: Field, where: _Where) -> Finding:
    t = f.type
    if t is FieldType.BOOLEAN:
        zh, en = f"请勾选{where.zh}。", f"{where.en}: please tick this box."
    elif t in _CHOICE_TYPES:
        zh, en = f"请选择{where.zh}。", f"{where.en}: please choose an option."
    elif t is FieldType.FILE:
        zh, en = f"请上传{where.zh}。", f"{where.en}: please upload this material."
    elif t is FieldType.TABLE:
        zh, en = f"请至少填写一行{where.zh}。", f"{where.en}: please fill in at least one row."
    else:
        zh, en = f"请填写{where.zh}。", f"{where.en}: this field is required."
    return Finding("field.required", where.path, "error", zh, en)


@dataclass
class Normalised:
    """What :func:`normalise_detailed` found.

    ``invalid`` holds the paths (and the top-level keys) that have error findings; ``row_indices`` maps
    each table key to the submitted row index of each row kept in ``values`` (blank rows are dropped, and
    finding paths use the submitted indices).
    """

    values: dict[str, Any]
    findings: list[Finding]
    invalid: set[str]
    row_indices: dict[str, list[int]]
    hidden: set[str]


_RawRows = dict[int, dict[str, Any]]


class _Normaliser:
    def __init__(self, definition: FormDefinition) -> None:
        self.definition = definition
        self.plan = definition.plan
        self.fields = {f.key: f for f in definition.fields}
        self.findings: list[Finding] = []
        self.invalid: set[str] = set()
        self.hidden: set[str] = set()
        self.row_indices: dict[str, list[int]] = {}

    def add(self, findings: Iterable[Finding], top: str) -> None:
        for finding in findings:
            self.findings.append(finding)
            if finding.severity == "error":
                self.invalid.add(top)
                if finding.field:
                    self.invalid.add(finding.field)

    def run(self, raw: Mapping[str, Any]) -> Normalised:
        raw_top, raw_cells = self.split_raw(raw)
        values: dict[str, Any] = {}
        data: dict[str, Any] = {}
        for key in self.plan.order:
            f = self.fields[key]
            where = _Where(key, f"「{f.label}」", f'"{f.label_en}"')
            if f.show_if is not None and not self.condition(f.show_if, data):
                self.hidden.add(key)
                continue
            if f.computed is not None:
                value = self.compute(f, data, self.plan.computed_refs.get(key, frozenset()), where, key)
            elif f.type is FieldType.TABLE:
                value = self.table(f, raw_top.get(key), raw_cells.get(key, {}), where)
            else:
                value = self.typed(f, raw_top.get(key), where, key)
            if value is not _ABSENT:
                values[key] = value
                data[key] = _eval_value(f, value)
        return Normalised(values, self.findings, self.invalid, self.row_indices, self.hidden)

    def typed(self, f: Field, raw: object, where: _Where, top: str) -> object:
        """Coerce and check one typed (not computed) value, reporting problems and required-ness."""
        coerced = _coerce(f, raw, where)
        value: object = _ABSENT
        if isinstance(coerced, _Invalid):
            self.add(coerced.findings, top)
        elif coerced is not _ABSENT:
            problems = _check_value(f, coerced, where)
            self.add(problems, top)
            value = _ABSENT if problems else coerced
        unanswered = value is _ABSENT and where.path not in self.invalid
        if f.required and (unanswered or (f.type is FieldType.BOOLEAN and value is False)):
            self.add([_required_message(f, where)], top)
        return value

    def split_raw(
        self, raw: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, dict[int, dict[str, Any]]]]:
        top: dict[str, Any] = {}
        cells: dict[str, _RawRows] = {}
        for key, value in raw.items():
            if not isinstance(key, str):
                continue
            if key in self.fields:
                top[key] = value
                continue
            m = _CELL_PATH_RE.match(key)
            if m and m.group(1) in self.fields and self.fields[m.group(1)].type is FieldType.TABLE:
                cells.setdefault(m.group(1), {}).setdefault(int(m.group(2)), {})[m.group(3)] = value
                continue
            self.unknown(key)
        return top, cells

    def unknown(self, path: str) -> None:
        shown = path if len(path) <= 60 else path[:57] + "..."
        self.findings.append(
            Finding(
                "form.unknown_field",
                shown,
                "error",
                f"表单中没有“{shown}”这一项，请刷新页面后重新填写。",
                f"The form has no item {shown!r}. Please reload the page and fill it in again.",
            )
        )

    def condition(self, expr: JsonValue, data: Mapping[str, Any]) -> bool:
        try:
            return truthy(evaluate(expr, data))
        except EvaluationError:
            return False

    def compute(
        self, f: Field, data: Mapping[str, Any], refs: frozenset[str], where: _Where, top: str
    ) -> object:
        if refs & self.invalid:
            self.invalid.add(top)  # tainted: depends on an invalid value; the cause is reported already
            if where.path != top:
                self.invalid.add(where.path)
            return _ABSENT
        try:
            value = _coerce_computed(f, evaluate(f.computed, data))
        except EvaluationError:
            value = _Invalid([])
        if isinstance(value, _Invalid):
            self.invalid.add(where.path)
            self.findings.append(
                Finding(
                    "field.computed",
                    where.path,
                    "warning",
                    f"无法计算{where.zh}，请核对与之相关的填写项。",
                    f"{where.en} could not be calculated; please check the items it depends on.",
                )
            )
            return _ABSENT
        if value is _ABSENT:
            return _ABSENT
        problems = _check_value(f, value, where)
        self.add(problems, top)
        return value

    def table(
        self, f: Field, raw_rows: object, raw_cells: Mapping[int, dict[str, Any]], where: _Where
    ) -> object:
        key = f.key
        rows: dict[int, dict[str, Any]] = {}
        if isinstance(raw_rows, list | tuple):
            for i, row in enumerate(raw_rows):
                if isinstance(row, Mapping):
                    rows[i] = dict(row)
                elif not _is_empty(row):
                    self.add([_type_error(f, _Where(f"{key}.{i}", where.zh, where.en))], key)
        elif not _is_empty(raw_rows):
            self.add([_type_error(f, where)], key)
        for i, cells in raw_cells.items():
            rows.setdefault(i, {}).update(cells)
        columns = {c.key: c for c in f.columns}
        typed = [c.key for c in f.columns if c.computed is None]
        kept: list[dict[str, Any]] = []
        indices: list[int] = []
        limit = min(f.effective_max_rows, HARD_MAX_ROWS)
        non_blank = [i for i in sorted(rows) if not all(_is_empty(rows[i].get(c)) for c in typed)]
        for i in sorted(rows):
            for name in rows[i]:
                if name not in columns:
                    self.unknown(f"{key}.{i}.{name}")
        for n, i in enumerate(non_blank):
            if n >= limit:
                break
            row = self.row(f, i, rows[i], where)
            if row:
                kept.append(row)
                indices.append(i)
        count = len(non_blank)
        if count == 0:
            if f.required:
                self.add([_required_message(f, where)], key)
            return _ABSENT
        low = f.min_rows if f.min_rows is not None else 0
        high = f.effective_max_rows
        if count < low or count > high:
            self.add(
                [
                    _error(
                        "field.rows",
                        where,
                        f"{where.zh}应填写{low}至{high}行，当前{count}行。",
                        f"{where.en}: fill in between {low} and {high} rows (now {count}).",
                    )
                ],
                key,
            )
        self.row_indices[key] = indices
        return kept or _ABSENT

    def row(self, f: Field, index: int, raw: Mapping[str, Any], table_where: _Where) -> dict[str, Any]:
        columns = {c.key: c for c in f.columns}
        values: dict[str, Any] = {}
        data: dict[str, Any] = {}
        for col_key in self.plan.column_order[f.key]:
            c = columns[col_key]
            path = f"{f.key}.{index}.{col_key}"
            where = _Where(
                path,
                f"{table_where.zh}第{index + 1}行的「{c.label}」",
                f'{table_where.en} row {index + 1}, "{c.label_en}"',
            )
            if c.show_if is not None and not self.condition(c.show_if, data):
                self.hidden.add(path)
                continue
            if c.computed is not None:
                refs = self.plan.column_computed_refs[f.key].get(col_key, frozenset())
                value = self.compute(c, data, frozenset(f"{f.key}.{index}.{r}" for r in refs), where, f.key)
            else:
                value = self.typed(c, raw.get(col_key), where, f.key)
            if value is not _ABSENT:
                values[col_key] = value
                data[col_key] = _eval_value(c, value)
        return values


def field_order(definition: FormDefinition, path: str | None) -> tuple[int, ...]:
    """A sort key placing a finding's path in form order (unknown paths last)."""
    if path is None:
        return (len(definition.fields) + 1,)
    parts = path.split(".")
    for i, f in enumerate(definition.fields):
        if f.key != parts[0]:
            continue
        if len(parts) >= 3 and parts[1].isdigit():
            cols = [c.key for c in f.columns]
            col = cols.index(parts[2]) if parts[2] in cols else len(cols)
            return (i, int(parts[1]), col)
        if len(parts) == 2 and parts[1].isdigit():
            return (i, int(parts[1]), -1)
        return (i, -1, -1)
    return (len(definition.fields),)


def _sort(definition: FormDefinition, findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda x: (x.severity != "error", field_order(definition, x.field)))


def normalise_detailed(definition: FormDefinition, raw: Mapping[str, Any]) -> Normalised:
    """Like :func:`normalise`, also returning which paths are invalid or hidden (used by the pre-check)."""
    result = _Normaliser(definition).run(raw)
    result.findings = _sort(definition, result.findings)
    return result


def normalise(definition: FormDefinition, raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[Finding]]:
    """Coerce raw input to typed values and report field-level problems.

    Values: text as stripped strings, identifiers in canonical form, dates as :class:`datetime.date`,
    money as integer fen, integers as ``int``, decimals as :class:`~decimal.Decimal`, booleans as
    ``bool``, multi-choices as lists, uploads as lists of :class:`Upload`, tables as lists of row dicts.
    Empty, hidden (``show_if`` false) and invalid values are left out; computed values are filled in.
    Unknown keys produce ``form.unknown_field``. Never raises on bad input.
    """
    result = normalise_detailed(definition, raw)
    return result.values, result.findings
