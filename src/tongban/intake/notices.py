"""Notices to applicants: in the portal, and by email and SMS through the outbox.

Each status change an applicant should know about (received, supplementary material requested, accepted
and in progress, approved, refused, not accepted, a department's progress) writes a portal notice and,
in the same transaction, queues an email and an SMS to the contact the applicant's profile holds
(``person.email``, ``person.mobile``). Emails and SMS say only the item, the receipt number and the
status, in Chinese and English in one message (accounts keep no language preference yet); what the
officer wrote (what to supplement, why refused) is shown in the portal only, after signing in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from tongban.core.auth import Principal
from tongban.core.clock import Clock
from tongban.core.crypto import Sealer
from tongban.core.errors import NotFound, Unauthenticated
from tongban.core.notify import EmailSender, NotifyError, SmsSender
from tongban.intake import outbox
from tongban.intake.models import Application, ApplicationEvent, Notice
from tongban.intake.schemas import NoticeOut

#: A department's progress on a step (from its callback): the notice's status is ``department_<status>``.
DEPARTMENT_PREFIX = "department_"
#: Notices of the rating domain (invitation, reminder, follow-up) are ``rating_<what>``.
RATING_PREFIX = "rating_"


@dataclass(frozen=True)
class Wording:
    #: Short status, Chinese and English.
    title: str
    title_en: str
    #: What it means for the applicant (after "您申请的 X（受理编号 N）" / "Your application ... ").
    text: str
    text_en: str


WORDING: dict[str, Wording] = {
    "submitted": Wording(
        "已收到申请",
        "Application received",
        "已提交成功，等待受理",
        "has been received and awaits acceptance",
    ),
    "supplement_requested": Wording(
        "需要补正材料",
        "Supplementary material needed",
        "需要补正材料，请登录查看需补正的内容并在线提交",
        "needs supplementary material; sign in to see what is needed and submit it online",
    ),
    "in_progress": Wording(
        "已受理，正在办理",
        "Accepted, in progress",
        "已受理，正在办理",
        "has been accepted and is being processed",
    ),
    "approved": Wording(
        "准予许可",
        "Approved",
        "已办结，准予许可；决定书可登录下载",
        "has been decided: approved; the decision can be downloaded after signing in",
    ),
    "refused": Wording(
        "不予许可",
        "Refused",
        "已办结，不予许可；决定书及理由可登录查看",
        "has been decided: refused; the decision and its reasons are available after signing in",
    ),
    "not_accepted": Wording(
        "不予受理",
        "Not accepted",
        "不予受理；通知书及理由可登录查看",
        "was not accepted; the notice and its reasons are available after signing in",
    ),
    "closed": Wording("已办结", "Closed", "已办结", "has been closed"),
    # --- ratings (好差评): the invitation after closing, its reminder, the follow-up after rectification
    RATING_PREFIX + "invite": Wording(
        "请评价本次服务",
        "Please rate this service",
        "已办结，欢迎登录对本次服务进行评价（自愿参加）",
        "has been closed; you are welcome to sign in and rate the service (optional)",
    ),
    RATING_PREFIX + "reminder": Wording(
        "评价提醒",
        "Reminder: rate this service",
        "尚未评价，评价期届满前仍可登录评价（自愿参加）",
        "has not been rated yet; you may still sign in and rate it before the rating period ends (optional)",
    ),
    RATING_PREFIX + "follow_up": Wording(
        "差评整改完成，请再次评价",
        "Rectified: please rate again",
        "的差评已由承办单位整改，欢迎登录查看整改情况并再次评价",
        "received a bad review that the unit has now rectified; sign in to see what was done and rate again",
    ),
    DEPARTMENT_PREFIX + "received": Wording(
        "部门已接收", "Received by the department", "已由承办部门接收", "has been received by the department"
    ),
    DEPARTMENT_PREFIX + "in_progress": Wording(
        "部门正在办理",
        "Being processed by the department",
        "正在由承办部门办理",
        "is being processed by the department",
    ),
}


def _wording(status: str) -> Wording:
    return WORDING.get(status) or Wording(status, status, status, status)


def _sentence(application: Application, w: Wording) -> tuple[str, str]:
    zh = f"您申请的“{application.item_name}”（受理编号 {application.receipt_no}）{w.text}。"
    en = f"Your application for “{application.item_name}” (receipt {application.receipt_no}) {w.text_en}."
    return zh, en


def _email(application: Application, w: Wording) -> tuple[str, str]:
    zh, en = _sentence(application, w)
    subject = f"【通办】{w.title} {application.receipt_no} | Tongban: {w.title_en}"
    body = (
        f"{zh}\n请登录通办查看详情。此邮件由系统自动发送，请勿回复。\n\n"
        f"{en}\nSign in to Tongban for details. This email was sent automatically; do not reply.\n"
    )
    return subject, body


def _sms(application: Application, w: Wording) -> str:
    zh, _ = _sentence(application, w)
    return f"【通办】{zh}详情请登录查看。Tongban: application {application.receipt_no} — {w.title_en}."


def notify(
    session: Session,
    application: Application,
    status: str,
    *,
    email: str | None,
    mobile: str | None,
    sealer: Sealer,
    clock: Clock,
) -> Notice:
    """Write the portal notice of ``status`` and queue its email and SMS (where the applicant has an
    address and a mobile number) in the caller's transaction."""
    channels = [c for c, to in ((outbox.EMAIL, email), (outbox.SMS, mobile)) if to]
    notice = Notice(
        account_id=application.applicant_account_id,
        application_id=application.id,
        status=status,
        channels=channels,
        created_at=clock.now(),
    )
    session.add(notice)
    session.flush()
    w = _wording(status)
    if email:
        subject, body = _email(application, w)
        outbox.enqueue(
            session,
            channel=outbox.EMAIL,
            target=email,
            event=f"notice.{status}",
            payload={"notice_id": notice.id, "subject": subject, "body": body},
            application_id=application.id,
            sealer=sealer,
            clock=clock,
        )
    if mobile:
        outbox.enqueue(
            session,
            channel=outbox.SMS,
            target=mobile,
            event=f"notice.{status}",
            payload={"notice_id": notice.id, "text": _sms(application, w)},
            application_id=application.id,
            sealer=sealer,
            clock=clock,
        )
    return notice


