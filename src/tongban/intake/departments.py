"""Departments' own approval systems (部门自建审批系统): steps in a BPMN lane ``dept_<code>`` go to them.

An administrator registers a department's system (``PUT /api/v1/intake/departments/{code}``: name, URL,
active); the platform generates the shared signing secret (Standard Webhooks form ``whsec_<base64>``),
shows it once and keeps it sealed. When an application's process reaches a step in the lane
``dept_<code>`` and that system is active, a ``task.ready`` webhook is queued in the outbox (same
transaction) with everything the department needs to decide: the application's values (unmasked: the
department approves them), materials, upload metadata and where to call back. The department reports
back to ``POST /api/v1/intake/departments/{code}/callbacks``, signed with the same secret: ``task.status``
(received, in progress) or ``task.completed`` with its decision, which completes the step the way an
officer's decision does. Without an active system the step waits in the work list of officers holding
``intake:lane:dept_<code>``.

Signatures follow the Standard Webhooks specification (``webhook-id``, ``webhook-timestamp``,
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``), computed with the
``standardwebhooks`` package; timestamps are checked against the platform's clock, 5 minutes either way.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from tongban.core import audit
from tongban.core.auth import Principal
from tongban.core.clock import Clock
from tongban.core.crypto import Sealer
from tongban.core.errors import DomainError, Forbidden, InvalidInput, NotFound
from tongban.intake import outbox
from tongban.intake.models import Application, DepartmentSystem, OutboxMessage, WorkItem
from tongban.intake.schemas import DepartmentOut

#: Permission to register and change departments' systems (administrators).
MANAGE = "intake:departments"
LANE_PREFIX = "dept_"
TASK_READY = "task.ready"
#: How far a webhook's timestamp may be from our clock, either way.
TOLERANCE = dt.timedelta(minutes=5)
_CODE = re.compile(r"^[a-z][a-z0-9_]{1,34}$")
_WEBHOOK_ID = re.compile(r"^[\x21-\x7e]{8,128}$")


class WebhookSignatureInvalid(DomainError):
    """A callback whose signature headers are missing or do not match the department's secret."""

    status = 401
    slug = "webhook-signature-invalid"
    title = "The webhook signature is not valid"


class WebhookTimestampRejected(DomainError):
    """A callback signed too long ago or in the future (a replay, or a clock far off)."""

    status = 401
    slug = "webhook-timestamp-rejected"
    title = "The webhook timestamp is too far from the current time"


def lane(code: str) -> str:
    """The BPMN lane (and work-item role) whose steps the department ``code`` does."""
    return LANE_PREFIX + code


def code_of(role: str) -> str | None:
    return role[len(LANE_PREFIX) :] if role.startswith(LANE_PREFIX) else None


def callback_path(code: str) -> str:
    return f"/api/v1/intake/departments/{code}/callbacks"


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: ``whsec_`` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _secret_context(code: str) -> str:
    return f"intake_department_system:{code}:secret"


def secret_of(system: DepartmentSystem, sealer: Sealer) -> str:
    return sealer.open(system.secret_sealed, _secret_context(system.code))


