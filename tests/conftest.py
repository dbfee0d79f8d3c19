"""Shared fixtures: the mock upstream (``python -m ostiary.mockup``) as a real subprocess.

``mockup`` is one server for the whole session (call ``.reset()`` between tests);
``mockup_factory(*flags)`` starts an extra server with its own flags for one test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MockUpstream:
    """A running mock upstream process and helpers for its control API."""

    def __init__(self, *flags: str, startup_timeout: float = 15.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A file, not a pipe: nobody reads the output while the server runs.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ostiary.mockup", "--port", str(self.port), *flags],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mock upstream exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/_mock/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mock upstream did not answer on {self.url}:\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

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

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")
def mockup() -> Iterator[MockUpstream]:
    server = MockUpstream()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mockup_factory() -> Iterator[Callable[..., MockUpstream]]:
    started: list[MockUpstream] = []

    def start(*flags: str) -> MockUpstream:
        server = MockUpstream(*flags)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
