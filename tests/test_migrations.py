"""Migration hygiene: one head, numbered files, and the migrated schema equals the models."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

import tongban.catalog.models
import tongban.core.models
from tongban.core.db import Base
from tongban.core.migrate import alembic_config, is_current

VERSIONS = Path(tongban.catalog.models.__file__).parents[1] / "migrations" / "versions"


def test_single_head_and_numbered_files() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1
    files = sorted(p.name for p in VERSIONS.glob("*.py"))
    assert files
    assert all(name[:4].isdigit() for name in files)


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    assert is_current(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
