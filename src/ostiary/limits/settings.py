"""Budgets and rate-limit overrides per scope, on the database: validate, set, delete, list, load.

A scope names who a rule applies to: `tenant:<tenant>`, `team:<tenant>/<team>`,
`user:<tenant>/<user>` or `key:<key id>`. A key's rules are stored under its lineage (the first key
of its rotation chain), so a rotated key keeps its budget, limits and spend; naming any key of the
chain finds the same rules. Each scope belongs to one tenant, derived from the scope (for keys, from
the key), which is what tenant admins are confined to.

Every change records an admin event and moves the generation counter in its own transaction; the
gateway's in-memory index calls `load_budgets` and `load_limits` when the counter moves.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ostiary.identity.directory import TENANT_ID, check_name, tenant_exists
from ostiary.store import Store, bump_generation
from ostiary.store.events import Actor, record_by
from ostiary.store.schema import api_keys, budgets, limit_overrides

SCOPE_KINDS = ("tenant", "team", "user", "key")
PERIODS = ("day", "month", "total")
LIMIT_FIELDS = ("rpm", "tpm", "input_tpm", "output_tpm", "concurrent")
DEFAULT_THRESHOLDS = (50, 80, 100)
_MAX_LIMIT = 2**31 - 1
_KEY_ID = re.compile(r"ost-[a-z0-9]{1,36}")  # the columns are 32-bit integers on PostgreSQL


class SettingsError(ValueError):
    """A bad scope, budget or limit; the message says what to change, `param` names the field."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class NotFoundError(SettingsError):
    """The scope's tenant or key does not exist (or is not visible), or no rule is set for it."""


@dataclass(frozen=True, slots=True)
class Scope:
    """A parsed scope. `tenant` is None for a key scope until the key is looked up."""

    kind: str
    tenant: str | None
    name: str | None  # the team, the user or the key id

    def __str__(self) -> str:
        if self.kind == "tenant":
            return f"tenant:{self.tenant}"
        if self.kind == "key":
            return f"key:{self.name}"
        return f"{self.kind}:{self.tenant}/{self.name}"


def parse_scope(text: str, param: str = "scope") -> Scope:
    """Check a scope's form (not whether its tenant or key exists)."""
    kind, sep, rest = text.partition(":") if isinstance(text, str) else ("", "", "")
    if not sep or kind not in SCOPE_KINDS:
        raise SettingsError(f"scope {text!r} is invalid: use tenant:<tenant>, team:<tenant>/<team>, "
                            "user:<tenant>/<user> or key:<key id>", param=param)
    if kind == "key":
        if not _KEY_ID.fullmatch(rest):
            raise SettingsError(f"scope {text!r} is invalid: a key scope is key:<key id>, e.g. key:ost-3kq9x2mf",
                                param=param)
        return Scope("key", None, rest)
    tenant, slash, name = rest.partition("/")
    if not TENANT_ID.fullmatch(tenant):
        raise SettingsError(f"scope {text!r} names an invalid tenant id {tenant!r}", param=param)
    if kind == "tenant":
        if slash:
            raise SettingsError(f"scope {text!r} is invalid: a tenant scope is tenant:<tenant>", param=param)
        return Scope("tenant", tenant, None)
    if not slash:
        raise SettingsError(f"scope {text!r} is invalid: use {kind}:<tenant>/<{kind}>", param=param)
    try:
        check_name(name, kind, param)
    except ValueError as e:
        raise SettingsError(f"scope {text!r}: {e}", param=param) from None
    return Scope(kind, tenant, name)


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """A spending cap: `amount_usd` per `period` (day or month, calendar periods in the configured
    budgets.timezone; or total: ever), with notification thresholds in percent of the amount.
    Validated on construction, so every instance is usable."""

    amount_usd: float
    period: str
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS

    def __post_init__(self) -> None:
        amount = self.amount_usd
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not math.isfinite(amount) \
                or amount <= 0:
            raise SettingsError("amount_usd must be a positive number of dollars", param="amount_usd")
        if self.period not in PERIODS:
            raise SettingsError(f"period must be one of {', '.join(PERIODS)}", param="period")
        values = list(self.thresholds)
        if any(isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= 100 for t in values):
            raise SettingsError("thresholds must be whole percentages from 1 to 100", param="thresholds")
        if len(set(values)) != len(values):
            raise SettingsError("thresholds must not repeat a value", param="thresholds")
        object.__setattr__(self, "amount_usd", float(amount))
        object.__setattr__(self, "thresholds", tuple(sorted(values)))

    def public(self) -> dict[str, Any]:
        return {"amount_usd": self.amount_usd, "period": self.period, "thresholds": list(self.thresholds)}


