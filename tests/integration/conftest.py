"""Real databases for integration tests: a fresh SQLite file and a fresh PostgreSQL database.

PostgreSQL is the test machine's (127.0.0.1:5432, trust auth); `scripts/services.sh` starts it when
it is down. A test that cannot reach it fails: a missing service is never a silent skip.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ostiary.store import Store

PG_ADMIN = os.environ.get("OSTIARY_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards."""
    name = f"ostiary_it_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store.open(None, tmp_path)
        yield s
        s.close()
        return
    for url in pg_database():
        s = Store.open(url, tmp_path)
        yield s
        s.close()
