"""The release and prompt stages: pointers a call goes through, arms, forced arms for admins only,
the prompt label a release moves, and the counts taken when the call ends."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from ostiary.errors import Forbidden, InvalidRequest, NotFound
from ostiary.identity.principal import ANONYMOUS
from ostiary.llmops.prompts import Snapshot as PromptSnapshot
from ostiary.llmops.prompts import Version, parse_template
from ostiary.llmops.releases import Release, Snapshot, Spec
from ostiary.llmops.stage import PromptStage, ReleaseStage
from ostiary.pipeline.call import Call

ADMIN = dataclasses.replace(ANONYMOUS, kind="key", subject="ost-admin", role="admin")


def _release(rid: str, kind: str, target: str, candidate: str, state: str = "running", step: float = 50,
             stickiness: str = "user") -> Release:
    now = datetime.now(UTC)
    spec = Spec(steps=[step], stickiness=stickiness)  # type: ignore[arg-type]
    return Release(rid, kind, target, None, candidate, spec, state, 0, now, None, 1, now, "cli", now)  # type: ignore[arg-type]


class FakeReleases:
    def __init__(self, *active: Release, pointers: dict[str, str] | None = None) -> None:
        self.snapshot = Snapshot({r.key: r for r in active}, pointers or {})
        self.counted: list[tuple[Any, ...]] = []

    def observe(self, *args: Any) -> None:
        self.counted.append(args)


def _call(body: dict[str, Any] | None = None, principal: Any = ANONYMOUS, rid: str = "r-1",
          arms: str | None = None) -> Call:
    call = Call(id=rid, api="openai.chat", body=body or {"model": "chat", "messages": []}, model="chat",
                stream=False, config_version="v")
    call.principal, call.release_arms = principal, arms
    return call


def _run(stage: Any, call: Call) -> list[Call]:
    seen: list[Call] = []

    async def next(c: Call) -> None:
        seen.append(c)

    asyncio.run(stage(call, next))
    return seen


def test_no_release_no_pointer_no_cost() -> None:
    call = _call()
    _run(ReleaseStage(FakeReleases()), call)  # type: ignore[arg-type]
    assert "pointers" not in call.decisions and "release" not in call.decisions and not call.on_end


def test_promoted_pointers_apply_to_everyone_and_arms_split_by_unit() -> None:
    rel = FakeReleases(_release("rel-a", "route", "chat", "chat-next", stickiness="request"),
                       pointers={"guardrails:chat": "strict"})
    stage = ReleaseStage(rel)  # type: ignore[arg-type]
    arms = []
    for i in range(200):
        call = _call(rid=f"r-{i}")
        _run(stage, call)
        assert call.decisions["pointers"]["guardrails:chat"] == "strict"
        arm = call.decisions["release"][0]["arm"]
        assert (call.decisions["pointers"].get("route:chat") == "chat-next") == (arm == "candidate")
        assert (b"x-ostiary-release", f"rel-a={arm}".encode()) in call.response_headers
        arms.append(arm)
        call.decisions["cost_usd"] = 0.5
        call.decisions["guardrails"] = [{"action": "flag"}]
        call.ended(200)
    assert 70 < arms.count("candidate") < 130
    assert len(rel.counted) == 200 and rel.counted[0][2] == 200 and rel.counted[0][4:] == (0.5, True)
    # A client that left says nothing about the arm.
    call = _call(rid="gone")
    _run(stage, call)
    call.ended(499)
    assert len(rel.counted) == 200


def test_a_pending_release_serves_only_forced_calls_and_only_admins_force() -> None:
    stage = ReleaseStage(FakeReleases(_release("rel-p", "route", "chat", "chat-next", state="pending")))  # type: ignore[arg-type]
    plain = _call()
    _run(stage, plain)
    assert "release" not in plain.decisions
    forced = _call(principal=ADMIN, arms="rel-p=candidate")
    _run(stage, forced)
    assert forced.decisions["pointers"] == {"route:chat": "chat-next"}
    assert forced.decisions["release"] == [{"id": "rel-p", "arm": "candidate", "percent": 0.0, "forced": True}]
    assert not forced.on_end  # eval traffic is not counted in the analysis
    with pytest.raises(Forbidden):
        _run(stage, _call(arms="rel-p=candidate"))
    with pytest.raises(InvalidRequest, match="ID=candidate"):
        _run(stage, _call(principal=ADMIN, arms="rel-p=treatment"))
    with pytest.raises(InvalidRequest, match="rel-x"):
        _run(stage, _call(principal=ADMIN, arms="rel-x=candidate"))


def _prompts() -> Any:
    now = datetime.now(UTC)
    versions = {("helpdesk", n): Version("helpdesk", n, parse_template({"messages": [
        {"role": "system", "content": f"v{n} for {{{{who}}}}"}], "variables": {"who": {}}}), f"d{n}", now, "cli")
        for n in (1, 2)}

    class Registry:
        snapshot = PromptSnapshot(versions, {("helpdesk", "production"): 1})

    return Registry()


def test_a_prompt_release_renders_the_candidate_version_on_its_arm() -> None:
    releases = ReleaseStage(FakeReleases(_release("rel-q", "prompt", "helpdesk@production", "2", step=100)))  # type: ignore[arg-type]
    prompts = PromptStage(_prompts(), max_messages=10)
    body = {"model": "chat", "prompt": "helpdesk", "variables": {"who": "Acme"},
            "messages": [{"role": "user", "content": "hi"}]}
    call = _call(body=body)
    _run(releases, call)
    _run(prompts, call)
    assert call.body["messages"][0] == {"role": "system", "content": "v2 for Acme"}
    assert call.decisions["prompt"] == "helpdesk@2" and call.decisions["release"][0]["arm"] == "candidate"
    # A fixed version goes through no pointer; the release does not apply.
    fixed = _call(body={**body, "prompt": "helpdesk@1", "variables": {"who": "B"}})
    _run(releases, fixed)
    _run(prompts, fixed)
    assert fixed.decisions["prompt"] == "helpdesk@1" and "release" not in fixed.decisions


def test_prompt_errors_are_client_errors() -> None:
    prompts = PromptStage(_prompts(), max_messages=10)
    with pytest.raises(NotFound, match="no label 'beta'"):
        _run(prompts, _call(body={"model": "chat", "prompt": "helpdesk@beta"}))
    with pytest.raises(InvalidRequest, match="needs the variable 'who'"):
        _run(prompts, _call(body={"model": "chat", "prompt": "helpdesk"}))
    with pytest.raises(InvalidRequest, match="only allowed with prompt"):
        _run(prompts, _call(body={"model": "chat", "variables": {}, "messages": []}))


def test_guardrails_follow_a_moved_binding_unless_its_policy_is_gone() -> None:
    from ostiary.config.schema import GuardrailPolicy, Guardrails
    from ostiary.guardrails.stage import GuardrailsStage

    stage = GuardrailsStage(Guardrails(policies={"loose": GuardrailPolicy(), "strict": GuardrailPolicy()},
                                       routes={"chat": "loose"}), "v1")
    call = _call()
    assert stage.policy_for(call).name == "loose"  # type: ignore[union-attr]
    call.decisions["pointers"] = {"guardrails:chat": "strict"}
    assert stage.policy_for(call).name == "strict"  # type: ignore[union-attr]
    call.decisions["pointers"] = {"guardrails:chat": "removed-since"}  # never "no policy": the binding holds
    assert stage.policy_for(call).name == "loose"  # type: ignore[union-attr]
