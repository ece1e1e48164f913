"""HTML pages of bundles (高效办成一件事) for applicants: the published bundles, the situation questions, one
merged form for the items that apply (each shared field once, prefilled with its source, every item's
materials), the pre-check with its findings labelled by item, one idempotent submission, and the combined
status with each item's own application.

Everything goes through :mod:`tongban.intake.bundles`. The merged form is read, uploaded, checked and shown
with the helpers of the single-item pages (:mod:`tongban.intake.pages`) and the macros of
``intake/_fields.html``. Every page works without JavaScript: the questions are a GET form (the answers stay
in the address, ``a.<question>=yes|no|<option>``, so the second step can be bookmarked); the merged form is a
plain POST, followed by a redirect or the page again with the findings.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from tongban.catalog import pages as catalog_pages
from tongban.catalog import service as catalog
from tongban.core import auth
from tongban.core.errors import Conflict, InvalidInput, NotFound
from tongban.core.http import (
    ClockDep,
    DbSession,
    FilesDep,
    LanguageDep,
    SealerDep,
    csrf_form,
    public_with_principal,
    render_page,
)
from tongban.core.i18n import Language
from tongban.core.messages import N_
from tongban.intake import bundles, formdef, pages, service
from tongban.intake.schemas import BundleCheckWrite, FindingOut

router = APIRouter(include_in_schema=False)
Anyone = Annotated[auth.Principal, Depends(public_with_principal)]
Holder = pages.Holder
Posted = pages.Posted

#: Answers travel as ``a.<question key>`` (query parameters of the second step, hidden fields of the form).
ANSWER = "a."
#: Words of a yes/no answer in the address.
YES, NO = "yes", "no"


def _bundle_link(session: Session, code: str) -> list[tuple[str, str]]:
    """On a catalogue item's page: the bundle it is part of (all bundles if several)."""
    having = [
        b.code
        for b in bundles.published_bundles(session)
        if any(isinstance(p, dict) and p.get("item_code") == code for p in b.definition.get("items", []))
    ]
    if not having:
        return []
    target = f"/intake/bundles/{having[0]}" if len(having) == 1 else "/intake/bundles"
    return [(target, N_("Apply together with related services"))]


if _bundle_link not in catalog_pages.ITEM_LINKS:
    catalog_pages.ITEM_LINKS.append(_bundle_link)


# --- the bundle, its questions and items -------------------------------------------------------------


@dataclass
class PartView:
    """An item of the bundle as the pages show it."""

    code: str
    name: str
    name_en: str | None
    department: str
    #: Whether its condition (``when``) names the answers at all.
    conditional: bool = False
    #: With answers given: whether it applies, and the answers its condition names (question, answer).
    applies: bool | None = None
    because: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Asked:
    """A situation question with the answer chosen so far (as it travels: yes, no or an option)."""

    key: str
    label: str
    help: str | None
    #: (value, label) of each choice.
    choices: list[tuple[str, str]]
    chosen: str
    missing: bool = False


def _text(text: bundles.Text | None, lang: Language) -> str:
    if text is None:
        return ""
    return text.en if lang.code == "en" else text.zh


def _definition(out: bundles.BundleOut) -> bundles.BundleDefinition:
    return bundles.BundleDefinition.model_validate(out.definition)


def _choices(q: bundles.Question, lang: Language) -> list[tuple[str, str]]:
    if q.type == "boolean":
        return [(YES, lang.gettext("Yes")), (NO, lang.gettext("No"))]
    return [(o.value, _text(o.label, lang)) for o in q.options]


