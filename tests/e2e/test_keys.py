"""API keys end to end: the real gateway, the `ostiary keys` CLI, and the official clients."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.support import ROOT, chat_status, gateway, keys, within_a_second

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict]]:
    tmp = tmp_path_factory.mktemp("keys")
    cfg = tmp / "ostiary.yaml"
    cfg.write_text(f"server: {{data_dir: {tmp / 'data'}}}\nidentity: {{refresh_seconds: 0.1}}\nroutes:\n"
                   "  - name: mock-1\n    deployments: [{provider: mock, model: mock-1}]\n"
                   "  - name: other\n    deployments: [{provider: mock, model: other}]\n")
    issued = {
        "full": keys(cfg, "create", "--tenant", "acme", "--user", "alice"),
        "narrow": keys(cfg, "create", "--tenant", "acme", "--models", "mock-1", "--scopes", "chat"),
    }
    with gateway(cfg) as (url, _):
        yield url, cfg, issued


def client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=10)


def test_a_valid_key_is_served(secured: tuple[str, Path, dict]) -> None:
    url, _, issued = secured
    c = client(url, issued["full"]["key"]).chat.completions.create(model="other", messages=HELLO)
    assert c.choices[0].message.content == "Mock answer to: Hello"
    a = anthropic.Anthropic(base_url=url, api_key=issued["full"]["key"], max_retries=0)
    assert a.messages.create(model="mock-1", max_tokens=20, messages=HELLO).content[0].text  # type: ignore[union-attr]
    r = httpx.post(f"{url}/v1/chat/completions", headers={"x-api-key": issued["full"]["key"]},
                   json={"model": "mock-1", "messages": HELLO})
    assert r.status_code == 200


def test_missing_and_wrong_keys_are_401(secured: tuple[str, Path, dict]) -> None:
    url, _, issued = secured
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "mock-1", "messages": HELLO})
    assert r.status_code == 401 and "Missing credential" in r.json()["error"]["message"]
    with pytest.raises(openai.AuthenticationError) as e:
        client(url, issued["full"]["key"] + "x").chat.completions.create(model="mock-1", messages=HELLO)
    assert e.value.code == "invalid_api_key"
    r = httpx.post(f"{url}/v1/messages", headers={"x-api-key": "nope"},
                   json={"model": "mock-1", "max_tokens": 5, "messages": HELLO})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def test_models_and_scopes_are_enforced(secured: tuple[str, Path, dict]) -> None:
    url, _, issued = secured
    narrow = client(url, issued["narrow"]["key"])
    assert narrow.chat.completions.create(model="mock-1", messages=HELLO).choices
    with pytest.raises(openai.PermissionDeniedError) as e:
        narrow.chat.completions.create(model="other", messages=HELLO)
    assert e.value.code == "model_not_allowed"
    with pytest.raises(openai.PermissionDeniedError) as e:
        narrow.embeddings.create(model="mock-1", input="x")
    assert e.value.code == "missing_scope"


def test_revocation_and_rotation_reach_the_running_gateway(secured: tuple[str, Path, dict]) -> None:
    url, cfg, _ = secured
    first = keys(cfg, "create", "--tenant", "globex")
    assert within_a_second(lambda: chat_status(url, first["key"]) == 200)
    rotated = keys(cfg, "rotate", first["id"], "--grace", "1h")
    assert within_a_second(lambda: chat_status(url, rotated["key"]) == 200)
    assert chat_status(url, first["key"]) == 200  # still inside its grace period
    keys(cfg, "revoke", rotated["id"])
    assert within_a_second(lambda: chat_status(url, rotated["key"]) == 401)
    r = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {rotated['key']}"},
                   json={"model": "mock-1", "messages": HELLO})
    assert "revoked" in r.json()["error"]["message"]
    listed = {k["id"]: k for k in keys(cfg, "list", "--tenant", "globex")}
    assert listed[first["id"]]["rotated_to"] == rotated["id"] and listed[rotated["id"]]["status"] == "revoked"
    assert all("key" not in k and "hash" not in k for k in listed.values())  # no secret is ever listed


def test_keys_cli_errors_are_clear(secured: tuple[str, Path, dict]) -> None:
    _, cfg, _ = secured
    r = subprocess.run([sys.executable, "-m", "ostiary", "keys", "revoke", "ost-nothere", "--config", str(cfg)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1 and "no key 'ost-nothere'" in r.stderr
    r = subprocess.run([sys.executable, "-m", "ostiary", "keys", "create", "--tenant", "t", "--role", "god",
                        "--config", str(cfg)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1 and "role must be one of" in r.stderr


def test_a_key_with_its_own_limits_and_budget_is_held_to_them(tmp_path: Path) -> None:
    cfg = tmp_path / "ostiary.yaml"
    cfg.write_text(f"server: {{data_dir: {tmp_path / 'data'}}}\npricing: {{mock-1: {{input: 1000, output: 1000}}}}\n"
                   "routes:\n  - name: mock-1\n    deployments: [{provider: mock, model: mock-1}]\n")
    tight = keys(cfg, "create", "--tenant", "acme", "--limits", "rpm=2")
    broke = keys(cfg, "create", "--tenant", "acme", "--budget", "0.00001/day")
    bad = subprocess.run([sys.executable, "-m", "ostiary", "keys", "create", "--tenant", "acme", "--budget", "5/week",
                          "--config", str(cfg)], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "period must be one of" in bad.stderr and "Traceback" not in bad.stderr
    with gateway(cfg) as (url, _):
        assert [chat_status(url, tight["key"]) for _ in range(3)] == [200, 200, 429]
        r = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {broke['key']}"},
                       json={"model": "mock-1", "messages": HELLO, "max_tokens": 5})
        assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded", r.text
