"""The pre-check (智能预检): everything that can be said about an application before it is submitted.

:func:`precheck` runs, in order: normalisation and field checks (:func:`~tongban.intake.formdef.normalise`:
types, formats, identifier check characters, ranges, lengths, patterns, options, table rows and cells,
upload types and sizes), built-in cross-field checks (identity number against birth date and sex, the
same file uploaded twice, values that differ from the applicant's verified profile), and then the
definition's own rules. A rule that reads a field that is missing or already has an error is skipped,
so one mistake yields one finding.

Deep checks of upload content (readable, not blank, mentions the applicant…) live elsewhere; they plug in
through the :class:`UploadCheck` hook.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tongban.intake.formdef import (
    EvaluationError,
    Field,
    FieldType,
    Finding,
    FormDefinition,
    Normalised,
    Severity,
    Upload,
    coerce_value,
    evaluate,
    expression_data,
    field_order,
    normalise_detailed,
    truthy,
)
from tongban.intake.identifiers import IdentifierError, check_id_number

__all__ = ["Finding", "PrecheckResult", "Severity", "UploadCheck", "precheck"]


class UploadCheck(Protocol):
    """Hook for deep checks of one uploaded file (implemented elsewhere, not in this module).

    Called once per upload of each visible file field; returns findings whose ``field`` is ``path``.
    """

    def __call__(
        self, field: Field, upload: Upload, *, path: str, applicant: Mapping[str, Any] | None
    ) -> Iterable[Finding]: ...


@dataclass(frozen=True, slots=True)
class PrecheckResult:
    """Normalised values and findings (errors first, then in form order)."""

    values: dict[str, Any]
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """True when nothing blocks submission (warnings allowed)."""
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")


def precheck(
    definition: FormDefinition,
    raw: Mapping[str, Any],
    *,
    applicant: Mapping[str, Any] | None = None,
    check_upload: UploadCheck | None = None,
) -> PrecheckResult:
    """Pre-check an application form.

    ``raw`` is the submitted input (file fields: lists of upload descriptors with ``name``,
    ``content_type``, ``size``, ``sha256`` and optionally ``text``). ``applicant`` is the applicant's
    verified profile, nested (``{"person": {"name": …}}``) or with dotted keys (``{"person.name": …}``);
    fields with a ``profile_key`` whose value differs from it get a ``profile.mismatch`` warning.
    """
    state = normalise_detailed(definition, raw)
    findings = list(state.findings)
    findings += _identity_consistency(definition, state)
    findings += _duplicate_uploads(definition, state)
    if applicant:
        findings += _profile_mismatches(definition, state, applicant)
    if check_upload is not None:
        for f in definition.fields:
            if f.type is FieldType.FILE:
                for upload in state.values.get(f.key, []):
                    findings += check_upload(f, upload, path=f.key, applicant=applicant)
    findings += _rules(definition, state, findings)
    ordered = sorted(findings, key=lambda x: (x.severity != "error", field_order(definition, x.field)))
    return PrecheckResult(values=state.values, findings=tuple(ordered))


# --------------------------------------------------------------------------------------------------
# Identity number against birth date and sex


def _pairs(fields: list[Field], suffix: str, kind: FieldType) -> list[tuple[Field, Field]]:
    """Pair each id_number field with the ``*birth_date`` / ``*sex`` field of the same level.

    A field pairs with the one sharing its key prefix (``spouse_id_number`` ↔ ``spouse_birth_date``); when
    there is exactly one of each and the other carries no prefix of its own (``birth_date``), they pair
    whatever the identity field is called — but ``baby_birth_date`` is someone else's and never pairs with
    the applicant's ``id_number``.
    """
    ids = [f for f in fields if f.type is FieldType.ID_NUMBER]
    others = [f for f in fields if f.type is kind and f.key.endswith(suffix)]
    pairs: list[tuple[Field, Field]] = []
    for id_field in ids:
        prefix = id_field.key.removesuffix("id_number") if id_field.key.endswith("id_number") else None
        matched = [o for o in others if prefix is not None and o.key.removesuffix(suffix) == prefix]
        if not matched and len(ids) == 1 and len(others) == 1 and others[0].key == suffix:
            matched = others
        pairs += [(id_field, other) for other in matched]
    return pairs


def _level_findings(
    fields: list[Field], values: Mapping[str, Any], prefix: str, zh_prefix: str, en_prefix: str
) -> list[Finding]:
    out: list[Finding] = []
    for id_field, date_field in _pairs(fields, "birth_date", FieldType.DATE):
        number, birth = values.get(id_field.key), values.get(date_field.key)
        if not isinstance(number, str) or not isinstance(birth, dt.date):
            continue
        try:
            encoded = check_id_number(number).birth_date
        except IdentifierError:  # pragma: no cover - normalised values are valid
            continue
        if encoded != birth:
            out.append(
                Finding(
                    "id.birth_date_mismatch",
                    f"{prefix}{date_field.key}",
                    "error",
                    f"{zh_prefix}「{date_field.label}」与「{id_field.label}」不一致：按身份证号码，出生日期应为"
                    f"{encoded.year}年{encoded.month:02d}月{encoded.day:02d}日，请核对两者。",
                    f'{en_prefix}"{date_field.label_en}" does not match "{id_field.label_en}": the identity '
                    f"number gives {encoded.isoformat()}. Please check both.",
                    (f"{prefix}{id_field.key}",),
                )
            )
    for id_field, sex_field in _pairs(fields, "sex", FieldType.CHOICE):
        number, sex = values.get(id_field.key), values.get(sex_field.key)
        if not isinstance(number, str) or sex not in ("male", "female"):
            continue
        encoded_sex = check_id_number(number).sex
        if encoded_sex != sex:
            zh_sex = "男" if encoded_sex == "male" else "女"
            out.append(
                Finding(
                    "id.sex_mismatch",
                    f"{prefix}{sex_field.key}",
                    "error",
                    f"{zh_prefix}「{sex_field.label}」与「{id_field.label}」不一致：按身份证号码第17位，"
                    f"性别应为{zh_sex}，请核对两者。",
                    f'{en_prefix}"{sex_field.label_en}" does not match "{id_field.label_en}": the 17th '
                    f"digit of the identity number says {encoded_sex}. Please check both.",
                    (f"{prefix}{id_field.key}",),
                )
            )
    return out


def _identity_consistency(definition: FormDefinition, state: Normalised) -> list[Finding]:
    out = _level_findings(definition.fields, state.values, "", "", "")
    for f in definition.fields:
        if f.type is not FieldType.TABLE or f.key not in state.values:
            continue
        indices = state.row_indices.get(f.key, [])
        for row, index in zip(state.values[f.key], indices, strict=False):
            out += _level_findings(
                f.columns,
                row,
                f"{f.key}.{index}.",
                f"「{f.label}」第{index + 1}行的",
                f'"{f.label_en}" row {index + 1}: ',
            )
    return out


# --------------------------------------------------------------------------------------------------
# Uploads and profile


def _duplicate_uploads(definition: FormDefinition, state: Normalised) -> list[Finding]:
    seen: dict[str, tuple[Field, Upload]] = {}
    out: list[Finding] = []
    for f in definition.fields:
        if f.type is not FieldType.FILE:
            continue
        for upload in state.values.get(f.key, []):
            first = seen.get(upload.sha256)
            if first is None:
                seen[upload.sha256] = (f, upload)
                continue
            other, earlier = first
            out.append(
                Finding(
                    "file.duplicate",
                    f.key,
                    "warning",
                    f"「{f.label}」中的文件“{upload.name}”与「{other.label}」中的文件“{earlier.name}”"
                    "内容完全相同，请确认是否上传错了材料。",
                    f'"{f.label_en}": {upload.name!r} is identical to {earlier.name!r} in '
                    f'"{other.label_en}". Please check that you uploaded the right material.',
                    (other.key,),
                )
            )
    return out


def _profile_value(applicant: Mapping[str, Any], key: str) -> Any:
    if key in applicant:
        return applicant[key]
    node: Any = applicant
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _profile_mismatches(
    definition: FormDefinition, state: Normalised, applicant: Mapping[str, Any]
) -> list[Finding]:
    out: list[Finding] = []
    for f in definition.fields:
        if f.profile_key is None or f.key not in state.values or f.computed is not None:
            continue
        if f.type in (FieldType.TABLE, FieldType.FILE):
            continue
        expected = _profile_value(applicant, f.profile_key)
        if expected is None:
            continue
        # Coerce the profile datum the way the form would have, so that "x" and "X" agree.
        if isinstance(expected, dt.date):
            expected = expected.isoformat()
        known = coerce_value(f, expected)
        if known is None or known == state.values[f.key]:
            continue
        out.append(
            Finding(
                "profile.mismatch",
                f.key,
                "warning",
                f"「{f.label}」与您实名登记的信息不一致，请核对；如信息已变更，请先更新个人资料。",
                f'"{f.label_en}" differs from your verified profile. Please check it; if it has changed, '
                "update your profile first.",
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# The definition's rules


def _rules(definition: FormDefinition, state: Normalised, findings: Iterable[Finding]) -> list[Finding]:
    broken = set(state.invalid)
    for finding in findings:
        if finding.severity == "error" and finding.field:
            broken.add(finding.field.split(".")[0])
    data = expression_data(definition, state.values)
    out: list[Finding] = []
    for rule in definition.rules:
        every, strict = definition.plan.rule_refs[rule.key]
        if every & broken or any(key not in state.values for key in strict):
            continue
        try:
            if rule.when is not None and not truthy(evaluate(rule.when, data)):
                continue
            passed = truthy(evaluate(rule.check, data))
        except EvaluationError:
            continue
        if passed:
            continue
        out.append(
            Finding(
                f"rule.{rule.key}",
                rule.fields[0] if rule.fields else None,
                rule.severity,
                rule.message,
                rule.message_en,
                tuple(rule.fields[1:]),
            )
        )
    return out
