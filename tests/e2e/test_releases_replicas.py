"""A release across three gateway replicas on one PostgreSQL: every replica counts its calls, one
replica decides the rollback (one decision in the audit trail), and every replica then serves the
baseline."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import sqlalchemy as sa

from ostiary.store import Store
from ostiary.store.schema import admin_events, release_stats
from tests.integration.conftest import pg_database
from tests.support import drive, gateway, keys, shared_audit_keys


def test_three_replicas_roll_back_once_and_all_follow(tmp_path: Path) -> None:
    for db in pg_database():
        _rollback_across_replicas(tmp_path, db)


def _rollback_across_replicas(tmp_path: Path, db: str) -> None:
    cfg = tmp_path / "shared.yaml"
    cfg.write_text(f"database_url: {db}\n"
                   "identity: {key_secret: replicas-share-this-secret, refresh_seconds: 0.2}\n"
                   f"server: {{data_dir: {tmp_path / 'data'}}}\n" + shared_audit_keys(tmp_path / "keys") +
                   "routes:\n  - name: chat\n    deployments: [{provider: mock, model: stable-model}]\n"
                   "  - name: chat-broken\n    retry: {attempts: 1}\n"
                   "    deployments: [{provider: mock, model: broken-model, mock: {error_rate: 0.5}}]\n")
    admin = keys(cfg, "create", "--tenant", "default", "--role", "admin", "--scopes", "chat,admin")["key"]
    auth = {"authorization": f"Bearer {admin}"}
    with ExitStack() as stack:
        urls = [stack.enter_context(gateway(cfg))[0] for _ in range(3)]
        made = httpx.post(f"{urls[0]}/admin/v1/releases", headers=auth, timeout=10, json={
            "kind": "route", "target": "chat", "candidate": "chat-broken", "start": True,
            "spec": {"steps": [50], "stickiness": "request", "interval_seconds": 60, "min_requests": 20}})
        assert made.status_code == 201, made.text
        rid = made.json()["id"]
        time.sleep(0.6)  # every replica has read the release
        body = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}
        answers, _ = drive(urls, body, 3.0, headers=auth, threads=6)
        assert any(r.status_code >= 500 for r in answers) and any(r.status_code == 200 for r in answers)
        deadline = time.monotonic() + 15
        while (state := httpx.get(f"{urls[1]}/admin/v1/releases/{rid}", headers=auth).json())["state"] != \
                "rolled_back" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert state["state"] == "rolled_back", state
        time.sleep(0.6)  # each replica's next refresh
        for url in urls:  # every replica serves the baseline, with no release
            for _ in range(10):
                r = httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth, timeout=10)
                assert r.status_code == 200 and r.json()["model"] == "stable-model"
                assert "x-ostiary-release" not in r.headers
    store = Store(db)
    try:
        with store.engine.connect() as conn:
            decisions = conn.execute(sa.select(admin_events.c.action, admin_events.c.actor).where(
                admin_events.c.target == rid, admin_events.c.action != "release.create")).all()
            replicas = conn.execute(sa.select(sa.func.count(sa.distinct(release_stats.c.replica))).where(
                release_stats.c.release_id == rid)).scalar()
    finally:
        store.close()
    assert [tuple(d) for d in decisions] == [("release.rollback", "release-controller")]
    assert replicas == 3  # the analysis summed the counts of all three replicas
