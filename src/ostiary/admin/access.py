"""Who may do what in the admin API.

- Every caller needs the `admin` scope on its credential and one of the roles admin, tenant_admin
  or auditor.
- `admin` sees and manages every tenant. Only an admin creates tenants, grants the role admin (to
  a key or a user), changes an admin user or key, or sets a tenant's own budget or limits (the cap a
  tenant admin works within).
- `tenant_admin` sees and manages its own tenant only. Another tenant's objects (addressed in the
  path: a key, a user, a scope) answer 404 exactly like missing ones, so their existence does not
  leak; naming another tenant in a body or a query is a 403, because the caller said it outright.
- `auditor` reads the usage and the admin events of its own tenant, nothing else.
"""

from __future__ import annotations

from ostiary.admin.routing import READERS, Request
from ostiary.errors import Forbidden
from ostiary.identity.principal import Principal


def require_caller(p: Principal, roles: tuple[str, ...]) -> None:
    if "admin" not in p.scopes or p.role not in READERS:
        raise Forbidden("The admin API needs a credential with the 'admin' scope and the role admin, "
                        "tenant_admin or auditor.", code="admin_required")
    if p.role not in roles:
        raise Forbidden(f"The role {p.role} may not use this endpoint; an auditor reads usage and events only.",
                        code="role_not_allowed")


def require_admin(req: Request, what: str) -> None:
    if req.principal.role != "admin":
        raise Forbidden(f"Only an admin can {what}.", code="role_not_allowed")


def own_tenant(req: Request, tenant: str, param: str = "tenant") -> str:
    """A tenant named by the caller (body or query); another tenant than its own is refused."""
    if req.within is not None and tenant != req.within:
        raise Forbidden(f"A {req.principal.role} works within its own tenant ({req.within}) only.",
                        code="tenant_not_allowed", param=param)
    return tenant


def tenant_filter(req: Request) -> str | None:
    """The tenant a list shows: the one asked for (an admin may leave it out: every tenant), and for
    anyone else always its own."""
    asked = req.query.get("tenant")
    if asked is not None:
        return own_tenant(req, asked)
    return req.within
