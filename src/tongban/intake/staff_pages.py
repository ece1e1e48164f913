"""Staff pages of intake: configure each service item's application form, approval process and special
procedures, and compose bundles (高效办成一件事) — all without writing code.

Every page needs ``intake:forms``; publishing and retiring need ``intake:forms_publish`` and, as the service
enforces, a person other than the author. The pages only turn what was posted into the definitions the
service functions take (:func:`service.save_form`, :func:`service.save_process`,
:func:`service.set_special_procedures`, :func:`bundles.save_bundle` ...) and show their refusals next to
the inputs they concern.

The form builder and the bundle editor keep the whole draft in the page: every button (add, move, remove,
update the preview, save) posts all the inputs and the page comes back with the change made, so they work
without JavaScript. Input names are ``f<i>.<setting>`` for field ``i`` and ``r<j>.<setting>`` for rule
``j`` (bundles: ``q<i>.``, ``i<j>.``); element ids are ``f<i>-<setting>``, which the error summary links to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from tongban.catalog import service as catalog
from tongban.core import auth
from tongban.core.errors import DomainError, InvalidInput, NotFound
from tongban.core.http import ClockDep, DbSession, LanguageDep, csrf_form, posted_form, render_page, require
from tongban.core.i18n import Language
from tongban.core.messages import N_
from tongban.intake import bundles, deadlines, formdef, process, service
from tongban.intake.vocab import DATA_KEYS

router = APIRouter(include_in_schema=False)
Editor = Annotated[auth.Principal, Depends(require(service.FORMS))]
Publisher = Annotated[auth.Principal, Depends(require(service.FORMS_PUBLISH))]

#: A large form posts many inputs (about 25 per field, up to 300 fields); Starlette's default is 1000.
MAX_POSTED_INPUTS = 12_000
MAX_FIELDS = 300
MAX_RULES = 100
MAX_QUESTIONS = 20
MAX_PARTS = 20
#: Example processes shipped with the package that staff may start from.
PROCESS_EXAMPLES = ("parallel_departments",)
#: Messages shown after a successful action (``?ok=``): only these, never text from the address.
NOTICES = frozenset(
    {
        "form_saved",
        "form_published",
        "process_saved",
        "process_published",
        "process_retired",
        "procedures_saved",
        "bundle_saved",
        "bundle_published",
    }
)
FIELD_TYPES = tuple(t.value for t in formdef.FieldType)
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,63}$")


async def _parse_large_form(request: Request) -> None:
    """Parse the posted form once with room for many inputs (the parsed form is kept on the request)."""
    await request.form(max_fields=MAX_POSTED_INPUTS)


Posted = Annotated[FormData, Depends(posted_form)]


# --- problems ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Something to fix: ``anchor`` is the id of the input it concerns (None: the whole definition)."""

    anchor: str | None
    message: str


@dataclass
class Problems:
    all: list[Problem] = field(default_factory=list)

    def add(self, anchor: str | None, message: str) -> None:
        self.all.append(Problem(anchor, message))

    def at(self, anchor: str) -> list[Problem]:
        return [p for p in self.all if p.anchor == anchor]

    def __bool__(self) -> bool:
        return bool(self.all)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _count(form: FormData, name: str, limit: int) -> int:
    value = _text(form, name).strip()
    return min(int(value), limit) if value.isdigit() else 0


def _json_text(value: Any, *, indent: int | None = None) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, indent=indent)


def _loads(text: str) -> Any:
    """JSON from an input; ``ValueError`` for anything unreadable, nesting too deep included."""
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


def _pasted(form: FormData) -> tuple[str, dict[str, Any] | None, str | None]:
    """The definition pasted as JSON: its text, the object (None: not an object) and why it could not
    be read (None: it could)."""
    text = _text(form, "definition_json")
    try:
        loaded = _loads(text)
    except ValueError as exc:
        return text, None, str(exc)
    return text, loaded if isinstance(loaded, dict) else None, None


def _notice(ok: str | None) -> str | None:
    return ok if ok in NOTICES else None


def _colon(lang: Language) -> str:
    return ": " if lang.code == "en" else "："


def _problem_text(exc: DomainError) -> list[str]:
    errors = exc.extra.get("errors")
    if isinstance(errors, list) and errors:
        return [str(e) for e in errors]
    return [exc.detail]


# --- the form definition as inputs -------------------------------------------------------------------

#: The settings of a field, in the editor's order, with their labels (shared by the page and the messages).
FIELD_LABELS: dict[str, str] = {
    "key": N_("Field key"),
    "label": N_("Label in Chinese"),
    "label_en": N_("Label in English"),
    "type": N_("Field type"),
    "required": N_("Must be filled in"),
    "help": N_("Help text in Chinese"),
    "help_en": N_("Help text in English"),
    "min": N_("Minimum"),
    "max": N_("Maximum"),
    "min_length": N_("Fewest characters"),
    "max_length": N_("Most characters"),
    "pattern": N_("Pattern (regular expression)"),
    "options": N_("Options, one per line: value|label|English label"),
    "profile_key": N_("Prefill from the profile datum"),
    "material": N_("Catalogue material"),
    "accept": N_("Accepted file types (MIME types, comma-separated)"),
    "max_bytes": N_("Largest file (bytes)"),
    "columns": N_("Columns (a JSON list of fields)"),
    "min_rows": N_("Fewest rows"),
    "max_rows": N_("Most rows"),
    "show_if": N_("Shown only when (JSON Logic)"),
    "computed": N_("Calculated as (JSON Logic)"),
}
FIELD_INPUTS = tuple(name for name in FIELD_LABELS if name != "required")
RULE_LABELS: dict[str, str] = {
    "key": N_("Rule key"),
    "when": N_("Applies when (JSON Logic; empty: always)"),
    "check": N_("Must hold (JSON Logic)"),
    "message": N_("Message in Chinese"),
    "message_en": N_("Message in English"),
    "severity": N_("Severity"),
    "fields": N_("Fields it concerns (keys, comma-separated)"),
}
RULE_INPUTS = tuple(RULE_LABELS)

_ALL_BUT_TABLE_AND_FILE = frozenset(FIELD_TYPES) - {"table", "file"}
#: Which settings each field type takes: the editor shows only these and drops the others on a change of
#: type (they would not apply).
GROUPS: dict[str, frozenset[str]] = {
    "bounds": frozenset({"date", "money", "integer", "decimal"}),
    "lengths": frozenset({"text", "textarea", "address", "email"}),
    "pattern": frozenset({"text", "textarea", "address"}),
    "options": frozenset({"choice", "multi_choice"}),
    "table": frozenset({"table"}),
    "file": frozenset({"file"}),
    "computed": _ALL_BUT_TABLE_AND_FILE,
    "profile": _ALL_BUT_TABLE_AND_FILE,
}


