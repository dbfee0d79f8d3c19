"""The PostgreSQL privileges of the gateway's own role: on the audit tables, insert and select only.

The triggers of migrations 0004 and 0008 refuse UPDATE, DELETE and TRUNCATE on the log, its
checkpoints and its tiles whoever asks; privileges add the second wall: the role the gateway connects with cannot even drop
the triggers (only the owner can), so a compromised gateway cannot rewrite history. Migrations run
with the owner (`ostiary` started once with an owner URL, or Alembic); the gateway's role then finds
the schema current and needs no DDL.
"""

from __future__ import annotations

import re

from ostiary.store.schema import metadata

APPEND_ONLY = ("audit_log", "audit_checkpoints", "audit_tiles")
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grants_sql(role: str) -> list[str]:
    if not _ROLE.match(role):
        raise ValueError("a role name is lower-case letters, digits and underscores, starting with a letter")
    others = sorted(t for t in metadata.tables if t not in APPEND_ONLY)
    return [
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT ON alembic_version TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(others)} TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"REVOKE ALL ON {', '.join(APPEND_ONLY)} FROM {role}",
        f"GRANT SELECT, INSERT ON {', '.join(APPEND_ONLY)} TO {role}",
    ]
