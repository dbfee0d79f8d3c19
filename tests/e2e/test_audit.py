"""The audit trail end to end: the official clients call a real gateway; every request (answered,
streamed, refused, malformed) leaves an event; `ostiary audit verify`, evidence bundles and
erasure work through the CLI; and kill -9 under load loses no acknowledged request."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai

from tests.support import ROOT, gateway, keys

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


def _config(tmp: Path) -> Path:
    cfg = tmp / "gateway.yaml"
    cfg.write_text(f"""
server: {{data_dir: {tmp / 'data'}}}
audit: {{checkpoint_seconds: 0.2, witness_dir: {tmp / 'witness'}}}
guardrails:
  default: std
  policies:
    std:
      input: [{{scanner: secrets, action: block}}]
routes:
  - name: mock-1
    deployments: [{{provider: mock, model: mock-1}}]
""")
    return cfg


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ostiary", *args, "--config", str(cfg)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def _stored(cfg: Path) -> dict[str, dict[str, Any]]:
    db = cfg.parent / "data" / "ostiary.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT request_id, body FROM audit_log WHERE kind = 'request'").fetchall()
    return {rid: json.loads(body) for rid, body in rows}


def _wait_for(cfg: Path, ids: set[str], timeout: float = 10.0) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        stored = _stored(cfg)
        if ids <= stored.keys() or time.monotonic() > deadline:
            return stored
        time.sleep(0.1)


def test_every_request_leaves_an_event_that_verifies_and_can_be_erased(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    with gateway(cfg) as (url, _):
        oa = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        oa.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "tell me about ducks"}],
                                   extra_headers={"x-request-id": "e2e-chat-1"})
        chunks = oa.chat.completions.create(model="mock-1", stream=True, messages=[
            {"role": "user", "content": "stream about geese"}], extra_headers={"x-request-id": "e2e-stream-1"})
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        an = anthropic.Anthropic(base_url=url, api_key="none", max_retries=0)
        an.messages.create(model="mock-1", max_tokens=50, messages=[{"role": "user", "content": "swans"}],
                           extra_headers={"x-request-id": "e2e-anthropic-1"})
        blocked = httpx.post(f"{url}/v1/chat/completions", headers={"x-request-id": "e2e-blocked-1"},
                             json={"model": "mock-1", "messages": [{"role": "user", "content": f"key {AWS_KEY}"}]})
        bad = httpx.post(f"{url}/v1/chat/completions", headers={"x-request-id": "e2e-bad-1"},
                         content=b'{"model": ')
        assert (blocked.status_code, bad.status_code) == (400, 400)
        ids = {"e2e-chat-1", "e2e-stream-1", "e2e-anthropic-1", "e2e-blocked-1", "e2e-bad-1"}
        stored = _wait_for(cfg, ids)
        assert ids <= stored.keys()
        time.sleep(0.5)  # a checkpoint covers them (every 0.2 s)

    assert stored["e2e-chat-1"]["status"] == 200 and stored["e2e-chat-1"]["deployment"] == "mock:mock-1@default"
    assert stored["e2e-anthropic-1"]["api"] == "anthropic.messages"
    assert stored["e2e-blocked-1"]["status"] == 400
    assert stored["e2e-blocked-1"]["guardrails"][0]["scanner"] == "secrets"
    assert stored["e2e-bad-1"]["error"]["code"] == "invalid_json"
    assert AWS_KEY not in json.dumps(stored)  # content is encrypted, never in clear

    verified = _cli(cfg, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("ok: ")

    bundle = tmp_path / "bundle.json"
    assert _cli(cfg, "audit", "bundle", "e2e-chat-1", "-o", str(bundle)).returncode == 0
    vkey = _cli(cfg, "audit", "key").stdout.strip()
    check = subprocess.run([sys.executable, "-m", "ostiary", "audit", "check-bundle", str(bundle), "--key", vkey],
                           cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stderr
    altered = json.loads(bundle.read_text())
    altered["event"] = altered["event"].replace('"status":200', '"status":404')
    bundle.write_text(json.dumps(altered))
    check = subprocess.run([sys.executable, "-m", "ostiary", "audit", "check-bundle", str(bundle), "--key", vkey],
                           cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 1 and "inclusion proof" in check.stderr

    exported = json.loads(_cli(cfg, "subjects", "export", "default/anonymous").stdout)
    by_id = {e["request_id"]: e for e in exported["events"]}
    assert by_id["e2e-stream-1"]["content"]["answer"]["content"] == streamed
    assert by_id["e2e-chat-1"]["content"]["request"]["messages"][0]["content"] == "tell me about ducks"
    erased = json.loads(_cli(cfg, "subjects", "erase", "default/anonymous").stdout)
    assert erased["keys_destroyed"] >= 1
    exported = json.loads(_cli(cfg, "subjects", "export", "default/anonymous").stdout)
    assert exported["events"] and all(e["content"] == "[erased]" for e in exported["events"])
    assert _cli(cfg, "audit", "verify").returncode == 0


def test_kill_9_under_load_loses_no_acknowledged_request(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    acknowledged: set[str] = set()
    for round_ in range(3):
        with gateway(cfg) as (url, proc):
            stop = threading.Event()

            def load(worker: int, url: str = url, stop: threading.Event = stop, round_: int = round_) -> None:
                n = 0
                with httpx.Client(timeout=5) as client:
                    while not stop.is_set():
                        rid = f"kill-{round_}-{worker}-{n}"
                        n += 1
                        try:
                            r = client.post(f"{url}/v1/chat/completions", headers={"x-request-id": rid},
                                            json={"model": "mock-1", "messages": [{"role": "user", "content": "hi"}]})
                        except httpx.HTTPError:
                            return  # the gateway is gone
                        if r.status_code == 200:
                            acknowledged.add(rid)

            workers = [threading.Thread(target=load, args=(w,)) for w in range(6)]
            for w in workers:
                w.start()
            time.sleep(1.0)
            proc.send_signal(signal.SIGKILL)  # mid-load, no chance to flush anything
            proc.wait()
            stop.set()
            for w in workers:
                w.join()
    assert len(acknowledged) > 100
    with gateway(cfg):  # the last restart replays the spool left by the last kill
        stored = _wait_for(cfg, acknowledged)
    missing = acknowledged - stored.keys()
    assert not missing, f"{len(missing)} acknowledged requests missing from the trail, e.g. {sorted(missing)[:3]}"
    verified = _cli(cfg, "audit", "verify")
    assert verified.returncode == 0, verified.stdout


def test_feedback_only_from_the_requester_or_its_tenant_admin_and_erased_with_the_subject(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    alice = keys(cfg, "create", "--tenant", "acme", "--user", "alice")["key"]
    bob = keys(cfg, "create", "--tenant", "acme", "--user", "bob")["key"]
    admin = keys(cfg, "create", "--tenant", "acme", "--role", "tenant_admin", "--scopes", "chat,admin")["key"]
    carol = keys(cfg, "create", "--tenant", "other", "--user", "carol")["key"]
    with gateway(cfg) as (url, _):
        oa = openai.OpenAI(base_url=f"{url}/v1", api_key=alice, max_retries=0)
        oa.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "hello"}],
                                   extra_headers={"x-request-id": "fb-req-1"})

        def leave(key: str, body: dict[str, Any]) -> httpx.Response:
            return httpx.post(f"{url}/v1/feedback", json=body, headers={"authorization": f"Bearer {key}"}, timeout=10)

        ok = leave(alice, {"request_id": "fb-req-1", "score": 1, "comment": "spot on, thanks"})
        assert ok.status_code == 200, ok.text
        assert leave(bob, {"request_id": "fb-req-1", "score": 0}).json()["error"]["code"] == "not_your_request"
        assert leave(carol, {"request_id": "fb-req-1", "score": 0}).status_code == 404
        assert leave(admin, {"request_id": "fb-req-1", "label": "reviewed"}).status_code == 200
        bad = leave(alice, {"request_id": "fb-req-1", "stars": 5})
        assert bad.status_code == 400 and "stars" in bad.json()["error"]["message"]
        assert leave(alice, {"request_id": "fb-req-1"}).status_code == 400
        stored = _wait_for(cfg, {"fb-req-1"})
    assert stored["fb-req-1"]["principal"]["key"].startswith("ost-")
    exported = json.loads(_cli(cfg, "subjects", "export", "acme/alice").stdout)
    assert [f["comment"] for f in exported["feedback"]] == ["spot on, thanks", None]
    assert json.loads(_cli(cfg, "subjects", "erase", "acme/alice").stdout)["feedback"] == 2
    assert json.loads(_cli(cfg, "subjects", "export", "acme/alice").stdout)["feedback"] == []


def test_config_loads_and_refusals_are_events(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    with gateway(cfg, "--no-watch") as (_url, proc):  # only the SIGHUP reloads
        good = cfg.read_text()
        cfg.write_text(good + "\nroutes: not-a-list\n")  # duplicate key, wrong type: refused
        proc.send_signal(signal.SIGHUP)
        db = cfg.parent / "data" / "ostiary.db"

        def actions() -> list[dict[str, Any]]:
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT body FROM audit_log WHERE kind = 'config' ORDER BY seq").fetchall()
            return [json.loads(r[0]) for r in rows]

        deadline = time.monotonic() + 10
        while len(actions()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        events = actions()
    assert [e["action"] for e in events] == ["config.loaded", "config.refused"]
    assert events[1]["serving"] == events[0]["version"] and events[1]["problems"]
    assert "not-a-list" not in json.dumps(events)


def test_the_event_keeps_the_redacted_prompt_and_the_raw_one_only_when_asked(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(f"""
server: {{data_dir: {tmp_path / 'data'}}}
guardrails:
  default: plain
  routes: {{kept: raw}}
  policies:
    plain: {{input: [{{scanner: pii, action: redact}}]}}
    raw: {{input: [{{scanner: pii, action: redact}}], audit_raw: true}}
routes:
  - name: mock-1
    deployments: [{{provider: mock, model: mock-1}}]
  - name: kept
    deployments: [{{provider: mock, model: mock-1}}]
""")
    email = "alice.martin@example.org"
    with gateway(cfg) as (url, _):
        oa = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        for model in ("mock-1", "kept"):
            oa.chat.completions.create(model=model, messages=[{"role": "user", "content": f"write to {email}"}],
                                       extra_headers={"x-request-id": f"raw-{model}"})
        _wait_for(cfg, {"raw-mock-1", "raw-kept"})
    events = {e["request_id"]: e["content"] for e in
              json.loads(_cli(cfg, "subjects", "export", "default/anonymous").stdout)["events"]}
    plain, kept = events["raw-mock-1"], events["raw-kept"]
    assert plain["request"]["messages"][0]["content"] == "write to <EMAIL_1>" and plain["raw_request"] is None
    assert kept["request"]["messages"][0]["content"] == "write to <EMAIL_1>"
    assert kept["raw_request"]["messages"][0]["content"] == f"write to {email}"
    assert email not in json.dumps(_stored(cfg))  # encrypted, as all content
