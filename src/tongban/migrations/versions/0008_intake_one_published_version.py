"""intake: one published version per item's form and process, and per bundle

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_PUBLISHED = sa.text("state = 'published'")
_INDEXES = (
    ("uq_intake_form_published", "intake_form", "item_code"),
    ("uq_intake_item_process_published", "intake_item_process", "item_code"),
    ("uq_intake_bundle_published", "intake_bundle", "code"),
)


def upgrade() -> None:
    for name, table, column in _INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(
                name, [column], unique=True, sqlite_where=_PUBLISHED, postgresql_where=_PUBLISHED
            )


def downgrade() -> None:
    for name, table, _ in _INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
