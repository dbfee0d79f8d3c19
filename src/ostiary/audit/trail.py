"""The audit trail service: what the gateway calls to record, and the two threads that persist.

`record(pending)` hands an event to the *writer* thread and waits until it is on disk: the writer
takes whatever has queued (group commit), encrypts each event's personal part under its subject's
data key (so the spool never holds personal content in clear), appends the batch to the spool with
one fsync and wakes the waiting requests. The *drainer* thread moves spooled records to the store
(audit/log.py) in batches, saves its cursor, and every second lets the sequencer take over new
administrative events and sign a checkpoint when one is due. With `audit.siem`, a third thread
streams the log to a SIEM (audit/siem.py). It also drains the spool of a process
that died (a slot whose lock is free), so a crashed replica's acknowledged events arrive even if
that replica never comes back.

If the spool cannot be written, the requests waiting on it fail with 503: an answer is never given
for a request the trail did not keep. If the store is down, the spool grows and the drainer
retries; `lag()` tells how far behind it is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ostiary.audit.checkpoint import Signer
from ostiary.audit.crypto import Keyring, MasterKey, seal
from ostiary.audit.event import Pending
from ostiary.audit.log import AuditLog, encode_event, encode_key
from ostiary.audit.siem import SiemForwarder
from ostiary.audit.spool import Spool
from ostiary.config.schema import Audit
from ostiary.errors import GatewayError
from ostiary.store import Store

log = logging.getLogger("ostiary.audit")
BATCH = 512
DRAIN_EVERY = 0.05  # seconds between drains while records arrive
TICK = 1.0  # seconds between sequencer runs with nothing to drain (admin events, timed checkpoints)
ADOPT_EVERY = 10.0  # seconds between looks for dead processes' spools


class AuditUnavailable(GatewayError):
    def __init__(self, why: str) -> None:
        super().__init__(f"The audit trail cannot record this request ({why}); it was not answered.",
                         status=503, type="api_error", code="audit_unavailable")


def audit_paths(cfg: Audit, data_dir: Path) -> tuple[Path, Path, Path]:
    """(spool directory, signing key file, default master key file)."""
    base = data_dir / "audit"
    return (cfg.spool_dir or base, cfg.signing_key_file or base / "signing.key", base / "master.key")


def load_signer(cfg: Audit, data_dir: Path) -> Signer:
    """The note signing key; in the embedded default it is created on first start."""
    _, path, _ = audit_paths(cfg, data_dir)
    if cfg.signing_key_file is None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(Signer.generate(cfg.origin).key_string() + "\n")
    try:
        return Signer.from_key_string(path.read_text().strip())
    except OSError as e:
        raise ValueError(f"cannot read the audit signing key {path}: {e.strerror}") from None


def load_keyring(cfg: Audit, data_dir: Path) -> Keyring:
    _, _, default = audit_paths(cfg, data_dir)
    return Keyring(MasterKey.load(cfg.master_key_file, cfg.master_key_env, default))


class AuditTrail:
    def __init__(self, cfg: Audit, store: Store, data_dir: Path) -> None:
        spool_dir, _, _ = audit_paths(cfg, data_dir)
        self.cfg = cfg
        self.keyring = load_keyring(cfg, data_dir)
        self.signer = load_signer(cfg, data_dir)
        self.log = AuditLog(store, self.signer, cfg.origin, cfg.checkpoint_every, cfg.checkpoint_seconds,
                            cfg.witness_dir, cfg.witness_url)
        self.spool_dir = spool_dir
        self.spool = Spool.claim(spool_dir, cfg.fsync)
        self.siem = SiemForwarder(cfg.siem, self.log) if cfg.siem else None
        self._queue: queue.SimpleQueue[tuple[Pending, Future[None] | None] | None] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.written = 0  # events on disk
        self.drained = 0  # events in the store
        self.last_drain = time.monotonic()
        self.drain_errors = 0

    def start(self) -> None:
        for target, name in ((self._write_forever, "audit-writer"), (self._drain_forever, "audit-drainer")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        if self.siem is not None:
            t = threading.Thread(target=self.siem.run, args=(self._stop,), name="audit-siem", daemon=True)
            t.start()
            self._threads.append(t)

    # -- the request side ----------------------------------------------------------------------

    async def record(self, pending: Pending) -> None:
        """Return once the event is durable; raise AuditUnavailable if it cannot be."""
        future: Future[None] = Future()
        self._queue.put((pending, future))
        await asyncio.wrap_future(future)

    def record_nowait(self, pending: Pending) -> None:
        """For events nobody waits on (a client that left, a notice): written with the next batch."""
        self._queue.put((pending, None))

    def record_sync(self, pending: Pending, timeout: float = 30.0) -> None:
        future: Future[None] = Future()
        self._queue.put((pending, future))
        future.result(timeout)

    # -- the writer ----------------------------------------------------------------------------

    def _write_forever(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(i is None for i in batch)
            items = [i for i in batch if i is not None]
            if items:
                self._write(items)
            if stop:
                return

    def _write(self, items: list[tuple[Pending, Future[None] | None]]) -> None:
        try:
            records = []
            for pending, _ in items:
                records.append(encode_event(self._seal(pending)))
            # Keys created for this batch go first: the store has a key before any event under it.
            keys = [encode_key(k.kid, k.subject, k.period, self.keyring.wrapped(k)) for k in self.keyring.take_fresh()]
            self.spool.append(keys + records)
        except Exception as e:
            log.exception("the audit spool could not be written")
            for _, future in items:
                if future is not None:
                    future.set_exception(AuditUnavailable(f"spool write failed: {e.__class__.__name__}"))
            return
        self.written += len(items)
        for _, future in items:
            if future is not None:
                future.set_result(None)
        self._wake.set()

    def _seal(self, pending: Pending) -> dict[str, Any]:
        envelope = pending.envelope
        if pending.subject is not None:
            pseudonym = self.keyring.pseudonym(pending.subject)
            period = envelope["at"][:7]
            key = self.keyring.key_for(pseudonym, period)
            envelope = {**envelope, "subject": pseudonym,
                        "content": seal(key, pending.personal or {}, envelope["uid"].encode())}
        return envelope

    # -- the drainer ---------------------------------------------------------------------------

    def _drain_forever(self) -> None:
        cursor = self.spool.cursor()
        next_tick = next_adopt = 0.0
        while not self._stop.is_set():
            self._wake.wait(DRAIN_EVERY)
            self._wake.clear()
            now = time.monotonic()
            try:
                cursor, n = self._drain(self.spool, cursor)
                if n == 0 and now >= next_tick:
                    if self.log.due():
                        self.log.append([])
                    next_tick = now + TICK
                if now >= next_adopt:
                    self._adopt()
                    next_adopt = now + ADOPT_EVERY
                self.last_drain = now
            except Exception:
                self.drain_errors += 1
                log.warning("audit drain failed; retrying (the spool keeps the records)", exc_info=True)
                self._stop.wait(min(5.0, 0.2 * self.drain_errors))
                continue
            self.drain_errors = 0
        self._drain(self.spool, cursor)  # at shutdown: whatever the writer spooled last

    def _drain(self, spool: Spool, cursor: Any) -> tuple[Any, int]:
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

    def _adopt(self) -> None:
        for path in Spool.slots(self.spool_dir):
            if path == self.spool.path:
                continue
            orphan = Spool.try_slot(path, self.cfg.fsync)
            if orphan is None:
                continue
            try:
                _, n = self._drain(orphan, orphan.cursor())
                if n:
                    log.info("drained %d audit events a stopped process left in %s", n, path)
            finally:
                orphan.release()

    def lag(self) -> tuple[int, float]:
        """(events written and not yet in the store, seconds since the drainer last succeeded)."""
        return self.written - self.drained, time.monotonic() - self.last_drain

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything recorded so far is in the store (tests, shutdown, CLI)."""
        deadline = time.monotonic() + timeout
        while self.written > self.drained or not self._queue.empty():
            if time.monotonic() > deadline:
                raise TimeoutError("the audit trail did not drain in time")
            self._wake.set()
            time.sleep(0.01)

    def close(self) -> None:
        self._queue.put(None)
        for t in self._threads[:1]:
            t.join(10)
        self._stop.set()
        self._wake.set()
        for t in self._threads[1:]:
            t.join(30)
        self.spool.release()

