"""The OpenAPI 3.1 document of the admin API, generated from the route table.

Request bodies are the JSON Schemas of the msgspec types the handlers decode with, so the document
and the validation cannot disagree; every route of the table appears, with its path and query
parameters, who may call it, and the error statuses it answers with.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ostiary.admin.routing import MANAGERS, READERS, Route

_PATH_PARAMS = {
    "key_id": "the key's id (ost-...)",
    "tenant_id": "the tenant's id",
    "tenant": "the user's tenant",
    "user_id": "the user's id",
    "scope": "tenant:<tenant>, team:<tenant>/<team>, user:<tenant>/<user> or key:<key id>, URL-encoded "
             "(e.g. user%3Aacme%2Falice)",
}
_STATUS = {
    400: "bad input; `param` names the field",
    401: "no valid credential",
    403: "the credential may not do this",
    404: "no such object, or it belongs to another tenant",
    405: "the path exists, with other methods",
    409: "it exists already",
}
_ERROR = {
    "type": "object",
    "description": "The OpenAI error format.",
    "properties": {"error": {"type": "object", "properties": {
        "message": {"type": "string"}, "type": {"type": "string"},
        "code": {"type": ["string", "null"]}, "param": {"type": ["string", "null"]}},
        "required": ["message", "type", "code", "param"]}},
    "required": ["error"],
}
_WHO = {READERS: "Roles: admin, tenant_admin (own tenant), auditor (own tenant).",
        MANAGERS: "Roles: admin, tenant_admin (own tenant)."}


def document(routes: tuple[Route, ...]) -> dict[str, Any]:
    bodies = list(dict.fromkeys(r.body for r in routes if r.body is not None))
    schemas, components = msgspec.json.schema_components(bodies, ref_template="#/components/schemas/{name}")
    body_schema = dict(zip(bodies, schemas, strict=True))
    components["Error"] = _ERROR
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        params = [{"name": seg.strip("{}*"), "in": "path", "required": True, "schema": {"type": "string"},
                   "description": _PATH_PARAMS.get(seg.strip("{}*"), "")}
                  for seg in r.path.split("/") if seg.startswith("{")]
        params += [{"name": q.name, "in": "query", "required": False, "schema": q.schema,
                    "description": q.description} for q in r.query]
        op: dict[str, Any] = {
            "summary": r.summary,
            "description": _WHO.get(r.roles, "Roles: " + ", ".join(r.roles) + "."),
            "operationId": _operation_id(r),
            "parameters": params,
            "responses": {str(r.status): {"description": r.returns or "OK",
                                          "content": {"application/json": {"schema": {"type": "object"}}}}}
            | {str(s): {"description": _STATUS[s],
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
               for s in sorted(set(r.errors) | {401, 403})},
        }
        if r.body is not None:
            # An empty body reads as {}: it is required only when some field is.
            needed = any(f.required for f in msgspec.structs.fields(r.body))
            op["requestBody"] = {"required": needed,
                                 "content": {"application/json": {"schema": body_schema[r.body]}}}
        paths.setdefault(r.openapi_path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Ostiary admin API", "version": "1",
                 "description": "Keys, tenants, users, budgets, rate limits, usage and administrative "
                                "events. Every call needs a credential with the 'admin' scope."},
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _operation_id(r: Route) -> str:
    words = [seg.strip("{}*") if not seg.startswith("{") else "by_" + seg.strip("{}*")
             for seg in r.path.strip("/").split("/")]
    return r.method.lower() + "_" + "_".join(w.replace(".", "_") for w in words)
