"""knowledge hub

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 10:30:17.844912
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tongban.core.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "knowledge_change",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_knowledge_change")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("knowledge_change", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_knowledge_change_entry_id"), ["entry_id"], unique=False)

    op.create_table(
        "knowledge_embedding",
        sa.Column("model", sa.String(length=80), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("model", "text_hash", name=op.f("pk_knowledge_embedding")),
    )
    op.create_table(
        "knowledge_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("department", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=1000), nullable=False),
        sa.Column(
            "audiences",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("region", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("pending_version", sa.Integer(), nullable=True),
        sa.Column("created_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", tongban.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reviewed_at", tongban.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_entry")),
        sa.UniqueConstraint("external_id", name=op.f("uq_knowledge_entry_external_id")),
    )
    with op.batch_alter_table("knowledge_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_knowledge_entry_status"), ["status"], unique=False)
        batch_op.create_index("ix_knowledge_entry_status_expires", ["status", "expires_on"], unique=False)
        batch_op.create_index("ix_knowledge_entry_status_kind", ["status", "kind"], unique=False)

    op.create_table(
        "knowledge_lexicon",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("term", sa.String(length=100), nullable=False),
        sa.Column("canonical", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("proposed_by", sa.String(length=64), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_lexicon")),
        sa.UniqueConstraint("kind", "term", name="uq_knowledge_lexicon_kind_term"),
    )
    with op.batch_alter_table("knowledge_lexicon", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_knowledge_lexicon_state"), ["state"], unique=False)

    op.create_table(
        "knowledge_miss",
        sa.Column("query", sa.String(length=200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen", tongban.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("query", name=op.f("pk_knowledge_miss")),
    )
    op.create_table(
        "knowledge_fact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("attribute", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=1000), nullable=False),
        sa.Column("normalized", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["knowledge_entry.id"],
            name=op.f("fk_knowledge_fact_entry_id_knowledge_entry"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_fact")),
    )
    with op.batch_alter_table("knowledge_fact", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_knowledge_fact_entry_id"), ["entry_id"], unique=False)
        batch_op.create_index("ix_knowledge_fact_subject_attribute", ["subject", "attribute"], unique=False)

    op.create_table(
        "knowledge_passage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("heading", sa.String(length=1000), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("embed_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["knowledge_entry.id"],
            name=op.f("fk_knowledge_passage_entry_id_knowledge_entry"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_passage")),
        sa.UniqueConstraint("entry_id", "seq", name="uq_knowledge_passage_entry_seq"),
    )
    with op.batch_alter_table("knowledge_passage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_knowledge_passage_entry_id"), ["entry_id"], unique=False)

    op.create_table(
        "knowledge_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
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
            ["entry_id"],
            ["knowledge_entry.id"],
            name=op.f("fk_knowledge_version_entry_id_knowledge_entry"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_version")),
        sa.UniqueConstraint("entry_id", "version", name="uq_knowledge_version_entry_version"),
    )
    with op.batch_alter_table("knowledge_version", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_knowledge_version_entry_id"), ["entry_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("knowledge_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_knowledge_version_entry_id"))

    op.drop_table("knowledge_version")
    with op.batch_alter_table("knowledge_passage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_knowledge_passage_entry_id"))

    op.drop_table("knowledge_passage")
    with op.batch_alter_table("knowledge_fact", schema=None) as batch_op:
        batch_op.drop_index("ix_knowledge_fact_subject_attribute")
        batch_op.drop_index(batch_op.f("ix_knowledge_fact_entry_id"))

    op.drop_table("knowledge_fact")
    op.drop_table("knowledge_miss")
    with op.batch_alter_table("knowledge_lexicon", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_knowledge_lexicon_state"))

    op.drop_table("knowledge_lexicon")
    with op.batch_alter_table("knowledge_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_knowledge_entry_status_kind")
        batch_op.drop_index("ix_knowledge_entry_status_expires")
        batch_op.drop_index(batch_op.f("ix_knowledge_entry_status"))

    op.drop_table("knowledge_entry")
    op.drop_table("knowledge_embedding")
    with op.batch_alter_table("knowledge_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_knowledge_change_entry_id"))

    op.drop_table("knowledge_change")
