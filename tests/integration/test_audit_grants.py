"""On PostgreSQL the gateway's role gets insert and select only on the audit tables (`ostiary audit
grants`): with it the gateway works, and it can neither rewrite the log nor remove the triggers."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ostiary.audit.checkpoint import Signer
from ostiary.audit.event import notice
from ostiary.audit.grants import grants_sql
from ostiary.audit.log import AuditLog, encode_event
from ostiary.audit.verify import verify
from ostiary.store import Store
from tests.integration.conftest import PG_ADMIN, pg_database


@pytest.fixture
def role() -> Iterator[str]:
    """A login role of its own for the test (the gateway's), dropped afterwards."""
    name = f"ostiary_gw_{secrets.token_hex(3)}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {name} LOGIN"))
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {name}"))
        admin.dispose()


def test_the_gateway_role_appends_but_cannot_rewrite(tmp_path: Path, role: str) -> None:
    for url in pg_database():
        owner = Store.open(url, tmp_path)  # migrations run as the owner
        with owner.engine.begin() as conn:
            for statement in grants_sql(role):
                conn.execute(sa.text(statement))
        owner.close()
        as_role = url.replace("postgres@", f"{role}@", 1)
        store = Store.open(as_role, tmp_path)  # the schema is current: no DDL needed
        signer = Signer.generate("ostiary/audit")
        log = AuditLog(store, signer, "ostiary/audit", every=1)
        for i in range(3):
            log.append([encode_event(notice("test", n=i).envelope)])
        log.append([encode_event(notice("test", n=i).envelope) for i in range(3, 256)])  # a tile too
        assert log.size() == 256 and verify(log, [signer.verifier()]).ok
        for statement in ("UPDATE audit_log SET kind = 'x'", "DELETE FROM audit_checkpoints",
                          "TRUNCATE audit_log", "DROP TRIGGER audit_log_append_only ON audit_log",
                          "UPDATE audit_tiles SET hash = ''"):
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied|must be owner"), \
                    store.engine.begin() as conn:
                conn.execute(sa.text(statement))
        store.close()


def test_a_role_name_is_checked_before_it_reaches_sql() -> None:
    with pytest.raises(ValueError, match="role name"):
        grants_sql("x; DROP TABLE audit_log")


def test_a_role_granted_before_tiles_existed_appends_tiles_after_the_upgrade(tmp_path: Path, role: str) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from ostiary.store import MIGRATIONS

    for url in pg_database():
        owner = Store(url)
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with owner.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0007")  # the schema before tiles, and the grants given then
            for statement in grants_sql(role):
                conn.execute(sa.text(statement.replace(", audit_tiles", "")))
        owner.migrate()  # the upgrade, as the owner
        owner.close()
        store = Store.open(url.replace("postgres@", f"{role}@", 1), tmp_path)
        log = AuditLog(store, Signer.generate("ostiary/audit"), "ostiary/audit", every=1000)
        log.append([encode_event(notice("test", n=i).envelope) for i in range(256)])
        assert len(log.tiles()) == 1
        store.close()
