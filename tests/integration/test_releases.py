"""Progressive releases on SQLite and PostgreSQL: what a release may point at, sticky arms, and the
controller's decisions (rollback, advance, promote behind an evaluation gate, pause), made once
when two replicas run it, each with its audit record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa

from ostiary.config.load import parse
from ostiary.llmops.prompts import Prompts, parse_template
from ostiary.llmops.releases import NewRelease, ReleaseError, Releases
from ostiary.store import Store
from ostiary.store.events import CLI
from ostiary.store.schema import admin_events, eval_runs, release_pointers

CONFIG = parse(b"""
routes:
  - name: chat
    deployments: [{provider: mock, model: m-1, id: old}]
  - name: chat-next
    deployments: [{provider: mock, model: m-2, id: new}]
guardrails:
  policies:
    loose: {input: [{scanner: secrets, action: flag}]}
    strict: {input: [{scanner: secrets, action: block}]}
  routes: {chat: loose}
""", source="test").config


def _releases(store: Store) -> Releases:
    prompts = Prompts(store, ["production"])
    return Releases(store, prompts, lambda: CONFIG)


def _new(kind: str, target: str, candidate: object, start: bool = True, **spec: object) -> NewRelease:
    base = {"steps": [10, 50], "interval_seconds": 60, "min_requests": 50, "stickiness": "request"}
    return msgspec.convert({"kind": kind, "target": target, "candidate": candidate, "start": start,
                            "spec": {**base, **spec}}, NewRelease)


def _traffic(rel: Releases, rid: str, arm: str, calls: int, errors: int = 0, ms: float = 100) -> None:
    for i in range(calls):
        rel.observe(rid, arm, 500 if i < errors else 200, ms / 1000, 0.001, False)


def _ticks(rel: Releases, now: datetime | None = None) -> list[tuple[str, str]]:
    return [(d.release.id, d.action) for d in rel.tick(now)]


def _events(store: Store, prefix: str = "release.") -> list[tuple[str, dict]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(admin_events.c.action, admin_events.c.details)
                            .where(admin_events.c.action.like(prefix + "%")).order_by(admin_events.c.id)).all()
    return [(a, d) for a, d in rows]


def test_a_release_points_only_at_what_exists(store: Store) -> None:
    rel = _releases(store)
    with pytest.raises(ReleaseError, match="no route 'nope'"):
        rel.create(_new("route", "nope", "chat-next"), CLI)
    with pytest.raises(ReleaseError, match="no route 'gone'.*known: chat, chat-next"):
        rel.create(_new("route", "chat", "gone"), CLI)
    with pytest.raises(ReleaseError, match="no guardrail policy 'x'"):
        rel.create(_new("guardrails", "chat", "x", stickiness="user"), CLI)
    with pytest.raises(ReleaseError, match="already points at"):
        rel.create(_new("guardrails", "chat", "loose", stickiness="user"), CLI)
    with pytest.raises(ReleaseError, match="sticky per user"):  # a client must not pick its policy
        rel.create(_new("guardrails", "chat", "strict", stickiness="session"), CLI)
    with pytest.raises(ReleaseError, match="no label 'production'"):
        rel.create(_new("prompt", "helpdesk@production", 2), CLI)
    made = rel.create(_new("route", "chat", "chat-next"), CLI)
    assert (made.baseline, made.candidate, made.state, made.percent) == ("chat", "chat-next", "running", 10)
    with pytest.raises(ReleaseError, match="already has an active release") as e:
        rel.create(_new("route", "chat", "chat-next"), CLI)
    assert e.value.conflict
    with pytest.raises(msgspec.ValidationError, match="steps"):
        _new("route", "chat", "chat-next", steps=[50, 10])


def test_arms_are_sticky_and_sized_by_the_step(store: Store) -> None:
    rel = _releases(store)
    made = rel.create(_new("route", "chat", "chat-next", stickiness="user"), CLI)
    users = [f"acme/user-{i}" for i in range(4000)]
    at_10 = {u for u in users if made.arm(u) == "candidate"}
    assert 300 < len(at_10) < 500  # ~10 %
    assert all(made.arm(u) == made.arm(u) for u in users[:100])  # the same answer every time
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE releases SET step = 1"))
    at_50 = {u for u in users if rel.get(made.id).arm(u) == "candidate"}
    assert at_10 < at_50 and 1800 < len(at_50) < 2200  # everyone on the candidate at 10 % still is at 50 %


def test_an_error_spike_rolls_back_at_once_on_one_replica(store: Store) -> None:
    one, two = _releases(store), _releases(store)  # two replicas on one store
    made = one.create(_new("route", "chat", "chat-next"), CLI)
    two.load()
    _traffic(one, made.id, "baseline", 100)
    _traffic(two, made.id, "baseline", 100)
    _traffic(two, made.id, "candidate", 30, errors=12)
    one.flush()
    two.flush()
    decided = _ticks(one) + _ticks(two)
    assert decided == [(made.id, "rollback")]  # the other replica found nothing left to decide
    after = one.get(made.id)
    assert after.state == "rolled_back" and "error_rate" in (after.reason or "")
    one.load()
    assert one.snapshot.active == {}  # every replica reading the store now serves the baseline
    (action, details), = _events(store)[1:]
    assert action == "release.rollback"
    assert details["candidate"]["calls"] == 30 and details["candidate"]["errors"] == 12
    assert details["baseline"]["calls"] == 200 and details["outcome"] == "fail"
    assert [c["metric"] for c in details["checks"] if c["result"] == "fail"] == ["error_rate"]
    # A new release of the same pointer may start once this one has ended.
    assert one.create(_new("route", "chat", "chat-next"), CLI).state == "running"


def test_steps_advance_then_promotion_waits_for_an_evaluation_gate(store: Store) -> None:
    rel = _releases(store)
    made = rel.create(_new("guardrails", "chat", "strict", stickiness="user"), CLI)
    _traffic(rel, made.id, "baseline", 200)
    _traffic(rel, made.id, "candidate", 100)
    assert _ticks(rel) == []  # passing, but not yet a minute at the step
    later = datetime.now(UTC) + timedelta(seconds=61)
    assert _ticks(rel, later) == [(made.id, "advance")]
    assert rel.get(made.id).percent == 50
    assert _ticks(rel, later + timedelta(seconds=61)) == [(made.id, "pause")]  # no evaluation run of the candidate
    paused = rel.get(made.id)
    assert paused.state == "paused" and "passing evaluation run" in (paused.reason or "")
    with pytest.raises(ReleaseError) as refused:
        rel.act(made.id, "promote", CLI)
    assert refused.value.gate
    with store.engine.begin() as conn:  # what `ostiary eval run` stores for a suite with target release
        conn.execute(eval_runs.insert().values(
            id="eval-1", suite="s", started_at=datetime.now(UTC), passed=True, dataset_sha256="0" * 64, summary={},
            created_by="cli", target={"route": "chat", "releases": {made.id: ["candidate"]}}))
    promoted = rel.act(made.id, "promote", CLI)
    assert promoted.state == "promoted"
    rel.load()
    assert rel.snapshot.pointers == {"guardrails:chat": "strict"} and rel.snapshot.active == {}
    assert [a for a, _ in _events(store)] == ["release.create", "release.advance", "release.pause",
                                              "release.promote"]
    assert _events(store)[-1][1]["gate"] == "eval-1"
    # The next release of this pointer starts from the promoted value.
    with pytest.raises(ReleaseError, match="already points at"):
        rel.create(_new("guardrails", "chat", "strict", stickiness="user"), CLI)
    assert rel.create(_new("guardrails", "chat", "loose", stickiness="user"), CLI).baseline == "strict"


def test_a_prompt_release_moves_the_label_when_promoted(store: Store) -> None:
    rel = _releases(store)
    prompts = rel.prompts
    for text in ("one", "two"):
        prompts.create("helpdesk", parse_template({"messages": [{"role": "system", "content": text}]}), CLI)
    prompts.label("helpdesk", "production", 1, CLI, force=True)
    with pytest.raises(ReleaseError, match="version number"):
        rel.create(_new("prompt", "helpdesk@production", "\u00b2"), CLI)
    made = rel.create(_new("prompt", "helpdesk@production", 2, steps=[50], auto_promote=True), CLI)
    assert (made.baseline, made.candidate) == ("1", "2")
    with store.engine.begin() as conn:
        conn.execute(eval_runs.insert().values(
            id="eval-2", suite="s", started_at=datetime.now(UTC), passed=True, dataset_sha256="0" * 64, summary={},
            created_by="cli", target={"route": "chat", "prompt_versions": ["helpdesk@2"]}))
    _traffic(rel, made.id, "baseline", 100)
    _traffic(rel, made.id, "candidate", 100)
    assert _ticks(rel, datetime.now(UTC) + timedelta(seconds=61)) == [(made.id, "promote")]
    prompts.load()
    assert prompts.snapshot.labels[("helpdesk", "production")] == 2
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(release_pointers)).scalar() == 0
    moves = _events(store, "prompt.label")
    assert moves[-1][1]["release"] == made.id and moves[-1][1]["to"] == 2


def test_an_inconclusive_step_pauses_for_a_person_who_decides(store: Store) -> None:
    rel = _releases(store)
    made = rel.create(_new("route", "chat", "chat-next"), CLI)
    _traffic(rel, made.id, "baseline", 100)
    _traffic(rel, made.id, "candidate", 5)  # too little traffic to tell
    assert _ticks(rel, datetime.now(UTC) + timedelta(seconds=100)) == []
    paused, = rel.tick(datetime.now(UTC) + timedelta(seconds=241))
    event = paused.event()  # what the webhook is told: the state as written
    assert (event["type"], event["release"], event["state"], event["percent"]) == ("release.pause", made.id, "paused",
                                                                                   10.0)
    assert "inconclusive" in event["reason"]
    assert "inconclusive" in (rel.get(made.id).reason or "")
    assert rel.act(made.id, "resume", CLI).state == "running"
    with pytest.raises(ReleaseError, match="cannot start"):
        rel.act(made.id, "start", CLI)
    done = rel.act(made.id, "rollback", CLI, reason="not worth it")
    assert (done.state, done.reason) == ("rolled_back", "not worth it")
    with pytest.raises(ReleaseError) as missing:
        rel.act("rel-nope", "pause", CLI)
    assert missing.value.missing


def test_counts_of_a_finished_release_are_not_overwritten(store: Store, tmp_path: Path) -> None:
    rel = _releases(store)
    made = rel.create(_new("route", "chat", "chat-next"), CLI)
    _traffic(rel, made.id, "candidate", 40)
    rel.act(made.id, "rollback", CLI)
    rel.flush()
    _traffic(rel, made.id, "candidate", 3)  # a long stream that ended after the rollback
    rel.score(made.id, "candidate", 1.0)
    rel.flush()
    assert rel.stats(made.id)[1].calls == 40


def test_a_paused_release_is_still_rolled_back_on_failure(store: Store) -> None:
    rel = _releases(store)
    made = rel.create(_new("route", "chat", "chat-next"), CLI)
    rel.act(made.id, "pause", CLI)
    _traffic(rel, made.id, "baseline", 100)
    _traffic(rel, made.id, "candidate", 100)
    assert _ticks(rel, datetime.now(UTC) + timedelta(hours=1)) == []  # passing, but a person moves it on
    _traffic(rel, made.id, "candidate", 40, errors=40)
    assert _ticks(rel) == [(made.id, "rollback")]


def test_a_decision_overtaken_by_another_is_refused_not_lost(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    rel = _releases(store)
    made = rel.create(_new("route", "chat", "chat-next"), CLI)
    stale = rel.get(made.id)
    rel.act(made.id, "pause", CLI)  # e.g. the controller, on another replica, in between
    monkeypatch.setattr(rel, "get", lambda rid: stale)  # the admin's read came before it
    with pytest.raises(ReleaseError, match="changed while") as e:
        rel.act(made.id, "rollback", CLI)
    assert e.value.conflict
    monkeypatch.undo()
    assert rel.get(made.id).state == "paused"


def test_feedback_is_clamped_to_the_release_range(store: Store) -> None:
    rel = _releases(store)
    made = rel.create(_new("route", "chat", "chat-next", analysis={"feedback_drop": 0.1, "feedback_range": [0, 1]}),
                      CLI)
    rel.score(made.id, "candidate", -1e6)
    rel.score(made.id, "candidate", 1.0)
    rel.flush()
    cand = rel.stats(made.id)[1]
    assert (cand.feedback_n, cand.feedback_sum) == (2, 1.0)