def takes(field_type: str, group: str) -> bool:
    """Whether a field of this type has the settings of ``group`` (``bounds``, ``options`` ...)."""
    return field_type in GROUPS[group]


def _yuan(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"


def _field_inputs(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A field of a definition as the editor's inputs (strings; money bounds in yuan)."""
    field_type = str(raw.get("type") or "text")

    def text(name: str) -> str:
        value = raw.get(name)
        return "" if value is None else str(value)

    def bound(name: str) -> str:
        value = raw.get(name)
        if field_type == "money" and isinstance(value, int) and not isinstance(value, bool):
            return _yuan(value)
        return text(name)

    options = raw.get("options") if isinstance(raw.get("options"), list) else []
    accept = raw.get("accept") if isinstance(raw.get("accept"), list) else []
    columns = raw.get("columns")
    return {
        **{name: text(name) for name in FIELD_INPUTS},
        "type": field_type if field_type in FIELD_TYPES else "text",
        "required": raw.get("required") is True,
        "min": bound("min"),
        "max": bound("max"),
        "options": "\n".join(
            f"{o.get('value', '')}|{o.get('label', '')}|{o.get('label_en', '')}"
            for o in options or []
            if isinstance(o, Mapping)
        ),
        "accept": ", ".join(str(a) for a in accept or []),
        "columns": _json_text(columns, indent=2) if columns else "",
        "show_if": _json_text(raw.get("show_if")),
        "computed": _json_text(raw.get("computed")),
    }


def _rule_inputs(raw: Mapping[str, Any]) -> dict[str, str]:
    names = raw.get("fields") if isinstance(raw.get("fields"), list) else []
    return {
        "key": str(raw.get("key") or ""),
        "when": _json_text(raw.get("when")),
        "check": _json_text(raw.get("check")),
        "message": str(raw.get("message") or ""),
        "message_en": str(raw.get("message_en") or ""),
        "severity": "warning" if raw.get("severity") == "warning" else "error",
        "fields": ", ".join(str(n) for n in names or []),
    }


@dataclass
class FormDraft:
    """The form being edited, as the editor's inputs."""

    fields: list[dict[str, Any]] = field(default_factory=list)
    rules: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, definition: Mapping[str, Any]) -> FormDraft:
        fields = definition.get("fields") if isinstance(definition.get("fields"), list) else []
        rules = definition.get("rules") if isinstance(definition.get("rules"), list) else []
        return cls(
            fields=[_field_inputs(f) for f in fields or [] if isinstance(f, Mapping)][:MAX_FIELDS],
            rules=[_rule_inputs(r) for r in rules or [] if isinstance(r, Mapping)][:MAX_RULES],
        )

    @classmethod
    def posted(cls, form: FormData) -> FormDraft:
        draft = cls()
        for i in range(_count(form, "n_fields", MAX_FIELDS)):
            inputs: dict[str, Any] = {name: _text(form, f"f{i}.{name}") for name in FIELD_INPUTS}
            if inputs["type"] not in FIELD_TYPES:
                inputs["type"] = "text"
            inputs["required"] = _text(form, f"f{i}.required") == "on"
            draft.fields.append(inputs)
        for j in range(_count(form, "n_rules", MAX_RULES)):
            draft.rules.append({name: _text(form, f"r{j}.{name}") for name in RULE_INPUTS})
        return draft

    def new_field(self, field_type: str) -> int:
        """Add a field of ``field_type`` at the end (with a free key); returns its index."""
        used = {f["key"] for f in self.fields}
        n = next(n for n in range(1, MAX_FIELDS + 2) if f"field_{n}" not in used)
        inputs = _field_inputs({"key": f"field_{n}", "type": field_type})
        if field_type == "table":
            inputs["columns"] = _json_text(
                [{"key": "column_1", "label": "第一列", "label_en": "Column 1", "type": "text"}], indent=2
            )
        self.fields.append(inputs)
        return len(self.fields) - 1

    def new_rule(self) -> int:
        used = {r["key"] for r in self.rules}
        n = next(n for n in range(1, MAX_RULES + 2) if f"rule_{n}" not in used)
        self.rules.append(_rule_inputs({"key": f"rule_{n}"}))
        return len(self.rules) - 1


class _Bad:
    """An input that could not be read (a problem was recorded)."""


_BAD = _Bad()
_WHOLE = re.compile(r"^[+-]?\d{1,18}$")
_AMOUNT = re.compile(r"^[+-]?\d{1,15}(\.\d{1,2})?$")
_NUMBER = re.compile(r"^[+-]?(\d{1,18}(\.\d{0,12})?|\.\d{1,12})$")


class _Reader:
    """Reads the editor's inputs into a definition, noting what cannot be read."""

    def __init__(self, lang: Language, problems: Problems) -> None:
        self.lang = lang
        self.problems = problems

    def bad(self, anchor: str, where: str, label: str, message: str) -> _Bad:
        self.problems.add(anchor, f"{where} · {self.lang.gettext(label)}{_colon(self.lang)}{message}")
        return _BAD

    def whole(self, text: str, anchor: str, where: str, label: str) -> int | _Bad | None:
        text = text.strip()
        if not text:
            return None
        if _WHOLE.match(text):
            return int(text)
        return self.bad(anchor, where, label, self.lang.gettext("enter a whole number"))

    def bound(self, field_type: str, text: str, anchor: str, where: str, label: str) -> Any:
        text = text.strip().replace(",", "")
        if not text:
            return None
        if field_type == "date":
            return text  # the service checks the ISO date
        if field_type == "integer":
            return self.whole(text, anchor, where, label)
        if field_type == "money":
            if _AMOUNT.match(text):
                return int(Decimal(text) * 100)
            return self.bad(
                anchor, where, label, self.lang.gettext("enter an amount in yuan with at most two decimals")
            )
        if _NUMBER.match(text):
            number = Decimal(text)
            return int(number) if number == number.to_integral_value() else float(number)
        return self.bad(anchor, where, label, self.lang.gettext("enter a number"))

    def json(self, text: str, anchor: str, where: str, label: str) -> Any:
        text = text.strip()
        if not text:
            return None
        try:
            return _loads(text)
        except ValueError as exc:
            message = self.lang.gettext("not valid JSON (%(error)s)") % {"error": str(exc)}
            return self.bad(anchor, where, label, message)


def _field_where(lang: Language, i: int, key: str) -> str:
    return lang.gettext("Field %(n)s (%(key)s)") % {"n": i + 1, "key": key or "—"}


def _rule_where(lang: Language, j: int, key: str) -> str:
    return lang.gettext("Rule %(n)s (%(key)s)") % {"n": j + 1, "key": key or "—"}


def _split(text: str) -> list[str]:
    return [part for part in re.split(r"[\s,，、]+", text) if part]


def build_form(draft: FormDraft, materials: Iterable[str], lang: Language) -> tuple[dict[str, Any], Problems]:
    """The definition the editor's inputs describe, and what could not be read (or breaks the editor's
    own rule: a file field names one of the item's materials). The service checks the rest."""
    problems = Problems()
    read = _Reader(lang, problems)
    known = set(materials)
    fields: list[dict[str, Any]] = []
    for i, f in enumerate(draft.fields):
        t = f["type"]
        where = _field_where(lang, i, f["key"].strip())

        def at(name: str, i: int = i) -> str:
            return f"f{i}-{name}"

        out: dict[str, Any] = {
            "key": f["key"].strip(),
            "label": f["label"].strip(),
            "label_en": f["label_en"].strip(),
            "type": t,
        }
        if f["required"]:
            out["required"] = True
        for name in ("help", "help_en"):
            if f[name].strip():
                out[name] = f[name].strip()
        values: dict[str, Any] = {}
        if takes(t, "bounds"):
            for name in ("min", "max"):
                values[name] = read.bound(t, f[name], at(name), where, FIELD_LABELS[name])
        if takes(t, "lengths"):
            for name in ("min_length", "max_length"):
                values[name] = read.whole(f[name], at(name), where, FIELD_LABELS[name])
        if takes(t, "pattern") and f["pattern"].strip():
            values["pattern"] = f["pattern"].strip()
        if takes(t, "options"):
            values["options"] = _options(f["options"])
        if takes(t, "profile") and f["profile_key"].strip():
            values["profile_key"] = f["profile_key"].strip()
        if takes(t, "table"):
            columns = read.json(f["columns"], at("columns"), where, FIELD_LABELS["columns"])
            if columns is not None and not isinstance(columns, (list, _Bad)):
                columns = read.bad(
                    at("columns"),
                    where,
                    FIELD_LABELS["columns"],
                    lang.gettext("write a JSON list of fields, as in the example"),
                )
            values["columns"] = columns
            for name in ("min_rows", "max_rows"):
                values[name] = read.whole(f[name], at(name), where, FIELD_LABELS[name])
        if takes(t, "file"):
            material = f["material"].strip()
            if not material:
                read.bad(
                    at("material"),
                    where,
                    FIELD_LABELS["material"],
                    lang.gettext("choose the catalogue material this file is"),
                )
            elif material not in known:
                read.bad(
                    at("material"),
                    where,
                    FIELD_LABELS["material"],
                    lang.gettext("the item's catalogue entry does not list this material"),
                )
            values["material"] = material or None
            values["accept"] = _split(f["accept"]) or None
            values["max_bytes"] = read.whole(
                f["max_bytes"], at("max_bytes"), where, FIELD_LABELS["max_bytes"]
            )
        values["show_if"] = read.json(f["show_if"], at("show_if"), where, FIELD_LABELS["show_if"])
        if takes(t, "computed"):
            values["computed"] = read.json(f["computed"], at("computed"), where, FIELD_LABELS["computed"])
        out.update({k: v for k, v in values.items() if v is not None and not isinstance(v, _Bad)})
        fields.append(out)
    rules: list[dict[str, Any]] = []
    for j, r in enumerate(draft.rules):
        where = _rule_where(lang, j, r["key"].strip())
        rule: dict[str, Any] = {"key": r["key"].strip()}
        for name in ("when", "check"):
            value = read.json(r[name], f"r{j}-{name}", where, RULE_LABELS[name])
            if value is not None and not isinstance(value, _Bad):
                rule[name] = value
        rule["message"] = r["message"].strip()
        rule["message_en"] = r["message_en"].strip()
        rule["severity"] = "warning" if r["severity"] == "warning" else "error"
        names = _split(r["fields"])
        if names:
            rule["fields"] = names
        rules.append(rule)
    definition: dict[str, Any] = {"fields": fields}
    if rules:
        definition["rules"] = rules
    return definition, problems


def _options(text: str) -> list[dict[str, str]]:
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        value, _, rest = line.partition("|")
        label, _, label_en = rest.partition("|")
        value = value.strip()
        label = label.strip() or value
        out.append({"value": value, "label": label, "label_en": label_en.strip() or label})
    return out


# --- the service's refusals, next to the inputs --------------------------------------------------------

_LOC = re.compile(r"^(fields|rules)\.(\d+)(?:\.([a-z_]+))?")
_INNER = re.compile(r"\b(fields|rules)\[(\d+)\]\([^)]*\)\.([a-z_]+)")
_DUPLICATE = re.compile(r"duplicate (field|rule) keys: ([a-z0-9_]+)")
#: Words of a message that say which setting of a field it concerns, most specific first.
_HINTS = (
    ("material", "material"),
    ("min/max", "min"),
    ("min is greater", "min"),
    ("bounds", "min"),
    ("min_length", "min_length"),
    ("max_length", "max_length"),
    ("min_rows", "min_rows"),
    ("max_rows", "max_rows"),
    ("column", "columns"),
    ("option", "options"),
    ("pattern", "pattern"),
    ("accept", "accept"),
    ("max_bytes", "max_bytes"),
    ("show_if", "show_if"),
    ("computed", "computed"),
)


#: Pydantic's words for the commonest slips, said the way the editor says them.
_PLAIN = {
    "String should have at least 1 character": N_("fill this in"),
    "Field required": N_("fill this in"),
}


def _plain(lang: Language, message: str) -> str:
    if message.startswith(f"String should match pattern '{formdef.KEY_PATTERN}'"):
        return lang.gettext("use lower-case letters, digits and “_”, starting with a letter (at most 40)")
    return lang.gettext(_PLAIN[message]) if message in _PLAIN else message


def _hint(kind: str, message: str) -> str:
    if kind == "rules":
        after = message.split("': ", 1)[-1]
        return "when" if after.startswith("when") else "check"
    return next((name for word, name in _HINTS if word in message), "key")


def form_problems(errors: Iterable[str], draft: FormDraft, lang: Language) -> Problems:
    """The service's refusals of a form definition, each linked to the input it concerns."""
    problems = Problems()
    for text in errors:
        loc, sep, rest = text.partition(": ")
        rest = rest.removeprefix("Value error, ") if sep else text
        kind: str | None = None
        index, name = 0, None
        if m := _LOC.match(loc):
            kind, index, name = m.group(1), int(m.group(2)), m.group(3)
            name = name or _hint(kind, rest)
        elif m := _INNER.search(rest):
            kind, index, name = m.group(1), int(m.group(2)), m.group(3)
        elif m := _DUPLICATE.search(rest):
            kind = f"{m.group(1)}s"
            keys = [x["key"].strip() for x in (draft.fields if kind == "fields" else draft.rules)]
            repeated = [k for k, key in enumerate(keys) if key == m.group(2)]
            index, name = (repeated[1] if len(repeated) > 1 else 0), "key"
        elif loc == "fields":
            problems.add("add-type", lang.gettext("Add at least one field.") + f" ({rest})")
            continue
        if kind == "fields" and index < len(draft.fields):
            name = name if name in FIELD_INPUTS else "key"
            where = _field_where(lang, index, draft.fields[index]["key"].strip())
            label = lang.gettext(FIELD_LABELS[name])
            problems.add(f"f{index}-{name}", f"{where} · {label}{_colon(lang)}{_plain(lang, rest)}")
        elif kind == "rules" and index < len(draft.rules):
            name = name if name in RULE_INPUTS else "check"
            where = _rule_where(lang, index, draft.rules[index]["key"].strip())
            label = lang.gettext(RULE_LABELS[name])
            problems.add(f"r{index}-{name}", f"{where} · {label}{_colon(lang)}{_plain(lang, rest)}")
        else:
            problems.add(None, rest)
    return problems


# --- pages: an item's configuration ----------------------------------------------------------------


def _materials(item: Any) -> list[str]:
    return [m.name for m in item.content.materials]


def _item_page(
    request: Request,
    session: Session,
    principal: auth.Principal,
    lang: Language,
    code: str,
    *,
    problems: Problems | None = None,
    ok: str | None = None,
    more: str = "",
    chosen: list[str] | None = None,
    status: int = 200,
) -> Response:
    item = catalog.get_item(session, principal, code)
    stored = service.special_procedures(session, code)
    current = stored if chosen is None else chosen
    context = {
        "item": item,
        "forms": service.list_forms(session, principal, code),
        "processes": service.list_processes(session, principal, code),
        "procedures": current,
        "procedure_choices": list(dict.fromkeys([*deadlines.DEFAULT_SPECIAL_PROCEDURES, *stored, *current])),
        "problems": problems or Problems(),
        "ok": _notice(ok),
        "more": more,
    }
    return render_page(request, lang, "intake/staff/item.html", context, status=status)


@router.get("/staff/intake/items")
def items_page(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Editor,
    code: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Open an item's configuration by its code."""
    problems = Problems()
    if code is not None:
        code = code.strip()
        try:
            found = catalog.get_item(session, principal, code) if _CODE.match(code) else None
        except NotFound:
            found = None
        if found is not None:
            return RedirectResponse(f"/staff/intake/items/{found.code}", status_code=303)
        problems.add("item-code", lang.gettext("No service item has this code."))
    context = {"code": code or "", "problems": problems}
    return render_page(request, lang, "intake/staff/items.html", context, status=404 if problems else 200)


@router.get("/staff/intake/items/{code}")
def item_page(
    request: Request,
    code: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Editor,
    ok: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    return _item_page(request, session, principal, lang, code, ok=ok)


@router.post("/staff/intake/items/{code}/special-procedures", dependencies=[Depends(csrf_form)])
def save_special_procedures(
    request: Request,
    code: str,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    principal: Editor,
    form: Posted,
) -> Response:
    chosen = [v for v in form.getlist("procedure") if isinstance(v, str)]
    more = [line.strip() for line in _text(form, "more").splitlines() if line.strip()]
    try:
        service.set_special_procedures(session, principal, code, [*chosen, *more], clock=clock)
    except InvalidInput as exc:
        problems = Problems()
        for text in _problem_text(exc):
            problems.add("sp-more", text)
        return _item_page(
            request,
            session,
            principal,
            lang,
            code,
            problems=problems,
            more=_text(form, "more"),
            chosen=chosen,
            status=exc.status,
        )
    return RedirectResponse(f"/staff/intake/items/{code}?ok=procedures_saved#special", status_code=303)


# --- pages: the form builder --------------------------------------------------------------------------


def _editor(
    request: Request,
    lang: Language,
    item: Any,
    draft: FormDraft,
    *,
    based_on: int | None,
    problems: Problems | None = None,
    definition_json: str | None = None,
    status: int = 200,
) -> Response:
    materials = _materials(item)
    definition, read_problems = build_form(draft, materials, lang)
    context = {
        "item": item,
        "draft": draft,
        "definition": definition,
        "definition_json": definition_json
        if definition_json is not None
        else _json_text(definition, indent=2),
        "based_on": based_on,
        "problems": problems or Problems(),
        "materials": materials,
        "data_keys": list(DATA_KEYS.values()),
        "field_types": FIELD_TYPES,
        "field_labels": FIELD_LABELS,
        "rule_labels": RULE_LABELS,
        "takes": takes,
        "preview_ok": not read_problems,
    }
    return render_page(request, lang, "intake/staff/form_edit.html", context, status=status)


def _form_version(session: Session, principal: auth.Principal, code: str, version: int) -> Any:
    found = next((f for f in service.list_forms(session, principal, code) if f.version == version), None)
    if found is None:
        raise NotFound(f"no form version {version} for item {code!r}")
    return found


@router.get("/staff/intake/items/{code}/forms/new")
def new_form(
    request: Request,
    code: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Editor,
    base: Annotated[int | None, Query(alias="from", ge=1)] = None,
) -> Response:
    item = catalog.get_item(session, principal, code)
    draft = FormDraft()
    if base is not None:
        draft = FormDraft.of(_form_version(session, principal, code, base).definition)
    return _editor(request, lang, item, draft, based_on=base)


_MOVE = re.compile(r"^(up|down|remove|remove_rule):(\d{1,3})$")


@router.post(
    "/staff/intake/items/{code}/forms/new", dependencies=[Depends(_parse_large_form), Depends(csrf_form)]
)
def edit_form(
    request: Request,
    code: str,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    principal: Editor,
    form: Posted,
) -> Response:
    """Every button of the builder: change the draft and show it again, or save it."""
    item = catalog.get_item(session, principal, code)
    based = _text(form, "based_on")
    based_on = int(based) if based.isdigit() else None
    draft = FormDraft.posted(form)
    action = _text(form, "_action")
    if action == "add" and len(draft.fields) < MAX_FIELDS:
        kind = _text(form, "add_type")
        draft.new_field(kind if kind in FIELD_TYPES else "text")
    elif action == "add_rule" and len(draft.rules) < MAX_RULES:
        draft.new_rule()
    elif m := _MOVE.match(action):
        verb, index = m.group(1), int(m.group(2))
        fields, rules = draft.fields, draft.rules
        if verb == "up" and 0 < index < len(fields):
            fields[index - 1], fields[index] = fields[index], fields[index - 1]
        elif verb == "down" and index < len(fields) - 1:
            fields[index], fields[index + 1] = fields[index + 1], fields[index]
        elif verb == "remove" and index < len(fields):
            del fields[index]
        elif verb == "remove_rule" and index < len(rules):
            del rules[index]
    elif action in ("load_json", "save_json"):
        text, loaded, error = _pasted(form)
        if loaded is None:
            why = lang.gettext("The JSON is not a form definition (an object with “fields”).")
            problems = Problems([Problem("definition-json", why if error is None else f"{why} ({error})")])
            return _editor(
                request,
                lang,
                item,
                draft,
                based_on=based_on,
                problems=problems,
                definition_json=text,
                status=422,
            )
        draft = FormDraft.of(loaded)
        if action == "save_json":
            return _save_form(request, session, clock, lang, principal, item, draft, loaded, based_on, text)
    elif action == "save":
        definition, problems = build_form(draft, _materials(item), lang)
        if problems:
            return _editor(request, lang, item, draft, based_on=based_on, problems=problems, status=422)
        return _save_form(request, session, clock, lang, principal, item, draft, definition, based_on, None)
    return _editor(request, lang, item, draft, based_on=based_on)


def _save_form(
    request: Request,
    session: Session,
    clock: Any,
    lang: Language,
    principal: auth.Principal,
    item: Any,
    draft: FormDraft,
    definition: Mapping[str, Any],
    based_on: int | None,
    definition_json: str | None,
) -> Response:
    file_fields = [
        f for f in definition.get("fields") or [] if isinstance(f, Mapping) and f.get("type") == "file"
    ]
    try:
        if any(not f.get("material") for f in file_fields):
            # The editor's own rule, for definitions pasted as JSON too.
            _, problems = build_form(draft, _materials(item), lang)
            raise _EditorRefusal(problems)
        saved = service.save_form(session, principal, item.code, definition, clock=clock)
    except _EditorRefusal as refusal:
        problems, status = refusal.problems, 422
    except InvalidInput as exc:
        problems, status = form_problems(_problem_text(exc), draft, lang), exc.status
    else:
        return RedirectResponse(
            f"/staff/intake/items/{item.code}/forms/{saved.version}?ok=form_saved", status_code=303
        )
    return _editor(
        request,
        lang,
        item,
        draft,
        based_on=based_on,
        problems=problems,
        definition_json=definition_json,
        status=status,
    )


class _EditorRefusal(Exception):
    def __init__(self, problems: Problems) -> None:
        super().__init__("refused by the editor")
        self.problems = problems


def _version_page(
    request: Request,
    session: Session,
    principal: auth.Principal,
    lang: Language,
    code: str,
    version: int,
    *,
    problems: Problems | None = None,
    ok: str | None = None,
    status: int = 200,
) -> Response:
    item = catalog.get_item(session, principal, code)
    found = _form_version(session, principal, code, version)
    context = {
        "item": item,
        "form": found,
        "definition": found.definition,
        "definition_json": _json_text(found.definition, indent=2),
        "problems": problems or Problems(),
        "ok": _notice(ok),
    }
    return render_page(request, lang, "intake/staff/form_version.html", context, status=status)


@router.get("/staff/intake/items/{code}/forms/{version}")
def form_version(
    request: Request,
    code: str,
    version: int,
    session: DbSession,
    lang: LanguageDep,
    principal: Editor,
    ok: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    return _version_page(request, session, principal, lang, code, version, ok=ok)


@router.post("/staff/intake/items/{code}/forms/{version}/publish", dependencies=[Depends(csrf_form)])
def publish_form(
    request: Request,
    code: str,
    version: int,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    principal: Publisher,
) -> Response:
    try:
        service.publish_form(session, principal, code, version, clock=clock)
    except DomainError as exc:
        problems = Problems([Problem("publish", _refusal(lang, exc))])
        return _version_page(
            request, session, principal, lang, code, version, problems=problems, status=exc.status
        )
    return RedirectResponse(f"/staff/intake/items/{code}/forms/{version}?ok=form_published", status_code=303)


def _refusal(lang: Language, exc: DomainError) -> str:
    return f"{lang.gettext(exc.title)}{_colon(lang)}{exc.detail}"


# --- pages: the approval process ------------------------------------------------------------------------


def _process_page(
    request: Request,
    session: Session,
    principal: auth.Principal,
    lang: Language,
    code: str,
    *,
    problems: Problems | None = None,
    ok: str | None = None,
    status: int = 200,
) -> Response:
    context = {
        "item": catalog.get_item(session, principal, code),
        "processes": service.list_processes(session, principal, code),
        "standard": process.standard(),
        "examples": PROCESS_EXAMPLES,
        "problems": problems or Problems(),
        "ok": _notice(ok),
    }
    return render_page(request, lang, "intake/staff/processes.html", context, status=status)


@router.get("/staff/intake/items/{code}/processes")
def processes_page(
    request: Request,
    code: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Editor,
    ok: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    return _process_page(request, session, principal, lang, code, ok=ok)


def _posted_xml(form: FormData, lang: Language) -> tuple[str | None, str]:
    """The BPMN XML chosen in the form (a file, an example or the standard process), or why not."""
    source = _text(form, "source")
    if source == "standard":
        return process.standard().xml, ""
    if source.startswith("example:") and source[8:] in PROCESS_EXAMPLES:
        return process.example(source[8:]), ""
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None, lang.gettext("Choose a BPMN file to upload.")
    if not upload.filename.lower().endswith((".bpmn", ".xml")):
        return None, lang.gettext("%(name)s: choose a .bpmn or .xml file exported from a BPMN modeller.") % {
            "name": upload.filename
        }
    data = upload.file.read(process.MAX_BYTES + 1)
    try:
        return data.decode("utf-8-sig"), ""
    except UnicodeDecodeError:
        return None, lang.gettext("%(name)s: the file is not UTF-8 text.") % {"name": upload.filename}


@router.post("/staff/intake/items/{code}/processes", dependencies=[Depends(csrf_form)])
def save_process(
    request: Request,
    code: str,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    principal: Editor,
    form: Posted,
) -> Response:
    xml, why = _posted_xml(form, lang)
    problems = Problems()
    if xml is None:
        problems.add("bpmn-file", why)
        return _process_page(request, session, principal, lang, code, problems=problems, status=422)
    try:
        service.save_process(session, principal, code, xml, clock=clock)
    except InvalidInput as exc:
        for text in _problem_text(exc):
            problems.add("bpmn-file", text)
        return _process_page(request, session, principal, lang, code, problems=problems, status=exc.status)
    return RedirectResponse(f"/staff/intake/items/{code}/processes?ok=process_saved", status_code=303)


@router.get("/staff/intake/items/{code}/processes/{version}/bpmn")
def download_process(code: str, version: int, session: DbSession, principal: Editor) -> Response:
    xml = service.process_xml(session, principal, code, version)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", code)
    return Response(
        xml,
        media_type="application/xml",
        headers={"content-disposition": f'attachment; filename="{name}-v{version}.bpmn"'},
    )


def _process_action(
    request: Request,
    session: Session,
    clock: Any,
    lang: Language,
    principal: auth.Principal,
    code: str,
    version: int,
    form: FormData,
    *,
    retire: bool,
) -> Response:
    back = "item" if _text(form, "back") == "item" else "processes"
    try:
        if retire:
            service.retire_process(session, principal, code, version, clock=clock)
        else:
            service.publish_process(session, principal, code, version, clock=clock)
    except DomainError as exc:
        problems = Problems([Problem(f"process-{version}", _refusal(lang, exc))])
        page = _item_page if back == "item" else _process_page
        return page(request, session, principal, lang, code, problems=problems, status=exc.status)
    ok = "process_retired" if retire else "process_published"
    target = f"/staff/intake/items/{code}" if back == "item" else f"/staff/intake/items/{code}/processes"
    return RedirectResponse(f"{target}?ok={ok}", status_code=303)


@router.post("/staff/intake/items/{code}/processes/{version}/publish", dependencies=[Depends(csrf_form)])
def publish_process(
    request: Request,
    code: str,
    version: int,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    principal: Publisher,
    form: Posted,
) -> Response:
    return _process_action(request, session, clock, lang, principal, code, version, form, retire=False)


@router.post("/staff/intake/items/{code}/processes/{version}/retire", dependencies=[Depends(csrf_form)])
def retire_process(
    request: Request,
    code: str,
    version: int,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    principal: Publisher,
    form: Posted,
) -> Response:
    return _process_action(request, session, clock, lang, principal, code, version, form, retire=True)


# --- pages: bundles -----------------------------------------------------------------------------------------

QUESTION_LABELS: dict[str, str] = {
    "key": N_("Question key"),
    "label_zh": N_("Question in Chinese"),
    "label_en": N_("Question in English"),
    "help_zh": N_("Help text in Chinese"),
    "help_en": N_("Help text in English"),
    "type": N_("Kind of answer"),
    "options": N_("Options, one per line: value|label|English label"),
}
PART_LABELS: dict[str, str] = {
    "code": N_("Item code"),
    "cond": N_("Applies"),
    "when": N_("Advanced: condition as JSON Logic"),
}
BUNDLE_LABELS: dict[str, str] = {
    "name_zh": N_("Name in Chinese"),
    "name_en": N_("Name in English"),
    "desc_zh": N_("Description in Chinese"),
    "desc_en": N_("Description in English"),
}


def _text_of(raw: Any, lang_key: str) -> str:
    return str(raw.get(lang_key) or "") if isinstance(raw, Mapping) else ""


def _condition_inputs(when: Any) -> tuple[str, str]:
    """A part's condition as the editor's choice (``yes:q``, ``no:q``, ``eq:q:o``, ``json``) and JSON."""
    if when is None:
        return "", ""
    text = _json_text(when)
    if (
        isinstance(when, dict)
        and list(when) == ["=="]
        and isinstance(when["=="], list)
        and len(when["=="]) == 2
    ):
        var, value = when["=="]
        if isinstance(var, dict) and list(var) == ["var"] and isinstance(var["var"], str):
            if value is True:
                return f"yes:{var['var']}", text
            if value is False:
                return f"no:{var['var']}", text
            if isinstance(value, str):
                return f"eq:{var['var']}:{value}", text
    return "json", text


@dataclass
class BundleDraft:
    """The bundle being edited, as the editor's inputs."""

    head: dict[str, str] = field(default_factory=lambda: dict.fromkeys(BUNDLE_LABELS, ""))
    questions: list[dict[str, str]] = field(default_factory=list)
    parts: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def blank(cls) -> BundleDraft:
        return cls(parts=[{"code": "", "cond": "", "when": ""} for _ in range(2)])

    @classmethod
    def of(cls, definition: Mapping[str, Any]) -> BundleDraft:
        name, desc = definition.get("name"), definition.get("description")
        draft = cls(
            head={
                "name_zh": _text_of(name, "zh"),
                "name_en": _text_of(name, "en"),
                "desc_zh": _text_of(desc, "zh"),
                "desc_en": _text_of(desc, "en"),
            }
        )
        questions = definition.get("questions") if isinstance(definition.get("questions"), list) else []
        for q in questions or []:
            if not isinstance(q, Mapping):
                continue
            options = q.get("options") if isinstance(q.get("options"), list) else []
            draft.questions.append(
                {
                    "key": str(q.get("key") or ""),
                    "label_zh": _text_of(q.get("label"), "zh"),
                    "label_en": _text_of(q.get("label"), "en"),
                    "help_zh": _text_of(q.get("help"), "zh"),
                    "help_en": _text_of(q.get("help"), "en"),
                    "type": "choice" if q.get("type") == "choice" else "boolean",
                    "options": "\n".join(
                        _bundle_option_line(o) for o in options or [] if isinstance(o, Mapping)
                    ),
                }
            )
        parts = definition.get("items") if isinstance(definition.get("items"), list) else []
        for p in parts or []:
            if isinstance(p, Mapping):
                cond, when = _condition_inputs(p.get("when"))
                draft.parts.append({"code": str(p.get("item_code") or ""), "cond": cond, "when": when})
        draft.questions = draft.questions[:MAX_QUESTIONS]
        draft.parts = draft.parts[:MAX_PARTS]
        return draft

    @classmethod
    def posted(cls, form: FormData) -> BundleDraft:
        draft = cls(head={name: _text(form, f"b.{name}") for name in BUNDLE_LABELS})
        for i in range(_count(form, "n_questions", MAX_QUESTIONS)):
            q = {name: _text(form, f"q{i}.{name}") for name in QUESTION_LABELS}
            q["type"] = "choice" if q["type"] == "choice" else "boolean"
            draft.questions.append(q)
        for j in range(_count(form, "n_parts", MAX_PARTS)):
            draft.parts.append({name: _text(form, f"i{j}.{name}") for name in PART_LABELS})
        return draft

    def choices(self, lang: Language) -> list[tuple[str, str]]:
        """What a part's "applies" select offers, from the questions as they are now."""
        out = [("", lang.gettext("Always"))]
        for q in self.questions:
            key = q["key"].strip()
            if not key:
                continue
            label = (q["label_en"] if lang.code == "en" else q["label_zh"]).strip() or key
            if q["type"] == "boolean":
                out.append((f"yes:{key}", lang.gettext("When “%(q)s” is answered yes") % {"q": label}))
                out.append((f"no:{key}", lang.gettext("When “%(q)s” is answered no") % {"q": label}))
                continue
            for option in _bundle_options(q["options"]):
                shown = option["label"]["en" if lang.code == "en" else "zh"] or option["value"]
                out.append(
                    (
                        f"eq:{key}:{option['value']}",
                        lang.gettext("When the answer to “%(q)s” is “%(o)s”") % {"q": label, "o": shown},
                    )
                )
        out.append(("json", lang.gettext("Advanced: when the JSON Logic condition below holds")))
        for part in self.parts:
            if part["cond"] and part["cond"] not in {value for value, _ in out}:
                out.insert(
                    -1, (part["cond"], lang.gettext("%(c)s (no such question now)") % {"c": part["cond"]})
                )
        return out


def _bundle_option_line(option: Mapping[str, Any]) -> str:
    label = option.get("label")
    return f"{option.get('value', '')}|{_text_of(label, 'zh')}|{_text_of(label, 'en')}"


def _bundle_options(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        value, _, rest = line.partition("|")
        zh, _, en = rest.partition("|")
        value = value.strip()
        out.append(
            {"value": value, "label": {"zh": zh.strip() or value, "en": en.strip() or zh.strip() or value}}
        )
    return out


def _text_pair(zh: str, en: str) -> dict[str, str]:
    return {"zh": zh.strip(), "en": en.strip()}


def build_bundle(draft: BundleDraft, lang: Language) -> tuple[dict[str, Any], Problems]:
    """The bundle definition the editor's inputs describe, and what could not be read."""
    problems = Problems()
    head = draft.head
    definition: dict[str, Any] = {"name": _text_pair(head["name_zh"], head["name_en"])}
    if head["desc_zh"].strip() or head["desc_en"].strip():
        definition["description"] = _text_pair(head["desc_zh"], head["desc_en"])
    questions = []
    for q in draft.questions:
        question: dict[str, Any] = {
            "key": q["key"].strip(),
            "label": _text_pair(q["label_zh"], q["label_en"]),
            "type": q["type"],
        }
        if q["help_zh"].strip() or q["help_en"].strip():
            question["help"] = _text_pair(q["help_zh"], q["help_en"])
        if q["type"] == "choice":
            question["options"] = _bundle_options(q["options"])
        questions.append(question)
    if questions:
        definition["questions"] = questions
    parts = []
    for j, p in enumerate(draft.parts):
        part: dict[str, Any] = {"item_code": p["code"].strip()}
        cond = p["cond"]
        when: Any = None
        if cond.startswith(("yes:", "no:")):
            verb, _, key = cond.partition(":")
            when = {"==": [{"var": key}, verb == "yes"]}
        elif cond.startswith("eq:"):
            key, _, value = cond[3:].partition(":")
            when = {"==": [{"var": key}, value]}
        elif cond == "json" and p["when"].strip():
            try:
                when = _loads(p["when"])
            except ValueError as exc:
                where = lang.gettext("Item %(n)s (%(code)s)") % {"n": j + 1, "code": p["code"].strip() or "—"}
                message = lang.gettext("not valid JSON (%(error)s)") % {"error": str(exc)}
                problems.add(
                    f"i{j}-when", f"{where} · {lang.gettext(PART_LABELS['when'])}{_colon(lang)}{message}"
                )
        if when is not None:
            part["when"] = when
        parts.append(part)
    definition["items"] = parts
    return definition, problems


_BUNDLE_LOC = re.compile(r"^(questions|items)\.(\d+)(?:\.([a-z_]+))?(?:\.([a-z_]+))?")


def bundle_problems(errors: Iterable[str], draft: BundleDraft, lang: Language) -> Problems:
    """The service's refusals of a bundle definition, each linked to the input it concerns."""
    problems = Problems()
    codes = [p["code"].strip() for p in draft.parts]
    for text in errors:
        loc, sep, rest = text.partition(": ")
        rest = rest.removeprefix("Value error, ") if sep else text
        anchor: str | None = None
        where = ""
        if loc in ("name.zh", "name.en", "description.zh", "description.en", "name", "description"):
            prefix, _, which = loc.partition(".")
            name = f"{'name' if prefix == 'name' else 'desc'}_{which or 'zh'}"
            anchor, where = f"b-{name}", lang.gettext(BUNDLE_LABELS[name])
        elif m := _BUNDLE_LOC.match(loc):
            kind, index, first, second = m.group(1), int(m.group(2)), m.group(3), m.group(4)
            if kind == "questions" and index < len(draft.questions):
                if first in ("label", "help"):
                    name = f"{first}_{second if second in ('zh', 'en') else 'zh'}"
                elif first in ("key", "type", "options"):
                    name = first
                else:
                    name = "options" if "option" in rest else "key"
                anchor = f"q{index}-{name}"
                where = lang.gettext("Question %(n)s (%(key)s)") % {
                    "n": index + 1,
                    "key": draft.questions[index]["key"].strip() or "—",
                }
                where += f" · {lang.gettext(QUESTION_LABELS[name])}"
            elif kind == "items" and index < len(draft.parts):
                name = "code" if first == "item_code" else "cond"
                anchor, where = f"i{index}-{name}", _part_where(lang, index, codes[index], name)
        elif named := [j for j, c in enumerate(codes) if c and re.search(rf"\b{re.escape(c)}\b", rest)]:
            index = named[0]
            name = "code" if "no service item" in rest else "cond"
            if name == "cond" and draft.parts[index]["cond"] == "json":
                name = "when"
            anchor, where = f"i{index}-{name}", _part_where(lang, index, codes[index], name)
        problems.add(anchor, f"{where}{_colon(lang)}{_plain(lang, rest)}" if where else rest)
    return problems


def _part_where(lang: Language, index: int, code: str, name: str) -> str:
    where = lang.gettext("Item %(n)s (%(code)s)") % {"n": index + 1, "code": code or "—"}
    return f"{where} · {lang.gettext(PART_LABELS[name])}"


@router.get("/staff/intake/bundles")
def bundles_page(
    request: Request,
    session: DbSession,
    lang: LanguageDep,
    principal: Editor,
    code: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    problems = Problems()
    if code is not None:
        code = code.strip()
        if _CODE.match(code):
            return RedirectResponse(f"/staff/intake/bundles/{code}/edit", status_code=303)
        problems.add(
            "bundle-code",
            lang.gettext(
                "A bundle code is 2 to 64 letters, digits, “.”, “_” or “-”, starting with a letter or digit."
            ),
        )
    context = {
        "published": bundles.list_bundles(session, principal),
        "code": code or "",
        "problems": problems,
    }
    return render_page(request, lang, "intake/staff/bundles.html", context, status=422 if problems else 200)


def _part_names(
    session: Session, principal: auth.Principal, draft: BundleDraft, lang: Language
) -> dict[str, str]:
    names: dict[str, str] = {}
    for part in draft.parts:
        code = part["code"].strip()
        if not code or code in names or not _CODE.match(code):
            continue
        try:
            content = catalog.get_item(session, principal, code).content
        except NotFound:
            continue
        names[code] = content.name_en if lang.code == "en" and content.name_en else content.name
    return names


def _bundle_editor(
    request: Request,
    session: Session,
    principal: auth.Principal,
    lang: Language,
    code: str,
    draft: BundleDraft,
    *,
    problems: Problems | None = None,
    definition_json: str | None = None,
    ok: str | None = None,
    status: int = 200,
) -> Response:
    definition, _ = build_bundle(draft, lang)
    context = {
        "code": code,
        "draft": draft,
        "choices": draft.choices(lang),
        "definition_json": definition_json
        if definition_json is not None
        else _json_text(definition, indent=2),
        "versions": bundles.list_versions(session, principal, code),
        "item_names": _part_names(session, principal, draft, lang),
        "problems": problems or Problems(),
        "question_labels": QUESTION_LABELS,
        "part_labels": PART_LABELS,
        "bundle_labels": BUNDLE_LABELS,
        "ok": _notice(ok),
    }
    return render_page(request, lang, "intake/staff/bundle_edit.html", context, status=status)


@router.get("/staff/intake/bundles/{code}/edit")
def bundle_editor(
    request: Request,
    code: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Editor,
    base: Annotated[int | None, Query(alias="from", ge=1)] = None,
    ok: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    versions = bundles.list_versions(session, principal, code)
    chosen = next((v for v in versions if v.version == base), None) if base is not None else None
    if base is not None and chosen is None:
        raise NotFound(f"no bundle version {base} of {code!r}")
    start = chosen or (versions[0] if versions else None)
    draft = BundleDraft.of(start.definition) if start is not None else BundleDraft.blank()
    return _bundle_editor(request, session, principal, lang, code, draft, ok=ok)


_BUNDLE_MOVE = re.compile(r"^(remove_question|remove_item):(\d{1,2})$")


@router.post(
    "/staff/intake/bundles/{code}/edit", dependencies=[Depends(_parse_large_form), Depends(csrf_form)]
)
def edit_bundle(
    request: Request,
    code: str,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    principal: Editor,
    form: Posted,
) -> Response:
    """Every button of the bundle editor: change the draft and show it again, or save it."""
    draft = BundleDraft.posted(form)
    action = _text(form, "_action")
    definition_json: str | None = None
    if action == "add_question" and len(draft.questions) < MAX_QUESTIONS:
        draft.questions.append(dict.fromkeys(QUESTION_LABELS, "") | {"type": "boolean"})
    elif action == "add_item" and len(draft.parts) < MAX_PARTS:
        draft.parts.append(dict.fromkeys(PART_LABELS, ""))
    elif m := _BUNDLE_MOVE.match(action):
        index = int(m.group(2))
        rows = draft.questions if m.group(1) == "remove_question" else draft.parts
        if index < len(rows):
            del rows[index]
    elif action in ("load_json", "save_json"):
        definition_json, loaded, _ = _pasted(form)
        if loaded is None:
            why = lang.gettext("The JSON is not a bundle definition (an object).")
            problems = Problems([Problem("definition-json", why)])
            return _bundle_editor(
                request,
                session,
                principal,
                lang,
                code,
                draft,
                problems=problems,
                definition_json=definition_json,
                status=422,
            )
        draft = BundleDraft.of(loaded)
        if action == "save_json":
            return _save_bundle(
                request, session, clock, lang, principal, code, draft, loaded, definition_json
            )
        definition_json = None
    elif action == "save":
        definition, problems = build_bundle(draft, lang)
        if problems:
            return _bundle_editor(
                request, session, principal, lang, code, draft, problems=problems, status=422
            )
        return _save_bundle(request, session, clock, lang, principal, code, draft, definition, None)
    return _bundle_editor(request, session, principal, lang, code, draft)


def _save_bundle(
    request: Request,
    session: Session,
    clock: Any,
    lang: Language,
    principal: auth.Principal,
    code: str,
    draft: BundleDraft,
    definition: Mapping[str, Any],
    definition_json: str | None,
) -> Response:
    try:
        bundles.save_bundle(session, principal, code, definition, clock=clock)
    except (InvalidInput, NotFound) as exc:
        problems = bundle_problems(_problem_text(exc), draft, lang)
        return _bundle_editor(
            request,
            session,
            principal,
            lang,
            code,
            draft,
            problems=problems,
            definition_json=definition_json,
            status=exc.status,
        )
    return RedirectResponse(f"/staff/intake/bundles/{code}/edit?ok=bundle_saved", status_code=303)


@router.post("/staff/intake/bundles/{code}/versions/{version}/publish", dependencies=[Depends(csrf_form)])
def publish_bundle(
    request: Request,
    code: str,
    version: int,
    session: DbSession,
    clock: ClockDep,
    lang: LanguageDep,
    principal: Publisher,
) -> Response:
    try:
        bundles.publish_bundle(session, principal, code, version, clock=clock)
    except DomainError as exc:
        versions = bundles.list_versions(session, principal, code)
        start = next((v for v in versions if v.version == version), None)
        draft = BundleDraft.of(start.definition) if start is not None else BundleDraft.blank()
        problems = Problems([Problem(f"version-{version}", _refusal(lang, exc))])
        return _bundle_editor(
            request, session, principal, lang, code, draft, problems=problems, status=exc.status
        )
    return RedirectResponse(f"/staff/intake/bundles/{code}/edit?ok=bundle_published", status_code=303)
