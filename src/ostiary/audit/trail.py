"""The audit trail service: what the gateway calls to record, and how events reach disk and store.

`record(pending)` returns once the event is on disk. The work is done on the event loop itself, in
batches (group commit): the events that finished in one loop iteration are encrypted (each event's
personal part under its subject's data key, so the spool never holds personal content in clear),
written to the spool together, and fsynced together by a small thread that does nothing but the
fsync; the next batch forms while one is being synced. No thread does Python work for the hot
path: on one core, a writer thread fighting the event loop for the GIL cost a third of the
throughput.

The drainer (audit/drainer.py) moves spooled records to the store in a process of its own. If the
spool cannot be written, the requests waiting on it fail with 503: an answer is never given for a
request the trail did not keep. If the store is down, the spool grows and the drainer retries;
`lag()` tells how far behind it is.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ostiary.audit.crypto import seal
from ostiary.audit.drainer import Drainer, status
from ostiary.audit.drainer import main as drainer_main
from ostiary.audit.event import Pending
from ostiary.audit.keys import audit_paths, load_keyring, open_log
from ostiary.audit.log import encode_event, encode_key
from ostiary.audit.spool import Spool
from ostiary.config.schema import Audit
from ostiary.errors import GatewayError
from ostiary.store import Store

log = logging.getLogger("ostiary.audit")


class AuditUnavailable(GatewayError):
    def __init__(self, why: str) -> None:
        super().__init__(f"The audit trail cannot record this request ({why}); it was not answered.",
                         status=503, type="api_error", code="audit_unavailable")


class AuditTrail:
    def __init__(self, cfg: Audit, store: Store, data_dir: Path, drainer_process: bool = True) -> None:
        spool_dir, _, _ = audit_paths(cfg, data_dir)
        self.cfg = cfg
        self.data_dir = data_dir
        self.keyring = load_keyring(cfg, data_dir)
        self.log = open_log(cfg, Store(store.url), data_dir)  # its own engine: a drainer thread may share it
        self.signer = self.log.signer
        self.spool_dir = spool_dir
        self.spool = Spool.claim(spool_dir, cfg.fsync)
        self.drainer_process = drainer_process
        self._lock = threading.Lock()  # one writer of the spool at a time: the loop, or another thread
        self._batch: list[tuple[Pending, asyncio.Future[None]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = False  # a batch is being synced; the next one waits for it
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="audit-fsync")
        self._process: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # a thread drainer drains at once when `flush` asks
        self._drainer: Drainer | None = None

    def start(self) -> None:
        """Start draining: a process (the gateway), or a thread (`drainer_process=False`)."""
        if self.drainer_process:
            ctx = multiprocessing.get_context("spawn")
            self._process = ctx.Process(target=drainer_main, name="ostiary-audit-drainer", daemon=True, args=(
                self.cfg, self.log.store.url, str(self.data_dir), str(self.spool.path), os.getpid()))
            self._process.start()
        else:
            self._drainer = Drainer(self.log, self.spool.path, self.cfg.fsync)
            self._thread = threading.Thread(target=self._drainer.run, args=(self._stop, None, self._wake),
                                            name="audit-drainer", daemon=True)
            self._thread.start()

    # -- the request side ----------------------------------------------------------------------

    async def record(self, pending: Pending) -> None:
        """Return once the event is durable; raise AuditUnavailable if it cannot be."""
        await self._enqueue(asyncio.get_running_loop(), pending)

    def record_nowait(self, pending: Pending) -> None:
        """For events nobody waits on (a client that left, a notice), from the loop or any thread."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.record_sync(pending)
            return
        self._enqueue(loop, pending).add_done_callback(_ignore)

    def _enqueue(self, loop: asyncio.AbstractEventLoop, pending: Pending) -> asyncio.Future[None]:
        future: asyncio.Future[None] = loop.create_future()
        self._batch.append((pending, future))
        if not self._busy:
            self._busy = True
            self._loop = loop
            # At the end of this loop iteration: every event finished by then joins the batch.
            loop.call_soon(self._flush)
        return future

    def record_sync(self, pending: Pending) -> None:
        """From a thread that is not an event loop's (the CLI, admin work in threads, tests)."""
        with self._lock:
            self._write([pending])
            self.spool.sync()

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            self._busy = False
            return
        try:
            with self._lock:
                self._write([p for p, _ in batch])
        except Exception as e:
            log.exception("the audit spool could not be written")
            self._settle(batch, AuditUnavailable(f"spool write failed: {e.__class__.__name__}"))
            return
        if not self.cfg.fsync:
            self._settle(batch, None)  # written to the page cache: survives a crash of the process
            return
        done = self._syncer.submit(self._sync)
        loop = self._loop
        assert loop is not None
        done.add_done_callback(lambda f: _call_soon(loop, self._synced, batch, f))

    def _sync(self) -> None:
        # Under the lock: another thread's `record_sync` may rotate the segment (which syncs and
        # closes the old one) at any time, and must not do it under this fsync.
        with self._lock:
            self.spool.sync()

    def _synced(self, batch: list[tuple[Pending, asyncio.Future[None]]], done: Future[None]) -> None:
        error = done.exception()
        if error is not None:
            log.error("the audit spool could not be synced: %s", error)
        self._settle(batch, AuditUnavailable(f"spool sync failed: {error.__class__.__name__}") if error else None)

    def _settle(self, batch: list[tuple[Pending, asyncio.Future[None]]], error: Exception | None) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(error) if error else future.set_result(None)
        if self._batch:  # formed while this one was syncing
            assert self._loop is not None
            self._loop.call_soon(self._flush)
        else:
            self._busy = False

    def _write(self, pendings: list[Pending]) -> None:
        records = [encode_event(self._seal(p)) for p in pendings]
        # Keys created for these events go first: the store has a key before any event under it.
        keys = [encode_key(k.kid, k.subject, k.period, self.keyring.wrapped(k)) for k in self.keyring.take_fresh()]
        self.spool.write(keys + records)

    def _seal(self, pending: Pending) -> dict[str, Any]:
        envelope = pending.envelope
        if pending.subject is not None:
            pseudonym = self.keyring.pseudonym(pending.subject)
            period = envelope["at"][:7]
            key = self.keyring.key_for(pseudonym, period)
            envelope = {**envelope, "subject": pseudonym,
                        "content": seal(key, pending.personal or {}, envelope["uid"].encode())}
        return envelope

    # -- the drainer's progress ----------------------------------------------------------------

    def lag(self) -> tuple[int, float]:
        """(bytes spooled and not yet in the store, seconds since the drainer last succeeded)."""
        _, ok_at = status(self.spool.path)
        return self.spool.pending_bytes(), (time.time() - ok_at) if ok_at else 0.0

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything written so far is in the store (tests, the CLI, benchmarks)."""
        deadline = time.monotonic() + timeout
        target = self.spool.position()
        while self.spool.cursor() < target:
            self._wake.set()
            if time.monotonic() > deadline:
                raise TimeoutError("the audit trail did not drain in time")
            time.sleep(0.02)

    def close(self) -> None:
        self._syncer.shutdown(wait=True)
        self._stop.set()
        self._wake.set()
        if self._process is not None:
            self._process.terminate()  # SIGTERM: it drains what is left, then exits
            self._process.join(30)
        if self._thread is not None:
            self._thread.join(30)
        self.spool.release()
        self.log.store.close()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: nobody waits any more
        pass


def _ignore(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a failed notice is logged where it failed
