"""The hotline vocabulary: channels, request types, statuses, urgency and deadline classes, the
configurable rules with their defaults, and the permissions."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from tongban.core.messages import N_


class Channel(StrEnum):
    PHONE = "phone"
    WEB = "web"
    APP = "app"
    CONSULT = "consult"
    OPEN311 = "open311"
    WECHAT = "wechat"
    EMAIL = "email"


CHANNEL_TEXT = {
    Channel.PHONE: N_("Phone"),
    Channel.WEB: N_("Web form"),
    Channel.APP: N_("App"),
    Channel.CONSULT: N_("Consultation hand-off"),
    Channel.OPEN311: N_("Open311"),
    Channel.WECHAT: N_("WeChat"),
    Channel.EMAIL: N_("Email"),
}


class RequestType(StrEnum):
    COMPLAINT = "complaint"
    REQUEST = "request"
    CONSULTATION = "consultation"
    SUGGESTION = "suggestion"
    REPORT = "report"
    PRAISE = "praise"


REQUEST_TYPE_TEXT = {
    RequestType.COMPLAINT: N_("Complaint"),
    RequestType.REQUEST: N_("Request for help"),
    RequestType.CONSULTATION: N_("Question (consultation)"),
    RequestType.SUGGESTION: N_("Suggestion"),
    RequestType.REPORT: N_("Report of wrongdoing"),
    RequestType.PRAISE: N_("Praise"),
}


class Status(StrEnum):
    RECEIVED = "received"
    DISPATCHED = "dispatched"
    SIGNED = "signed"
    RETURN_REQUESTED = "return_requested"
    REPLIED = "replied"
    ANSWERED = "answered"
    CLOSED = "closed"
    MERGED = "merged"
    CANCELLED = "cancelled"


STATUS_TEXT = {
    Status.RECEIVED: N_("Received"),
    Status.DISPATCHED: N_("Dispatched"),
    Status.SIGNED: N_("Being handled"),
    Status.RETURN_REQUESTED: N_("Return requested"),
    Status.REPLIED: N_("Replied, awaiting return visit"),
    Status.ANSWERED: N_("Answered directly, awaiting return visit"),
    Status.CLOSED: N_("Closed"),
    Status.MERGED: N_("Merged into another ticket"),
    Status.CANCELLED: N_("Cancelled"),
}

#: Statuses in which a unit holds the ticket.
WITH_UNIT = frozenset({Status.DISPATCHED, Status.SIGNED, Status.RETURN_REQUESTED})
#: Statuses awaiting the return visit.
AWAITING_VISIT = frozenset({Status.REPLIED, Status.ANSWERED})
#: Statuses Open311 reports as ``closed``.
CLOSED_STATUSES = frozenset({Status.CLOSED, Status.CANCELLED})


class Urgency(StrEnum):
    EMERGENCY = "emergency"
    ORDINARY = "ordinary"
    COMPLEX = "complex"


URGENCY_TEXT = {
    Urgency.EMERGENCY: N_("Emergency"),
    Urgency.ORDINARY: N_("Ordinary"),
    Urgency.COMPLEX: N_("Complex"),
}


class DeadlineClass(StrEnum):
    EMERGENCY = "emergency"
    UTILITY = "utility"
    ORDINARY = "ordinary"
    COMPLEX = "complex"


DEADLINE_CLASS_TEXT = {
    DeadlineClass.EMERGENCY: N_("Emergency"),
    DeadlineClass.UTILITY: N_("Water, power, gas, heating"),
    DeadlineClass.ORDINARY: N_("Ordinary"),
    DeadlineClass.COMPLEX: N_("Complex"),
}

UNIT_KINDS = ("department", "district", "street", "enterprise")

#: Satisfaction levels of the return visit (the five levels of 好差评); 4 and 5 count as satisfied.
SATISFACTION = {
    5: ("非常满意", "Very satisfied"),
    4: ("满意", "Satisfied"),
    3: ("基本满意", "Fairly satisfied"),
    2: ("不满意", "Dissatisfied"),
    1: ("非常不满意", "Very dissatisfied"),
}

# --- permissions ---------------------------------------------------------------------------------------

#: Take tickets in (every channel), classify, dispatch, answer directly, make return visits.
INTAKE = "hotline:intake"
#: Handle tickets as a unit (sign, contact, reply, return); scoped by ``hotline_unit:<code>`` roles.
HANDLE = "hotline:handle"
#: Handle tickets of every unit (a supervisor acting for a unit).
HANDLE_ANY = "hotline:handle_any"
#: Decide returns (改派), merge duplicates, watch deadlines and escalations, read the three rates.
SUPERVISE = "hotline:supervise"
#: Read hotspots, the sentiment index and the three rates.
ANALYSE = "hotline:analyse"
#: Manage the taxonomy, units, the dispatch catalogue, Open311 services and keys, settings, models.
ADMIN = "hotline:admin"

# --- configurable rules ----------------------------------------------------------------------------------

#: Defaults of every rule in ``hotline_setting``; durations in hours.
DEFAULTS: dict[str, Any] = {
    #: Time to reply, per deadline class, in hours (2 h emergencies, 24 h utilities, 7 days, 15 days).
    "reply_hours": {"emergency": 2, "utility": 24, "ordinary": 168, "complex": 360},
    #: Enterprise requests (企业诉求): their own faster limits.
    "enterprise_reply_hours": {"emergency": 2, "utility": 12, "ordinary": 72, "complex": 168},
    #: Time to first contact with the requester (响应), per deadline class, in hours.
    "respond_hours": {"emergency": 0.5, "utility": 2, "ordinary": 24, "complex": 24},
    "enterprise_respond_hours": {"emergency": 0.5, "utility": 1, "ordinary": 4, "complex": 8},
    #: A warning when this share of the time to reply has passed.
    "warn_fraction": 0.75,
    #: Duplicates: same problem within this many hours, this close (metres), this similar (0–1).
    "duplicate_hours": 72,
    "duplicate_metres": 300,
    "duplicate_similarity": 0.5,
    #: Weights of the three rates in a unit's composite score (they are normalised to sum to 1).
    "rate_weights": {"response": 0.2, "resolution": 0.4, "satisfaction": 0.4},
    #: Satisfaction levels that count as satisfied (满意率).
    "satisfied_levels": [4, 5],
    #: Retrain the classifier after this many new confirmed tickets (0: only on demand).
    "retrain_after": 50,
}

#: Time zone of the city: days, weeks and months of the figures are the city's.
CHINA = dt.timezone(dt.timedelta(hours=8))
