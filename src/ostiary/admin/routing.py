"""The admin API's plumbing: the route table entry, the parsed request, body and query decoding.

A `Route` says everything about one endpoint in one place: method, path, who may call it, its
query parameters and body type, and its handler. The dispatcher (admin/api.py) and the OpenAPI
document (admin/openapi.py) are both generated from the same table, so neither can miss an endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import msgspec

from ostiary.errors import InvalidRequest
from ostiary.identity.principal import Principal
from ostiary.store.events import Actor

if TYPE_CHECKING:
    from ostiary.admin.api import Services

MANAGERS = ("admin", "tenant_admin")
READERS = ("admin", "tenant_admin", "auditor")  # usage and events only

Handler = Callable[["Services", "Request"], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter, for validation and for the OpenAPI document."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # under /admin/v1; "{name}" is one path segment, "{name*}" the rest of the path
    handler: Handler
    summary: str
    roles: tuple[str, ...] = MANAGERS
    body: type[Any] | None = None
    query: tuple[Param, ...] = ()
    status: int = 200
    returns: str = ""
    errors: tuple[int, ...] = (400, 401, 403, 404)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        """The path parameters if `parts` (the path's segments) is this route's path, else None."""
        pattern = self.path.strip("/").split("/")
        params: dict[str, str] = {}
        for i, seg in enumerate(pattern):
            if seg.endswith("*}"):
                rest = parts[i:]
                if not rest or not all(rest):
                    return None
                params[seg[1:-2]] = "/".join(rest)
                return params
            if i >= len(parts):
                return None
            if seg.startswith("{"):
                if not parts[i]:
                    return None
                params[seg[1:-1]] = parts[i]
            elif seg != parts[i]:
                return None
        return params if len(parts) == len(pattern) else None

    @property
    def openapi_path(self) -> str:
        return "/admin/v1" + self.path.replace("*}", "}")


@dataclass(frozen=True, slots=True)
class Request:
    principal: Principal
    params: dict[str, str]
    query: dict[str, str]
    body: bytes

    @property
    def actor(self) -> Actor:
        # The kind is part of the name, so a token whose subject is "cli" cannot pose as the command line.
        return Actor(f"{self.principal.kind}:{self.principal.subject}", self.principal.tenant)

    @property
    def within(self) -> str | None:
        """The one tenant the caller may see, or None for an admin (every tenant)."""
        return None if self.principal.role == "admin" else self.principal.tenant

    def decode(self, kind: type[Any]) -> Any:
        """The body as `kind` (a msgspec Struct that forbids unknown fields); an empty body is {}."""
        try:
            return msgspec.json.decode(self.body or b"{}", type=kind)
        except msgspec.ValidationError as e:
            where = _AT.search(str(e))
            raise InvalidRequest(f"invalid request: {e}", param=where.group(1) if where else None) from None
        except msgspec.DecodeError as e:
            raise InvalidRequest(f"The request body is not valid JSON: {e}", code="invalid_json") from None


_AT = re.compile(r"at `\$\.([^`\[]+)")


def parse_query(query: str, allowed: tuple[Param, ...]) -> dict[str, str]:
    """The query parameters by name. An unknown or repeated name is a 400: a misspelt filter must
    not silently widen what a list returns. An empty value counts as absent."""
    try:
        pairs = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=50)
    except ValueError as e:
        raise InvalidRequest(f"The query string cannot be read: {e}") from None
    names = {p.name for p in allowed}
    out: dict[str, str] = {}
    for name, values in pairs.items():
        if name not in names:
            known = ", ".join(sorted(names)) or "none"
            raise InvalidRequest(f"Unknown query parameter {name!r}; this endpoint takes: {known}.", param=name)
        if len(values) > 1:
            raise InvalidRequest(f"The query parameter {name!r} is given more than once.", param=name)
        if values[0] != "":
            out[name] = values[0]
    return out


def parse_time(value: str | None, param: str) -> datetime | None:
    """A UTC time from `2026-11-01` (midnight UTC) or an ISO 8601 time (without offset: UTC)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{param} {value!r} is not a date (2026-11-01) or an ISO 8601 time "
                             "(2026-11-01T08:00:00Z)", param=param) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_int(value: str | None, param: str, *, low: int, high: int, default: int | None = None) -> int | None:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise InvalidRequest(f"{param} must be a whole number from {low} to {high}", param=param)
    return number
