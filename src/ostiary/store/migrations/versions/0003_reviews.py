"""Guardrail reviews: requests escalated to a person.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("principal", sa.String(300), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("policy", sa.String(200), nullable=False),
        sa.Column("policy_version", sa.String(40), nullable=False),
        sa.Column("scanner", sa.String(40), nullable=False),
        sa.Column("segment", sa.String(20), nullable=False),
        sa.Column("entities", sa.JSON, nullable=False),
        sa.Column("excerpt", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(300), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(1000), nullable=True),
    )
    op.create_index("ix_reviews_tenant_id", "reviews", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("reviews")
