"""Serve the gateway: granian's embedded server in this process, signals, config hot reload.

Running granian embedded (rather than as a process manager) keeps the signals ours: SIGHUP and a
change of the config file reload the configuration in place, atomically, with no worker restart and
no dropped connection; SIGINT/SIGTERM stop gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from ostiary.gateway import Gateway
from ostiary.server.app import App

log = logging.getLogger("ostiary")


async def serve(config_path: Path | None, host: str, port: int, *, watch: bool = True,
                ready_line: str | None = None) -> None:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    gateway = Gateway.from_path(config_path)
    app = App(gateway)
    server = Server(app, address=host, port=port, interface=Interfaces.ASGI, log_access=False,
                    backlog=2048, websockets=False)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    loop.add_signal_handler(signal.SIGHUP, gateway.reload)
    watcher = asyncio.ensure_future(_watch(gateway)) if (watch and config_path is not None) else None
    if ready_line:
        print(ready_line, flush=True)
    try:
        await server.serve()
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
