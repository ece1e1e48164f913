"""Password hashing costs: strong by default, configurable, and old hashes upgraded at sign-in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session

from tests.conftest import PASSWORD, make_account
from tongban.core import auth
from tongban.core.clock import FixedClock
from tongban.core.config import Settings
from tongban.core.models import Account


def _costs(password_hash: str) -> str:
    """``m=…,t=…,p=…`` of an argon2id hash."""
    assert password_hash.startswith("$argon2id$v=19$")
    return password_hash.split("$")[3]


@pytest.fixture
def test_costs() -> Iterator[None]:
    yield
    Settings().configure_password_hashing()  # back to the suite's costs


def test_the_defaults_are_rfc_9106_and_settings_change_new_hashes(
    session: Session, clock: FixedClock, test_costs: None
) -> None:
    fields = Settings.model_fields
    defaults = (
        fields["password_hash_time_cost"].default,
        fields["password_hash_memory_kib"].default,
        fields["password_hash_parallelism"].default,
    )
    assert defaults == (3, 65536, 4)

    Settings(
        password_hash_time_cost=2, password_hash_memory_kib=128, password_hash_parallelism=2
    ).configure_password_hashing()
    make_account(session, clock, "hash.a", [])
    account = session.query(Account).filter_by(username="hash.a").one()
    assert _costs(account.password_hash) == "m=128,t=2,p=2"

    # Lower costs now: the hash still verifies and is never remade weaker.
    Settings(
        password_hash_time_cost=1, password_hash_memory_kib=96, password_hash_parallelism=1
    ).configure_password_hashing()
    assert auth.authenticate(session, username="hash.a", password=PASSWORD, clock=clock) is not None
    assert _costs(account.password_hash) == "m=128,t=2,p=2"
    # Higher costs: the sign-in remakes it with them.
    Settings(
        password_hash_time_cost=3, password_hash_memory_kib=256, password_hash_parallelism=2
    ).configure_password_hashing()
    assert auth.authenticate(session, username="hash.a", password=PASSWORD, clock=clock) is not None
    assert _costs(account.password_hash) == "m=256,t=3,p=2"
    assert auth.authenticate(session, username="hash.a", password="wrong password!", clock=clock) is None


def test_memory_below_eight_kib_a_lane_is_refused() -> None:
    with pytest.raises(ValidationError, match="8 × password_hash_parallelism"):
        Settings(password_hash_memory_kib=16, password_hash_parallelism=4)
    with pytest.raises(ValidationError):
        Settings(password_hash_time_cost=0)
