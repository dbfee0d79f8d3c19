"""Run a proxy in-process with granian.server.embed.Server on uvloop.  usage: serve_embed.py asgi|rsgi PORT"""

import asyncio
import signal
import sys

import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.log import LogLevels
from granian.server.embed import Server


async def main(kind: str, port: int) -> None:
    if kind == "rsgi":
        from rsgi_proxy import app

        iface = Interfaces.RSGI
    else:
        from asgi_proxy import app

        iface = Interfaces.ASGI
    server = Server(app, address="127.0.0.1", port=port, interface=iface, http=HTTPModes.http1,
                    websockets=False, log_level=LogLevels.warning)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    await server.serve()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2])))
