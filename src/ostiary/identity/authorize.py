"""The authorization stage: Cedar policies over the principal, the route and the request context.

Policies are parsed once per config version (cedarpy's `PolicySet`); one evaluation costs ~27 us,
and runs only when policies are configured. Entities: `Principal::"<subject>"` with tenant, user,
role, clearance, kind and tags; `Route::"<name>"` with its tags; actions `Action::"chat"` and
`Action::"embeddings"`; context: api, source_ip, hour (UTC). A denial is a 403 naming the policy
that decided; the decision and the policy ids are kept on the call for the audit trail.
"""

from __future__ import annotations

import json
import time
from typing import Any

import cedarpy

from ostiary.config.schema import Authorization, Route
from ostiary.errors import Forbidden
from ostiary.pipeline.call import Call
from ostiary.pipeline.stage import Handler


class Authorize:
    name = "authorization"

    def __init__(self, text: str, routes: dict[str, Route], version: str) -> None:
        self.policies = cedarpy.PolicySet.from_str(text)
        # Cedar names policies policy0, policy1, ... in order; show the @id("...") a person wrote.
        static = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]
        self.ids = {k: v.get("annotations", {}).get("id", k) for k, v in static.items()}
        self.routes = routes
        self.version = version

    @classmethod
    def from_config(cls, cfg: Authorization, routes: dict[str, Route], version: str) -> Authorize | None:
        # The loader has already read a policies_file into `policies` (and refused a bad one).
        return None if cfg.policies is None else cls(cfg.policies, routes, version)

    async def __call__(self, call: Call, next: Handler) -> None:
        p = call.principal
        route = self.routes.get(call.model)
        request = {
            "principal": {"type": "Principal", "id": p.subject},
            "action": {"type": "Action", "id": "embeddings" if call.kind == "embeddings" else "chat"},
            "resource": {"type": "Route", "id": call.model},
            "context": {"api": call.api, "source_ip": call.client_ip, "hour": time.gmtime().tm_hour},
        }
        entities: list[dict[str, Any]] = [
            {"uid": {"type": "Principal", "id": p.subject}, "parents": [],
             "attrs": {"tenant": p.tenant, "user": p.user or "", "role": p.role, "clearance": p.clearance,
                       "kind": p.kind, "tags": dict(p.tags)}},
            {"uid": {"type": "Route", "id": call.model}, "parents": [],
             "attrs": {"name": call.model, "tags": dict(route.tags) if route else {}}},
        ]
        result = cedarpy.is_authorized(request, self.policies, entities)
        deciding = [self.ids.get(r, r) for r in result.diagnostics.reasons]
        call.decisions["authorization"] = {"allowed": result.allowed, "policies": deciding,
                                           "config_version": self.version}
        if not result.allowed:
            if deciding:
                raise Forbidden(f"Denied by policy {', '.join(repr(d) for d in deciding)}.", code="policy_denied")
            errors = "; ".join(str(e) for e in result.diagnostics.errors)
            raise Forbidden("No authorization policy permits this request" + (f" ({errors})." if errors else "."),
                            code="policy_denied")
        await next(call)
