"""Audit tiles (stored roots of complete subtrees, so that proofs need not read every leaf), append-only
like the log, and insert+select for the roles that may append to the log; an index on the events'
time for exports.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_tiles",
        sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_tiles_no_{verb.lower()} BEFORE {verb} ON audit_tiles "
                       "BEGIN SELECT RAISE(ABORT, 'audit_tiles is append-only'); END")
    else:  # the function is migration 0004's
        op.execute("CREATE TRIGGER audit_tiles_append_only BEFORE UPDATE OR DELETE ON audit_tiles "
                   "FOR EACH ROW EXECUTE FUNCTION ostiary_append_only()")
        op.execute("CREATE TRIGGER audit_tiles_no_truncate BEFORE TRUNCATE ON audit_tiles "
                   "FOR EACH STATEMENT EXECUTE FUNCTION ostiary_append_only()")
        # A gateway role that appends to the log (`ostiary audit grants`) appends tiles in the same
        # transaction: give it the same two privileges here, or its appends would fail after upgrading.
        roles = op.get_bind().execute(sa.text(
            "SELECT DISTINCT grantee FROM information_schema.table_privileges WHERE table_name = 'audit_log' "
            "AND privilege_type = 'INSERT' AND grantee <> current_user")).scalars().all()
        for role in roles:
            op.execute(f'GRANT SELECT, INSERT ON audit_tiles TO "{role.replace(chr(34), chr(34) * 2)}"')


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", "audit_log")
    op.drop_table("audit_tiles")
