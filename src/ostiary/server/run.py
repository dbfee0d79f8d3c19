"""Serve an ASGI app in this process: uvicorn (uvloop + httptools), signals, config hot reload.

uvicorn with uvloop and httptools was the fastest server measured on this machine with the
gateway's upstream client (bench/README.md). It runs in this process so that signals stay ours:
SIGHUP and a change of the config file reload the configuration in place, atomically, with no
restart and no dropped connection; SIGINT/SIGTERM stop gracefully (in-flight requests finish).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from ostiary.gateway import Gateway
from ostiary.server.app import App

log = logging.getLogger("ostiary")


class _Server(uvicorn.Server):
    ready_line: str | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would re-raise SIGTERM after shutdown (exit status -15); `serve_app` installs
        # loop handlers instead, so a graceful stop exits 0.
        yield

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        # Printed as soon as the socket is bound, before any request is served.
        if self.started and self.ready_line:
            print(self.ready_line, flush=True)


async def serve_app(app: Any, host: str, port: int, *, ready_line: str | None = None,
                    on_stop: Callable[[], None] | None = None,
                    on_hup: Callable[[], object] | None = None) -> None:
    config = uvicorn.Config(app, host=host, port=port, loop="none", http="httptools", lifespan="off",
                            access_log=False, log_level="warning", server_header=False, backlog=2048, proxy_headers=False,
                            timeout_graceful_shutdown=10, timeout_keep_alive=30)
    server = _Server(config)
    server.ready_line = ready_line

    def stop() -> None:
        if on_stop is not None:
            on_stop()
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    if on_hup is not None:
        loop.add_signal_handler(signal.SIGHUP, on_hup)

    # Everything built so far (modules, config, clients) lives for the whole process: keep it out
    # of the collector's way, and collect young objects less often (each request allocates many
    # short-lived dicts that reference counting frees anyway).
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    await server.serve()
    if not server.started:
        raise SystemExit(f"could not listen on {host}:{port}")


async def serve(config_path: Path | None, host: str, port: int, *, watch: bool = True,
                ready_line: str | None = None) -> None:
    gateway = Gateway.from_path(config_path)
    gateway.start()
    watcher = asyncio.ensure_future(_watch(gateway)) if (watch and config_path is not None) else None
    try:
        await serve_app(App(gateway), host, port, ready_line=ready_line, on_hup=gateway.reload)
    finally:
        if watcher is not None:
            watcher.cancel()
        await gateway.aclose()


async def _watch(gateway: Gateway) -> None:
    """Reload when the config file changes; editors often replace the file, so watch its folder."""
    from watchfiles import awatch

    assert gateway.config_path is not None
    target = gateway.config_path.resolve()
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    try:
        async for _ in awatch(target.parent, debounce=200, step=50, recursive=False,
                              watch_filter=lambda _change, path: Path(path).resolve() == target):
            gateway.reload()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("config file watching stopped; SIGHUP still reloads")
