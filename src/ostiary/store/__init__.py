"""Persistent state. For now: the data directory and its SQLite database, checked by /readyz.

Later issues add the schema (keys, budgets, audit) with migrations for SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / "ostiary.db"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")

    def ping(self) -> bool:
        try:
            return self._db.execute("SELECT 1").fetchone() == (1,)
        except sqlite3.Error:
            return False

    def close(self) -> None:
        self._db.close()
