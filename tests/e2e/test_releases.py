"""Progressive releases end to end, on the real server with the official client: a route release that
rolls back on an injected error spike, and one that is gated by an evaluation run of its candidate,
keeps every session on its arm while it grows, and is promoted; each decision in the audit trail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai

from tests.support import ROOT, WebhookReceiver, gateway, keys

CONFIG = """server: {{data_dir: {data}}}
identity: {{refresh_seconds: 0.2}}
routes:
  - name: chat
    deployments: [{{provider: mock, model: stable-model, id: stable}}]
  - name: chat-broken
    retry: {{attempts: 1}}
    deployments: [{{provider: mock, model: broken-model, id: broken, mock: {{error_rate: 0.5}}}}]
  - name: chat-next
    deployments: [{{provider: mock, model: next-model, id: next}}]
"""


def _setup(tmp_path: Path) -> tuple[Path, str]:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(CONFIG.format(data=tmp_path / "data"))
    admin = keys(cfg, "create", "--tenant", "default", "--role", "admin", "--scopes", "chat,admin")["key"]
    return cfg, admin


def _wait_for(api: httpx.Client, rid: str, states: tuple[str, ...], seconds: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        rel = api.get(f"/releases/{rid}").json()
        if rel["state"] in states or time.monotonic() > deadline:
            return rel
        time.sleep(0.2)


def _audited(cfg: Path, action: str) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "ostiary", "audit", "export", "--config", str(cfg)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [e for e in events if e.get("action") == action]


def test_an_error_spike_rolls_the_release_back_on_its_own(tmp_path: Path) -> None:
    cfg, admin = _setup(tmp_path)
    hook = WebhookReceiver()
    cfg.write_text(cfg.read_text() + f"releases: {{webhook_url: '{hook.url}'}}\n")
    with gateway(cfg) as (url, _):
        api = httpx.Client(base_url=f"{url}/admin/v1", headers={"authorization": f"Bearer {admin}"}, timeout=10)
        made = api.post("/releases", json={"kind": "route", "target": "chat", "candidate": "chat-broken", "start": True,
                                           "spec": {"steps": [50], "stickiness": "request", "interval_seconds": 30,
                                                    "min_requests": 20}})
        assert made.status_code == 201, made.text
        rid = made.json()["id"]
        oa = openai.OpenAI(base_url=f"{url}/v1", api_key=admin, max_retries=0)
        failures, arms = 0, {"baseline": 0, "candidate": 0}
        # The controller ticks every second: the spike is caught within the 80 calls or just after.
        for i in range(80):
            try:
                raw = oa.chat.completions.with_raw_response.create(
                    model="chat", messages=[{"role": "user", "content": f"question {i}"}],
                    extra_headers={"x-request-id": f"spike-{i}"})
                arm = raw.headers.get("x-ostiary-release", "=rolled back").split("=")[1]
                arms[arm] = arms.get(arm, 0) + 1
            except openai.APIStatusError as e:
                assert e.status_code in (502, 503)  # failed, then the candidate's circuit opened
                failures += 1
        assert failures > 5 and arms["baseline"] > 20
        rel = _wait_for(api, rid, ("rolled_back",))
        assert rel["state"] == "rolled_back", rel
        metrics = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {admin}"}).text
        counted = [line for line in metrics.splitlines() if line.startswith("ostiary_release_calls_total{")
                   and f'release="{rid}"' in line and 'arm="candidate"' in line and 'status_class="5xx"' in line]
        assert counted and float(counted[0].rsplit(" ", 1)[1]) > 0
        assert "error_rate" in rel["reason"]
        time.sleep(0.5)  # every replica's next refresh (0.2 s here)
        for i in range(20):  # everyone is back on the baseline: no failures, no release header
            raw = oa.chat.completions.with_raw_response.create(model="chat", messages=[{"role": "user", "content": "hi"}])
            assert raw.parse().model == "stable-model" and "x-ostiary-release" not in raw.headers
        event = api.get("/audit/events/spike-1")
        deadline = time.monotonic() + 10
        while event.status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            event = api.get("/audit/events/spike-1")
        assert event.json()["release"][0]["id"] == rid
    hook.server.shutdown()
    told, = hook.events  # whoever watches releases hears of the rollback
    assert (told["type"], told["release"], told["state"]) == ("release.rollback", rid, "rolled_back")
    assert "error_rate" in told["reason"]
    rollback, = _audited(cfg, "release.rollback")
    details = rollback["details"]
    assert rollback["actor"] == "release-controller" and details["outcome"] == "fail"
    assert details["candidate"]["errors"] > 0 and details["baseline"]["errors"] == 0


def test_a_gated_release_keeps_sessions_sticky_and_is_promoted(tmp_path: Path) -> None:
    cfg, admin = _setup(tmp_path)
    developer = keys(cfg, "create", "--tenant", "default", "--role", "developer")["key"]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"input": f"q{i}"}) + "\n" for i in range(3)))
    with gateway(cfg) as (url, _):
        api = httpx.Client(base_url=f"{url}/admin/v1", headers={"authorization": f"Bearer {admin}"}, timeout=10)
        made = api.post("/releases", json={"kind": "route", "target": "chat", "candidate": "chat-next", "spec": {
            "steps": [20, 60], "stickiness": "session", "interval_seconds": 2, "min_requests": 15}})
        assert made.status_code == 201 and made.json()["state"] == "pending", made.text
        rid = made.json()["id"]
        # Not started: only a forced arm reaches the candidate, and only an admin may force one.
        forced = httpx.post(f"{url}/v1/chat/completions", json={"model": "chat", "messages": [
            {"role": "user", "content": "hi"}]}, headers={"x-ostiary-release": f"{rid}=candidate",
                                                          "authorization": f"Bearer {developer}"})
        assert forced.status_code == 403 and forced.json()["error"]["code"] == "release_arm_forbidden"
        bad = httpx.post(f"{url}/v1/chat/completions", json={"model": "chat", "messages": [
            {"role": "user", "content": "hi"}]}, headers={"x-ostiary-release": "rel-nope=candidate",
                                                          "authorization": f"Bearer {admin}"})
        assert bad.status_code == 400 and "rel-nope" in bad.json()["error"]["message"]
        # The evaluation gate: a suite run on the candidate arm.
        (tmp_path / "suite.yaml").write_text(f"name: next\ndataset: rows.jsonl\ntarget: {{route: chat, release: {rid}}}\n"
                                             "assertions: [{type: contains, value: q}]\n")
        gate = subprocess.run([sys.executable, "-m", "ostiary", "eval", "run", str(tmp_path / "suite.yaml"), "--url",
                               url, "--config", str(cfg), "--no-progress", "--json", str(tmp_path / "gate.json")],
                              cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, "OSTIARY_KEY": admin})
        assert gate.returncode == 0, gate.stdout + gate.stderr
        assert json.loads((tmp_path / "gate.json").read_text())["target"]["releases"] == {rid: ["candidate"]}
        assert api.post(f"/releases/{rid}/start", json={}).json()["state"] == "running"
        time.sleep(0.5)
        oa = openai.OpenAI(base_url=f"{url}/v1", api_key=admin, max_retries=0)
        seen: dict[str, list[str]] = {}
        percents = set()
        scored = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for s in range(30):
                raw = oa.chat.completions.with_raw_response.create(
                    model="chat", messages=[{"role": "user", "content": "hello"}],
                    extra_headers={"x-ostiary-session": f"s-{s}"})
                if "x-ostiary-release" not in raw.headers:
                    break  # promoted: the pointer moved for everyone
                model = raw.parse().model
                seen.setdefault(f"s-{s}", []).append(model)
                if model == "next-model" and not scored:  # feedback counts for the request's arm
                    fb = httpx.post(f"{url}/v1/feedback", json={"request_id": raw.headers["x-request-id"], "score": 1},
                                    headers={"authorization": f"Bearer {admin}"}, timeout=10)
                    assert fb.status_code == 200, fb.text
                    again = httpx.post(f"{url}/v1/feedback", json={"request_id": raw.headers["x-request-id"],
                                                                   "score": 0}, headers={"authorization": f"Bearer {admin}"},
                                       timeout=10)
                    assert again.status_code == 200  # kept, but a request's first score alone is counted
                    scored = True
            else:
                percents.add(api.get(f"/releases/{rid}").json()["percent"])
                continue
            break
        rel = _wait_for(api, rid, ("promoted",))
        assert rel["state"] == "promoted", rel
        assert rel["analysis"]["candidate"]["feedback_n"] == 1
        # Sticky: a session asks many times and never goes back from the candidate to the baseline;
        # as the share grows, baseline sessions move over.
        for models in seen.values():
            assert models == sorted(models, key=lambda m: m == "next-model"), models
        assert any(m[0] == "next-model" for m in seen.values()) and any(m[0] == "stable-model" for m in seen.values())
        assert 60.0 in percents  # it went through its second step
        time.sleep(0.5)
        after = oa.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
        assert after.model == "next-model"
        assert api.get("/releases").json()["pointers"] == {"route:chat": "chat-next"}
    promoted, = _audited(cfg, "release.promote")
    assert promoted["details"]["gate"].startswith("eval-") and promoted["details"]["outcome"] == "pass"
    assert [e["details"]["percent"] for e in _audited(cfg, "release.advance")] == [20.0]


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ostiary", "releases", *args, "--config", str(cfg)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_releases_cli(tmp_path: Path) -> None:
    cfg, _ = _setup(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text("steps: [5, 50]\nstickiness: session\nanalysis: {cost_ratio: null}\n")
    made = _cli(cfg, "create", "route", "chat", "chat-next", "--spec", str(spec))
    assert made.returncode == 0, made.stderr
    rid = json.loads(made.stdout)["id"]
    assert json.loads(made.stdout)["spec"]["analysis"]["cost_ratio"] is None
    assert [r["id"] for r in json.loads(_cli(cfg, "list", "--state", "pending").stdout)] == [rid]
    assert json.loads(_cli(cfg, "start", rid).stdout)["percent"] == 5
    shown = json.loads(_cli(cfg, "show", rid).stdout)
    assert shown["analysis"]["outcome"] == "inconclusive" and shown["analysis"]["candidate"]["calls"] == 0
    refused = _cli(cfg, "promote", rid)
    assert refused.returncode == 1 and "passing evaluation run" in refused.stderr
    assert json.loads(_cli(cfg, "rollback", rid, "--reason", "drill").stdout)["reason"] == "drill"
    again = _cli(cfg, "pause", rid)
    assert again.returncode == 1 and "rolled_back: it cannot pause" in again.stderr
    spec.write_text("steps: [50, 5]\n")
    bad = _cli(cfg, "create", "route", "chat", "chat-next", "--spec", str(spec))
    assert bad.returncode == 1 and "steps must be increasing" in bad.stderr
