"""Start real processes for end-to-end tests: the gateway and the mock upstream."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def process(args: list[str], ready_url: str, *, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 20.0) -> Iterator[subprocess.Popen[bytes]]:
    log = tempfile.TemporaryFile()  # noqa: SIM115 - it lives as long as the process, closed below
    proc = subprocess.Popen(args, cwd=cwd or ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args} exited with {proc.returncode}:\n{_read_all(log)}")
            try:
                httpx.get(ready_url, timeout=0.5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{args} did not answer on {ready_url}") from None
                time.sleep(0.05)
        proc.log = log  # type: ignore[attr-defined]
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def output_of(proc: subprocess.Popen[bytes]) -> str:
    return _read_all(proc.log)  # type: ignore[attr-defined]


def _read_all(log: IO[bytes]) -> str:
    # pread, not seek+read: the child shares the file offset and would then overwrite from 0.
    fd = log.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")


class MockUpstream:
    """A running mock upstream process and helpers for its control API."""

    def __init__(self, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._stack = ExitStack()
        self.proc = self._stack.enter_context(process(
            [sys.executable, "-m", "ostiary.mockup", "--port", str(self.port), *flags],
            f"{self.url}/_mock/health", env={"PYTHONUNBUFFERED": "1"}))

    def output(self) -> str:
        return output_of(self.proc)

    def behaviour(self, **spec: Any) -> dict[str, Any]:
        r = httpx.post(self.url + "/_mock/behaviour", json=spec, timeout=5)
        r.raise_for_status()
        return r.json()

    def reset(self) -> None:
        httpx.post(self.url + "/_mock/reset", timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        r = httpx.get(self.url + "/_mock/stats", timeout=5)
        r.raise_for_status()
        return r.json()

    def stop(self) -> int | None:
        self._stack.close()
        return self.proc.returncode


@contextmanager
def gateway(config: Path | None, *extra: str, cwd: Path | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    args = [sys.executable, "-m", "ostiary", "serve", "--port", str(port), *extra]
    if config is not None:
        args += ["--config", str(config)]
    with process(args, f"http://127.0.0.1:{port}/healthz", cwd=cwd) as proc:
        yield f"http://127.0.0.1:{port}", proc


def keys(cfg: Path, *args: str) -> dict:
    """Run `ostiary keys ... --json` on a config; the parsed answer."""
    r = subprocess.run([sys.executable, "-m", "ostiary", "keys", *args, "--config", str(cfg), "--json"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def chat_status(url: str, key: str, model: str = "mock-1") -> int:
    """The HTTP status of a minimal chat call to the gateway at `url` with this credential."""
    return httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": "Hello"}]}).status_code


def within_a_second(predicate: Callable[[], bool]) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def drive(urls: list[str], body: dict[str, Any], seconds: float, headers: dict[str, str] | None = None,
           threads: int = 12) -> tuple[list[httpx.Response], float]:
    """Send `body` from several threads, round robin over the replicas, for `seconds`; the answers
    and how long after the start the last request was sent (until then, buckets refilled)."""
    out: list[httpx.Response] = []
    lock = threading.Lock()
    t0 = time.monotonic()
    last = [t0]

    def run(n: int) -> None:
        with httpx.Client(timeout=10, headers=headers) as c:
            while (sent := time.monotonic()) - t0 < seconds:
                last[0] = max(last[0], sent)
                r = c.post(f"{urls[n % len(urls)]}/v1/chat/completions", json=body)
                with lock:
                    out.append(r)
                n += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return out, last[0] - t0


def shared_audit_keys(directory: Path) -> str:
    """Audit keys every replica of a test shares (required with database_url): the config lines."""
    from ostiary.audit.cli import write_keys

    signing, master = write_keys(directory, "ostiary/audit")
    return f"audit: {{signing_key_file: {signing}, master_key_file: {master}}}\n"


class WebhookReceiver:
    """A local receiver for webhooks (budget thresholds, release decisions): the JSON events, in order."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.events: list[dict[str, Any]] = []
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                events.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
