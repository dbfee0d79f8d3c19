"""The prompt registry: versioned, immutable prompt templates and movable labels.

A prompt is a name with numbered versions; a version (messages with `{{variable}}` placeholders,
typed variables, model parameters) never changes once created. A label (`production`, `staging`,
any name) points at one version; moving it is the deployment, moving it back the rollback, and
every move is an administrative event (so it is in the audit trail).

A chat request may send `"prompt": "NAME@LABEL"` (or `NAME@3`, or `NAME` for `production`) with
`"variables": {...}` instead of, or before, its `messages`: the gateway renders the template, applies
the version's parameters the request did not set, and records `NAME@VERSION` in the audit event.
Rendering is plain substitution: a template cannot run code, and a value is inserted as text.

The request path reads an in-memory snapshot (`Prompts.snapshot`), reloaded when the store's
generation moves, like keys and budgets.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import orjson
import sqlalchemy as sa

from ostiary.store import Store, bump_generation
from ostiary.store.events import Actor, record_by
from ostiary.store.schema import eval_runs, prompt_labels, prompt_versions

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
DEFAULT_LABEL = "production"
VERSION = re.compile(r"[0-9]{1,9}")  # ASCII digits only: "²".isdigit() is true, and int() refuses it
# Model parameters a version may carry (the request's own values win).
PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "presence_penalty", "frequency_penalty",
          "stop", "seed", "response_format")


class PromptError(ValueError):
    def __init__(self, message: str, *, param: str | None = None, missing: bool = False, gate: bool = False) -> None:
        super().__init__(message)
        self.param = param
        self.missing = missing
        self.gate = gate  # refused for want of a passing evaluation run


class Variable(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["string", "number", "integer", "boolean"] = "string"
    required: bool = True
    default: Any = None
    max_length: int = 100_000


class Message(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["system", "developer", "user", "assistant"]
    content: str


class Template(msgspec.Struct, forbid_unknown_fields=True):
    """What a version holds: messages, their variables, and model parameters."""

    messages: list[Message]
    variables: dict[str, Variable] = {}
    params: dict[str, Any] = {}
    description: str = ""

    def check(self) -> None:
        if not self.messages:
            raise PromptError("a prompt needs at least one message", param="messages")
        used = {m for msg in self.messages for m in _PLACEHOLDER.findall(msg.content)}
        undeclared = sorted(used - set(self.variables))
        if undeclared:
            raise PromptError(f"the messages use undeclared variables: {', '.join(undeclared)} (declare them "
                              "under variables)", param="variables")
        unknown = sorted(set(self.params) - set(PARAMS))
        if unknown:
            raise PromptError(f"unknown params: {', '.join(unknown)} (known: {', '.join(PARAMS)})", param="params")


@dataclass(frozen=True, slots=True)
class Version:
    name: str
    version: int
    template: Template
    digest: str  # sha256 of the template as stored: what an evaluation gate is recorded against
    created_at: datetime
    created_by: str

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "digest": self.digest,
                "created_at": self.created_at.isoformat(), "created_by": self.created_by,
                "template": msgspec.to_builtins(self.template)}


@dataclass(frozen=True, slots=True)
class Rendered:
    messages: list[dict[str, str]]
    params: dict[str, Any]
    ref: str  # "NAME@VERSION"
    label: str | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    versions: dict[tuple[str, int], Version]
    labels: dict[tuple[str, str], int]

    def resolve(self, ref: str, pointers: dict[str, str] | None = None) -> tuple[Version, str | None]:
        """The version `ref` names; `pointers` ("prompt:NAME@LABEL" -> version) put a release's
        candidate in place of what a label points at, for this call only."""
        name, _, which = ref.partition("@")
        which = which or DEFAULT_LABEL
        if VERSION.fullmatch(which):
            version, label = int(which), None
        else:
            label = which
            moved = pointers.get(f"prompt:{name}@{label}") if pointers else None
            found = int(moved) if moved is not None else self.labels.get((name, label))
            if found is None:
                raise PromptError(f"prompt {name!r} has no label {label!r}", param="prompt", missing=True)
            version = found
        v = self.versions.get((name, version))
        if v is None:
            raise PromptError(f"prompt {name!r} has no version {version}", param="prompt", missing=True)
        return v, label

    def render(self, ref: str, variables: Any, pointers: dict[str, str] | None = None) -> Rendered:
        if not isinstance(ref, str) or not ref:
            raise PromptError("prompt must be NAME, NAME@LABEL or NAME@VERSION", param="prompt")
        if variables is None:
            variables = {}
        if not isinstance(variables, dict):
            raise PromptError("variables must be an object", param="variables")
        v, label = self.resolve(ref, pointers)
        declared = v.template.variables
        unknown = sorted(set(variables) - set(declared))
        if unknown:
            raise PromptError(f"prompt {v.name}@{v.version} has no variables {', '.join(unknown)} "
                              f"(it takes: {', '.join(declared) or 'none'})", param="variables")
        values: dict[str, str] = {}
        for name, spec in declared.items():
            if name in variables:
                values[name] = _typed(name, spec, variables[name])
            elif spec.required and spec.default is None:
                raise PromptError(f"prompt {v.name}@{v.version} needs the variable {name!r}", param="variables")
            else:
                values[name] = "" if spec.default is None else str(spec.default)
        messages = [{"role": m.role, "content": _PLACEHOLDER.sub(lambda g: values[g.group(1)], m.content)}
                    for m in v.template.messages]
        return Rendered(messages, dict(v.template.params), f"{v.name}@{v.version}", label)


def _typed(name: str, spec: Variable, value: Any) -> str:
    ok = {"string": isinstance(value, str), "boolean": isinstance(value, bool),
          "integer": isinstance(value, int) and not isinstance(value, bool),
          "number": isinstance(value, (int, float)) and not isinstance(value, bool)}[spec.type]
    if not ok:
        raise PromptError(f"variable {name!r} must be of type {spec.type}", param=f"variables.{name}")
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    if len(text) > spec.max_length:
        raise PromptError(f"variable {name!r} is longer than {spec.max_length} characters", param=f"variables.{name}")
    return text


class Prompts:
    """The registry in the store, and the snapshot the request path reads."""

    def __init__(self, store: Store, protected: list[str] | tuple[str, ...] = ()) -> None:
        self.store = store
        self.protected = frozenset(protected)
        self.snapshot = Snapshot({}, {})

    def load(self) -> None:
        with self.store.engine.connect() as conn:
            versions = {(r.name, r.version): _version(r) for r in conn.execute(sa.select(prompt_versions))}
            labels = {(r.name, r.label): r.version for r in conn.execute(sa.select(prompt_labels))}
        self.snapshot = Snapshot(versions, labels)

    def create(self, name: str, template: Template, who: Actor) -> Version:
        if not NAME.match(name):
            raise PromptError("a prompt name is 1 to 100 characters a-z, 0-9, '_', '.', '-', starting with a letter "
                              "or digit", param="name")
        template.check()
        data = msgspec.json.encode(template)
        digest = hashlib.sha256(data).hexdigest()
        now = datetime.now(UTC)
        with self.store.engine.begin() as conn:
            last = conn.execute(sa.select(sa.func.max(prompt_versions.c.version))
                                .where(prompt_versions.c.name == name)).scalar()
            version = (last or 0) + 1
            conn.execute(prompt_versions.insert().values(name=name, version=version, template=orjson.loads(data),
                                                         digest=digest, created_at=now, created_by=who.subject[:200]))
            record_by(conn, who, "prompt.create", tenant=None, target=f"{name}@{version}", details={"digest": digest})
            bump_generation(conn)
        self.load()
        return Version(name, version, template, digest, now, who.subject)

    def label(self, name: str, label: str, version: int, who: Actor, force: bool = False) -> dict[str, Any]:
        """Point `label` at `version`. A protected label needs a passing evaluation run of that version
        on record (`eval_runs`), unless `force` (which the record says)."""
        if not NAME.match(label) or label.isdigit():
            raise PromptError("a label is a name (a-z, 0-9, '_', '.', '-'), not a number", param="label")
        with self.store.engine.begin() as conn:
            exists = conn.execute(sa.select(prompt_versions.c.version).where(
                prompt_versions.c.name == name, prompt_versions.c.version == version)).first()
            if exists is None:
                raise PromptError(f"prompt {name!r} has no version {version}", param="version", missing=True)
            gate = None if label not in self.protected else passing_run(conn, f"{name}@{version}")
            if label in self.protected and gate is None and not force:
                raise PromptError(f"label {label!r} is protected: {name}@{version} needs a passing evaluation run "
                                  f"first (ostiary eval run with target prompt {name}@{version} or a label on it), "
                                  "or an admin's force", param="version", gate=True)
            old = move_label(conn, name, label, version, who, {"gate": gate, "forced": force and gate is None
                                                                 and label in self.protected})
        self.load()
        return {"name": name, "label": label, "version": version, "previous": old, "gate": gate}

    def list(self) -> list[dict[str, Any]]:
        self.load()
        snap = self.snapshot
        names = sorted({n for n, _ in snap.versions})
        return [{"name": n, "versions": max(v for m, v in snap.versions if m == n),
                 "labels": {label: v for (m, label), v in sorted(snap.labels.items()) if m == n}} for n in names]


def move_label(conn: sa.Connection, name: str, label: str, version: int, who: Actor,
               details: dict[str, Any]) -> int | None:
    """Point `label` at `version` in the caller's transaction, recorded; the version it pointed at before."""
    old = conn.execute(sa.select(prompt_labels.c.version).where(
        prompt_labels.c.name == name, prompt_labels.c.label == label)).scalar()
    values = {"version": version, "updated_at": datetime.now(UTC), "updated_by": who.subject[:200]}
    if old is None:
        conn.execute(prompt_labels.insert().values(name=name, label=label, **values))
    else:
        conn.execute(prompt_labels.update().where(prompt_labels.c.name == name,
                                                  prompt_labels.c.label == label).values(**values))
    record_by(conn, who, "prompt.label", tenant=None, target=f"{name}@{label}",
              details={"from": old, "to": version, **details})
    bump_generation(conn)
    return old


def passing_run(conn: sa.Connection, ref: str) -> str | None:
    """The newest passing evaluation run that exercised `ref` ("NAME@VERSION"), if any."""
    return newest_passing_run(conn, lambda target: ref in target.get("prompt_versions", ()))


def newest_passing_run(conn: sa.Connection, exercised: Callable[[dict[str, Any]], bool]) -> str | None:
    """The newest passing evaluation (or red-team) run whose recorded target `exercised` accepts."""
    rows = conn.execute(sa.select(eval_runs.c.id, eval_runs.c.target).where(eval_runs.c.passed.is_(True))
                        .order_by(eval_runs.c.started_at.desc()).limit(1000)).all()
    for run_id, target in rows:
        if exercised(target or {}):
            return str(run_id)
    return None


def _version(row: Any) -> Version:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return Version(row.name, row.version, msgspec.convert(row.template, Template), row.digest, created,
                   row.created_by)


def parse_template(data: Any) -> Template:
    try:
        template = msgspec.convert(data, Template)
    except msgspec.ValidationError as e:
        raise PromptError(f"invalid prompt template: {e}") from None
    template.check()
    return template
