"""Catalogue tables. ``catalog_item`` holds the live content; every change is a ``catalog_item_version``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tongban.core.db import Base, JSONType, UTCDateTime


class CatalogItem(Base):
    __tablename__ = "catalog_item"
    __table_args__ = (
        Index("ix_catalog_item_status_name", "status", "name"),
        Index("ix_catalog_item_status_department", "status", "department"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    basic_code: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200), nullable=True)
    item_type: Mapped[str] = mapped_column(String(40), index=True)
    department: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(20))
    audiences: Mapped[list[str]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(20), index=True)
    #: The content shown to the public (the published version's), or the first draft's before publication.
    content: Mapped[dict[str, Any]] = mapped_column(JSONType)
    content_hash: Mapped[str] = mapped_column(String(64))
    #: The newest version number (any state).
    version: Mapped[int] = mapped_column(Integer)
    published_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: A draft or in-review version newer than the published one, if any.
    pending_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CatalogItemTag(Base):
    """Filterable multi-valued facets of the live content: ``theme`` and ``audience``."""

    __tablename__ = "catalog_item_tag"
    __table_args__ = (Index("ix_catalog_item_tag_kind_value", "kind", "value"),)

    item_id: Mapped[int] = mapped_column(ForeignKey("catalog_item.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)


class CatalogItemVersion(Base):
    __tablename__ = "catalog_item_version"
    __table_args__ = (UniqueConstraint("item_id", "version", name="uq_catalog_item_version_item_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("catalog_item.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    content: Mapped[dict[str, Any]] = mapped_column(JSONType)
    content_hash: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    reviewed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
