"""The prompt registry end to end: versions and labels through the CLI and the admin API, requests
naming `prompt` with the official client, the rendered version in the audit event, and rollback by
moving a label back; a protected label moves only to an evaluated version (or by force)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

from tests.support import ROOT, gateway, keys


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ostiary", *args, "--config", str(cfg)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def test_requests_render_the_labelled_version_and_record_it(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(f"server: {{data_dir: {tmp_path / 'data'}}}\nidentity: {{refresh_seconds: 0.2}}\n"
                   "routes:\n  - name: mock-1\n    deployments: [{provider: mock, model: mock-1}]\n")
    v1 = tmp_path / "v1.yaml"
    v1.write_text("messages:\n  - {role: system, content: 'You are the helpdesk of {{company}}.'}\n"
                  "variables: {company: {type: string}}\nparams: {temperature: 0.0}\n")
    made = _cli(cfg, "prompts", "create", "helpdesk", "--file", str(v1), "--label", "staging")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["version"] == 1
    refused = _cli(cfg, "prompts", "label", "helpdesk", "production", "1")
    assert refused.returncode == 1 and "protected" in refused.stderr  # no evaluation run yet
    admin = keys(cfg, "create", "--tenant", "default", "--role", "admin", "--scopes", "chat,admin")["key"]
    (tmp_path / "rows.jsonl").write_text('{"input": "hello", "variables": {"company": "Acme"}}\n')
    (tmp_path / "suite.yaml").write_text("name: helpdesk\ndataset: rows.jsonl\n"
                                         "target: {route: mock-1, prompt: helpdesk@staging}\n"
                                         "assertions: [{type: contains, value: hello}]\n")
    with gateway(cfg) as (url, _):
        gate = subprocess.run([sys.executable, "-m", "ostiary", "eval", "run", str(tmp_path / "suite.yaml"), "--url",
                               url, "--config", str(cfg), "--no-progress", "--json", str(tmp_path / "gate.json")],
                              cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, "OSTIARY_KEY": admin})
        assert gate.returncode == 0, gate.stdout + gate.stderr
        assert json.loads((tmp_path / "gate.json").read_text())["target"]["prompt_versions"] == ["helpdesk@1"]
        deployed = _cli(cfg, "prompts", "label", "helpdesk", "production", "1")
        assert deployed.returncode == 0, deployed.stderr
        assert json.loads(deployed.stdout)["gate"].startswith("eval-")
        api = httpx.Client(base_url=f"{url}/admin/v1", headers={"authorization": f"Bearer {admin}"}, timeout=10)
        created = api.post("/prompts/helpdesk/versions", json={
            "messages": [{"role": "system", "content": "Version two for {{company}}."}],
            "variables": {"company": {}}})
        assert created.status_code == 201, created.text
        assert created.json()["version"] == 2
        bad = api.post("/prompts/helpdesk/versions", json={"messages": [{"role": "user", "content": "{{x}}"}]})
        assert bad.status_code == 400 and "undeclared variables: x" in bad.json()["error"]["message"]

        oa = openai.OpenAI(base_url=f"{url}/v1", api_key=admin, max_retries=0)

        def ask(rid: str, **extra: object) -> None:
            oa.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "my printer is on fire"}],
                                       extra_body={"prompt": "helpdesk@production", **extra},
                                       extra_headers={"x-request-id": rid})

        ask("p-1", variables={"company": "Acme"})
        ungated = api.put("/prompts/helpdesk/labels/production", json={"version": 2})
        assert ungated.status_code == 409 and ungated.json()["error"]["code"] == "evaluation_required"
        moved = api.put("/prompts/helpdesk/labels/production", json={"version": 2, "force": True})
        assert moved.json() == {"name": "helpdesk", "label": "production", "version": 2, "previous": 1, "gate": None}
        time.sleep(0.5)  # the gateway reloads its snapshot on the store's generation (refresh 0.2 s)
        ask("p-2", variables={"company": "Acme"})
        api.put("/prompts/helpdesk/labels/production", json={"version": 1})  # the rollback
        time.sleep(0.5)
        ask("p-3", variables={"company": "Acme"})
        try:
            ask("p-4")
        except openai.BadRequestError as e:
            assert "needs the variable 'company'" in str(e)
        else:
            raise AssertionError("a missing variable must be a 400")
        try:
            oa.chat.completions.create(model="mock-1", messages=[], extra_body={"prompt": "nope@production"})
        except openai.NotFoundError as e:
            assert e.code == "prompt_not_found" and "has no label 'production'" in e.message
        else:
            raise AssertionError("an unknown prompt must be a 404")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            events = {r: api.get(f"/audit/events/{r}") for r in ("p-1", "p-2", "p-3")}
            if all(e.status_code == 200 for e in events.values()):
                break
            time.sleep(0.2)
    bodies = {r: e.json() for r, e in events.items()}
    assert [bodies[r]["prompt"] for r in ("p-1", "p-2", "p-3")] == ["helpdesk@1", "helpdesk@2", "helpdesk@1"]
    sent = bodies["p-2"]["content"]["request"]["messages"]
    assert sent == [{"role": "system", "content": "Version two for Acme."},
                    {"role": "user", "content": "my printer is on fire"}]
    listed = json.loads(_cli(cfg, "prompts", "list").stdout)
    assert listed == [{"name": "helpdesk", "versions": 2, "labels": {"production": 1, "staging": 1}}]
    import sqlite3

    with sqlite3.connect(tmp_path / "data" / "ostiary.db") as conn:
        moves = [json.loads(d) for (d,) in conn.execute(
            "SELECT details FROM admin_events WHERE action = 'prompt.label' AND target = 'helpdesk@production' "
            "ORDER BY id")]
    assert [(m["to"], m["forced"], m["gate"] is not None) for m in moves] == [(1, False, True), (2, True, False),
                                                                            (1, False, True)]
