"""The release and prompt stages: which value each pointer has for this call, then the prompt rendered.

`ReleaseStage` runs after identity (a sticky arm needs the principal). For the pointers a call goes
through (its route's deployments, its route's guardrail policy, the prompt label it names) it puts
in `call.decisions["pointers"]` what promoted releases moved and, for an active release, the
candidate's value when the call's unit falls in the candidate arm. The router, the limits, the
guardrails and the prompt stage read them. The arm is in the audit event (`decisions["release"]`)
and the `x-ostiary-release` header; when the call ends, its status, latency, cost and guardrail
actions are counted for the arm (llmops/analysis.py).

An admin may send `x-ostiary-release: ID=candidate` (or `=baseline`) to put a call on an arm, at any
state of the release: that is how an evaluation run exercises a candidate before and during its
rollout. Such calls are not counted in the analysis.

`PromptStage` renders `prompt` + `variables` into messages (llmops/prompts.py), with the label
pointer the release stage chose, and checks the rendered request.
"""

from __future__ import annotations

import time
from typing import Any

from ostiary.errors import Forbidden, GatewayError, InvalidRequest, NotFound
from ostiary.llmops.prompts import PromptError, Prompts
from ostiary.llmops.releases import Releases, Snapshot, prompt_key
from ostiary.pipeline.call import Call
from ostiary.pipeline.stage import Handler
from ostiary.wire.openai import check_chat

_ARMS = ("baseline", "candidate")
_ACTED = frozenset({"block", "redact", "flag", "escalate"})


class ReleaseStage:
    name = "releases"

    def __init__(self, releases: Releases) -> None:
        self.releases = releases

    async def __call__(self, call: Call, next: Handler) -> None:
        snap = self.releases.snapshot
        header = self.assign(call, snap) if snap or call.release_arms is not None else None
        if header is None:
            await next(call)
            return
        try:
            await next(call)
        except GatewayError as e:
            # A refusal (a guardrail block, say) tells its arm too: a red-team run of a candidate
            # policy is mostly refusals, and is the release's gate.
            e.headers = {**e.headers, "x-ostiary-release": header}
            raise

    def assign(self, call: Call, snap: Snapshot) -> str | None:
        """Set the call's pointers and arms; the x-ostiary-release header value, if any arm."""
        forced = _forced(call) if call.release_arms is not None else {}
        keys = [f"route:{call.model}", f"guardrails:{call.model}"]
        pkey = prompt_key(call.body.get("prompt")) if call.api == "openai.chat" else None
        if pkey is not None:
            keys.append(pkey)
        pointers: dict[str, str] = {}
        arms: list[dict[str, Any]] = []
        for key in keys:
            moved = snap.pointers.get(key)
            if moved is not None:
                pointers[key] = moved
            rel = snap.active.get(key)
            if rel is None:
                continue
            arm = forced.pop(rel.id, None)
            was_forced = arm is not None
            if arm is None:
                if rel.state == "pending":
                    continue
                arm = rel.arm(_unit(call, rel.spec.stickiness))
            if arm == "candidate":
                pointers[key] = rel.candidate
            arms.append({"id": rel.id, "arm": arm, "percent": rel.percent, "forced": was_forced})
        if forced:
            raise InvalidRequest(f"x-ostiary-release names {', '.join(sorted(forced))}, which is not an active "
                                 "release of this request's route or prompt.", param="x-ostiary-release")
        if pointers:
            call.decisions["pointers"] = pointers
        if not arms:
            return None
        call.decisions["release"] = arms
        header = ", ".join(f"{a['id']}={a['arm']}" for a in arms)
        call.response_headers.append((b"x-ostiary-release", header.encode()))
        if not all(a["forced"] for a in arms):
            call.on_end.append(self._count)
        return header

    def _count(self, call: Call, status: int) -> None:
        if status == 499:  # the client left: says nothing about the arm
            return
        seconds = time.perf_counter() - call.started
        cost = call.decisions.get("cost_usd")
        guarded = any(v.get("action") in _ACTED for v in call.decisions.get("guardrails") or ())
        for a in call.decisions["release"]:
            if not a["forced"]:
                self.releases.observe(a["id"], a["arm"], status, seconds,
                                      float(cost) if isinstance(cost, int | float) else None, guarded)


def _unit(call: Call, stickiness: str) -> str:
    if stickiness == "request":
        return call.id
    if stickiness == "session" and call.session:
        return "session:" + call.session
    p = call.principal
    return f"{p.tenant}/{p.user or p.subject}" if p is not None else "-/anonymous"


def _forced(call: Call) -> dict[str, str]:
    p = call.principal
    if p is None or p.role != "admin":
        raise Forbidden("Only an admin may choose a release arm (x-ostiary-release).", code="release_arm_forbidden")
    out: dict[str, str] = {}
    for part in (call.release_arms or "").split(","):
        rid, sep, arm = part.strip().partition("=")
        if not sep or not rid or arm not in _ARMS:
            raise InvalidRequest("x-ostiary-release must be ID=candidate or ID=baseline (comma-separated).",
                                 param="x-ostiary-release")
        out[rid] = arm
    return out


class PromptStage:
    name = "prompts"

    def __init__(self, prompts: Prompts, max_messages: int) -> None:
        self.prompts = prompts
        self.max_messages = max_messages

    async def __call__(self, call: Call, next: Handler) -> None:
        if call.api == "openai.chat" and ("prompt" in call.body or "variables" in call.body):
            self.render(call)
        await next(call)

    def render(self, call: Call) -> None:
        """Replace `prompt` and `variables` by the rendered template's messages (before the request's
        own) and the version's parameters the request did not set; then check the request."""
        body = call.body
        ref, variables = body.pop("prompt", None), body.pop("variables", None)
        if ref is None:
            raise InvalidRequest("variables are only allowed with prompt", param="variables")
        try:
            rendered = self.prompts.snapshot.render(ref, variables, call.decisions.get("pointers"))
        except PromptError as e:
            if e.missing:
                raise NotFound(str(e), param=e.param, code="prompt_not_found") from None
            raise InvalidRequest(str(e), param=e.param) from None
        extra = body.get("messages")
        if extra is not None and not isinstance(extra, list):
            raise InvalidRequest("messages must be a list", param="messages")
        body["messages"] = [*rendered.messages, *(extra or [])]
        for name, value in rendered.params.items():
            body.setdefault(name, value)
        check_chat(body, max_messages=self.max_messages)
        call.decisions["prompt"] = rendered.ref
        call.response_headers.append((b"x-ostiary-prompt", rendered.ref.encode()))  # what an eval run records
