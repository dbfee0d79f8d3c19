"""Start real processes for end-to-end tests: the gateway and the mock upstream."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
                log.seek(0)
                raise RuntimeError(f"{args} exited with {proc.returncode}:\n{log.read().decode()}")
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
    log = proc.log  # type: ignore[attr-defined]
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")


@contextmanager
def mock_upstream(*extra: str) -> Iterator[str]:
    port = free_port()
    with process([sys.executable, "-m", "ostiary.mockup", "--port", str(port), *extra],
                 f"http://127.0.0.1:{port}/_mock/stats"):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def gateway(config: Path | None, *extra: str, cwd: Path | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    args = [sys.executable, "-m", "ostiary", "serve", "--port", str(port), *extra]
    if config is not None:
        args += ["--config", str(config)]
    with process(args, f"http://127.0.0.1:{port}/healthz", cwd=cwd) as proc:
        yield f"http://127.0.0.1:{port}", proc
