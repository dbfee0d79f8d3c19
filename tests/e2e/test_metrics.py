"""Metrics and trace context through the real server: the official openai client calls the gateway
with a `traceparent`; /metrics shows the request and its tokens under the route and tenant, the
answer carries the trace id, and so does the audit event in the store. Private metrics need an
admin or auditor key."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import UPSTREAM_KEY
from tests.support import gateway, keys

TRACE = "0af7651916cd43dd8448eb211c80319c"
STREAM_TRACE = "1bf7651916cd43dd8448eb211c80319d"


def config(tmp: Path, upstream: str, public: bool) -> Path:
    cfg = tmp / "ostiary.yaml"
    cfg.write_text(f"""
server: {{data_dir: {tmp / 'data'}}}
telemetry: {{metrics_public: {str(public).lower()}}}
routes:
  - name: gpt
    deployments:
      - {{provider: openai, id: gpt-dep, model: gpt-up, api_base: "{upstream}/v1", api_key: {UPSTREAM_KEY}}}
""")
    return cfg


@pytest.fixture(scope="module")
def public(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    tmp = tmp_path_factory.mktemp("metrics")
    cfg = config(tmp, upstream, public=True)
    key = keys(cfg, "create", "--tenant", "acme")["key"]
    with gateway(cfg) as (url, _):
        yield url, key, tmp / "data" / "ostiary.db"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in a text exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name + "{"):
            continue
        series, _, value = line.rpartition(" ")
        got = dict(kv.split("=", 1) for kv in series[len(name) + 1:-1].split(",") if kv)
        if {k: v.strip('"') for k, v in got.items()} == labels:
            return float(value)
    return 0.0


def audit_body(db: Path, request_id: str) -> dict[str, Any] | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT body FROM audit_log WHERE request_id = ? AND kind = 'request'",
                           (request_id,)).fetchone()
    if row is None:
        return None
    body: dict[str, Any] = json.loads(row[0])
    return body


def audited(db: Path, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5  # the drainer moves spooled events to the store within ~1 s
    while (body := audit_body(db, request_id)) is None:
        assert time.monotonic() < deadline, f"no audit event for {request_id}"
        time.sleep(0.05)
    return body


def test_metrics_count_the_request_and_the_trace_id_goes_everywhere(public: tuple[str, str, Path]) -> None:
    url, key, db = public
    labels = {"route": "gpt", "tenant": "acme"}
    before = httpx.get(f"{url}/metrics").text
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=10)

    raw = client.chat.completions.with_raw_response.create(
        model="gpt", messages=[{"role": "user", "content": "Hello"}],
        extra_headers={"traceparent": f"00-{TRACE}-b7ad6b7169203331-01", "x-request-id": "metrics-e2e-1"})
    answer = raw.parse()
    version, trace, span, flags = raw.headers["traceparent"].split("-")
    assert (version, trace, flags) == ("00", TRACE, "01") and len(span) == 16
    assert answer.usage is not None and answer.usage.prompt_tokens > 0

    with client.chat.completions.with_streaming_response.create(
            model="gpt", messages=[{"role": "user", "content": "Hello"}], stream=True,
            stream_options={"include_usage": True},
            extra_headers={"traceparent": f"00-{STREAM_TRACE}-b7ad6b7169203331-01",
                           "x-request-id": "metrics-e2e-2"}) as r:
        assert r.headers["traceparent"].startswith(f"00-{STREAM_TRACE}-")
        chunks = list(r.parse())
    streamed = next(c.usage for c in chunks if c.usage is not None)

    m = httpx.get(f"{url}/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    after = m.text

    def moved(name: str, **lab: str) -> float:
        return sample(after, name, **lab) - sample(before, name, **lab)

    assert moved("ostiary_requests_total", **labels, deployment="gpt-dep", status="200") == 2
    assert moved("ostiary_request_duration_seconds_count", **labels, status_class="2xx") == 2
    assert moved("ostiary_time_to_first_byte_seconds_count", **labels) == 1
    assert moved("ostiary_upstream_attempts_total", route="gpt", deployment="gpt-dep", outcome="ok") == 2
    tokens_in = moved("ostiary_tokens_total", **labels, direction="in")
    tokens_out = moved("ostiary_tokens_total", **labels, direction="out")
    assert tokens_in == answer.usage.prompt_tokens + streamed.prompt_tokens
    assert tokens_out == answer.usage.completion_tokens + streamed.completion_tokens
    assert 'ostiary_breaker_state{deployment="gpt-dep"} 0.0' in after
    assert "ostiary_audit_queue_bytes" in after and "ostiary_audit_lag_seconds" in after
    assert "# TYPE ostiary_cache_hits_total counter" in after

    assert audited(db, "metrics-e2e-1")["trace_id"] == TRACE
    assert audited(db, "metrics-e2e-2")["trace_id"] == STREAM_TRACE


def test_an_error_answer_carries_the_traceparent(public: tuple[str, str, Path]) -> None:
    url, _, _ = public
    r = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": "Bearer wrong",
                                                          "traceparent": f"00-{TRACE}-b7ad6b7169203331-01"},
                   json={"model": "gpt", "messages": [{"role": "user", "content": "Hello"}]})
    assert r.status_code == 401
    assert r.headers["traceparent"].startswith(f"00-{TRACE}-")
    assert sample(httpx.get(f"{url}/metrics").text, "ostiary_requests_total", route="gpt", deployment="",
                  status="401", tenant="") >= 1


def test_private_metrics_need_an_admin_or_auditor(upstream: str, tmp_path: Path) -> None:
    cfg = config(tmp_path, upstream, public=False)
    dev = keys(cfg, "create", "--tenant", "acme")["key"]
    admin = keys(cfg, "create", "--tenant", "ops", "--role", "admin", "--scopes", "admin")["key"]
    auditor = keys(cfg, "create", "--tenant", "acme", "--role", "auditor", "--scopes", "admin")["key"]
    with gateway(cfg) as (url, _):
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {dev}"}).status_code == 403
        for key in (admin, auditor):
            r = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {key}"})
            assert r.status_code == 200 and "ostiary_requests_total" in r.text


def _collector() -> tuple[ThreadingHTTPServer, list[bytes], str]:
    """A fake OTLP/HTTP collector: keeps the bodies POSTed to /v1/traces."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if self.path == "/v1/traces" and self.headers.get("x-collector-token") == "t0ken":
                received.append(body)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received, f"http://127.0.0.1:{server.server_address[1]}"


