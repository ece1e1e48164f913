"""Accounts, roles and sessions.

Local accounts with Argon2id password hashes and server-side sessions (revocable; the cookie or bearer
token is a random value whose SHA-256 is stored). The session layer does not care who proved the
identity: an OIDC login would find or create the :class:`Account` (``provider`` = the issuer) and call
:func:`start_session` the same way, so the rest of the platform sees one :class:`Principal`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass, field

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tongban.core.clock import Clock
from tongban.core.errors import Conflict, DomainError, Forbidden, InvalidInput, Unauthenticated
from tongban.core.models import Account, AuthSession, LoginFailure

#: Every permission the platform checks, granted through roles.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(
        {
            "catalog:edit",
            "catalog:review",
            "catalog:publish",
            "knowledge:edit",
            "knowledge:review",
            "knowledge:publish",
            "consult:agents",
            "consult:read",
            "intake:profiles",
            "intake:sensitive",
            "intake:forms",
            "intake:forms_publish",
            "intake:lane:window",
            "intake:lane:reviewer",
            "intake:lane:decider",
            "intake:monitor",
            "intake:departments",  # departments' own systems (webhooks and their secrets)
            "rating:visit",
            "rating:cases",
            "rating:rectify",
            "rating:supervise",
            "rating:monitor",
            "hotline:intake",
            "hotline:handle",
            "hotline:handle_any",
            "hotline:supervise",
            "hotline:analyse",
            "hotline:admin",
            "policy:edit",
            "policy:review",
            "policy:run",
            "policy:approve",
            "audit:read",
            "accounts:manage",
        }
    ),
    "catalog_editor": frozenset({"catalog:edit"}),
    "catalog_reviewer": frozenset({"catalog:edit", "catalog:review", "catalog:publish"}),
    "knowledge_editor": frozenset({"knowledge:edit"}),
    "knowledge_reviewer": frozenset({"knowledge:edit", "knowledge:review", "knowledge:publish"}),
    "consult_operator": frozenset({"consult:agents", "consult:read"}),
    #: A counter officer (综窗): reads and records profiles; sensitive values stay masked.
    "intake_officer": frozenset({"intake:profiles", "intake:lane:window", "rating:visit"}),
    #: Officers of the later steps of the standard process (审查, 决定).
    "intake_reviewer": frozenset({"intake:profiles", "intake:lane:reviewer"}),
    "intake_decider": frozenset({"intake:profiles", "intake:lane:decider"}),
    #: A supervisor who may see sensitive personal data unmasked.
    "intake_supervisor": frozenset({"intake:profiles", "intake:sensitive", "intake:monitor"}),
    #: Writes application forms; a form publisher (another person) publishes them.
    "intake_form_editor": frozenset({"intake:forms"}),
    "intake_form_publisher": frozenset({"intake:forms", "intake:forms_publish"}),
    "auditor": frozenset({"audit:read"}),
    #: Handles the rectification of bad reviews of every unit (``quality_unit:<unit>``: of one unit).
    "quality_officer": frozenset({"rating:rectify"}),
    #: Decides appeals, sets targets and rating rules, publishes results; sees every indicator.
    "quality_supervisor": frozenset({"rating:supervise", "rating:monitor", "rating:rectify"}),
    #: Reads indicators, pain points and the cases behind them.
    "quality_analyst": frozenset({"rating:monitor"}),
    #: A rating terminal (pad) at a window: takes the ratings of the visits served there.
    "rating_terminal": frozenset({"rating:terminal"}),
    #: Another system (a hotline, a hall's queue system) that registers its cases for rating.
    "rating_system": frozenset({"rating:cases"}),
    #: A 12345 operator (话务员): takes tickets in, classifies and dispatches them, answers directly, makes
    #: return visits.
    "hotline_operator": frozenset({"hotline:intake"}),
    #: Decides returns (改派), merges duplicates, watches deadlines, reads the three rates; acts for units.
    "hotline_supervisor": frozenset(
        {"hotline:intake", "hotline:supervise", "hotline:analyse", "hotline:handle", "hotline:handle_any"}
    ),
    #: Reads hotspots, the sentiment index and the three rates.
    "hotline_analyst": frozenset({"hotline:analyse"}),
    #: Manages the taxonomy, units, dispatch catalogue, Open311 services and keys, settings and models.
    "hotline_admin": frozenset({"hotline:admin", "hotline:analyse"}),
    #: Drafts policy documents, interpretations and the rules of policy items (京策).
    "policy_editor": frozenset({"policy:edit"}),
    #: Reviews and publishes documents and item versions, repeals, sets the variables (four eyes: never
    #: their own drafts).
    "policy_reviewer": frozenset({"policy:edit", "policy:review"}),
    #: Registers data snapshots, computes 免申即享 runs and simulations (推演).
    "policy_officer": frozenset({"policy:run"}),
    #: Approves or rejects runs (four eyes: not their own) and decides appeals of automated decisions.
    "policy_approver": frozenset({"policy:run", "policy:approve"}),
}

#: Sign-in throttling: this many failures for one username within the window lock it for the window.
LOCKOUT_FAILURES = 10
LOCKOUT_WINDOW = dt.timedelta(minutes=15)

_hasher = PasswordHasher()  # argon2id, RFC 9106's second recommended parameters
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,63}$")
#: A fixed hash to verify against when the account does not exist (keeps timing uniform); made on first use.
_DUMMY_HASH = ""


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if not _DUMMY_HASH:
        _DUMMY_HASH = _hasher.hash("not-a-real-password")
    return _DUMMY_HASH


def configure_password_hashing(*, time_cost: int, memory_kib: int, parallelism: int) -> None:
    """Set the argon2id costs of new password hashes (``password_hash_*`` settings). Hashes made with other
    costs still verify and are remade with these at their account's next sign-in."""
    global _hasher, _DUMMY_HASH
    if (time_cost, memory_kib, parallelism) == (_hasher.time_cost, _hasher.memory_cost, _hasher.parallelism):
        return
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
    _DUMMY_HASH = ""


