"""Domain errors. Each carries an HTTP status and becomes an RFC 9457 problem+json body at the edge."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status: int = 400
    #: Short slug; the problem ``type`` URI is ``/problems/<slug>``.
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class InvalidInput(DomainError):
    status = 422
    slug = "invalid-input"
    title = "Invalid input"


class Unauthenticated(DomainError):
    status = 401
    slug = "unauthenticated"
    title = "Authentication required"


class Forbidden(DomainError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class PreconditionFailed(DomainError):
    status = 412
    slug = "precondition-failed"
    title = "Precondition failed"


class CalendarUnknown(DomainError):
    """A date outside the years whose official holiday schedule is known: refused, never guessed."""

    status = 422
    slug = "calendar-year-unknown"
    title = "Holiday schedule not known for that year"


class PayloadTooLarge(DomainError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class Busy(DomainError):
    """The service cannot take the request now (e.g. the embedded database's writer is busy); retry."""

    status = 503
    slug = "busy"
    title = "Service unavailable"
