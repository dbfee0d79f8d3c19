"""`ostiary serve`: the embedded default, the refusal to serve publicly without auth, hot reload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai

from tests.support import ROOT, MockUpstream, free_port, gateway, output_of, process

ROUTE = "routes:\n  - name: {name}\n    deployments: [{{provider: mock, model: {name}}}]\n"


def test_embedded_default_answers_at_once(tmp_path: Path) -> None:
    with gateway(None, cwd=tmp_path) as (url, proc):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        c = client.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "Hi"}])
        assert c.choices[0].message.content == "Mock answer to: Hi"
        assert httpx.get(f"{url}/readyz").json()["status"] == "ready"
        banner = output_of(proc)
        assert f"listening on {url}" in banner and "loopback" in banner and "curl" in banner
    assert (tmp_path / ".ostiary" / "ostiary.db").exists()  # the embedded data directory


def test_public_bind_without_auth_is_refused(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "ostiary", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                       cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 2 and "refusing to listen on 0.0.0.0" in r.stderr


def test_invalid_config_is_refused_at_start(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("routes:\n  - name: x\n    deployments: [{provider: openai, model: m, api_base: nope}]\n")
    r = subprocess.run([sys.executable, "-m", "ostiary", "serve", "--config", str(cfg), "--port", str(free_port())],
                       cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 1 and "routes[0].deployments[0].api_base" in r.stderr


def _models(url: str) -> list[str]:
    return [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]]


def _wait(pred, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_hot_reload_on_file_change_and_sighup(tmp_path: Path) -> None:
    up = MockUpstream("--tokens-per-second", "40")  # a 30-token answer streams for ~0.75 s
    paced = "routes:\n  - name: {name}\n    deployments: [{{provider: openai, model: up, api_base: '%s/v1'}}]\n"
    head = f"server: {{data_dir: {tmp_path / 'data'}}}\n"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(head + (paced % up.url).format(name="alpha"))
    try:
        _reload_while_streaming(cfg, head + (paced % up.url).format(name="beta"))
    finally:
        up.stop()


def _reload_while_streaming(cfg: Path, new_config: str) -> None:
    with gateway(cfg) as (url, proc):
        v1 = httpx.get(f"{url}/healthz").headers["x-ostiary-config-version"]
        assert _models(url) == ["alpha"]

        # A stream in flight while the config changes is not dropped and finishes on its config.
        started, finished = threading.Event(), threading.Event()
        results: list[str] = []

        def slow_stream() -> None:
            with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=10, json={
                    "model": "alpha", "stream": True,
                    "messages": [{"role": "user", "content": " ".join(["word"] * 26)}]}) as r:
                results.append(r.headers["x-ostiary-config-version"])
                last = ""
                for line in r.iter_lines():
                    if line:
                        last = line
                        started.set()
                results.append(last)
            finished.set()

        t = threading.Thread(target=slow_stream)
        t.start()
        assert started.wait(5)
        cfg.write_text(new_config)
        assert _wait(lambda: _models(url) == ["beta"]), "file change was not picked up"
        assert not finished.is_set(), "the stream ended before the reload: the test proves nothing"
        t.join(10)
        assert results == [v1, "data: [DONE]"]
        v2 = httpx.get(f"{url}/healthz").headers["x-ostiary-config-version"]
        assert v2 != v1

        # An invalid file is refused; the old config keeps serving.
        cfg.write_text("routes: [ {name: broken\n")
        time.sleep(0.6)
        assert _models(url) == ["beta"]
        assert httpx.get(f"{url}/healthz").headers["x-ostiary-config-version"] == v2
        assert "config reload refused" in output_of(proc)


def test_sighup_reloads(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"server: {{data_dir: {tmp_path / 'data'}}}\n" + ROUTE.format(name="gamma"))
    with gateway(cfg, "--no-watch") as (url, proc):
        assert _models(url) == ["gamma"]
        cfg.write_text(f"server: {{data_dir: {tmp_path / 'data'}}}\n" + ROUTE.format(name="delta"))
        time.sleep(0.5)
        assert _models(url) == ["gamma"]  # not watching
        os.kill(proc.pid, signal.SIGHUP)
        assert _wait(lambda: _models(url) == ["delta"]), "SIGHUP did not reload"


def test_mock_upstream_command(tmp_path: Path) -> None:
    port = free_port()
    with process([sys.executable, "-m", "ostiary", "mock-upstream", "--port", str(port), "--latency-ms", "0"],
                 f"http://127.0.0.1:{port}/_mock/health", cwd=tmp_path):
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        assert client.chat.completions.create(
            model="up", messages=[{"role": "user", "content": "Hi"}]).choices[0].message.content == "Mock answer to: Hi"
