"""Who is calling: the principal a credential resolves to."""

from __future__ import annotations

from dataclasses import dataclass, field

Role = str  # admin, tenant_admin, developer, auditor, service
ROLES = ("admin", "tenant_admin", "developer", "auditor", "service")
SCOPES = ("chat", "embeddings", "admin")
CLEARANCES = ("public", "internal", "confidential", "restricted")


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # "key", "jwt" or "anonymous"
    subject: str  # the key id, the token subject, or "anonymous"
    tenant: str
    user: str | None
    role: Role
    scopes: frozenset[str]
    models: frozenset[str] | None  # None: every route
    clearance: str
    tags: dict[str, str] = field(default_factory=dict)
    team: str | None = None  # from the user record (keys) or a claim (tokens); budgets count per team
    lineage: str | None = None  # keys: the first key of its rotation chain, which limits and budgets name

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


ANONYMOUS = Principal(kind="anonymous", subject="anonymous", tenant="default", user=None, role="developer",
                      scopes=frozenset({"chat", "embeddings"}), models=None, clearance="internal")
