"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tongban.core.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "catalog_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("basic_code", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=True),
        sa.Column("item_type", sa.String(length=40), nullable=False),
        sa.Column("department", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column(
            "audiences",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "content",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("pending_version", sa.Integer(), nullable=True),
        sa.Column("created_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", tongban.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_item")),
        sa.UniqueConstraint("code", name=op.f("uq_catalog_item_code")),
    )
    with op.batch_alter_table("catalog_item", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_item_basic_code"), ["basic_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_catalog_item_item_type"), ["item_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_catalog_item_status"), ["status"], unique=False)
        batch_op.create_index("ix_catalog_item_status_department", ["status", "department"], unique=False)
        batch_op.create_index("ix_catalog_item_status_name", ["status", "name"], unique=False)

    op.create_table(
        "core_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "roles",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("provider", sa.String(length=255), nullable=False),
        sa.Column("created_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", tongban.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_account")),
        sa.UniqueConstraint("username", name=op.f("uq_core_account_username")),
    )
    op.create_table(
        "core_audit_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=128), nullable=False),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_audit_event")),
    )
    with op.batch_alter_table("core_audit_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_core_audit_event_at"), ["at"], unique=False)
        batch_op.create_index("ix_core_audit_event_target", ["target_type", "target_id"], unique=False)

    op.create_table(
        "core_holiday_schedule",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "schedule",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("loaded_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("loaded_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_core_holiday_schedule")),
    )
    op.create_table(
        "core_idempotency",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", "actor", name=op.f("pk_core_idempotency")),
    )
    op.create_table(
        "catalog_item_tag",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["catalog_item.id"],
            name=op.f("fk_catalog_item_tag_item_id_catalog_item"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("item_id", "kind", "value", name=op.f("pk_catalog_item_tag")),
    )
    with op.batch_alter_table("catalog_item_tag", schema=None) as batch_op:
        batch_op.create_index("ix_catalog_item_tag_kind_value", ["kind", "value"], unique=False)

    op.create_table(
        "catalog_item_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column(
            "content",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=False),
        sa.Column("created_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reviewed_by", sa.String(length=64), nullable=True),
        sa.Column("reviewed_at", tongban.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["catalog_item.id"],
            name=op.f("fk_catalog_item_version_item_id_catalog_item"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_item_version")),
        sa.UniqueConstraint("item_id", "version", name="uq_catalog_item_version_item_version"),
    )
    with op.batch_alter_table("catalog_item_version", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_item_version_item_id"), ["item_id"], unique=False)

    op.create_table(
        "core_session",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["core_account.id"],
            name=op.f("fk_core_session_account_id_core_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_core_session")),
    )
    with op.batch_alter_table("core_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_core_session_account_id"), ["account_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("core_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_core_session_account_id"))

    op.drop_table("core_session")
    with op.batch_alter_table("catalog_item_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_item_version_item_id"))

    op.drop_table("catalog_item_version")
    with op.batch_alter_table("catalog_item_tag", schema=None) as batch_op:
        batch_op.drop_index("ix_catalog_item_tag_kind_value")

    op.drop_table("catalog_item_tag")
    op.drop_table("core_idempotency")
    op.drop_table("core_holiday_schedule")
    with op.batch_alter_table("core_audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_core_audit_event_target")
        batch_op.drop_index(batch_op.f("ix_core_audit_event_at"))

    op.drop_table("core_audit_event")
    op.drop_table("core_account")
    with op.batch_alter_table("catalog_item", schema=None) as batch_op:
        batch_op.drop_index("ix_catalog_item_status_name")
        batch_op.drop_index("ix_catalog_item_status_department")
        batch_op.drop_index(batch_op.f("ix_catalog_item_status"))
        batch_op.drop_index(batch_op.f("ix_catalog_item_item_type"))
        batch_op.drop_index(batch_op.f("ix_catalog_item_basic_code"))

    op.drop_table("catalog_item")
