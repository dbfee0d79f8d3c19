"""Progressive releases: one pointer changed for a growing share of traffic, analysed, then promoted
or rolled back.

A release changes one pointer: a prompt label (`kind: prompt`, target `NAME@LABEL`, candidate a
version), the deployments serving a route (`kind: route`, candidate another route of the config,
whose deployments, strategy and retries then serve the target's name), or the guardrail policy bound
to a route (`kind: guardrails`, candidate a policy of the config). It goes through `steps` (shares
of traffic, e.g. 1, 5, 25, 50 %); the share a unit (user, session or request) falls in is a hash of
the release and the unit, so a unit stays on its arm as the share grows.

Every replica counts its calls' outcomes per arm (llmops/analysis.py) and runs the controller: at
each tick it compares the arms of every running release. A failed check rolls back at once; after
`interval_seconds` at a step with every check passed the release moves to the next step, or after
the last step is promoted (which needs a passing evaluation run of the candidate, as a protected
prompt label does); a step still inconclusive after `max_step_seconds` pauses for a person, who
resumes, promotes or rolls back through the admin API or the CLI. Each change is a compare-and-set
on the release's revision in one transaction with its administrative event (the decision, its
checks and both arms' figures), so only one replica makes a decision, and it is in the audit trail.
Replicas see the new state at their next directory refresh (`identity.refresh_seconds`): a rollback
is one row, read atomically, so no replica serves a mix of old and new pointers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

import msgspec
import sqlalchemy as sa

from ostiary.config.schema import Config
from ostiary.llmops.analysis import Analysis, ArmStats, Check, Result, judge
from ostiary.llmops.prompts import (
    DEFAULT_LABEL,
    VERSION,
    Prompts,
    move_label,
    newest_passing_run,
    passing_run,
)
from ostiary.store import Store, bump_generation
from ostiary.store.events import Actor, record_by
from ostiary.store.schema import release_pointers, release_stats, releases

log = logging.getLogger("ostiary.releases")
Kind = Literal["prompt", "route", "guardrails"]
Arm = Literal["baseline", "candidate"]
ACTIVE = ("pending", "running", "paused")
CONTROLLER = Actor("release-controller", None)


class ReleaseError(ValueError):
    def __init__(self, message: str, *, param: str | None = None, missing: bool = False, conflict: bool = False,
                 gate: bool = False) -> None:
        super().__init__(message)
        self.param, self.missing, self.conflict, self.gate = param, missing, conflict, gate


class Spec(msgspec.Struct, forbid_unknown_fields=True):
    """How a release proceeds."""

    steps: list[float] = msgspec.field(default_factory=lambda: [1.0, 5.0, 25.0, 50.0])
    stickiness: Literal["user", "session", "request"] = "user"
    interval_seconds: float = 300.0  # at least this long at each step, every check passed, before the next
    max_step_seconds: float | None = None  # still inconclusive after this long: pause (default 4 x interval)
    min_requests: int = 100  # calls per arm before the latency, cost and passing rate checks decide
    analysis: Analysis = msgspec.field(default_factory=Analysis)
    auto_promote: bool = True  # false: after the last step, pause for a person to promote

    def __post_init__(self) -> None:
        if not self.steps or any(not 0 < s <= 100 for s in self.steps) or self.steps != sorted(set(self.steps)):
            raise ValueError("steps must be increasing percentages above 0 and at most 100, e.g. [1, 5, 25, 50]")
        if not 0 < self.interval_seconds <= 30 * 86400:
            raise ValueError("interval_seconds must be above 0 and at most 30 days")
        if self.max_step_seconds is not None and self.max_step_seconds < self.interval_seconds:
            raise ValueError("max_step_seconds must be at least interval_seconds")
        if not 1 <= self.min_requests <= 10_000_000:
            raise ValueError("min_requests must be between 1 and 10,000,000")

    @property
    def patience(self) -> float:
        return self.max_step_seconds if self.max_step_seconds is not None else 4 * self.interval_seconds


class NewRelease(msgspec.Struct, forbid_unknown_fields=True):
    kind: Kind
    target: str  # NAME@LABEL (prompt) or a route name (route, guardrails)
    candidate: str | int  # a version (prompt), a route (route), a policy (guardrails)
    spec: Spec = msgspec.field(default_factory=Spec)
    start: bool = False


@dataclass(frozen=True, slots=True)
class Release:
    id: str
    kind: Kind
    target: str
    baseline: str | None
    candidate: str
    spec: Spec
    state: str
    step: int
    step_started_at: datetime | None
    reason: str | None
    revision: int
    created_at: datetime
    created_by: str
    updated_at: datetime

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.target}"

    @property
    def percent(self) -> float:
        return self.spec.steps[self.step] if self.state in ("running", "paused") else 0.0

    def arm(self, unit: str) -> Arm:
        """The unit's arm: the same for a unit at every step, and a unit on the candidate stays there."""
        digest = hashlib.blake2b(f"{self.id}/{unit}".encode(), digest_size=8).digest()
        return "candidate" if int.from_bytes(digest) % 10_000 < self.percent * 100 else "baseline"

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "target": self.target, "baseline": self.baseline,
                "candidate": self.candidate, "state": self.state, "step": self.step, "percent": self.percent,
                "step_started_at": _iso(self.step_started_at), "reason": self.reason, "revision": self.revision,
                "spec": msgspec.to_builtins(self.spec), "created_at": _iso(self.created_at),
                "created_by": self.created_by, "updated_at": _iso(self.updated_at)}