@dataclass(frozen=True)
class Principal:
    """Who is acting. Anonymous citizens have ``account_id`` None and no permissions."""

    account_id: int | None
    username: str
    display_name: str
    roles: tuple[str, ...] = ()
    csrf_token: str | None = None
    permissions: frozenset[str] = field(default=frozenset())

    @property
    def is_authenticated(self) -> bool:
        return self.account_id is not None

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def require_other_than(self, author: str) -> None:
        """Four eyes: a change is approved by someone other than its author (admins excepted)."""
        if author == self.username and "admin" not in self.roles:
            raise Forbidden("a change must be reviewed by someone other than its author")

    def require(self, permission: str) -> None:
        if not self.is_authenticated:
            raise Unauthenticated("sign in to do this")
        if not self.can(permission):
            raise Forbidden(f"your account lacks the permission {permission!r}")


ANONYMOUS = Principal(account_id=None, username="anonymous", display_name="")


def system_principal(name: str, permissions: frozenset[str]) -> Principal:
    """The platform itself acting in another domain (a job, the hotline registering its cases for
    rating): authenticated as account 0, which is never a real account (ids start at 1)."""
    return Principal(account_id=0, username=name, display_name=name, permissions=permissions)


#: A role ``intake_lane:<lane>`` lets an officer act in that lane of items' own processes (e.g. a
#: department's lane ``dept_market`` of a process with parallel departments) and read profiles.
LANE_ROLE = "intake_lane:"
_LANE_ROLE = re.compile(r"^intake_lane:[a-z][a-z0-9_]{0,39}$")


#: A role ``hotline_unit:<code>`` handles the tickets dispatched to that hotline unit (承办单位).
HOTLINE_UNIT_ROLE = "hotline_unit:"
_HOTLINE_UNIT_ROLE = re.compile(r"^hotline_unit:[A-Za-z0-9_.:-]{1,64}$")

#: A role ``quality_unit:<unit>`` handles the rectification of bad reviews of that unit (as the cases
#: name it, e.g. ``quality_unit:市市场监督管理局``).
UNIT_ROLE = "quality_unit:"
_UNIT_ROLE = re.compile(r"^quality_unit:[^:\s][^:]{0,199}$")


def _known_role(role: str) -> bool:
    return (
        role in ROLE_PERMISSIONS
        or bool(_LANE_ROLE.match(role))
        or bool(_UNIT_ROLE.match(role))
        or bool(_HOTLINE_UNIT_ROLE.match(role))
    )


