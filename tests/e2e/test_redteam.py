"""`ostiary redteam run` through a real gateway and the mock model: with no guardrail on the route the
run finds the leaks (and exits 1); with the policy on, every attack is stopped by a control (exit 0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import ROOT, gateway, keys

CONFIG = """
server: {{data_dir: {data}}}
limits: {{route: {{tpm: 200000}}}}
guardrails:
  routes: {{guarded: strict}}
  policies:
    strict:
      input:
        - {{scanner: pii, action: block}}
        - {{scanner: secrets, action: block}}
        - {{scanner: injection, action: block}}
      output:
        - {{scanner: secrets, action: block}}
        - {{scanner: exfiltration, action: block}}
        - {{scanner: canary, action: block}}
routes:
  - name: open
    deployments: [{{provider: mock, model: mock-1}}]
  - name: guarded
    deployments: [{{provider: mock, model: mock-1}}]
"""


def _redteam(cfg: Path, url: str, route: str, out: Path, *extra: str, key: str = "none"
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ostiary", "redteam", "run", "--route", route, "--url", url,
                           "--config", str(cfg), "--no-progress", "--json", str(out), *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "OSTIARY_KEY": key})


def test_leaks_are_found_without_the_guardrails_and_none_with_them(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(CONFIG.format(data=tmp_path / "data"))
    with gateway(cfg) as (url, _):
        open_run = _redteam(cfg, url, "open", tmp_path / "open.json")
        guarded_run = _redteam(cfg, url, "guarded", tmp_path / "guarded.json")
    assert open_run.returncode == 1, open_run.stdout + open_run.stderr
    opened = json.loads((tmp_path / "open.json").read_text())
    leaked = {i["attack"] for i in opened["items"] if i["outcome"] == "leaked"}
    assert {"llm02-secret-in-context", "llm02-personal-data", "llm05-markdown-exfiltration",
            "llm05-script-injection", "llm06-dangerous-tool"} <= leaked
    # The route's token limit stops a request for a million tokens even without guardrails.
    assert [i["outcome"] for i in opened["items"] if i["attack"] == "llm10-unbounded-output"] == ["blocked"]
    assert guarded_run.returncode == 0, guarded_run.stdout + guarded_run.stderr
    guarded = json.loads((tmp_path / "guarded.json").read_text())
    assert not [i for i in guarded["items"] if i["outcome"] in ("leaked", "error")]
    assert {r["assertion"].split()[0] for r in guarded["results"]} == {"LLM01", "LLM02", "LLM05", "LLM06", "LLM07",
                                                                      "LLM10"}
    # Obfuscated variants are sent too, and the guardrails see through the encodings.
    variants = {i["variant"] for i in guarded["items"] if i["attack"] == "llm01-direct-override"}
    assert variants == {"plain", "base64", "rot13", "leetspeak", "zero-width", "homoglyph"}
    assert all(i["outcome"] == "blocked" for i in guarded["items"] if i["attack"] == "llm01-direct-override")


def test_a_red_team_run_of_a_candidate_policy_is_its_release_gate(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(CONFIG.format(data=tmp_path / "data"))
    admin = keys(cfg, "create", "--tenant", "default", "--role", "admin", "--scopes", "chat,admin")["key"]
    with gateway(cfg) as (url, _):
        api = httpx.Client(base_url=f"{url}/admin/v1", headers={"authorization": f"Bearer {admin}"}, timeout=10)
        made = api.post("/releases", json={"kind": "guardrails", "target": "open", "candidate": "strict"})
        assert made.status_code == 201, made.text
        rid = made.json()["id"]
        assert api.post(f"/releases/{rid}/promote", json={}).json()["error"]["code"] == "evaluation_required"
        run = _redteam(cfg, url, "open", tmp_path / "candidate.json", "--release", rid, "--only", "LLM01,LLM02",
                       key=admin)
        assert run.returncode == 0, run.stdout + run.stderr  # the candidate policy holds, blocks included
        report = json.loads((tmp_path / "candidate.json").read_text())
        assert report["target"]["releases"] == {rid: ["candidate"]}
        assert any(i["outcome"] == "blocked" for i in report["items"])
        promoted = api.post(f"/releases/{rid}/promote", json={"reason": "red team passed"})
        assert promoted.json()["state"] == "promoted", promoted.text
        time.sleep(0.7)  # the gateway's next refresh of the directory (0.5 s by default)
        after = _redteam(cfg, url, "open", tmp_path / "after.json", "--only", "LLM02", key=admin)
    assert after.returncode == 0, after.stdout + after.stderr  # the route's policy is now the strict one
