"""The admin REST API under /admin/v1: keys, tenants, users, budgets, limits, usage, events,
guardrail reviews, the audit trail, data subjects, prompts and releases.

Framework-free: the server hands over (method, path, query, body, principal) and sends back what
`AdminAPI.handle` returns. The endpoints live in one module per subject (admin/keys.py,
tenants.py, budgets.py, usage.py), each with its route table; this module finds the route, applies
the role rules of admin/access.py and turns the services' errors into client errors (400, 403,
404, 409), so bad input never becomes a 500. Database work runs in a thread, off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ostiary.admin.access import require_caller
from ostiary.admin.audit import ROUTES as AUDIT_ROUTES
from ostiary.admin.budgets import ROUTES as BUDGET_ROUTES
from ostiary.admin.keys import ROUTES as KEY_ROUTES
from ostiary.admin.openapi import document
from ostiary.admin.prompts import ROUTES as PROMPT_ROUTES
from ostiary.admin.releases import ROUTES as RELEASE_ROUTES
from ostiary.admin.reviews import ROUTES as REVIEW_ROUTES
from ostiary.admin.routing import READERS, Request, Route, parse_query
from ostiary.admin.tenants import ROUTES as TENANT_ROUTES
from ostiary.admin.usage import ROUTES as USAGE_ROUTES
from ostiary.audit.evidence import BundleError
from ostiary.audit.subjects import SubjectError, Subjects
from ostiary.errors import Forbidden, GatewayError, InvalidRequest, NotFound
from ostiary.guardrails.review import ReviewError, Reviews
from ostiary.identity import directory
from ostiary.identity.directory import Directory
from ostiary.identity.keys import KeyAdminError, KeyService
from ostiary.identity.principal import Principal
from ostiary.limits import settings
from ostiary.limits.reports import ReportError
from ostiary.limits.settings import Settings
from ostiary.llmops.prompts import PromptError, Prompts
from ostiary.llmops.releases import ReleaseError, Releases
from ostiary.store import Store

PREFIX = "/admin/v1/"


@dataclass(frozen=True, slots=True)
class Services:
    """What the handlers work with."""

    keys: KeyService
    directory: Directory
    settings: Settings
    store: Store
    reviews: Reviews
    subjects: Subjects | None  # None: the audit trail is disabled
    prompts: Prompts
    releases: Releases
    verifier_keys: tuple[str, ...] = ()


async def _openapi(svc: Services, req: Request) -> tuple[int, Any]:
    return 200, OPENAPI


ROUTES: tuple[Route, ...] = (
    *KEY_ROUTES, *TENANT_ROUTES, *BUDGET_ROUTES, *USAGE_ROUTES, *REVIEW_ROUTES, *AUDIT_ROUTES, *PROMPT_ROUTES,
    *RELEASE_ROUTES,
    Route("GET", "/openapi.json", _openapi, "This document", roles=READERS, returns="the OpenAPI document"),
)
OPENAPI = document(ROUTES)


class AdminAPI:
    def __init__(self, keys: KeyService, subjects: Subjects | None = None, verifier_keys: tuple[str, ...] = (),
                 prompts: Prompts | None = None, releases: Releases | None = None) -> None:
        store = keys.store
        prompts = prompts or Prompts(store)
        releases = releases or Releases(store, prompts, None)
        self.services = Services(keys, Directory(store), Settings(store), store, Reviews(store), subjects,
                                 prompts, releases, verifier_keys)

    async def handle(self, method: str, path: str, query: str, body: bytes,
                     principal: Principal) -> tuple[int, Any]:
        # Who is asking comes before what exists: a non-admin learns nothing about the routes.
        require_caller(principal, READERS)
        route, params = _find(method, path)
        require_caller(principal, route.roles)
        req = Request(principal, params, parse_query(query, route.query), body)
        try:
            return await route.handler(self.services, req)
        except (directory.NotFoundError, settings.NotFoundError) as e:
            raise NotFound(str(e), param=e.param) from None
        except directory.ConflictError as e:
            raise GatewayError(str(e), status=409, type="invalid_request_error", code="conflict",
                               param=e.param) from None
        except directory.NotAllowedError as e:
            raise Forbidden(str(e), code="role_not_allowed", param=e.param) from None
        except (directory.DirectoryError, settings.SettingsError, ReportError) as e:
            raise InvalidRequest(str(e), param=e.param) from None
        except KeyAdminError as e:
            raise InvalidRequest(str(e)) from None
        except SubjectError as e:
            if e.conflict:
                raise GatewayError(str(e), status=409, type="invalid_request_error", code="conflict") from None
            raise InvalidRequest(str(e), param="subject") from None
        except PromptError as e:
            if e.gate:
                raise GatewayError(str(e), status=409, type="invalid_request_error", code="evaluation_required",
                                   param=e.param) from None
            if e.missing:
                raise NotFound(str(e), param=e.param, code="prompt_not_found") from None
            raise InvalidRequest(str(e), param=e.param) from None
        except ReleaseError as e:
            if e.gate:
                raise GatewayError(str(e), status=409, type="invalid_request_error", code="evaluation_required",
                                   param=e.param) from None
            if e.conflict:
                raise GatewayError(str(e), status=409, type="invalid_request_error", code="conflict",
                                   param=e.param) from None
            if e.missing:
                raise NotFound(str(e), param=e.param, code="release_not_found" if e.param == "id" else None) from None
            raise InvalidRequest(str(e), param=e.param) from None
        except BundleError as e:
            raise GatewayError(str(e), status=409, type="invalid_request_error", code="not_checkpointed") from None
        except ReviewError as e:
            if e.missing:
                raise NotFound(str(e), code="review_not_found") from None
            raise GatewayError(str(e), status=409, type="invalid_request_error", code="conflict") from None
        except sa.exc.IntegrityError:
            # Two administrators changed the same thing at once; the database kept one of them.
            raise GatewayError("A concurrent change conflicted with this one; read the current state and retry.",
                               status=409, type="invalid_request_error", code="conflict") from None


def _find(method: str, path: str) -> tuple[Route, dict[str, str]]:
    if not path.startswith(PREFIX):
        raise NotFound(f"No admin endpoint at {method} {path}.")
    parts = path[len(PREFIX):].rstrip("/").split("/")
    allowed = []
    for route in ROUTES:
        params = route.match(parts)
        if params is None:
            continue
        if route.method == method:
            return route, params
        allowed.append(route.method)
    if allowed:
        raise GatewayError(f"Method {method} is not allowed on {path}; use {', '.join(allowed)}.", status=405,
                           type="invalid_request_error", code="method_not_allowed",
                           headers={"allow": ", ".join(allowed)})
    raise NotFound(f"No admin endpoint at {method} {path}.")

