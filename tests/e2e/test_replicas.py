"""Three gateway processes sharing PostgreSQL and Redis: keys and their revocation reach them all."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from tests.integration.conftest import pg_database
from tests.support import chat_status as status
from tests.support import gateway, keys, shared_audit_keys, within_a_second


def test_key_changes_reach_every_replica_within_a_second(tmp_path: Path) -> None:
    for db in pg_database():  # a fresh PostgreSQL database, dropped afterwards
        _three_replicas(tmp_path, db)


def _three_replicas(tmp_path: Path, db: str) -> None:
    cfg = tmp_path / "shared.yaml"
    cfg.write_text(f"database_url: {db}\nredis_url: redis://127.0.0.1:6379/0\n"
                   "identity: {key_secret: replicas-share-this-secret, refresh_seconds: 0.2}\n"
                   f"server: {{data_dir: {tmp_path / 'data'}}}\n" + shared_audit_keys(tmp_path / "keys") +
                   "routes:\n  - name: mock-1\n    deployments: [{provider: mock, model: mock-1}]\n")
    first = keys(cfg, "create", "--tenant", "acme")
    with ExitStack() as stack:
        urls = [stack.enter_context(gateway(cfg))[0] for _ in range(3)]

        assert [status(u, first["key"]) for u in urls] == [200, 200, 200]
        rotated = keys(cfg, "rotate", first["id"], "--grace", "0s")
        assert within_a_second(lambda: all(status(u, rotated["key"]) == 200 for u in urls))
        assert all(status(u, first["key"]) == 401 for u in urls)  # no grace: the old key is gone
        keys(cfg, "revoke", rotated["id"])
        assert within_a_second(lambda: all(status(u, rotated["key"]) == 401 for u in urls))