# --- the portal ------------------------------------------------------------------------------------


def _matches(event: ApplicationEvent, status: str) -> bool:
    if status.startswith(DEPARTMENT_PREFIX):
        return event.action == "department:" + status[len(DEPARTMENT_PREFIX) :]
    return event.to_status == status and not event.action.startswith("department:")


def _note(events: Sequence[ApplicationEvent], notice: Notice) -> str:
    """What the officer or department wrote with the change the notice reports (shown in the portal only)."""
    for event in reversed(events):
        if event.at <= notice.created_at and _matches(event, notice.status):
            return event.note
    return ""


def _out(notice: Notice, application: Application, events: Sequence[ApplicationEvent]) -> NoticeOut:
    w = _wording(notice.status)
    text, text_en = _sentence(application, w)
    return NoticeOut(
        id=notice.id,
        receipt_no=application.receipt_no,
        item_code=application.item_code,
        item_name=application.item_name,
        status=notice.status,
        title=w.title,
        title_en=w.title_en,
        text=text,
        text_en=text_en,
        note=_note(events, notice),
        channels=list(notice.channels),
        created_at=notice.created_at,
        read_at=notice.read_at,
    )


def _events_of(session: Session, application_ids: set[int]) -> dict[int, list[ApplicationEvent]]:
    out: dict[int, list[ApplicationEvent]] = {i: [] for i in application_ids}
    if application_ids:
        stmt = (
            select(ApplicationEvent)
            .where(ApplicationEvent.application_id.in_(application_ids))
            .order_by(ApplicationEvent.id)
        )
        for e in session.scalars(stmt):
            out[e.application_id].append(e)
    return out


def my_notices(session: Session, principal: Principal, *, limit: int = 100) -> list[NoticeOut]:
    """The caller's notices: unread first, newest first within each."""
    if principal.account_id is None:
        raise Unauthenticated("sign in to see your notices")
    stmt = (
        select(Notice, Application)
        .join(Application, Application.id == Notice.application_id)
        .where(Notice.account_id == principal.account_id)
        .order_by(case((Notice.read_at.is_(None), 0), else_=1), Notice.created_at.desc(), Notice.id.desc())
        .limit(limit)
    )
    rows = [(n, a) for n, a in session.execute(stmt)]
    events = _events_of(session, {a.id for _, a in rows})
    return [_out(n, a, events[a.id]) for n, a in rows]


def mark_read(session: Session, principal: Principal, notice_id: int, *, clock: Clock) -> NoticeOut:
    """Mark one of the caller's notices read (marking it again keeps the first time)."""
    if principal.account_id is None:
        raise Unauthenticated("sign in to see your notices")
    notice = session.get(Notice, notice_id)
    if notice is None or notice.account_id != principal.account_id:
        raise NotFound(f"no notice {notice_id}")
    if notice.read_at is None:
        notice.read_at = clock.now()
        session.flush()
    application = session.get(Application, notice.application_id)
    assert application is not None  # noqa: S101 - the foreign key holds it
    return _out(notice, application, _events_of(session, {application.id})[application.id])


# --- transports of the outbox ----------------------------------------------------------------------


def _close(sender: object) -> None:
    close = getattr(sender, "close", None)
    if callable(close):
        close()


class EmailTransport:
    """Sends ``email`` outbox messages through an :class:`~tongban.core.notify.EmailSender`."""

    def __init__(self, sender: EmailSender) -> None:
        self.sender = sender

    def close(self) -> None:
        _close(self.sender)

    def send(self, session: Session, message: outbox.Outgoing) -> None:
        try:
            self.sender.send_email(
                message_id=message.id,
                to=message.target,
                subject=str(message.payload["subject"]),
                body=str(message.payload["body"]),
            )
        except NotifyError as exc:
            raise outbox.DeliveryFailed(str(exc)) from None


class SmsTransport:
    """Sends ``sms`` outbox messages through an :class:`~tongban.core.notify.SmsSender`."""

    def __init__(self, sender: SmsSender) -> None:
        self.sender = sender

    def close(self) -> None:
        _close(self.sender)

    def send(self, session: Session, message: outbox.Outgoing) -> None:
        try:
            self.sender.send_sms(message_id=message.id, to=message.target, text=str(message.payload["text"]))
        except NotifyError as exc:
            raise outbox.DeliveryFailed(str(exc)) from None


def unread_count(session: Session, principal: Principal) -> int:
    if principal.account_id is None:
        return 0
    stmt = select(func.count()).where(Notice.account_id == principal.account_id, Notice.read_at.is_(None))
    return int(session.scalar(stmt) or 0)