def _answers_from(
    definition: bundles.BundleDefinition, params: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The answers as the service takes them (those missing or not one of the choices left out) and as they
    travel (to choose them again)."""
    given: dict[str, Any] = {}
    raw: dict[str, str] = {}
    for q in definition.questions:
        value = params.get(ANSWER + q.key)
        value = value if isinstance(value, str) else ""
        raw[q.key] = value
        if q.type == "boolean" and value in (YES, NO):
            given[q.key] = value == YES
        elif q.type == "choice" and value in {o.value for o in q.options}:
            given[q.key] = value
    return given, raw


def _as_travelled(definition: bundles.BundleDefinition, answers: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for q in definition.questions:
        if q.key in answers:
            value = answers[q.key]
            out[q.key] = (YES if value else NO) if q.type == "boolean" else str(value)
    return out


def _query(raw: Mapping[str, str]) -> str:
    return urlencode({ANSWER + k: v for k, v in raw.items() if v})


def _answer_label(q: bundles.Question, value: Any, lang: Language) -> str:
    if q.type == "boolean":
        return lang.gettext("Yes") if value else lang.gettext("No")
    return next((_text(o.label, lang) for o in q.options if o.value == value), str(value))


def _names(expr: Any) -> list[str]:
    """The question keys a condition names, in order."""
    found: list[str] = []

    def visit(e: Any) -> None:
        if isinstance(e, dict):
            for op, args in e.items():
                if op == "var":
                    name = args[0] if isinstance(args, list) and args else args
                    if isinstance(name, str):
                        found.append(name.split(".")[0])
                else:
                    visit(args)
        elif isinstance(e, list):
            for x in e:
                visit(x)

    visit(expr)
    return list(dict.fromkeys(found))


def _parts(
    session: Session,
    principal: auth.Principal,
    definition: bundles.BundleDefinition,
    lang: Language,
    answers: Mapping[str, Any] | None = None,
    applying: set[str] | None = None,
) -> list[PartView]:
    questions = {q.key: q for q in definition.questions}
    out = []
    for part in definition.items:
        try:
            content = catalog.get_item(session, principal, part.item_code).content
            view = PartView(part.item_code, content.name, content.name_en, content.department)
        except NotFound:  # withdrawn from the catalogue since: its code stands in
            view = PartView(part.item_code, part.item_code, None, "")
        view.conditional = part.when is not None
        if applying is not None:
            view.applies = part.item_code in applying
        if answers is not None and part.when is not None:
            view.because = [
                (_text(questions[k].label, lang), _answer_label(questions[k], answers[k], lang))
                for k in _names(part.when)
                if k in questions and k in answers
            ]
        out.append(view)
    return out


def _asked(
    definition: bundles.BundleDefinition, raw: Mapping[str, str], lang: Language, missing: Sequence[str] = ()
) -> list[Asked]:
    return [
        Asked(
            key=q.key,
            label=_text(q.label, lang),
            help=_text(q.help, lang) or None,
            choices=_choices(q, lang),
            chosen=raw.get(q.key, ""),
            missing=q.key in missing,
        )
        for q in definition.questions
    ]


@router.get("/intake/bundles")
def bundle_list(request: Request, session: DbSession, lang: LanguageDep, principal: Anyone) -> Response:
    """The published bundles, with their items and departments."""
    listed = []
    for out in bundles.published_bundles(session):
        definition = _definition(out)
        listed.append((out, definition, _parts(session, principal, definition, lang)))
    context = {"bundles": listed, "text": lambda t: _text(t, lang)}
    return render_page(request, lang, "intake/bundle_list.html", context)


def _questions_page(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    out: bundles.BundleOut,
    raw: Mapping[str, str],
    *,
    missing: Sequence[str] = (),
    problem: str | None = None,
    status: int = 200,
) -> Response:
    definition = _definition(out)
    context = {
        "bundle": out,
        "name": _text(definition.name, lang),
        "description": _text(definition.description, lang),
        "questions": _asked(definition, raw, lang, missing),
        "parts": _parts(session, principal, definition, lang),
        "problem": problem,
    }
    return render_page(request, lang, "intake/bundle_questions.html", context, status=status)


@router.get("/intake/bundles/{code}")
def bundle_questions(
    request: Request, code: str, session: DbSession, lang: LanguageDep, principal: Anyone
) -> Response:
    """Step 1: the situation questions (answers given in the address are chosen again)."""
    out = bundles.published_bundle(session, code)
    _, raw = _answers_from(_definition(out), request.query_params)
    return _questions_page(request, lang, session, principal, out, raw)


# --- the merged form -----------------------------------------------------------------------------------


@dataclass
class MergedPage:
    """The merged form as a form definition the field macros show. Its keys are the merged form's, except
    where a merged key is no form key (a field that shares a key but not a type: ``<item>__<key>``)."""

    definition: formdef.FormDefinition
    #: page key → merged key
    merged: dict[str, str]
    #: page key → the item codes that use the field
    items: dict[str, list[str]]

    def page_key(self, merged_key: str) -> str:
        return next((k for k, m in self.merged.items() if m == merged_key), merged_key)

    def page_path(self, path: str | None) -> str | None:
        if not path:
            return path
        head, dot, rest = path.partition(".")
        return self.page_key(head) + dot + rest

    def values(self, entry: pages.Entry, answers: Mapping[str, Any]) -> dict[str, Any]:
        """What was filled in, under the merged form's keys (file fields carry upload ids)."""
        typed = {self.merged.get(k, k): v for k, v in {**entry.inputs, **entry.uploads}.items()}
        try:
            return BundleCheckWrite(answers=dict(answers), values=typed).values
        except ValidationError as exc:
            raise InvalidInput(f"the form has too many or unknown fields ({exc.error_count()})") from exc

    def finding(self, f: FindingOut) -> FindingOut:
        """A finding of the service about the page's fields."""
        return f.model_copy(
            update={
                "field": self.page_path(f.field),
                "related_fields": [self.page_path(r) or r for r in f.related_fields],
            }
        )


def _merged_page(form: bundles.BundleForm) -> MergedPage:
    taken = {m.key for m in form.fields}
    specs: list[dict[str, Any]] = []
    merged: dict[str, str] = {}
    items: dict[str, list[str]] = {}
    renamed: set[str] = set()
    n = 0
    for m in form.fields:
        spec = dict(m.field)
        key = m.key
        if not re.fullmatch(formdef.KEY_PATTERN, key):
            while key in taken or not re.fullmatch(formdef.KEY_PATTERN, key):
                n += 1
                key = f"x{n}"
            taken.add(key)
            renamed.add(key)
        spec["key"] = key
        merged[key], items[key] = m.key, list(m.items)
        specs.append(spec)
    try:
        definition = formdef.FormDefinition.model_validate({"fields": specs})
    except ValidationError:
        # A renamed field's condition may name its item's own keys: it is shown always (the pre-check
        # still applies the item's conditions), and the service computes what it computes.
        specs = [
            {k: v for k, v in s.items() if k != "show_if"}
            for s in specs
            if not (s["key"] in renamed and s.get("computed") is not None)
        ]
        definition = formdef.FormDefinition.model_validate({"fields": specs})
    return MergedPage(definition=definition, merged=merged, items=items)


@dataclass
class Group:
    """Fields (or findings) of the same items, under a label naming them."""

    label: str
    fields: list[formdef.Field] = field(default_factory=list)
    findings: list[FindingOut] = field(default_factory=list)


def _names_of(codes: Sequence[str], parts: Sequence[PartView], lang: Language) -> str:
    by_code = {p.code: p for p in parts}
    names = [
        (p.name_en if lang.code == "en" and p.name_en else p.name) if (p := by_code.get(c)) else c
        for c in codes
    ]
    return (", " if lang.code == "en" else "、").join(names)


def _field_groups(page: MergedPage, parts: Sequence[PartView], lang: Language) -> list[Group]:
    groups: dict[tuple[str, ...], Group] = {}
    for f in page.definition.fields:
        codes = tuple(page.items.get(f.key, []))
        if codes not in groups:
            label = lang.gettext("Used for: %(items)s") % {"items": _names_of(codes, parts, lang)}
            groups[codes] = Group(label)
        groups[codes].fields.append(f)
    return list(groups.values())


def _finding_groups(
    findings: Sequence[FindingOut], page: MergedPage, parts: Sequence[PartView], lang: Language
) -> list[Group]:
    """Findings by the items they concern: a shared field's under all the items that use it."""
    groups: dict[tuple[str, ...], Group] = {}
    for f in findings:
        head = (f.field or "").split(".")[0]
        item_code = getattr(f, "item_code", None)
        codes = tuple(page.items.get(head) or ([item_code] if item_code else []))
        if codes not in groups:
            label = _names_of(codes, parts, lang) if codes else lang.gettext("The application as a whole")
            groups[codes] = Group(label)
        groups[codes].findings.append(f)
    return list(groups.values())


def _apply_page(
    request: Request,
    lang: Language,
    session: Session,
    principal: auth.Principal,
    definition: bundles.BundleDefinition,
    form: bundles.BundleForm,
    page: MergedPage,
    entry: pages.Entry,
    *,
    idem: str,
    findings: Sequence[FindingOut] = (),
    checked: bool = False,
    focus: str | None = None,
    status: int = 200,
) -> Response:
    ids = [i for ids in entry.uploads.values() for i in ids]
    view = pages.view_of(page.definition, entry, service.my_uploads(session, principal, ids), findings, lang)
    view.prefilled = {page.page_key(p.field): p for p in form.prefilled}
    view.focus = focus
    applying = {p.item_code for p in form.parts if p.applies}
    parts = _parts(session, principal, definition, lang, form.answers, applying)
    questions = {q.key: q for q in definition.questions}
    answers = [(_text(q.label, lang), _answer_label(q, form.answers[k], lang)) for k, q in questions.items()]
    # A material several items need counts once (it is uploaded once).
    required: dict[str, bool] = {}
    for s in (s for v in form.materials.values() for s in v if s.required):
        required[s.name] = required.get(s.name, True) and s.status in ("exempt", "not_needed")
    context = {
        "form": view,
        "code": form.code,
        "name": _text(form.name, lang),
        "answers": answers,
        "travelled": _as_travelled(definition, form.answers),
        "change": f"/intake/bundles/{form.code}?{_query(_as_travelled(definition, form.answers))}",
        "parts": parts,
        "materials": [(p, form.materials[p.code]) for p in parts if p.code in form.materials],
        "supplied": sum(required.values()),
        "required": len(required),
        "groups": _field_groups(page, parts, lang),
        "errors": _finding_groups(view.errors, page, parts, lang),
        "warnings": _finding_groups(view.warnings, page, parts, lang),
        "idem": idem,
        "checked": checked,
    }
    return render_page(request, lang, "intake/bundle_apply.html", context, status=status)


@router.get("/intake/bundles/{code}/apply")
def bundle_apply_form(
    request: Request,
    code: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
) -> Response:
    """Step 2: the items the answers choose and the merged form, prefilled (with consent) with sources."""
    out = bundles.published_bundle(session, code)
    definition = _definition(out)
    given, raw = _answers_from(definition, request.query_params)
    missing = [q.key for q in definition.questions if q.key not in given]
    if missing and not any(k.startswith(ANSWER) for k in request.query_params):
        return RedirectResponse(f"/intake/bundles/{code}", status_code=303)  # not answered yet
    if missing:
        return _questions_page(request, lang, session, principal, out, raw, missing=missing, status=422)
    try:
        form = bundles.bundle_form(session, principal, code, given, sealer=sealer, clock=clock)
    except InvalidInput as exc:  # e.g. no item applies with these answers
        return _questions_page(request, lang, session, principal, out, raw, problem=exc.detail, status=422)
    page = _merged_page(form)
    prefilled = {page.page_key(p.field): p.value for p in form.prefilled}
    entry = pages.entry_from_values(page.definition, service.form_input(page.definition, prefilled))
    # One key per rendered form: a double click or a retry of the submission cannot apply twice.
    idem = secrets.token_urlsafe(24)
    return _apply_page(request, lang, session, principal, definition, form, page, entry, idem=idem)


@router.post("/intake/bundles/{code}/apply", dependencies=[Depends(csrf_form)])
def bundle_apply(
    request: Request,
    code: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Holder,
    clock: ClockDep,
    sealer: SealerDep,
    files: FilesDep,
    posted: Posted,
) -> Response:
    """预检 (check), 提交 (submit) or add a table row; files chosen are uploaded first."""
    action = pages.form_text(posted, "_action") or "check"
    idem = pages.form_text(posted, "_idem")
    path = f"/intake/bundles/{code}/apply"
    if action == "submit":
        earlier = pages.receipt_of(session, principal, idem, path, code)
        if earlier is not None:  # the same form again (a retry): the bundle it made
            return RedirectResponse(f"/me/bundles/{earlier}?submitted=1", status_code=303)
    definition = _definition(bundles.published_bundle(session, code))
    answers, _ = _answers_from(definition, posted)
    form = bundles.bundle_form(session, principal, code, answers, sealer=sealer, clock=clock)
    page = _merged_page(form)
    entry = pages.entry_of(page.definition, posted)
    findings = pages.upload_new(
        session, principal, lang, page.definition, posted, entry, files=files, sealer=sealer, clock=clock
    )
    focus, checked, status = None, False, 200
    if action.startswith("add_row:"):
        focus = pages.add_row(page.definition, entry, action.removeprefix("add_row:"))
    elif action == "submit" and not findings:
        try:
            values = page.values(entry, answers)
            receipt = pages.submit_once(
                session,
                principal,
                code,
                key=idem,
                path=path,
                clock=clock,
                submit=lambda: (
                    bundles.submit_bundle(
                        session, principal, code, answers, values, sealer=sealer, files=files, clock=clock
                    ).receipt_no
                ),
            )
        except service.PrecheckFailed as exc:
            found = [bundles.BundleFinding.model_validate(x) for x in exc.extra.get("findings", [])]
            findings, status = [page.finding(f) for f in found], 422
        except (InvalidInput, Conflict) as exc:
            findings, status = [pages.problem_of(exc)], exc.status
        else:
            return RedirectResponse(f"/me/bundles/{receipt}?submitted=1", status_code=303)
    else:
        try:
            values = page.values(entry, answers)
            result = bundles.check_bundle(
                session, principal, code, answers, values, sealer=sealer, clock=clock
            )
        except (InvalidInput, Conflict) as exc:
            findings.append(pages.problem_of(exc))
        else:
            findings += [page.finding(f) for f in result.findings]
            checked = result.ok and not any(x.severity == "error" for x in findings)
        status = 422 if action == "submit" else 200
    return _apply_page(
        request,
        lang,
        session,
        principal,
        definition,
        form,
        page,
        entry,
        idem=idem,
        findings=findings,
        checked=checked,
        focus=focus,
        status=status,
    )


# --- following a bundle application --------------------------------------------------------------------


def _english_names(session: Session, principal: auth.Principal, codes: Sequence[str]) -> dict[str, str]:
    out = {}
    for code in dict.fromkeys(codes):
        try:
            name_en = catalog.get_item(session, principal, code).content.name_en
        except NotFound:
            continue
        if name_en:
            out[code] = name_en
    return out


@router.get("/me/bundles")
def my_bundles(request: Request, session: DbSession, lang: LanguageDep, principal: Holder) -> Response:
    """The applicant's bundle applications, newest first, each with its combined status."""
    rows = bundles.my_bundle_applications(session, principal)
    return render_page(request, lang, "intake/bundle_mine.html", {"rows": rows})


@router.get("/me/bundles/{receipt_no}")
def bundle_application(
    request: Request,
    receipt_no: str,
    session: DbSession,
    lang: LanguageDep,
    principal: Holder,
    submitted: bool = False,
) -> Response:
    """One bundle application: the combined status in words and each item's part, linked to its own page
    (where 补正 happens)."""
    out = bundles.get_bundle_application(session, principal, receipt_no)
    answers: list[tuple[str, str]] = []
    try:
        questions = {
            q.key: q for q in _definition(bundles.published_bundle(session, out.bundle_code)).questions
        }
    except NotFound:  # withdrawn since: the answers are not shown
        questions = {}
    for key, value in out.answers.items():
        if key in questions:
            answers.append((_text(questions[key].label, lang), _answer_label(questions[key], value, lang)))
    context = {
        "app": out,
        "name": _text(out.name, lang),
        "names_en": _english_names(session, principal, [p.item_code for p in out.parts]),
        "answers": answers,
        "waiting": [p for p in out.parts if p.status == "supplement_requested"],
        "notice": "submitted" if submitted else None,
    }
    return render_page(request, lang, "intake/bundle_application.html", context)
