"""Tenancy through the real server: tenants, users, budgets, limits, usage and events over HTTP.

Proves that a tenant admin can neither read nor change another tenant's keys, users, budgets,
limits, usage or events (404 for its objects exactly like missing ones, 403 for naming it), that
the role rules hold, that every change is recorded with its actor and without secrets, and that
the OpenAPI document lists every endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from ostiary.admin.api import ROUTES
from ostiary.store.schema import usage
from tests.support import chat_status, gateway, keys

SEEDED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)  # usage rows seeded by the test, far from live traffic
WINDOW = {"since": "2025-06-01", "until": "2025-06-02"}


class Env:
    def __init__(self, url: str, cfg: Path, db: Path, issued: dict[str, dict[str, Any]]) -> None:
        self.url, self.cfg, self.db, self.issued = url, cfg, db, issued

    def api(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/admin/v1", timeout=10,
                            headers={"authorization": f"Bearer {self.issued[who]['key']}"})

    def id(self, who: str) -> str:
        return str(self.issued[who]["id"])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("tenancy")
    cfg = tmp / "ostiary.yaml"
    cfg.write_text(f"server: {{data_dir: {tmp / 'data'}}}\nidentity: {{refresh_seconds: 0.1}}\nroutes:\n"
                   "  - name: mock-1\n    deployments: [{provider: mock, model: mock-1}]\n")
    issued = {
        "root": keys(cfg, "create", "--tenant", "ops", "--role", "admin", "--scopes", "admin"),
        "acme_admin": keys(cfg, "create", "--tenant", "acme", "--role", "tenant_admin", "--scopes", "admin"),
        "acme_auditor": keys(cfg, "create", "--tenant", "acme", "--role", "auditor", "--scopes", "admin"),
        "acme_dev": keys(cfg, "create", "--tenant", "acme", "--user", "alice"),
        "globex_admin": keys(cfg, "create", "--tenant", "globex", "--role", "tenant_admin", "--scopes", "admin"),
        "globex_dev": keys(cfg, "create", "--tenant", "globex", "--user", "gina"),
    }
    db = tmp / "data" / "ostiary.db"
    with gateway(cfg) as (url, _):
        e = Env(url, cfg, db, issued)
        _seed(e)
        yield e


def _seed(e: Env) -> None:
    root = e.api("root")
    for tenant, user, team in (("acme", "alice", "risk"), ("globex", "gina", "sales")):
        assert root.post("/users", json={"tenant": tenant, "id": user, "team": team}).status_code == 201
        for scope in (f"team:{tenant}/{team}", f"user:{tenant}/{user}", f"key:{e.id(tenant + '_dev')}"):
            assert root.put(f"/budgets/{scope}", json={"amount_usd": 1000, "period": "month"}).status_code == 200
            assert root.put(f"/limits/{scope}", json={"rpm": 10_000}).status_code == 200
    engine = sa.create_engine(f"sqlite:///{e.db}")
    with engine.begin() as conn:
        conn.execute(usage.insert(), [
            {"minute": SEEDED, "day": "2025-06-01", "tenant_id": tenant, "team": team, "user_id": user,
             "key_id": e.id(f"{tenant}_dev"), "model": "mock-1", "deployment": "mock-1", "requests": n,
             "errors": 0, "input_tokens": 10 * n, "output_tokens": 5 * n, "cached_tokens": 0, "cost_usd": 0.5 * n}
            for tenant, team, user, n in (("acme", "risk", "alice", 3), ("globex", "sales", "gina", 7))])
    engine.dispose()


def test_openapi_lists_every_endpoint_with_its_request_schema(env: Env) -> None:
    doc = env.api("root").get("/openapi.json").json()
    listed = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    expected = {
        ("/admin/v1/keys", "get"), ("/admin/v1/keys", "post"), ("/admin/v1/keys/{key_id}", "get"),
        ("/admin/v1/keys/{key_id}/revoke", "post"), ("/admin/v1/keys/{key_id}/rotate", "post"),
        ("/admin/v1/tenants", "get"), ("/admin/v1/tenants", "post"),
        ("/admin/v1/tenants/{tenant_id}", "get"), ("/admin/v1/tenants/{tenant_id}", "patch"),
        ("/admin/v1/users", "get"), ("/admin/v1/users", "post"),
        ("/admin/v1/users/{tenant}/{user_id}", "get"), ("/admin/v1/users/{tenant}/{user_id}", "patch"),
        ("/admin/v1/users/{tenant}/{user_id}", "delete"),
        ("/admin/v1/budgets", "get"), ("/admin/v1/budgets/{scope}", "get"), ("/admin/v1/budgets/{scope}", "put"),
        ("/admin/v1/budgets/{scope}", "delete"),
        ("/admin/v1/limits", "get"), ("/admin/v1/limits/{scope}", "get"), ("/admin/v1/limits/{scope}", "put"),
        ("/admin/v1/limits/{scope}", "delete"),
        ("/admin/v1/usage", "get"), ("/admin/v1/events", "get"), ("/admin/v1/openapi.json", "get"),
        ("/admin/v1/reviews", "get"), ("/admin/v1/reviews/{review_id}", "get"),
        ("/admin/v1/reviews/{review_id}/approve", "post"), ("/admin/v1/reviews/{review_id}/deny", "post"),
        ("/admin/v1/audit/events/{request_id}", "get"), ("/admin/v1/audit/bundle", "get"),
        ("/admin/v1/audit/consistency", "get"), ("/admin/v1/audit/checkpoint", "get"),
        ("/admin/v1/audit/verify", "post"), ("/admin/v1/subjects/erase/{subject}", "post"),
        ("/admin/v1/subjects/export/{subject}", "get"), ("/admin/v1/subjects/hold/{subject}", "post"),
        ("/admin/v1/subjects/hold/{subject}", "delete"),
        ("/admin/v1/prompts", "get"), ("/admin/v1/prompts/{ref}", "get"),
        ("/admin/v1/prompts/{name}/versions", "post"), ("/admin/v1/prompts/{name}/labels/{label}", "put"),
        ("/admin/v1/releases", "get"), ("/admin/v1/releases", "post"), ("/admin/v1/releases/{id}", "get"),
        ("/admin/v1/releases/{id}/{action}", "post"),
    }
    assert listed == expected == {(r.openapi_path, r.method.lower()) for r in ROUTES}
    schemas = doc["components"]["schemas"]
    for route in ROUTES:
        op = doc["paths"][route.openapi_path][route.method.lower()]
        assert {p["name"] for p in op["parameters"] if p["in"] == "path"} == {
            seg.strip("{}*") for seg in route.path.split("/") if seg.startswith("{")}
        if route.body is not None:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[1] in schemas
    assert {"CreateKey", "CreateTenant", "CreateUser", "UpdateUser", "BudgetBody", "LimitsBody", "Error"} <= set(schemas)
    assert "budget" in schemas["CreateKey"]["properties"] and "limits" in schemas["CreateKey"]["properties"]
    usage_params = {p["name"] for p in doc["paths"]["/admin/v1/usage"]["get"]["parameters"]}
    assert usage_params == {"group_by", "since", "until", "tenant"}


LISTS = ["/keys", "/users", "/budgets", "/limits", "/events", "/tenants"]


def test_a_tenant_admin_lists_only_its_own_tenant(env: Env) -> None:
    acme = env.api("acme_admin")
    for path in LISTS:
        data = acme.get(path).json()["data"]
        tenants = {x.get("tenant", x.get("id")) for x in data}
        assert tenants == {"acme"}, (path, data)
    rows = acme.get("/usage", params={"group_by": "tenant,team,user,key", **WINDOW}).json()["data"]
    assert rows == [{"tenant": "acme", "team": "risk", "user": "alice", "key": env.id("acme_dev"), "requests": 3,
                     "errors": 0, "input_tokens": 30, "output_tokens": 15, "cached_tokens": 0, "cost_usd": 1.5}]
    # The root admin sees both, and may filter.
    root = env.api("root")
    everyone = root.get("/usage", params={"group_by": "tenant", **WINDOW}).json()["data"]
    assert [(r["tenant"], r["requests"]) for r in everyone] == [("acme", 3), ("globex", 7)]
    assert {x["tenant"] for x in root.get("/budgets", params={"tenant": "globex"}).json()["data"]} == {"globex"}


def test_naming_another_tenant_in_a_query_or_body_is_403(env: Env) -> None:
    acme = env.api("acme_admin")
    for path in [*LISTS[:5], "/usage"]:
        r = acme.get(path, params={"tenant": "globex"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "tenant_not_allowed", path
    for path, body in [("/keys", {"tenant": "globex"}), ("/users", {"tenant": "globex", "id": "eve"})]:
        r = acme.post(path, json=body)
        assert r.status_code == 403 and r.json()["error"]["param"] == "tenant", path


def test_another_tenants_objects_answer_404_exactly_like_missing_ones(env: Env) -> None:
    acme = env.api("acme_admin")
    gkey = env.id("globex_dev")
    pairs = [  # (another tenant's object, a missing one of the same kind)
        (("GET", f"/keys/{gkey}", None), ("GET", "/keys/ost-nothere", None)),
        (("POST", f"/keys/{gkey}/revoke", None), ("POST", "/keys/ost-nothere/revoke", None)),
        (("POST", f"/keys/{gkey}/rotate", {}), ("POST", "/keys/ost-nothere/rotate", {})),
        (("GET", "/tenants/globex", None), ("GET", "/tenants/nothere", None)),
        (("PATCH", "/tenants/globex", {"name": "Mine"}), ("PATCH", "/tenants/nothere", {"name": "Mine"})),
        (("GET", "/users/globex/gina", None), ("GET", "/users/nothere/gina", None)),
        (("PATCH", "/users/globex/gina", {"team": "x"}), ("PATCH", "/users/nothere/gina", {"team": "x"})),
        (("DELETE", "/users/globex/gina", None), ("DELETE", "/users/nothere/gina", None)),
    ]
    for kind in ("budgets", "limits"):
        body = {"amount_usd": 1, "period": "day"} if kind == "budgets" else {"rpm": 1}
        for method, payload in (("GET", None), ("PUT", body), ("DELETE", None)):
            pairs += [
                ((method, f"/{kind}/key:{gkey}", payload), (method, f"/{kind}/key:ost-nothere", payload)),
                ((method, f"/{kind}/user%3Aglobex%2Fgina", payload), (method, f"/{kind}/user:nothere/gina", payload)),
                ((method, f"/{kind}/team:globex/sales", payload), (method, f"/{kind}/team:nothere/sales", payload)),
                ((method, f"/{kind}/tenant:globex", payload), (method, f"/{kind}/tenant:nothere", payload)),
            ]
    for hidden, missing in pairs:
        a = acme.request(hidden[0], hidden[1], json=hidden[2])
        b = acme.request(missing[0], missing[1], json=missing[2])
        assert a.status_code == b.status_code == 404, (hidden, a.text, b.text)
        ea, eb = a.json()["error"], b.json()["error"]
        assert (ea["code"], ea["param"], ea["type"]) == (eb["code"], eb["param"], eb["type"]), (hidden, ea, eb)
        # The message names what was asked for, nothing else: swapping the names makes them equal.
        assert ea["message"].replace("globex", "nothere").replace(gkey, "ost-nothere") == eb["message"]

    # Nothing of globex changed, and its key still works.
    root = env.api("root")
    assert root.get("/users/globex/gina").json()["team"] == "sales"
    assert root.get(f"/keys/{gkey}").json()["status"] == "active"
    assert root.get("/tenants/globex").json()["name"] == "globex"
    assert root.get(f"/budgets/key:{gkey}").json()["amount_usd"] == 1000
    assert root.get("/limits/user:globex/gina").json()["rpm"] == 10_000
    assert chat_status(env.url, env.issued["globex_dev"]["key"]) == 200
    assert not [e for e in root.get("/events", params={"tenant": "globex"}).json()["data"]
                if e["actor_tenant"] == "acme"]


def test_role_rules(env: Env) -> None:
    acme, auditor, root = env.api("acme_admin"), env.api("acme_auditor"), env.api("root")
    dev = env.api("acme_dev")
    r = dev.get("/usage")
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required"

    # An auditor reads usage and events of its own tenant, and nothing else.
    rows = auditor.get("/usage", params={"group_by": "tenant", **WINDOW}).json()["data"]
    assert [(x["tenant"], x["requests"]) for x in rows] == [("acme", 3)]
    assert {e["tenant"] for e in auditor.get("/events").json()["data"]} == {"acme"}
    assert auditor.get("/events", params={"tenant": "globex"}).status_code == 403
    for method, path in [("GET", "/keys"), ("GET", "/users"), ("GET", "/budgets"), ("GET", "/limits"),
                         ("GET", "/tenants"), ("POST", "/keys"), ("PUT", "/budgets/user:acme/alice")]:
        r = auditor.request(method, path, json={})
        assert r.status_code == 403 and r.json()["error"]["code"] == "role_not_allowed", (method, path)

    # A tenant admin: no tenants, no admins, no tenant-wide cap, no admin keys.
    assert acme.post("/tenants", json={"id": "acme2"}).status_code == 403
    assert acme.post("/users", json={"id": "mallory", "role": "admin"}).status_code == 403
    assert acme.post("/users", json={"id": "tom", "role": "developer"}).status_code == 201
    assert acme.patch("/users/acme/tom", json={"role": "admin"}).status_code == 403
    assert root.post("/users", json={"tenant": "acme", "id": "boss", "role": "admin"}).status_code == 201
    for method, body in (("PATCH", {"role": "developer"}), ("DELETE", None)):
        r = acme.request(method, "/users/acme/boss", json=body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "role_not_allowed"
    for kind, body in (("budgets", {"amount_usd": 1e6, "period": "month"}), ("limits", {"rpm": 10**6})):
        assert acme.put(f"/{kind}/tenant:acme", json=body).status_code == 403
        assert acme.get(f"/{kind}/tenant:acme").status_code in (200, 404)  # reading it is fine
    admin_key = root.post("/keys", json={"tenant": "acme", "role": "admin", "scopes": ["admin"]}).json()
    for action in ("rotate", "revoke"):
        assert acme.post(f"/keys/{admin_key['id']}/{action}", json={}).status_code == 403
    # ... while the root admin may do all of it.
    assert root.put("/budgets/tenant:acme", json={"amount_usd": 1e6, "period": "month"}).status_code == 200
    assert root.patch("/users/acme/boss", json={"role": "tenant_admin"}).json()["role"] == "tenant_admin"
    assert root.post(f"/keys/{admin_key['id']}/revoke").json()["status"] == "revoked"


def test_every_change_is_recorded_with_its_actor_and_no_secret(env: Env) -> None:
    acme, root = env.api("acme_admin"), env.api("root")
    assert acme.post("/users", json={"id": "carol", "team": "risk"}).status_code == 201
    assert acme.patch("/users/acme/carol", json={"role": "auditor"}).status_code == 200
    new = acme.post("/keys", json={"user": "carol", "limits": {"rpm": 100, "concurrent": 2},
                                   "budget": {"amount_usd": 50, "period": "day", "thresholds": [90, 50]}})
    assert new.status_code == 201
    created = new.json()
    assert created["limits"]["rpm"] == 100 and created["budget"]["thresholds"] == [50, 90]
    assert acme.get(f"/limits/key:{created['id']}").json()["concurrent"] == 2
    rotated = acme.post(f"/keys/{created['id']}/rotate", json={"grace_seconds": 0}).json()
    # The successor shares its predecessor's budget: it lives under the lineage.
    assert acme.get(f"/budgets/key:{rotated['id']}").json()["scope"] == f"key:{created['id']}"
    assert acme.delete("/users/acme/carol").status_code == 200

    actor = f"key:{env.id('acme_admin')}"
    events = acme.get("/events", params={"limit": 50}).json()["data"]
    mine = [(e["action"], e["target"]) for e in events if e["actor"] == actor and e["actor_tenant"] == "acme"]
    assert mine[:7] == [
        ("user.delete", "user:acme/carol"), ("key.rotate", created["id"]),
        ("budget.set", f"key:{created['id']}"), ("limits.set", f"key:{created['id']}"),
        ("key.create", created["id"]), ("user.update", "user:acme/carol"), ("user.create", "user:acme/carol")]
    role_change = next(e for e in events if e["action"] == "user.update" and e["target"] == "user:acme/carol")
    assert role_change["details"]["role"] == {"old": "developer", "new": "auditor"}
    # Changes the root admin made in acme are visible to acme, and name the root admin.
    root_actor = f"key:{env.id('root')}"
    assert ("budget.set", f"key:{env.id('acme_dev')}") in [(e["action"], e["target"]) for e in events
                                                           if e["actor"] == root_actor]
    # Keys issued on the command line are recorded too.
    everything = root.get("/events", params={"limit": 1000})
    assert {e["target"] for e in everything.json()["data"] if e["action"] == "key.create" and e["actor"] == "cli"} \
        == {v["id"] for v in env.issued.values()}
    raw = everything.text
    for secret in [created["key"], rotated["key"], *(v["key"] for v in env.issued.values())]:
        assert secret not in raw and secret.split(".", 1)[1] not in raw


def test_url_encoded_scopes_and_clear_errors(env: Env) -> None:
    acme = env.api("acme_admin")
    r = acme.put("/budgets/user%3Aacme%2Falice", json={"amount_usd": 12.5, "period": "total"})
    assert r.status_code == 200 and r.json()["scope"] == "user:acme/alice"
    assert acme.get("/budgets/user%3Aacme%2Falice").json()["amount_usd"] == 12.5

    def error(r: httpx.Response, status: int) -> dict[str, Any]:
        assert r.status_code == status, r.text
        return dict(r.json()["error"])

    assert error(acme.put("/budgets/user:acme/alice", json={"amount_usd": -1, "period": "total"}), 400)["param"] \
        == "amount_usd"
    assert error(acme.put("/budgets/user:acme/alice", json={"amount_usd": 1, "period": "total", "colour": 1}),
                 400)["message"].startswith("invalid request: Object contains unknown field `colour`")
    assert error(acme.put("/limits/planet:acme", json={"rpm": 1}), 400)["param"] == "scope"
    assert error(acme.put("/limits/user:acme/alice", json={}), 400)["message"].startswith("set at least one")
    assert error(acme.put("/limits/user:acme/alice", json={"rpm": "many"}), 400)["param"] == "rpm"
    assert error(acme.post("/keys", json={"budget": {"amount_usd": 5, "period": "week"}}), 400)["param"] \
        == "budget.period"
    assert error(acme.post("/users", json={"id": "a/b"}), 400)["param"] == "id"
    assert error(acme.post("/users", json={"id": "alice"}), 409)["code"] == "conflict"
    assert error(env.api("root").post("/tenants", json={"id": "acme"}), 409)["code"] == "conflict"
    assert error(env.api("root").post("/tenants", json={"id": "Not Valid"}), 400)["param"] == "id"
    assert error(env.api("root").post("/keys", json={"tenant": "nothere"}), 404)["param"] == "tenant"
    assert error(acme.get("/usage", params={"group_by": "planet"}), 400)["param"] == "group_by"
    assert error(acme.get("/usage", params={"since": "yesterday"}), 400)["param"] == "since"
    assert error(acme.get("/usage", params={"since": "2026-02-01", "until": "2026-01-01"}), 400)["param"] == "until"
    assert error(acme.get("/events", params={"limit": "0"}), 400)["param"] == "limit"
    assert error(acme.get("/keys", params={"tennant": "acme"}), 400)["param"] == "tennant"
    r = acme.delete("/tenants/acme")
    assert error(r, 405)["code"] == "method_not_allowed" and r.headers["allow"] == "GET, PATCH"
