"""Escalation: a request a guardrail policy holds for review waits until a reviewer decides
through the admin API, on a real gateway."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import gateway, keys

POLICY = """guardrails:
  default: reviewed
  policies:
    reviewed:
      review_timeout_seconds: 1.5
      input:
        - {scanner: topics, terms: [merger, acquisition], action: escalate}
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    tmp: Path = tmp_path_factory.mktemp("reviews")
    cfg = tmp / "ostiary.yaml"
    cfg.write_text(f"server: {{data_dir: {tmp / 'data'}}}\nidentity: {{refresh_seconds: 0.1}}\n{POLICY}routes:\n"
                   "  - name: mock-1\n    deployments: [{provider: mock, model: mock-1}]\n")
    issued = {"dev": keys(cfg, "create", "--tenant", "acme")["key"],
              "reviewer": keys(cfg, "create", "--tenant", "acme", "--role", "tenant_admin", "--scopes", "admin")["key"],
              "other": keys(cfg, "create", "--tenant", "globex", "--role", "tenant_admin", "--scopes", "admin")["key"]}
    with gateway(cfg) as (url, _):
        yield url, issued


def _ask(url: str, key: str, text: str, out: list[Any]) -> None:
    out.append(httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=10,
                          json={"model": "mock-1", "messages": [{"role": "user", "content": text}]}))


def _pending(url: str, key: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/admin/v1/reviews", params={"status": "pending"},
                  headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def _held(url: str, key: str) -> dict[str, Any]:
    for _ in range(50):
        rows = _pending(url, key)
        if rows:
            return rows[0]
        time.sleep(0.05)
    raise AssertionError("no review appeared")


@pytest.mark.parametrize("decision, status", [("approve", 200), ("deny", 403)])
def test_a_held_request_waits_for_the_reviewer(gw: tuple[str, dict[str, str]], decision: str, status: int) -> None:
    url, k = gw
    out: list[Any] = []
    t = threading.Thread(target=_ask, args=(url, k["dev"], "Draft a note on the merger with Initech", out))
    t.start()
    review = _held(url, k["reviewer"])
    assert review["scanner"] == "topics" and review["entities"] == {"TOPIC": 1} and "merger" in review["excerpt"]
    assert not out  # still waiting
    assert _pending(url, k["other"]) == []  # another tenant's admin does not see it
    r = httpx.post(f"{url}/admin/v1/reviews/{review['id']}/{decision}", headers={"authorization": f"Bearer {k['other']}"})
    assert r.status_code == 404  # nor decide it
    r = httpx.post(f"{url}/admin/v1/reviews/{review['id']}/{decision}", json={"note": "checked"},
                   headers={"authorization": f"Bearer {k['reviewer']}"})
    assert r.status_code == 200 and r.json()["status"] == ("approved" if decision == "approve" else "denied")
    t.join(5)
    assert out[0].status_code == status, out[0].text
    if status == 403:
        assert out[0].json()["error"]["code"] == "review_denied"
    again = httpx.post(f"{url}/admin/v1/reviews/{review['id']}/approve", headers={"authorization": f"Bearer {k['reviewer']}"})
    assert again.status_code == 409  # decided once


def test_a_review_nobody_decides_expires(gw: tuple[str, dict[str, str]]) -> None:
    url, k = gw
    out: list[Any] = []
    _ask(url, k["dev"], "Any acquisition plans?", out)
    assert out[0].status_code == 403 and out[0].json()["error"]["code"] == "review_expired"
    r = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {k['dev']}"},
                   json={"model": "mock-1", "messages": [{"role": "user", "content": "Hello"}]})
    assert r.status_code == 200  # nothing to review: served at once
