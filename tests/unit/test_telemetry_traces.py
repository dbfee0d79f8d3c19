"""Trace context: `traceparent` parsing, the trace id every call gets (decisions, response header), and
the OpenTelemetry span with the GenAI semantic conventions, exported to an in-memory exporter."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import pytest

from ostiary.config.load import ConfigError, parse
from ostiary.config.schema import Config, Telemetry
from ostiary.errors import GatewayError
from ostiary.identity.principal import Principal
from ostiary.pipeline.call import Attempt, Call
from ostiary.telemetry import Telemetry as GatewayTelemetry
from ostiary.telemetry import TelemetryStage
from ostiary.telemetry.metrics import Metrics
from ostiary.telemetry.traces import parse_traceparent, traces_url

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
ACME = Principal(kind="key", subject="ost-a", tenant="acme", user="alice", role="developer",
                 scopes=frozenset({"chat"}), models=None, clearance="internal")
CONFIG = Config.model_validate({"routes": [
    {"name": "m", "deployments": [{"provider": "openai", "model": "gpt-up", "id": "dep-m"}]}]})


@pytest.mark.parametrize("header, expected", [
    (f"00-{TRACE}-{PARENT}-01", (TRACE, PARENT, "01")),
    (f"00-{TRACE}-{PARENT}-00", (TRACE, PARENT, "00")),
    (f"  00-{TRACE}-{PARENT}-01 ", (TRACE, PARENT, "01")),
    (f"00-{'0' * 32}-{PARENT}-01", None),  # all-zero trace id
    (f"00-{TRACE}-{'0' * 16}-01", None),  # all-zero parent id
    (f"01-{TRACE}-{PARENT}-01", None),  # only version 00
    (f"ff-{TRACE}-{PARENT}-01", None),
    (f"00-{TRACE.upper()}-{PARENT}-01", None),  # lowercase hex only
    (f"00-{TRACE[:-1]}-{PARENT}-01", None),
    (f"00-{TRACE}-{PARENT}1-01", None),
    (f"00-{TRACE}-{PARENT}-01-extra", None),
    (f"00-{TRACE[:-1]}g-{PARENT}-01", None),
    ("", None),
    (None, None),
    ("garbage", None),
])
def test_parse_traceparent(header: str | None, expected: tuple[str, str, str] | None) -> None:
    assert parse_traceparent(header) == expected


def test_traces_url() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("https://x.example/otlp/v1/traces") == "https://x.example/otlp/v1/traces"


def make_call(traceparent: str | None = None, **body: Any) -> Call:
    c = Call(id="r1", api="openai.chat", model="m", stream=False, config_version="v1",
             body={"model": "m", "messages": [{"role": "user", "content": "secret prompt"}], **body})
    if traceparent is not None:
        c.decisions["traceparent"] = traceparent
    return c


async def ok(call: Call) -> None:
    call.principal = ACME
    call.route, call.deployment, call.upstream_model = "m", "dep-m", "gpt-up-2024"
    call.attempts.append(Attempt("m", "dep-m", 0.0))
    call.usage = {"prompt_tokens": 5, "completion_tokens": 3}
    call.decisions["guardrails"] = [{"scanner": "pii", "policy": "p", "version": "1", "action": "redact"}]
    call.result = {"choices": [{"message": {"content": "secret answer"}}]}


def response_traceparent(call: Call) -> str:
    values = [v.decode() for k, v in call.response_headers if k == b"traceparent"]
    assert len(values) == 1
    return values[0]


async def test_incoming_trace_id_is_kept() -> None:
    s = TelemetryStage(Metrics(), None, CONFIG, "v1")
    call = make_call(f"00-{TRACE}-{PARENT}-01")
    await s(call, ok)
    assert call.decisions["trace_id"] == TRACE
    assert "traceparent" not in call.decisions
    version, trace, span, flags = response_traceparent(call).split("-")
    assert (version, trace, flags) == ("00", TRACE, "01")
    assert len(span) == 16 and span != PARENT and int(span, 16) != 0


@pytest.mark.parametrize("header", [None, f"00-{'0' * 32}-{PARENT}-01", "not-a-traceparent"])
async def test_otherwise_a_random_trace_id(header: str | None) -> None:
    s = TelemetryStage(Metrics(), None, CONFIG, "v1")
    ids = set()
    for _ in range(2):
        call = make_call(header)
        await s(call, ok)
        trace = call.decisions["trace_id"]
        assert len(trace) == 32 and int(trace, 16) != 0
        assert response_traceparent(call) .startswith(f"00-{trace}-")
        assert response_traceparent(call).endswith("-01")
        ids.add(trace)
    assert len(ids) == 2


async def test_refused_call_has_a_trace_id_too() -> None:
    s = TelemetryStage(Metrics(), None, CONFIG, "v1")
    call = make_call(f"00-{TRACE}-{PARENT}-01")

    async def refuse(call: Call) -> None:
        raise GatewayError("no", status=401, code="invalid_api_key")

    with pytest.raises(GatewayError) as e:
        await s(call, refuse)
    assert call.decisions["trace_id"] == TRACE
    assert e.value.headers["traceparent"].startswith(f"00-{TRACE}-")


def test_otlp_without_the_extra_fails_config_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def missing(name: str, *args: Any) -> Any:
        return None if name.startswith("opentelemetry") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", missing)
    with pytest.raises(ConfigError) as e:
        parse(b"telemetry: {otlp_endpoint: 'http://127.0.0.1:4318'}\nroutes: []\n", source="t.yaml")
    assert any("telemetry" in p and "ostiary[otel]" in p for p in e.value.problems), e.value.problems


def test_otlp_endpoint_must_be_a_url() -> None:
    with pytest.raises(ValueError, match="http"):
        Telemetry(otlp_endpoint="collector:4318")


# --- OpenTelemetry spans (the `otel` extra; scripts/test.sh installs it, so CI never skips these) ---

def _otel() -> Any:
    if os.environ.get("CI"):
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    else:
        mod = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter",
                                  reason="the otel extra is not installed (pip install 'ostiary[otel]')")
        InMemorySpanExporter = mod.InMemorySpanExporter
    return InMemorySpanExporter()


def traced() -> tuple[TelemetryStage, GatewayTelemetry, Any]:
    exporter = _otel()
    t = GatewayTelemetry(Telemetry(service_name="gw-test"), exporter=exporter)
    assert t.tracer is not None
    return TelemetryStage(t.metrics, t.tracer, CONFIG, "v1"), t, exporter


async def test_span_carries_the_trace_id_and_genai_attributes() -> None:
    s, t, exporter = traced()
    call = make_call(f"00-{TRACE}-{PARENT}-01", max_tokens=64, temperature=0.2)
    await s(call, ok)
    t.close()
    (span,) = exporter.get_finished_spans()
    ctx = span.get_span_context()
    assert f"{ctx.trace_id:032x}" == TRACE == call.decisions["trace_id"]
    assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT
    assert response_traceparent(call) == f"00-{TRACE}-{ctx.span_id:016x}-01"
    assert span.name == "chat m"
    assert span.resource.attributes["service.name"] == "gw-test"
    a = dict(span.attributes)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "openai"
    assert a["gen_ai.request.model"] == "m"
    assert a["gen_ai.response.model"] == "gpt-up-2024"
    assert a["gen_ai.usage.input_tokens"] == 5
    assert a["gen_ai.usage.output_tokens"] == 3
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["ostiary.tenant"] == "acme"
    assert a["ostiary.route"] == "m"
    assert a["ostiary.deployment"] == "dep-m"
    assert a["ostiary.config_version"] == "v1"
    assert tuple(a["ostiary.guardrail.actions"]) == ("pii:redact",)
    assert "error.type" not in a
    # Never content.
    assert not any("secret" in str(v) for v in a.values())


async def test_root_span_trace_id_is_the_calls() -> None:
    s, t, exporter = traced()
    call = make_call()
    await s(call, ok)
    t.close()
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert f"{span.get_span_context().trace_id:032x}" == call.decisions["trace_id"]


async def test_failed_span_has_error_type() -> None:
    s, t, exporter = traced()

    async def fail(call: Call) -> None:
        raise GatewayError("upstream down", status=502, code="upstream_error")

    with pytest.raises(GatewayError):
        await s(make_call(), fail)
    t.close()
    (span,) = exporter.get_finished_spans()
    assert span.attributes["error.type"] == "upstream_error"
    assert span.attributes["http.response.status_code"] == 502
    assert span.status.status_code.name == "ERROR"


async def test_embeddings_span_name() -> None:
    s, t, exporter = traced()
    call = Call(id="r", api="openai.embeddings", body={"model": "m", "input": "x"}, model="m", stream=False,
                config_version="v1")

    async def emb(call: Call) -> None:
        call.deployment = "dep-m"
        call.usage = {"prompt_tokens": 2, "total_tokens": 2}
        call.result = {"data": []}

    await s(call, emb)
    t.close()
    (span,) = exporter.get_finished_spans()
    assert span.name == "embeddings m"
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert span.attributes["gen_ai.usage.input_tokens"] == 2
    assert "gen_ai.usage.output_tokens" not in span.attributes
