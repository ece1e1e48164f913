"""Fixtures of the policy tests: the demo city's library (documents, interpretations, variables, the four
demo items, published through review) and accounts of the policy roles."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.conftest import bearer, make_account
from tongban.core.clock import FixedClock
from tongban.policy import demo

H = dict[str, str]


@pytest.fixture
def library(session: Session, clock: FixedClock) -> None:
    demo.seed(session, clock=clock)
    make_account(session, clock, "policy.editor", ["policy_editor"])
    make_account(session, clock, "policy.reviewer", ["policy_reviewer"])
    session.commit()


@pytest.fixture
def editor(client: httpx.Client, library: None) -> H:
    return bearer(client, "policy.editor")


@pytest.fixture
def reviewer(client: httpx.Client, library: None) -> H:
    return bearer(client, "policy.reviewer")