def permissions_for(roles: list[str] | tuple[str, ...]) -> frozenset[str]:
    granted: set[str] = set()
    for role in roles:
        if _LANE_ROLE.match(role):
            granted |= {"intake:profiles", "intake:lane:" + role[len(LANE_ROLE) :]}
        if _UNIT_ROLE.match(role):
            granted.add("rating:rectify")
        if _HOTLINE_UNIT_ROLE.match(role):
            granted.add("hotline:handle")
        granted |= ROLE_PERMISSIONS.get(role, frozenset())
    return frozenset(granted)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_account(
    session: Session, *, username: str, password: str, roles: list[str], display_name: str, clock: Clock
) -> Account:
    if not _USERNAME.match(username):
        raise InvalidInput("username: 3–64 lowercase letters, digits, '.', '_' or '-'")
    if len(password) < 12:
        raise InvalidInput("password: at least 12 characters")
    unknown = [r for r in roles if not _known_role(r)]
    if unknown:
        raise InvalidInput(f"unknown role(s): {', '.join(unknown)}; known: {', '.join(ROLE_PERMISSIONS)}")
    if session.scalar(select(Account.id).where(Account.username == username)) is not None:
        raise Conflict(f"an account named {username!r} already exists")
    account = Account(
        username=username,
        display_name=display_name or username,
        password_hash=_hasher.hash(password),
        roles=sorted(set(roles)),
        is_active=True,
        provider="local",
        created_at=clock.now(),
    )
    session.add(account)
    session.flush()
    return account


def account_by_username(session: Session, username: str) -> Account | None:
    return session.scalar(select(Account).where(Account.username == username))


def set_password(session: Session, *, username: str, password: str) -> None:
    if len(password) < 12:
        raise InvalidInput("password: at least 12 characters")
    account = session.scalar(select(Account).where(Account.username == username))
    if account is None:
        raise InvalidInput(f"no account named {username!r}")
    account.password_hash = _hasher.hash(password)


class TooManyAttempts(DomainError):
    status = 429
    slug = "too-many-attempts"
    title = "Too many attempts"


def authenticate(
    session: Session, *, username: str, password: str, clock: Clock, client_ip: str | None = None
) -> Account | None:
    """The account, or None for a wrong username or password (the failure is recorded, so the caller
    must let the transaction commit). Raises :class:`TooManyAttempts` while the name is locked out."""
    username = username[:64]
    since = clock.now() - LOCKOUT_WINDOW
    failures = session.scalar(
        select(func.count()).where(LoginFailure.username == username, LoginFailure.at > since)
    )
    if (failures or 0) >= LOCKOUT_FAILURES:
        raise TooManyAttempts(
            f"too many failed sign-ins for this account; try again in {LOCKOUT_WINDOW.seconds // 60} minutes"
        )
    account = session.scalar(select(Account).where(Account.username == username))
    try:
        _hasher.verify(account.password_hash if account else _dummy_hash(), password)
        ok = account is not None and account.is_active
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or account is None:
        session.add(LoginFailure(username=username, at=clock.now(), client_ip=client_ip))
        session.flush()
        return None
    session.execute(delete(LoginFailure).where(LoginFailure.username == username))
    if _weaker_than_configured(account.password_hash):
        account.password_hash = _hasher.hash(password)
    return account


def _weaker_than_configured(password_hash: str) -> bool:
    """Whether a stored hash has lower costs than new hashes get: it is remade at sign-in then. A hash
    with higher costs is never remade with lower ones (a misconfigured node must not weaken stored hashes)."""
    try:
        stored = extract_parameters(password_hash)
    except InvalidHashError:
        return True
    return (
        stored.time_cost < _hasher.time_cost
        or stored.memory_cost < _hasher.memory_cost
        or stored.parallelism < _hasher.parallelism
        or stored.type != _hasher.type
    )


def start_session(session: Session, account: Account, *, clock: Clock, hours: int) -> tuple[str, AuthSession]:
    """Open a session; returns the token (to hand to the client once) and the stored row."""
    token = secrets.token_urlsafe(32)
    now = clock.now()
    row = AuthSession(
        token_hash=_hash_token(token),
        account_id=account.id,
        csrf_token=secrets.token_urlsafe(24),
        created_at=now,
        expires_at=now + dt.timedelta(hours=hours),
        revoked=False,
    )
    account.last_login_at = now
    session.add(row)
    session.flush()
    return token, row


def resolve_session(session: Session, token: str, *, clock: Clock) -> Principal | None:
    if not token or len(token) > 128:
        return None
    row = session.get(AuthSession, _hash_token(token))
    if row is None or row.revoked or row.expires_at <= clock.now():
        return None
    account = session.get(Account, row.account_id)
    if account is None or not account.is_active:
        return None
    roles = tuple(account.roles)
    return Principal(
        account_id=account.id,
        username=account.username,
        display_name=account.display_name,
        roles=roles,
        csrf_token=row.csrf_token,
        permissions=permissions_for(roles),
    )


def end_session(session: Session, token: str) -> None:
    row = session.get(AuthSession, _hash_token(token))
    if row is not None:
        row.revoked = True