class Decision(NamedTuple):
    """What the controller did to a release, as written: what its webhook says."""

    release: Release  # as it was before
    action: str  # rollback, advance, promote, pause
    state: str  # after
    percent: float  # after
    reason: str

    def event(self) -> dict[str, Any]:
        r = self.release
        return {"type": f"release.{self.action}", "release": r.id, "kind": r.kind, "target": r.target,
                "baseline": r.baseline, "candidate": r.candidate, "state": self.state, "percent": self.percent,
                "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Snapshot:
    active: dict[str, Release]  # by pointer key ("route:chat"), pending, running or paused
    pointers: dict[str, str]  # route and guardrail pointers moved by promoted releases
    by_id: dict[str, Release] = field(init=False)  # the active ones again, by release id

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {r.id: r for r in self.active.values()})

    def __bool__(self) -> bool:
        return bool(self.active or self.pointers)


def prompt_key(ref: Any) -> str | None:
    """The pointer a prompt reference goes through ("prompt:NAME@LABEL"), None for a fixed version."""
    if not isinstance(ref, str):
        return None
    name, _, which = ref.partition("@")
    which = which or DEFAULT_LABEL
    return None if VERSION.fullmatch(which) else f"prompt:{name}@{which}"


class Releases:
    """The releases in the store, the snapshot the request path reads, this replica's counts, the controller."""

    def __init__(self, store: Store, prompts: Prompts, config: Callable[[], Config] | None) -> None:
        self.store = store
        self.prompts = prompts
        self.config = config
        self.replica = os.urandom(8).hex()
        self.snapshot = Snapshot({}, {})
        self._stats: dict[tuple[str, str], ArmStats] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._lock = threading.Lock()  # counts are written on the loop and flushed from a thread
        self._flushing = threading.Lock()

    # -- reading -----------------------------------------------------------------------------------

    def load(self) -> None:
        with self.store.engine.connect() as conn:
            active = [_release(r) for r in conn.execute(sa.select(releases).where(releases.c.state.in_(ACTIVE)))]
            pointers = {r.key: r.value for r in conn.execute(sa.select(release_pointers))}
        self.snapshot = Snapshot({r.key: r for r in active}, pointers)

    def get(self, release_id: str) -> Release:
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(releases).where(releases.c.id == release_id)).first()
        if row is None:
            raise ReleaseError(f"no release {release_id!r}", param="id", missing=True)
        return _release(row)

    def recent(self, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        q = sa.select(releases).order_by(releases.c.created_at.desc()).limit(limit)
        if state is not None:
            q = q.where(releases.c.state == state)
        with self.store.engine.connect() as conn:
            return [_release(r).public() for r in conn.execute(q)]

    def report(self, release_id: str) -> dict[str, Any]:
        """The release, both arms' figures and the checks as they stand now."""
        rel = self.get(release_id)
        self.flush()
        return {**rel.public(), "analysis": self._figures(rel)[2]}

    def stats(self, release_id: str) -> tuple[ArmStats, ArmStats]:
        arms = {"baseline": ArmStats(), "candidate": ArmStats()}
        with self.store.engine.connect() as conn:
            for row in conn.execute(sa.select(release_stats.c.arm, release_stats.c.data)
                                    .where(release_stats.c.release_id == release_id)):
                if row.arm in arms:
                    arms[row.arm].add(ArmStats.from_json(row.data))
        return arms["baseline"], arms["candidate"]

    # -- changes -----------------------------------------------------------------------------------

    def create(self, new: NewRelease, who: Actor) -> Release:
        kind, target = new.kind, new.target.strip()
        if kind == "guardrails" and new.spec.stickiness != "user":
            raise ReleaseError("a guardrails release is sticky per user: with session or request stickiness a "
                               "client could pick the policy it is checked by", param="spec.stickiness")
        baseline, candidate = self._pointer(kind, target, new.candidate)
        rid = "rel-" + secrets.token_hex(6)
        now = datetime.now(UTC)
        key = f"{kind}:{target}"
        state = "running" if new.start else "pending"
        spec = msgspec.to_builtins(new.spec)
        with self.store.engine.begin() as conn:
            if conn.execute(sa.select(releases.c.id).where(releases.c.active_key == key)).first() is not None:
                raise ReleaseError(f"{key} already has an active release; finish it first", param="target",
                                   conflict=True)
            conn.execute(releases.insert().values(
                id=rid, kind=kind, target=target, baseline=baseline, candidate=candidate, spec=spec, state=state,
                step=0, step_started_at=now if new.start else None, reason=None, active_key=key, revision=1,
                created_at=now, created_by=who.subject[:200], updated_at=now))
            record_by(conn, who, "release.create", tenant=None, target=rid, details={
                "kind": kind, "pointer": target, "baseline": baseline, "candidate": candidate, "spec": spec,
                "state": state})
            bump_generation(conn)
        self.load()
        return self.get(rid)

    def _pointer(self, kind: Kind, target: str, candidate: str | int) -> tuple[str | None, str]:
        """The pointer's current value (the baseline) and the candidate, checked against what exists."""
        if self.config is None:
            raise ReleaseError("creating a release needs the gateway's configuration")
        cfg = self.config()
        routes = {r.name for r in cfg.routes}
        baseline: str | None
        if kind == "prompt":
            name, sep, label = target.partition("@")
            if not sep or not label or label.isdigit():
                raise ReleaseError("a prompt release's target is NAME@LABEL", param="target")
            self.prompts.load()
            snap = self.prompts.snapshot
            current = snap.labels.get((name, label))
            if current is None:
                raise ReleaseError(f"prompt {name!r} has no label {label!r} to release against (point it at the "
                                   "current version first)", param="target", missing=True)
            if isinstance(candidate, bool) or not VERSION.fullmatch(str(candidate)):
                raise ReleaseError("a prompt release's candidate is a version number", param="candidate")
            if (name, int(candidate)) not in snap.versions:
                raise ReleaseError(f"prompt {name!r} has no version {candidate}", param="candidate", missing=True)
            baseline, cand = str(current), str(int(candidate))
        else:
            if target not in routes:
                raise ReleaseError(f"no route {target!r} in the configuration", param="target", missing=True)
            cand = str(candidate)
            known = routes if kind == "route" else set(cfg.guardrails.policies)
            if cand not in known:
                what = "route" if kind == "route" else "guardrail policy"
                raise ReleaseError(f"no {what} {cand!r} in the configuration (known: {', '.join(sorted(known))})",
                                   param="candidate", missing=True)
            self.load()
            fallback = target if kind == "route" else cfg.guardrails.routes.get(target)
            baseline = self.snapshot.pointers.get(f"{kind}:{target}", fallback)
        if cand == baseline:
            raise ReleaseError(f"the candidate {cand!r} is what {target} already points at", param="candidate")
        return baseline, cand

    def act(self, release_id: str, action: str, who: Actor, force: bool = False, reason: str | None = None) -> Release:
        """A person's decision: start, pause, resume, promote (`force`: without a passing evaluation
        run, which the record says) or roll back."""
        rel = self.get(release_id)
        allowed = {"start": ("pending",), "pause": ("running",), "resume": ("paused",),
                   "promote": ACTIVE, "rollback": ACTIVE}
        if action not in allowed:
            raise ReleaseError(f"unknown action {action!r} (start, pause, resume, promote, rollback)", param="action")
        if rel.state not in allowed[action]:
            raise ReleaseError(f"release {rel.id} is {rel.state}: it cannot {action}", conflict=True)
        self.flush()
        _, _, snapshot = self._figures(rel)
        note = reason or f"{action} by {who.subject}"
        if action == "promote":
            done = self._promote(rel, who, snapshot, note, force)
        elif action == "rollback":
            done = self._finish(rel, "rolled_back", who, "release.rollback", note, snapshot)
        else:
            state = {"start": "running", "pause": "paused", "resume": "running"}[action]
            # Starting or resuming starts the step's clock again: the person saw the figures so far.
            done = self._change(rel, who, f"release.{action}", note, snapshot, state=state,
                                step_started_at=datetime.now(UTC) if state == "running" else rel.step_started_at)
        if not done:
            raise ReleaseError(f"release {rel.id} changed while this decision was made (the controller or another "
                               "admin acted first); read it again and decide", conflict=True)
        return self.get(release_id)

    def _figures(self, rel: Release) -> tuple[Result, list[Check], dict[str, Any]]:
        """The analysis now, and the figures a decision's event keeps."""
        base, cand = self.stats(rel.id)
        outcome, checks = judge(rel.spec.analysis, base, cand, rel.spec.min_requests)
        return outcome, checks, {"step": rel.step, "percent": rel.percent, "outcome": outcome,
                                 "checks": [c.public() for c in checks], "baseline": base.summary(),
                                 "candidate": cand.summary()}

    def _promote(self, rel: Release, who: Actor, snapshot: dict[str, Any], note: str, force: bool) -> bool:
        with self.store.engine.begin() as conn:
            gate = self._gate(conn, rel)
            if gate is None and not force:
                raise ReleaseError(f"release {rel.id} needs a passing evaluation run of its candidate first "
                                   f"({self._gate_hint(rel)}), or an admin's force", param="force", gate=True)
            if not self._cas(conn, rel, state="promoted", active_key=None, reason=note):
                return False
            if rel.kind == "prompt":
                name, _, label = rel.target.partition("@")
                move_label(conn, name, label, int(rel.candidate), who, {"release": rel.id, "gate": gate})
            else:
                _set_pointer(conn, rel)
            record_by(conn, who, "release.promote", tenant=None, target=rel.id, details={
                **_about(rel), "reason": note, "gate": gate, "forced": force and gate is None, **snapshot})
            bump_generation(conn)
        self.load()
        self.prompts.load()
        return True

    def _gate(self, conn: sa.Connection, rel: Release) -> str | None:
        """The passing evaluation run that clears the candidate: for a prompt, one that rendered the
        candidate version; otherwise one whose every call was sent to this release's candidate arm."""
        if rel.kind == "prompt":
            return passing_run(conn, f"{rel.target.partition('@')[0]}@{rel.candidate}")
        return newest_passing_run(conn, lambda target: (target.get("releases") or {}).get(rel.id) == ["candidate"])

    @staticmethod
    def _gate_hint(rel: Release) -> str:
        if rel.kind == "prompt":
            return f"ostiary eval run with target prompt {rel.target.partition('@')[0]}@{rel.candidate}"
        return f"ostiary eval run with target release {rel.id} (an admin key sends its calls to the candidate)"

    def _finish(self, rel: Release, state: str, who: Actor, action: str, note: str, snapshot: dict[str, Any]) -> bool:
        return self._change(rel, who, action, note, snapshot, state=state, active_key=None)

    def _change(self, rel: Release, who: Actor, action: str, note: str, snapshot: dict[str, Any],
                **values: Any) -> bool:
        with self.store.engine.begin() as conn:
            if not self._cas(conn, rel, reason=note, **values):
                return False
            record_by(conn, who, action, tenant=None, target=rel.id, details={**_about(rel), "reason": note,
                                                                                 **snapshot})
            bump_generation(conn)
        self.load()
        return True

    @staticmethod
    def _cas(conn: sa.Connection, rel: Release, **values: Any) -> bool:
        """Change the release if no one else has since it was read; False if someone has."""
        done = conn.execute(releases.update().where(releases.c.id == rel.id, releases.c.revision == rel.revision)
                            .values(revision=rel.revision + 1, updated_at=datetime.now(UTC), **values))
        return done.rowcount == 1

    # -- counting ----------------------------------------------------------------------------------

    def observe(self, release_id: str, arm: str, status: int, seconds: float, cost: float | None,
                guarded: bool) -> None:
        self._count(release_id, arm, lambda stats: stats.observe(status, seconds, cost, guarded))

    def score(self, release_id: str, arm: str, value: float) -> None:
        """Count a feedback score, clamped to the release's `feedback_range` (one loud score must
        not outweigh many)."""
        rel = self.snapshot.by_id.get(release_id)
        if rel is not None:
            low, high = rel.spec.analysis.feedback_range
            self._count(release_id, arm, lambda stats: stats.score(min(max(value, low), high)))

    def _count(self, release_id: str, arm: str, update: Callable[[ArmStats], None]) -> None:
        """Update an arm's counts and mark them to be flushed, for an active release only: once it
        has ended its counts are final (a late call or score must not start them again from zero)."""
        if release_id not in self.snapshot.by_id:
            return
        key = (release_id, arm)
        with self._lock:
            update(self._stats.setdefault(key, ArmStats()))
            self._dirty.add(key)

    def flush(self) -> None:
        """Store this replica's cumulative counts of the arms that changed (its own rows). One flush
        at a time: an older snapshot of the counts must never be written over a newer one."""
        with self._flushing:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            rows = [(rid, arm, self._stats[(rid, arm)].to_json()) for rid, arm in dirty]
        if not rows:
            return
        now = datetime.now(UTC)
        try:
            with self.store.engine.begin() as conn:
                for rid, arm, data in rows:
                    where = (release_stats.c.release_id == rid, release_stats.c.replica == self.replica,
                             release_stats.c.arm == arm)
                    if conn.execute(release_stats.update().where(*where).values(data=data, updated_at=now)).rowcount == 0:
                        conn.execute(release_stats.insert().values(release_id=rid, replica=self.replica, arm=arm,
                                                                   data=data, updated_at=now))
        except Exception:
            with self._lock:
                self._dirty |= dirty  # written next time
            raise
        with self._lock:
            # Releases that ended: their counts are stored, nothing will count for them again.
            for key in [k for k in self._stats if k[0] not in self.snapshot.by_id]:
                if key not in self._dirty:
                    del self._stats[key]

    # -- the controller ----------------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> list[Decision]:
        """Decide every running (or paused) release whose figures call for it; the decisions made."""
        now = now or datetime.now(UTC)
        self.flush()
        with self.store.engine.connect() as conn:
            watched = [_release(r) for r in conn.execute(sa.select(releases).where(
                releases.c.state.in_(("running", "paused"))))]
        made = []
        for rel in watched:
            try:
                decision = self._decide(rel, now)
            except Exception:  # one release's trouble must not stop the decisions on the others
                log.exception("release %s: the analysis failed", rel.id)
                continue
            if decision is not None:
                made.append(decision)
        return made

    def _decide(self, rel: Release, now: datetime) -> Decision | None:
        spec = rel.spec
        outcome, checks, snapshot = self._figures(rel)
        started = rel.step_started_at or now
        at_step = (now - started).total_seconds()

        def made(action: str, state: str, reason: str, done: bool, step: int = rel.step) -> Decision | None:
            return Decision(rel, action, state, spec.steps[step], reason) if done else None

        if outcome == "fail":
            why = f"analysis failed at {rel.percent:g}%: {', '.join(c.metric for c in checks if c.result == 'fail')}"
            return made("rollback", "rolled_back", why,
                        self._finish(rel, "rolled_back", CONTROLLER, "release.rollback", why, snapshot))
        if rel.state == "paused":  # still serving its share: watched for failure, moved on by a person only
            return None
        if outcome == "pass" and at_step >= spec.interval_seconds:
            if rel.step + 1 < len(spec.steps):
                why = f"passed at {rel.percent:g}%, on to {spec.steps[rel.step + 1]:g}%"
                return made("advance", "running", why, self._change(
                    rel, CONTROLLER, "release.advance", why, snapshot, step=rel.step + 1, step_started_at=now),
                    rel.step + 1)
            why = f"passed every step up to {rel.percent:g}%"
            if spec.auto_promote:
                try:
                    return made("promote", "promoted", why, self._promote(rel, CONTROLLER, snapshot, why, force=False))
                except ReleaseError as e:
                    why = str(e)
            else:
                why += "; auto_promote is off: waiting for a person to promote"
            return made("pause", "paused", why, self._change(rel, CONTROLLER, "release.pause", why, snapshot,
                                                              state="paused"))
        if at_step >= spec.patience:
            open_checks = _open(checks) or f"fewer than {spec.min_requests} calls per arm"
            why = f"inconclusive after {at_step:.0f} s at {rel.percent:g}% ({open_checks}): waiting for a person"
            return made("pause", "paused", why, self._change(rel, CONTROLLER, "release.pause", why, snapshot,
                                                              state="paused"))
        return None


def _open(checks: list[Check]) -> str:
    return ", ".join(c.metric for c in checks if c.result == "inconclusive")


def _about(rel: Release) -> dict[str, Any]:
    return {"kind": rel.kind, "pointer": rel.target, "baseline": rel.baseline, "candidate": rel.candidate}


def _set_pointer(conn: sa.Connection, rel: Release) -> None:
    values = {"value": rel.candidate, "release_id": rel.id, "updated_at": datetime.now(UTC)}
    if conn.execute(release_pointers.update().where(release_pointers.c.key == rel.key).values(**values)).rowcount == 0:
        conn.execute(release_pointers.insert().values(key=rel.key, **values))


def _release(row: Any) -> Release:
    return Release(row.id, row.kind, row.target, row.baseline, row.candidate, msgspec.convert(row.spec, Spec),
                   row.state, row.step, _utc(row.step_started_at), row.reason, row.revision, _utc(row.created_at),
                   row.created_by, _utc(row.updated_at))


def _utc(at: datetime | None) -> Any:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None
