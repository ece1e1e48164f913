"""Alembic environment. Migrations run on the connection handed in by ``tongban.core.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import tongban.catalog.models
import tongban.consult.models
import tongban.core.models
import tongban.hotline.models
import tongban.intake.models
import tongban.knowledge.models
import tongban.policy.models
import tongban.rating.models
from tongban.core.db import Base

config = context.config
target_metadata = Base.metadata
_models = (
    tongban.catalog.models,
    tongban.knowledge.models,
    tongban.consult.models,
    tongban.intake.models,
    tongban.rating.models,
    tongban.hotline.models,
    tongban.policy.models,
)


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
