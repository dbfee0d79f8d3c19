"""The admin API for keys, through HTTP: role checks, tenant isolation, OpenAPI schema."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import chat_status, gateway, keys, within_a_second

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def admin_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    tmp = tmp_path_factory.mktemp("admin")
    cfg = tmp / "ostiary.yaml"
    cfg.write_text(f"server: {{data_dir: {tmp / 'data'}}}\nidentity: {{refresh_seconds: 0.1}}\nroutes:\n"
                   "  - name: mock-1\n    deployments: [{provider: mock, model: mock-1}]\n")
    issued = {
        "root": keys(cfg, "create", "--tenant", "ops", "--role", "admin", "--scopes", "admin"),
        "acme_admin": keys(cfg, "create", "--tenant", "acme", "--role", "tenant_admin", "--scopes", "admin"),
        "globex_admin": keys(cfg, "create", "--tenant", "globex", "--role", "tenant_admin", "--scopes", "admin"),
        "acme_dev": keys(cfg, "create", "--tenant", "acme"),
    }
    with gateway(cfg) as (url, _):
        yield url, {k: v["key"] for k, v in issued.items()} | {f"{k}_id": v["id"] for k, v in issued.items()}


def api(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"{url}/admin/v1", headers={"authorization": f"Bearer {key}"}, timeout=10)


def test_openapi_schema(admin_gw: tuple[str, dict]) -> None:
    url, k = admin_gw
    doc = api(url, k["root"]).get("/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/admin/v1/keys" in doc["paths"]
    assert "CreateKey" in doc["components"]["schemas"]


def test_admin_needs_an_admin_key(admin_gw: tuple[str, dict]) -> None:
    url, k = admin_gw
    assert httpx.get(f"{url}/admin/v1/keys").status_code == 401
    r = api(url, k["acme_dev"]).get("/keys")
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required"


def test_tenant_admin_sees_and_manages_only_its_tenant(admin_gw: tuple[str, dict]) -> None:
    url, k = admin_gw
    acme, globex = api(url, k["acme_admin"]), api(url, k["globex_admin"])
    assert {x["tenant"] for x in acme.get("/keys").json()["data"]} == {"acme"}
    assert acme.get("/keys", params={"tenant": "globex"}).status_code == 403
    assert acme.post("/keys", json={"tenant": "globex"}).status_code == 403
    assert acme.post("/keys", json={"role": "admin"}).status_code == 403  # no privilege escalation
    # Another tenant's key does not exist for it: 404, and nothing changes.
    assert globex.post(f"/keys/{k['acme_dev_id']}/revoke").status_code == 404
    assert httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {k['acme_dev']}"},
                      json={"model": "mock-1", "messages": HELLO}).status_code == 200


def test_issue_use_rotate_and_revoke_through_the_api(admin_gw: tuple[str, dict]) -> None:
    url, k = admin_gw
    acme = api(url, k["acme_admin"])
    r = acme.post("/keys", json={"user": "carol", "models": ["mock-1"], "expires_in_seconds": 3600})
    assert r.status_code == 201
    new = r.json()
    assert new["tenant"] == "acme" and new["user"] == "carol" and new["key"].startswith(new["id"] + ".")

    assert within_a_second(lambda: chat_status(url, new["key"]) == 200)
    rotated = acme.post(f"/keys/{new['id']}/rotate", json={"grace_seconds": 0}).json()
    assert within_a_second(lambda: chat_status(url, rotated["key"]) == 200 and chat_status(url, new["key"]) == 401)
    revoked = acme.post(f"/keys/{rotated['id']}/revoke").json()
    assert revoked["status"] == "revoked"
    assert within_a_second(lambda: chat_status(url, rotated["key"]) == 401)
    assert all("key" not in x for x in acme.get("/keys").json()["data"])


@pytest.mark.parametrize("body, fragment", [
    (b"{", "not valid JSON"),
    (b'{"tenant": "acme", "colour": "red"}', "unknown field"),
    (b'{"scopes": "chat"}', "Expected `array`"),
    (b'{"role": "wizard"}', "role must be one of"),
    (b'{"expires_in_seconds": -5}', "must be positive"),
])
def test_bad_admin_input_is_a_clear_400(admin_gw: tuple[str, dict], body: bytes, fragment: str) -> None:
    url, k = admin_gw
    r = api(url, k["acme_admin"]).post("/keys", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and fragment in r.json()["error"]["message"], r.text


def test_root_admin_sees_every_tenant(admin_gw: tuple[str, dict]) -> None:
    url, k = admin_gw
    tenants = {x["tenant"] for x in api(url, k["root"]).get("/keys").json()["data"]}
    assert {"ops", "acme", "globex"} <= tenants
    assert api(url, k["root"]).get("/nothing").status_code == 404
