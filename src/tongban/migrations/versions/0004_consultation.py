"""consultation

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 13:50:37.368149
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tongban.core.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consult_agent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_en", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column(
            "examples",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "keywords",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "scope",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consult_agent")),
        sa.UniqueConstraint("code", name=op.f("uq_consult_agent_code")),
    )
    op.create_table(
        "consult_conversation",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("agent_code", sa.String(length=64), nullable=True),
        sa.Column("account", sa.String(length=100), nullable=True),
        sa.Column("created_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column(
            "guidance",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consult_conversation")),
    )
    with op.batch_alter_table("consult_conversation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consult_conversation_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "consult_turn",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("refused", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column(
            "citations",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("agent_code", sa.String(length=64), nullable=True),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("created_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["consult_conversation.id"],
            name=op.f("fk_consult_turn_conversation_id_consult_conversation"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consult_turn")),
    )
    with op.batch_alter_table("consult_turn", schema=None) as batch_op:
        batch_op.create_index("ix_consult_turn_conversation_seq", ["conversation_id", "seq"], unique=True)
        batch_op.create_index(batch_op.f("ix_consult_turn_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("consult_turn", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consult_turn_created_at"))
        batch_op.drop_index("ix_consult_turn_conversation_seq")

    op.drop_table("consult_turn")
    with op.batch_alter_table("consult_conversation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consult_conversation_expires_at"))

    op.drop_table("consult_conversation")
    op.drop_table("consult_agent")
