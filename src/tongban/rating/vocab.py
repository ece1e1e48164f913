"""The rating vocabulary: the five levels, the dimensions, the reasons of bad reviews, the indicator set
and the configurable rules with their defaults."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tongban.core.messages import N_


class CaseKind(StrEnum):
    APPLICATION = "application"
    TICKET = "ticket"
    CONSULTATION = "consultation"
    VISIT = "visit"


CASE_KIND_TEXT = {
    CaseKind.APPLICATION: N_("Application"),
    CaseKind.TICKET: N_("Hotline ticket"),
    CaseKind.CONSULTATION: N_("Consultation"),
    CaseKind.VISIT: N_("In-person visit"),
}

#: The five levels of the national 好差评 practice; the bottom two are bad reviews (差评).
LEVELS = {
    5: ("非常满意", "Very satisfied"),
    4: ("满意", "Satisfied"),
    3: ("基本满意", "Fairly satisfied"),
    2: ("不满意", "Dissatisfied"),
    1: ("非常不满意", "Very dissatisfied"),
}
BAD_LEVELS = frozenset({1, 2})


def is_bad(level: int | None) -> bool:
    return level is not None and level in BAD_LEVELS


class Dimension(StrEnum):
    EFFICIENCY = "efficiency"
    GUIDE = "guide"
    CONVENIENCE = "convenience"
    ATTITUDE = "attitude"


DIMENSION_TEXT = {
    Dimension.EFFICIENCY: ("办事效率", "Efficiency"),
    Dimension.GUIDE: ("指南准确", "Accuracy of the guide"),
    Dimension.CONVENIENCE: ("便利程度", "Convenience"),
    Dimension.ATTITUDE: ("服务态度", "Attitude"),
}

#: Channels a rating may come through.
RATING_CHANNELS = ("web", "app", "terminal", "sms", "phone")
#: Channels a case may come in through; ``online`` and ``app`` count as online.
CASE_CHANNELS = ("online", "app", "window", "terminal", "phone", "mail")
ONLINE_CHANNELS = ("online", "app")


class Setting(StrEnum):
    """Configurable rules, all whole numbers."""

    #: Days after closing a case may be rated (calendar days).
    WINDOW_DAYS = "window_days"
    #: Days after the invitation the reminder goes, and how many reminders at most.
    REMIND_AFTER_DAYS = "remind_after_days"
    MAX_REMINDERS = "max_reminders"
    #: The return call (回访) is due within this many working days of the bad review.
    CONTACT_WORKING_DAYS = "contact_working_days"
    #: The rectification (整改) is due within this many working days of the bad review.
    RECTIFY_WORKING_DAYS = "rectify_working_days"
    #: Days after the rectification the follow-up rating may be given.
    FOLLOW_UP_DAYS = "follow_up_days"
    #: Minutes after an in-person visit a terminal may still take its rating.
    VISIT_WINDOW_MINUTES = "visit_window_minutes"
    #: A pending appeal is escalated when the supervisor has not decided it within this many working days.
    APPEAL_WORKING_DAYS = "appeal_working_days"


SETTING_DEFAULTS: dict[Setting, int] = {
    Setting.WINDOW_DAYS: 15,
    Setting.REMIND_AFTER_DAYS: 3,
    Setting.MAX_REMINDERS: 1,
    Setting.CONTACT_WORKING_DAYS: 1,
    Setting.RECTIFY_WORKING_DAYS: 15,
    Setting.FOLLOW_UP_DAYS: 15,
    Setting.VISIT_WINDOW_MINUTES: 60 * 24,
    Setting.APPEAL_WORKING_DAYS: 5,
}
SETTING_RANGE: dict[Setting, tuple[int, int]] = {
    Setting.WINDOW_DAYS: (1, 365),
    Setting.REMIND_AFTER_DAYS: (1, 60),
    Setting.MAX_REMINDERS: (0, 5),
    Setting.CONTACT_WORKING_DAYS: (1, 10),
    Setting.RECTIFY_WORKING_DAYS: (1, 60),
    Setting.FOLLOW_UP_DAYS: (1, 60),
    Setting.VISIT_WINDOW_MINUTES: (5, 60 * 24 * 7),
    Setting.APPEAL_WORKING_DAYS: (1, 30),
}


@dataclass(frozen=True)
class Indicator:
    code: str
    name: str
    name_en: str
    #: ``rate`` (0–1, shown as a percentage), ``days`` or ``number``.
    unit: str
    #: Whether a higher value is better (for the band's reading and the charts).
    higher_is_better: bool
    #: How it is computed, for the documented indicator set.
    definition: str


INDICATORS: tuple[Indicator, ...] = (
    Indicator(
        "on_time_rate",
        "按时办结率",
        "On-time rate",
        "rate",
        True,
        "closed applications within their promised time limit / closed applications with a limit",
    ),
    Indicator(
        "avg_work_days",
        "平均办理时长",
        "Average processing time",
        "days",
        False,
        "mean working days from acceptance (受理) to the decision, suspensions excluded",
    ),
    Indicator(
        "p90_work_days",
        "办理时长P90",
        "Processing time, 90th percentile",
        "days",
        False,
        "nearest-rank 90th percentile of the same working days",
    ),
    Indicator(
        "online_share",
        "网办率",
        "Online share",
        "rate",
        True,
        "cases that came in online (portal or app) / all cases",
    ),
    Indicator(
        "visits_per_case",
        "平均跑动次数",
        "Visits per case",
        "number",
        False,
        "in-person visits recorded for applications / applications",
    ),
    Indicator(
        "exempted_share",
        "材料免提交率",
        "Materials exempted",
        "rate",
        True,
        "materials exempted (e-licence, shared data) / materials the items ask for",
    ),
    Indicator(
        "first_pass_rate",
        "预审一次通过率",
        "First-time pre-check pass rate",
        "rate",
        True,
        "applications with no pre-check finding and no supplementary-material request / applications",
    ),
    Indicator(
        "rating_rate",
        "参评率",
        "Share of cases rated",
        "rate",
        True,
        "rated cases / closed cases",
    ),
    Indicator(
        "satisfaction_rate",
        "满意率",
        "Satisfaction rate",
        "rate",
        True,
        "ratings 基本满意 or better / counted ratings (follow-up replaces first; upheld appeals struck out)",
    ),
    Indicator(
        "bad_rate",
        "差评率",
        "Bad-review rate",
        "rate",
        False,
        "first ratings 不满意 or 非常不满意 / first ratings, upheld appeals struck out",
    ),
    Indicator(
        "rectification_rate",
        "差评整改率",
        "Bad-review rectification rate",
        "rate",
        True,
        "bad reviews rectified / bad reviews, upheld appeals struck out",
    ),
    Indicator(
        "rectified_on_time_rate",
        "差评按时整改率",
        "Rectified in time",
        "rate",
        True,
        "bad reviews rectified by their deadline / bad reviews, upheld appeals struck out",
    ),
)
INDICATOR_BY_CODE = {i.code: i for i in INDICATORS}

#: What indicators are grouped by.
DIMENSIONS_OF_GROUPING = ("department", "item", "region", "month", "kind", "channel")
TARGET_SCOPES = ("all", "department", "item", "region")
