"""login failures

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tongban.core.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "core_login_failure",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_login_failure")),
    )
    with op.batch_alter_table("core_login_failure", schema=None) as batch_op:
        batch_op.create_index("ix_core_login_failure_username_at", ["username", "at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("core_login_failure", schema=None) as batch_op:
        batch_op.drop_index("ix_core_login_failure_username_at")

    op.drop_table("core_login_failure")
