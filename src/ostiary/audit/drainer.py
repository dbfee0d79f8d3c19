"""The drainer: moves spooled audit records into the store, off the gateway's process.

It runs in its own process (`spawn`, started by the gateway) so that its database work never competes
with the event loop for the GIL: measured on one core, a drainer thread cost the gateway about a
third of its throughput, a drainer process a few percent. It can also run as a thread (the CLI and
tests, where there is no hot path to protect).

Every `DRAIN_EVERY` seconds it stores what the spool holds beyond its cursor (audit/log.py, one
transaction per batch) and saves the cursor; every second it lets the sequencer take over new
administrative events and sign a timed checkpoint; every `ADOPT_EVERY` seconds it drains the spools
of processes that died. With `audit.siem` it also streams the log to the SIEM. It writes its
progress to `<spool>/drainer.json` (events stored, time of the last success), which is what the
gateway's metrics and `flush` read. When the gateway that started it goes away (even by kill -9)
it drains what is left and exits; the next gateway's drainer takes over.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

from ostiary.audit.keys import open_log
from ostiary.audit.log import AuditLog
from ostiary.audit.siem import SiemForwarder
from ostiary.audit.spool import Cursor, Spool
from ostiary.config.schema import Audit
from ostiary.store import Store

log = logging.getLogger("ostiary.audit")
DRAIN_EVERY = 0.2  # seconds: one store transaction per drain, so not more often
TICK = 1.0  # seconds between sequencer runs when nothing arrives (admin events, timed checkpoints)
ADOPT_EVERY = 10.0  # seconds between looks for dead processes' spools
STATUS = "drainer.json"


class Drainer:
    def __init__(self, log_: AuditLog, spool_path: Path, fsync: bool = True) -> None:
        self.log = log_
        self.spool = Spool(spool_path, None, fsync)  # reads only: the gateway holds the slot's lock
        self.base = spool_path.parent
        self.drained = 0
        self.errors = 0

    def run(self, stop: threading.Event, parent: int | None = None, wake: threading.Event | None = None) -> None:
        wake = wake or stop
        cursor = self.spool.cursor()
        next_tick = next_adopt = 0.0
        while not stop.is_set() and (parent is None or os.getppid() == parent):
            now = time.monotonic()
            try:
                cursor, n = self.drain(self.spool, cursor)
                if n == 0 and now >= next_tick:
                    if self.log.due():
                        self.log.append([])
                    next_tick = now + TICK
                if now >= next_adopt:
                    self.adopt()
                    next_adopt = now + ADOPT_EVERY
                self.errors = 0
                self._status(time.time())
            except Exception:
                self.errors += 1
                log.warning("audit drain failed; retrying (the spool keeps the records)", exc_info=True)
                stop.wait(min(5.0, 0.2 * self.errors))
                continue
            wake.wait(DRAIN_EVERY)
            if wake is not stop:
                wake.clear()
        try:
            self.drain(self.spool, cursor)  # what the gateway spooled last
            self._status(time.time())
        except Exception:
            log.warning("the last audit drain failed; the next gateway's drainer will finish it", exc_info=True)

    def drain(self, spool: Spool, cursor: Cursor) -> tuple[Cursor, int]:
        total = 0
        while True:
            records, after = spool.read(cursor, 1000)
            if not records:
                if after != cursor:
                    spool.commit(after)
                return after, total
            self.log.append(records)
            spool.commit(after)
            cursor = after
            events = sum(1 for r in records if r[:1] == b"e")
            total += events
            if spool is self.spool:
                self.drained += events

    def adopt(self) -> None:
        for path in Spool.slots(self.base):
            if path == self.spool.path:
                continue
            orphan = Spool.try_slot(path, False)
            if orphan is None:
                continue
            try:
                _, n = self.drain(orphan, orphan.cursor())
                if n:
                    log.info("drained %d audit events a stopped process left in %s", n, path)
            finally:
                orphan.release()

    def _status(self, at: float) -> None:
        tmp = self.spool.path / f".{STATUS}.tmp"
        tmp.write_text(json.dumps({"drained": self.drained, "ok_at": at, "pid": os.getpid()}))
        os.replace(tmp, self.spool.path / STATUS)


def status(spool_path: Path) -> tuple[int, float]:
    """(events the drainer stored, wall time of its last success); (0, 0.0) before its first run."""
    try:
        data = json.loads((spool_path / STATUS).read_text())
        return int(data["drained"]), float(data["ok_at"])
    except (OSError, ValueError, KeyError):
        return 0, 0.0


def main(cfg: Audit, url: str, data_dir: str, spool_path: str, parent: int) -> None:
    """The drainer process: until the parent asks it to stop (SIGTERM) or goes away."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the gateway, which stops us in order
    audit_log = open_log(cfg, Store(url), Path(data_dir))
    siem = SiemForwarder(cfg.siem, audit_log) if cfg.siem else None
    if siem is not None:
        threading.Thread(target=siem.run, args=(stop,), name="audit-siem", daemon=True).start()
    Drainer(audit_log, Path(spool_path), cfg.fsync).run(stop, parent)
    audit_log.store.close()