@dataclass(frozen=True, slots=True)
class LimitRule:
    """Rate limits for one scope, replacing the configured default for it; None: no limit of that kind.
    Requests and tokens per minute, input and output tokens per minute, requests in flight."""

    rpm: int | None = None
    tpm: int | None = None
    input_tpm: int | None = None
    output_tpm: int | None = None
    concurrent: int | None = None

    def __post_init__(self) -> None:
        for name in LIMIT_FIELDS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 1 <= value <= _MAX_LIMIT):
                raise SettingsError(f"{name} must be a whole number from 1 to {_MAX_LIMIT}, or null", param=name)
        if all(getattr(self, name) is None for name in LIMIT_FIELDS):
            raise SettingsError(f"set at least one of {', '.join(LIMIT_FIELDS)}")

    def public(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in LIMIT_FIELDS}


@dataclass(frozen=True, slots=True)
class Budget:
    scope: str
    tenant: str
    rule: BudgetRule
    updated_at: datetime = field(compare=False)

    def public(self) -> dict[str, Any]:
        return {"scope": self.scope, "tenant": self.tenant, **self.rule.public(),
                "updated_at": self.updated_at.isoformat()}


@dataclass(frozen=True, slots=True)
class Limits:
    scope: str
    tenant: str
    rule: LimitRule
    updated_at: datetime = field(compare=False)

    def public(self) -> dict[str, Any]:
        return {"scope": self.scope, "tenant": self.tenant, **self.rule.public(),
                "updated_at": self.updated_at.isoformat()}


# -- what the gateway's index reads -----------------------------------------------------------------

def load_budgets(conn: sa.Connection) -> dict[str, BudgetRule]:
    """Every budget by scope (key scopes name the lineage)."""
    return {r.scope: _budget_rule(r) for r in conn.execute(sa.select(budgets))}


def load_limits(conn: sa.Connection) -> dict[str, LimitRule]:
    """Every limit override by scope (key scopes name the lineage)."""
    return {r.scope: _limit_rule(r) for r in conn.execute(sa.select(limit_overrides))}


# -- writes inside a caller's transaction (KeyService.create uses these) -----------------------------

def resolve(conn: sa.Connection, text: str, within: str | None = None) -> tuple[str, str]:
    """(the scope as stored, its tenant). A key scope becomes its lineage's; a scope outside
    `within`, an unknown tenant or an unknown key is not found, all alike."""
    scope = parse_scope(text)
    if scope.kind == "key":
        row = conn.execute(sa.select(api_keys.c.tenant_id, api_keys.c.lineage, api_keys.c.id)
                           .where(api_keys.c.id == scope.name)).first()
        if row is None or (within is not None and row.tenant_id != within):
            raise NotFoundError(f"no key {scope.name!r}", param="scope")
        return f"key:{row.lineage or row.id}", row.tenant_id
    assert scope.tenant is not None
    if (within is not None and scope.tenant != within) or not tenant_exists(conn, scope.tenant):
        raise NotFoundError(f"no tenant {scope.tenant!r}", param="scope")
    return str(scope), scope.tenant


def write_budget(conn: sa.Connection, scope: str, rule: BudgetRule, *, actor: Actor,
                 within: str | None = None) -> Budget:
    stored, tenant = resolve(conn, scope, within)
    old = conn.execute(sa.select(budgets).where(budgets.c.scope == stored)).first()
    now = datetime.now(UTC)
    _upsert(conn, budgets, {"scope": stored, "tenant_id": tenant, "amount_usd": rule.amount_usd,
                            "period": rule.period, "thresholds": list(rule.thresholds), "updated_at": now})
    record_by(conn, actor, "budget.set", tenant=tenant, target=stored,
              details={"old": None if old is None else _budget_rule(old).public(), "new": rule.public()})
    bump_generation(conn)
    return Budget(stored, tenant, rule, now)


def write_limits(conn: sa.Connection, scope: str, rule: LimitRule, *, actor: Actor,
                 within: str | None = None) -> Limits:
    stored, tenant = resolve(conn, scope, within)
    old = conn.execute(sa.select(limit_overrides).where(limit_overrides.c.scope == stored)).first()
    now = datetime.now(UTC)
    _upsert(conn, limit_overrides, {"scope": stored, "tenant_id": tenant, **rule.public(), "updated_at": now})
    record_by(conn, actor, "limits.set", tenant=tenant, target=stored,
              details={"old": None if old is None else _limit_rule(old).public(), "new": rule.public()})
    bump_generation(conn)
    return Limits(stored, tenant, rule, now)


