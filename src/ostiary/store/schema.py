"""The relational schema, as SQLAlchemy Core tables: one schema for SQLite and PostgreSQL.

Migrations (store/migrations, Alembic) create and evolve it; these definitions are what the code
queries with. Times are timezone-aware UTC.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# One row. `key_generation` grows on every change to a key, so replicas notice a change (a new,
# revoked or rotated key) with one cheap query and reload their in-memory key index.
meta = sa.Table(
    "ostiary_meta",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key_generation", sa.BigInteger, nullable=False, server_default="0"),
)

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # the visible prefix, e.g. "ost-3kq9x2mf"
    sa.Column("hash", sa.String(64), nullable=False, unique=True),  # HMAC-SHA256 of the whole key
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("user_id", sa.String(200), nullable=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("models", sa.JSON, nullable=True),  # null: every route
    sa.Column("clearance", sa.String(32), nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("rotated_to", sa.String(40), nullable=True),  # set on the old key of a rotation
)
