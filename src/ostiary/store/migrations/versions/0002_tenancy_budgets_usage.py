"""Key lineage, users, budgets, limit overrides, usage aggregates and administrative events.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite autoincrements INTEGER keys only


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("lineage", sa.String(40), nullable=True))
    op.create_table(
        "users",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("team", sa.String(200), nullable=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "budgets",
        sa.Column("scope", sa.String(300), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("amount_usd", sa.Float, nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("thresholds", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_budgets_tenant_id", "budgets", ["tenant_id"])
    op.create_table(
        "limit_overrides",
        sa.Column("scope", sa.String(300), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("tpm", sa.Integer, nullable=True),
        sa.Column("input_tpm", sa.Integer, nullable=True),
        sa.Column("output_tpm", sa.Integer, nullable=True),
        sa.Column("concurrent", sa.Integer, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_limit_overrides_tenant_id", "limit_overrides", ["tenant_id"])
    op.create_table(
        "usage",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("team", sa.String(200), nullable=True),
        sa.Column("user_id", sa.String(200), nullable=True),
        sa.Column("key_id", sa.String(200), nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("deployment", sa.String(200), nullable=True),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
    )
    op.create_index("ix_usage_tenant_minute", "usage", ["tenant_id", "minute"])
    op.create_index("ix_usage_minute", "usage", ["minute"])
    op.create_index("ix_usage_key_minute", "usage", ["key_id", "minute"])
    op.create_table(
        "admin_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("actor_tenant", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=True),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_admin_events_tenant_id", "admin_events", ["tenant_id"])


def downgrade() -> None:
    for table in ("admin_events", "usage", "limit_overrides", "budgets", "users"):
        op.drop_table(table)
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("lineage")
