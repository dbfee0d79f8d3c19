"""Persistent state: SQLite in the data directory by default, PostgreSQL when `database_url` is set.

One schema (store/schema.py) for both, created and evolved by Alembic migrations that run at start.
Nothing on the request path queries the database: the gateway reads from in-memory indexes that a
background task refreshes (see identity/keys.py), and only administrative work writes.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"


def bump_generation(conn: sa.Connection) -> None:
    """Tell every replica that what the request path reads from memory (keys, users, budgets,
    limit overrides) changed; call it in the transaction of the change."""
    from ostiary.store.schema import meta

    conn.execute(meta.update().where(meta.c.id == 1).values(key_generation=meta.c.key_generation + 1))


def database_url(configured: str | None, data_dir: Path) -> str:
    if configured:
        return configured
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'ostiary.db'}"


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)

    @classmethod
    def open(cls, configured: str | None, data_dir: Path) -> Store:
        store = cls(database_url(configured, data_dir))
        store.migrate()
        return store

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent; safe from several replicas on
        PostgreSQL, where Alembic's version table update runs in the migration's transaction)."""
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Replicas starting together take turns; the second finds the schema current.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7283410)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                return conn.execute(sa.text("SELECT 1")).scalar() == 1
        except sa.exc.SQLAlchemyError:
            return False

    def close(self) -> None:
        self.engine.dispose()


def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