def _check_url(url: str) -> str:
    parsed = httpx.URL(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidInput("url: the department system's webhook address, an http(s) URL")
    if parsed.userinfo:
        raise InvalidInput("url: no user or password in the URL (webhooks are signed instead)")
    return str(parsed)


# --- administration --------------------------------------------------------------------------------


def get_system(session: Session, code: str) -> DepartmentSystem | None:
    return session.get(DepartmentSystem, code)


def list_systems(session: Session, principal: Principal) -> list[DepartmentSystem]:
    principal.require(MANAGE)
    return list(session.scalars(select(DepartmentSystem).order_by(DepartmentSystem.code)))


def put_system(
    session: Session,
    principal: Principal,
    code: str,
    *,
    name: str,
    url: str,
    active: bool,
    rotate: bool,
    sealer: Sealer,
    clock: Clock,
) -> tuple[DepartmentSystem, str | None, bool]:
    """Register or change a department's system. Returns the row, the new signing secret (on creation or
    ``rotate``; shown once, never again) and whether it was created. Audited (without the secret)."""
    principal.require(MANAGE)
    if not _CODE.match(code):
        raise InvalidInput(
            "code: 2–35 lower-case letters, digits or '_', starting with a letter "
            f"(the process lane is {LANE_PREFIX}<code>)"
        )
    checked_url = _check_url(url)
    row = get_system(session, code)
    created = row is None
    secret = new_secret() if created or rotate else None
    now = clock.now()
    if row is None:
        assert secret is not None  # noqa: S101 - a new system always gets a secret
        row = DepartmentSystem(
            code=code,
            name=name,
            url=checked_url,
            secret_sealed=sealer.seal(secret, _secret_context(code)),
            active=active,
            updated_by=principal.username,
            updated_at=now,
        )
        session.add(row)
    else:
        row.name, row.url, row.active = name, checked_url, active
        row.updated_by, row.updated_at = principal.username, now
        if secret is not None:
            row.secret_sealed = sealer.seal(secret, _secret_context(code))
    session.flush()
    audit.record(
        session,
        actor=principal,
        action="intake.department.put",
        target_type="intake_department_system",
        target_id=code,
        clock=clock,
        detail={"name": name, "url": checked_url, "active": active, "created": created, "rotated": rotate},
    )
    return row, secret, created


# --- tasks to departments --------------------------------------------------------------------------


def systems_for(session: Session, items: Sequence[WorkItem]) -> list[tuple[WorkItem, DepartmentSystem]]:
    """The newly ready steps that go to an active department system, with the system."""
    out = []
    for item in items:
        code = code_of(item.role)
        if code is None:
            continue
        system = get_system(session, code)
        if system is not None and system.active:
            out.append((item, system))
    return out


def send_task(
    session: Session,
    application: Application,
    item: WorkItem,
    system: DepartmentSystem,
    snapshot: Mapping[str, Any],
    *,
    sealer: Sealer,
    clock: Clock,
) -> OutboxMessage:
    """Queue the ``task.ready`` webhook of a step for the department's system (in the caller's
    transaction); the outbox worker signs and sends it."""
    data = {
        "receipt_no": application.receipt_no,
        "task_id": item.task_id,
        "step": item.step,
        "step_name": item.name,
        "item_code": application.item_code,
        "item_name": application.item_name,
        "department": system.code,
        "department_name": system.name,
        "submitted_at": application.submitted_at.isoformat(),
        **snapshot,
    }
    message = outbox.enqueue(
        session,
        channel=outbox.DEPARTMENT,
        target=system.code,
        event=TASK_READY,
        payload={"type": TASK_READY, "timestamp": clock.now().isoformat(), "data": data},
        application_id=application.id,
        sealer=sealer,
        clock=clock,
    )
    audit.record(
        session,
        actor="system",
        action="intake.department.task_sent",
        target_type="intake_application",
        target_id=application.receipt_no,
        clock=clock,
        detail={
            "department": system.code,
            "task_id": item.task_id,
            "step": item.step,
            "message_id": message.id,
        },
    )
    return message


def signature_headers(secret: str, message_id: str, now: dt.datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of ``body`` sent as ``message_id`` at ``now``."""
    at = dt.datetime.fromtimestamp(int(now.timestamp()), dt.UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body),
    }


class DepartmentTransport:
    """Sends ``department`` outbox messages: the payload with the callback URL added, signed with the
    system's current secret, POSTed to its URL. Any 2xx is delivered; anything else is retried. A system
    removed or made inactive meanwhile fails the message for good (the step waits for officers)."""

    def __init__(
        self,
        *,
        sealer: Sealer,
        public_url: str,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._sealer = sealer
        self._public_url = public_url.rstrip("/")
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s), transport=transport, follow_redirects=False
        )

    def close(self) -> None:
        self._client.close()

    def send(self, session: Session, message: outbox.Outgoing) -> None:
        system = get_system(session, message.target)
        if system is None or not system.active:
            raise outbox.DeliveryFailed(
                "the department system is not registered or not active", permanent=True
            )
        payload = dict(message.payload)
        payload["data"] = {
            **payload.get("data", {}),
            "callback_url": self._public_url + callback_path(system.code),
        }
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        headers = signature_headers(secret_of(system, self._sealer), message.id, message.now, body)
        try:
            response = self._client.post(
                system.url,
                content=body.encode(),
                headers={**headers, "Content-Type": "application/json", "User-Agent": "tongban-webhooks/1"},
            )
        except httpx.HTTPError as exc:
            raise outbox.DeliveryFailed(
                f"could not reach the department system ({type(exc).__name__})"
            ) from None
        if not response.is_success:
            raise outbox.DeliveryFailed(f"the department system answered HTTP {response.status_code}")


# --- callbacks from departments --------------------------------------------------------------------


def system_for_callback(session: Session, code: str) -> DepartmentSystem:
    system = get_system(session, code)
    if system is None:
        raise NotFound(f"no department system {code!r} is registered")
    if not system.active:
        raise Forbidden(f"the department system {code!r} is not active; its steps are done by officers")
    return system


def verify(secret: str, body: bytes, headers: Mapping[str, str], *, now: dt.datetime) -> str:
    """Check a callback's Standard Webhooks signature against ``secret`` and its timestamp against ``now``
    (our clock, not the wall clock); returns its ``webhook-id``."""
    lower = {k.lower(): v for k, v in headers.items()}
    message_id = lower.get("webhook-id", "")
    timestamp = lower.get("webhook-timestamp", "")
    signatures = lower.get("webhook-signature", "")
    if not (message_id and timestamp and signatures):
        raise WebhookSignatureInvalid(
            "a callback carries the webhook-id, webhook-timestamp and webhook-signature headers"
        )
    if not re.fullmatch(r"[0-9]{1,10}", timestamp):
        raise WebhookSignatureInvalid("webhook-timestamp: whole seconds since 1970-01-01 UTC")
    try:
        sent = dt.datetime.fromtimestamp(int(timestamp), dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise WebhookSignatureInvalid("webhook-timestamp: whole seconds since 1970-01-01 UTC") from None
    off = (now - sent).total_seconds()
    if abs(off) > TOLERANCE.total_seconds():
        raise WebhookTimestampRejected(
            f"webhook-timestamp is {abs(int(off))} s {'behind' if off > 0 else 'ahead of'} our clock; "
            f"at most {int(TOLERANCE.total_seconds())} s are accepted (sign each request when it is sent)"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookSignatureInvalid("the body is not UTF-8 text, so its signature cannot match") from None
    expected = Webhook(secret).sign(message_id, sent, text).partition(",")[2]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            break
    else:
        raise WebhookSignatureInvalid(
            "no v1 signature in webhook-signature matches the body under this department's secret"
        )
    if not _WEBHOOK_ID.match(message_id):
        raise InvalidInput("webhook-id: 8–128 printable ASCII characters without spaces")
    return message_id


class _Callback(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    task_id: Annotated[str, StringConstraints(min_length=1, max_length=36)]
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class TaskStatus(_Callback):
    """The department reports progress on a step: it received it, or is working on it."""

    type: Literal["task.status"]
    status: Literal["received", "in_progress"]


class TaskCompleted(_Callback):
    """The department decided the step (its decision routes the process like an officer's)."""

    type: Literal["task.completed"]
    decision: Annotated[str, StringConstraints(min_length=1, max_length=30)]


Callback = Annotated[TaskStatus | TaskCompleted, Field(discriminator="type")]
_CALLBACK: TypeAdapter[TaskStatus | TaskCompleted] = TypeAdapter(Callback)


def parse_callback(body: bytes) -> TaskStatus | TaskCompleted:
    try:
        return _CALLBACK.validate_json(body)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        ]
        raise InvalidInput(
            'the callback must be {"type": "task.status", "task_id", "status": "received"|"in_progress", '
            '"note"} or {"type": "task.completed", "task_id", "decision", "note"}: '
            + "; ".join(problems[:5]),
            errors=problems,
        ) from exc


def department_out(system: DepartmentSystem, *, secret: str | None = None) -> DepartmentOut:
    return DepartmentOut(
        code=system.code,
        name=system.name,
        url=system.url,
        active=system.active,
        lane=lane(system.code),
        updated_by=system.updated_by,
        updated_at=system.updated_at,
        secret=secret,
    )
