"""What an audit event holds: the envelope in clear, the personal part apart, long texts cut, the
answer's restored values back in their placeholders, streamed answers reassembled."""

from __future__ import annotations

import time

from ostiary.audit.event import MAX_TEXT, StreamedAnswer, answer_of, describe
from ostiary.identity.principal import Principal
from ostiary.pipeline.call import Attempt, Call


def _call(content: str = "hello") -> Call:
    call = Call(id="req-1", api="openai.chat", body={"model": "m", "messages": [{"role": "user", "content": content}]},
                model="m", stream=False, config_version="v7", client_ip="10.0.0.9")
    call.principal = Principal(kind="jwt", subject="sub-42", tenant="acme", user="alice", role="developer",
                               scopes=frozenset({"chat"}), models=None, clearance="internal")
    call.route, call.deployment, call.upstream_model = "m", "openai:m", "gpt-x-2026"
    call.attempts.append(Attempt("m", "openai:m", time.perf_counter(), 0.012, 429, "rate limited", "retry"))
    call.decisions["guardrails"] = [{"scanner": "pii", "policy": "std", "version": "v7", "action": "redact"}]
    call.decisions["cost_usd"] = 0.0021
    call.decisions["trace_id"] = "ab" * 16
    return call


def test_the_envelope_names_everything_but_the_person() -> None:
    p = describe(_call(), 200, None, {"content": "hi", "tool_calls": None}, time.perf_counter())
    e = p.envelope
    assert (e["request_id"], e["tenant"], e["route"], e["upstream_model"]) == ("req-1", "acme", "m", "gpt-x-2026")
    assert e["attempts"][0]["outcome"] == "retry" and e["attempts"][0]["status"] == 429
    assert e["policies"] == ["std@v7"] and e["cost_usd"] == 0.0021 and e["trace_id"] == "ab" * 16
    assert e["principal"] == {"kind": "jwt", "key": None, "role": "developer"}  # a token subject is personal
    assert "alice" not in str(e) and "sub-42" not in str(e) and "10.0.0.9" not in str(e)
    assert p.subject == "acme/alice"
    assert p.personal is not None
    assert (p.personal["user"], p.personal["subject"], p.personal["ip"]) == ("alice", "sub-42", "10.0.0.9")


def test_errors_are_kept_with_their_code_and_a_bounded_message() -> None:
    p = describe(_call(), 429, ("rate_limit_exceeded", "x" * 5000), None, time.perf_counter())
    assert p.envelope["status"] == 429 and p.envelope["error"]["code"] == "rate_limit_exceeded"
    assert len(p.envelope["error"]["message"]) == 1000


def test_long_texts_are_cut_and_say_so() -> None:
    p = describe(_call("a" * (MAX_TEXT + 10)), 200, None, None, time.perf_counter())
    assert p.personal is not None
    kept = p.personal["request"]["messages"][0]["content"]
    assert kept.startswith("a" * 100) and kept.endswith(f"[cut: {MAX_TEXT + 10} characters]")
    short = describe(_call("short"), 200, None, None, time.perf_counter())
    assert short.personal is not None and short.personal["request"]["messages"][0]["content"] == "short"


def test_restored_values_go_back_into_their_placeholders() -> None:
    call = _call()
    call.conceal = lambda text: text.replace("alice@example.org", "<EMAIL_1>")
    p = describe(call, 200, None, {"content": "I wrote to alice@example.org", "tool_calls": None}, 0.0)
    assert p.personal is not None and p.personal["answer"]["content"] == "I wrote to <EMAIL_1>"


def test_a_streamed_answer_is_reassembled_with_its_tool_calls() -> None:
    s = StreamedAnswer()
    s.feed([{"choices": [{"delta": {"content": "Hel"}}]}, {"choices": [{"delta": {"content": "lo"}}]}])
    s.feed([{"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "get_", "arguments": '{"a"'}}]}}]}])
    s.feed([{"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "time", "arguments": ":1}"}}]}}]},
            {"choices": [], "usage": {"total_tokens": 3}}])
    assert s.answer() == {"content": "Hello", "tool_calls": [{"id": "c1", "name": "get_time", "arguments": '{"a":1}'}]}
    assert StreamedAnswer().answer() is None
    assert answer_of({"choices": [{"message": {"content": None, "tool_calls": [{"id": "t"}]}}]}) == {
        "content": None, "tool_calls": [{"id": "t"}]}
    assert answer_of({"data": [{"embedding": [0.1]}]}) is None  # vectors are not kept