class Settings:
    """Budgets and limit overrides on a store, each change in its own transaction. `within`
    confines an operation to one tenant. Synchronous: callers on the event loop use a thread."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def set_budget(self, scope: str, rule: BudgetRule, *, actor: Actor, within: str | None = None) -> Budget:
        with self.store.engine.begin() as conn:
            return write_budget(conn, scope, rule, actor=actor, within=within)

    def get_budget(self, scope: str, within: str | None = None) -> Budget:
        return self._get(_BUDGETS, scope, within)

    def delete_budget(self, scope: str, *, actor: Actor, within: str | None = None) -> Budget:
        return self._delete(_BUDGETS, scope, actor, within)

    def list_budgets(self, tenant: str | None = None) -> list[Budget]:
        return self._list(_BUDGETS, tenant)

    def set_limits(self, scope: str, rule: LimitRule, *, actor: Actor, within: str | None = None) -> Limits:
        with self.store.engine.begin() as conn:
            return write_limits(conn, scope, rule, actor=actor, within=within)

    def get_limits(self, scope: str, within: str | None = None) -> Limits:
        return self._get(_LIMITS, scope, within)

    def delete_limits(self, scope: str, *, actor: Actor, within: str | None = None) -> Limits:
        return self._delete(_LIMITS, scope, actor, within)

    def list_limits(self, tenant: str | None = None) -> list[Limits]:
        return self._list(_LIMITS, tenant)

    # Budgets and limit overrides are stored alike: one row per scope.

    def _get(self, kind: _Kind, scope: str, within: str | None) -> Any:
        with self.store.engine.connect() as conn:
            stored, _ = resolve(conn, scope, within)
            return kind.convert(kind.row(conn, stored))

    def _delete(self, kind: _Kind, scope: str, actor: Actor, within: str | None) -> Any:
        with self.store.engine.begin() as conn:
            stored, tenant = resolve(conn, scope, within)
            old = kind.convert(kind.row(conn, stored))
            conn.execute(kind.table.delete().where(kind.table.c.scope == stored))
            record_by(conn, actor, f"{kind.action}.delete", tenant=tenant, target=stored,
                      details={"old": old.rule.public()})
            bump_generation(conn)
        return old

    def _list(self, kind: _Kind, tenant: str | None) -> list[Any]:
        q = sa.select(kind.table).order_by(kind.table.c.tenant_id, kind.table.c.scope)
        if tenant is not None:
            q = q.where(kind.table.c.tenant_id == tenant)
        with self.store.engine.connect() as conn:
            return [kind.convert(r) for r in conn.execute(q)]


@dataclass(frozen=True)
class _Kind:
    table: sa.Table
    action: str  # "budget" or "limits": the audit action's prefix
    missing: str  # completes "no ... set for <scope>"
    convert: Callable[[Any], Any]

    def row(self, conn: sa.Connection, scope: str) -> Any:
        row = conn.execute(sa.select(self.table).where(self.table.c.scope == scope)).first()
        if row is None:
            raise NotFoundError(f"no {self.missing} set for {scope}", param="scope")
        return row


@contextmanager
def prefixed(prefix: str) -> Iterator[None]:
    """Name a nested field in errors, e.g. `budget.amount_usd` when a key is created with a budget."""
    try:
        yield
    except SettingsError as e:
        raise type(e)(str(e), param=f"{prefix}.{e.param}" if e.param else prefix) from None


def _upsert(conn: sa.Connection, table: sa.Table, values: dict[str, Any]) -> None:
    # One statement, so two writers of the same new scope cannot collide on its primary key.
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table).values(**values)
    conn.execute(stmt.on_conflict_do_update(index_elements=[table.c.scope],
                                            set_={k: stmt.excluded[k] for k in values if k != "scope"}))


def _budget_rule(row: Any) -> BudgetRule:
    return BudgetRule(amount_usd=row.amount_usd, period=row.period, thresholds=tuple(row.thresholds))


def _limit_rule(row: Any) -> LimitRule:
    return LimitRule(**{name: getattr(row, name) for name in LIMIT_FIELDS})


def _budget(row: Any) -> Budget:
    return Budget(row.scope, row.tenant_id, _budget_rule(row), _utc(row.updated_at))


def _limits(row: Any) -> Limits:
    return Limits(row.scope, row.tenant_id, _limit_rule(row), _utc(row.updated_at))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


_BUDGETS = _Kind(budgets, "budget", "budget is", _budget)
_LIMITS = _Kind(limit_overrides, "limits", "limits are", _limits)