def test_spans_are_exported_over_otlp_with_the_trace_id(upstream: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if not os.environ.get("CI"):  # scripts/test.sh installs the otel extra: CI never skips this
        pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="the otel extra is not installed")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    server, received, endpoint = _collector()
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # the batch processor exports every 0.1 s
    cfg = config(tmp_path, upstream, public=True)
    cfg.write_text(cfg.read_text().replace(
        "telemetry: {metrics_public: true}",
        f"telemetry: {{otlp_endpoint: '{endpoint}', otlp_headers: {{x-collector-token: t0ken}}, "
        "service_name: ostiary-e2e}"))
    try:
        with gateway(cfg) as (url, _):
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=10)
            raw = client.chat.completions.with_raw_response.create(
                model="gpt", messages=[{"role": "user", "content": "Hello"}], max_tokens=20,
                extra_headers={"traceparent": f"00-{TRACE}-b7ad6b7169203331-01"})
            span_id = raw.headers["traceparent"].split("-")[2]
            deadline = time.monotonic() + 10
            while not received and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        server.shutdown()
    assert received, "no span reached the collector"
    spans = [s for body in received for rs in ExportTraceServiceRequest.FromString(body).resource_spans
             for ss in rs.scope_spans for s in ss.spans]
    (span,) = [s for s in spans if s.trace_id.hex() == TRACE]
    assert span.span_id.hex() == span_id and span.parent_span_id.hex() == "b7ad6b7169203331"
    assert span.name == "chat gpt"
    attrs = {a.key: a.value for a in span.attributes}
    assert attrs["gen_ai.request.model"].string_value == "gpt"
    assert attrs["gen_ai.response.model"].string_value
    assert attrs["gen_ai.provider.name"].string_value == "openai"
    assert attrs["gen_ai.request.max_tokens"].int_value == 20
    assert attrs["gen_ai.usage.input_tokens"].int_value > 0
    assert attrs["ostiary.tenant"].string_value == "default"
    assert attrs["ostiary.deployment"].string_value == "gpt-dep"


def test_a_request_refused_before_the_pipeline_is_counted_traced_and_audited(public: tuple[str, str, Path]) -> None:
    url, _, db = public
    trace = "5bf92f3577b34da6a3ce929d0e0e4737"
    before = httpx.get(f"{url}/metrics").text
    r = httpx.post(f"{url}/v1/chat/completions", content=b"{not json",
                   headers={"traceparent": f"00-{trace}-b7ad6b7169203331-01", "x-request-id": "malformed-1",
                            "content-type": "application/json"})
    assert r.status_code == 400 and r.headers["traceparent"].startswith(f"00-{trace}-")
    after = httpx.get(f"{url}/metrics").text
    moved = sample(after, "ostiary_requests_total", route="", deployment="", status="400", tenant="") - sample(
        before, "ostiary_requests_total", route="", deployment="", status="400", tenant="")
    assert moved == 1
    assert audited(db, "malformed-1")["trace_id"] == trace
