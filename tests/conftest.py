"""Shared fixtures: the mock upstream (``python -m ostiary.mockup``) as a real subprocess.

``mockup`` is one server for the whole session (call ``.reset()`` between tests);
``mockup_factory(*flags)`` starts an extra server with its own flags for one test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support import MockUpstream


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
