"""A synthetic history of closed cases and ratings, for the demo's dashboards.

The demo has a catalogue but no year of real applications behind it; this gives its dashboards something
to show. Every synthetic case has a reference starting ``DEMO-`` and no owner, so nobody can rate it and it
is easy to tell apart (and delete). Distributions follow public 好差评 reports: most ratings satisfied, a
few percent bad, most bad reviews rectified. Deterministic for a seed.
"""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tongban.catalog import service as catalog
from tongban.core.clock import Clock
from tongban.rating import reasons as reason_rules
from tongban.rating import service
from tongban.rating.models import Case, Rating, Rectification
from tongban.rating.service import CHINA

PREFIX = "DEMO-"
_TEXTS = (
    "办理时间太长，等了很久才办结",
    "材料要求反复补交，一次性告知不清楚",
    "窗口工作人员态度不好",
    "网上系统老是卡顿，提交不了",
    "跑了好几趟才办成",
    "电话一直没人接",
)


def seeded(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(Case).where(Case.ref.like(PREFIX + "%"))))


def generate(session: Session, *, clock: Clock, cases: int = 3000, seed: int = 7, items: int = 60) -> int:
    """Add ``cases`` closed synthetic cases over the last twelve months (idempotent: nothing when the demo
    history is there already). Returns the number added."""
    if seeded(session):
        return 0
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    catalogue = [c for _, c in zip(range(items), catalog.export_items(session), strict=False)]
    if not catalogue:
        return 0
    weights = [1 / (i + 1) for i in range(len(catalogue))]  # a few items carry most of the volume
    now = clock.now()
    today = now.astimezone(CHINA).date()
    added = 0
    for n in range(cases):
        item = rng.choices(catalogue, weights)[0]
        closed_on = today - dt.timedelta(days=rng.randint(1, 365))
        if closed_on.weekday() >= 5 and rng.random() < 0.85:  # halls close at weekends
            closed_on += dt.timedelta(days=7 - closed_on.weekday())
            closed_on = min(closed_on, today - dt.timedelta(days=1))
        closed_at = dt.datetime.combine(closed_on, dt.time(rng.randint(9, 17), rng.randint(0, 59)), CHINA)
        kind = rng.choices(("application", "ticket", "visit"), (78, 15, 7))[0]
        promised = item.promised_limit or item.statutory_limit
        limit = promised.value if promised is not None and promised.value else rng.choice((5, 10, 20))
        work = max(0, min(int(rng.expovariate(1 / max(1.0, limit * 0.35))), limit * 3))
        supplements = 1 if rng.random() < 0.08 else 0
        findings = 1 if rng.random() < 0.1 else 0
        total = len(item.materials)
        exempted = sum(1 for _ in range(total) if rng.random() < 0.3)
        channel = (
            "window"
            if kind == "visit"
            else rng.choices(("online", "app", "window"), (62, 14, 24))[0]
            if kind == "application"
            else "phone"
        )
        case = Case(
            kind=kind,
            ref=f"{PREFIX}{n:06d}",
            owner_account_id=None,
            item_code=item.code,
            item_name=item.name,
            department=item.department,
            region=item.region,
            region_code=item.region_code,
            channel=channel,
            opened_at=closed_at - dt.timedelta(days=work * 7 // 5 + 1),
            closed_at=closed_at,
            closed_on=closed_on,
            closed_month=closed_on.strftime("%Y-%m"),
            outcome=rng.choices(("approved", "refused", "not_accepted"), (92, 5, 3))[0]
            if kind == "application"
            else "served",
            limit_days=limit if kind != "visit" else None,
            work_days=work if kind != "visit" else None,
            on_time=(work <= limit) if kind != "visit" else None,
            visits=(1 if channel == "window" else 0) + (1 if supplements and rng.random() < 0.5 else 0),
            materials_total=total if kind == "application" else 0,
            materials_exempted=exempted if kind == "application" else 0,
            precheck_findings=findings if kind == "application" else 0,
            supplements=supplements if kind == "application" else 0,
            first_pass=(findings == 0 and supplements == 0) if kind == "application" else None,
            steps=[],
            longest_step=rng.choice(("accept", "review", "decide")) if kind == "application" else "",
            longest_step_hours=rng.randint(1, 24 * max(1, work)),
            rate_until=closed_at + dt.timedelta(days=15),
            invited_at=None,  # no invitation went out for synthetic cases
            reminders=0,
            created_at=now,
            updated_at=now,
        )
        session.add(case)
        added += 1
        if rng.random() > 0.45:
            continue
        late_or_supplemented = work > limit or supplements
        level = rng.choices(
            (5, 4, 3, 2, 1), (55, 25, 13, 4, 3) if late_or_supplemented else (70, 20, 8, 1, 1)
        )[0]
        session.flush()
        text = rng.choice(_TEXTS) if level <= 2 else ""
        rating = Rating(
            case_id=case.id,
            round="initial",
            level=level,
            dimensions={},
            text=text,
            reasons=reason_rules.classify(text) if level <= 2 else [],
            anonymous=rng.random() < 0.2,
            rater_account_id=None,
            channel=rng.choice(("web", "app", "sms")),
            excluded=False,
            created_at=closed_at + dt.timedelta(hours=rng.randint(1, 72)),
        )
        session.add(rating)
        case.level = case.first_level = level
        case.rated_at = rating.created_at
        if level > 2:
            continue
        session.flush()
        done = rng.random() < 0.9
        due = closed_on + dt.timedelta(days=21)
        rectified_on = closed_on + dt.timedelta(days=rng.randint(2, 25))
        session.add(
            Rectification(
                case_id=case.id,
                rating_id=rating.id,
                unit=case.department,
                state="closed" if done else "open",
                opened_at=rating.created_at,
                contact_due=None if rating.anonymous else closed_on + dt.timedelta(days=1),
                rectify_due=due,
                contacted_at=None if rating.anonymous else rating.created_at + dt.timedelta(hours=20),
                contact_note="" if rating.anonymous else "已回访",
                rectified_at=dt.datetime.combine(rectified_on, dt.time(10), CHINA) if done else None,
                rectify_note="已整改" if done else "",
                closed_at=dt.datetime.combine(rectified_on, dt.time(10), CHINA) if done else None,
                appeal="none",
                version=1,
            )
        )
        case.rectification = "rectified" if done else "open"
        case.rectified_on_time = (rectified_on <= due) if done else None
    session.flush()
    service.clear_cache()
    return added
