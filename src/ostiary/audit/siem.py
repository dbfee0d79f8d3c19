"""Streaming export to a SIEM: every event and checkpoint, in log order, at least once, over TCP or TLS.

One replica at a time sends: the sender holds a lease on its row of `audit_exports` (renewed at each
step; another replica takes over when it lapses) and moves the row's cursor after the receiver has
the lines. A crash between sending and moving the cursor resends a few lines: each carries its
`seq` (checkpoints their `size`), so a receiver can drop duplicates. Lines are framed by octet
counting (RFC 6587 / RFC 5425: "<length> <line>") for syslog and by newlines for CEF and JSON lines.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from ostiary.audit.export import checkpoint_event, line
from ostiary.audit.log import AuditLog
from ostiary.config.schema import Siem
from ostiary.store.schema import audit_checkpoints, audit_exports

log = logging.getLogger("ostiary.audit.siem")
BATCH = 500
LEASE = timedelta(seconds=15)
IDLE = 0.5  # seconds between looks when there is nothing new


class SiemForwarder:
    def __init__(self, cfg: Siem, log_: AuditLog) -> None:
        self.cfg = cfg
        self.log = log_
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:100]
        self.host = socket.gethostname()
        scheme, _, rest = cfg.url.partition("://")
        addr, _, port = rest.rpartition(":")
        self.address = (addr, int(port))
        self.tls = scheme == "tls"
        self._sock: socket.socket | None = None
        self.sent = 0
        self.failures = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                n = self.step()
                self.failures = 0
            except (OSError, sa.exc.SQLAlchemyError) as e:
                self.failures += 1
                self._close()
                log.warning("SIEM export to %s failed (%s); retrying", self.cfg.url, e)
                stop.wait(min(10.0, 0.5 * self.failures))
                continue
            if n == 0:
                stop.wait(IDLE)
        self._close()

    def step(self) -> int:
        """Send the next batch if this replica holds the lease; the number of lines sent."""
        state = self._claim()
        if state is None:
            return 0
        cursor, cp_cursor = state
        rows = list(self.log.rows(cursor, cursor + BATCH))
        end = rows[-1].seq + 1 if rows else cursor
        with self.log.store.engine.connect() as conn:
            checkpoints = conn.execute(sa.select(audit_checkpoints).where(
                audit_checkpoints.c.size > cp_cursor, audit_checkpoints.c.size <= end)
                .order_by(audit_checkpoints.c.size)).all()
        lines = []
        due = list(checkpoints)
        for row in rows:
            lines.append(line(self.cfg.format, orjson.loads(row.body), self.host))
            # A checkpoint follows the event that completes it.
            while due and due[0].size <= row.seq + 1:
                cp = due.pop(0)
                lines.append(line(self.cfg.format, checkpoint_event(cp.size, cp.note, cp.at), self.host))
        for cp in due:  # signed after its events were sent
            lines.append(line(self.cfg.format, checkpoint_event(cp.size, cp.note, cp.at), self.host))
        if not lines:
            return 0
        self._send(lines)
        new_cp = checkpoints[-1].size if checkpoints else cp_cursor
        with self.log.store.engine.begin() as conn:
            conn.execute(audit_exports.update().where(audit_exports.c.name == self.cfg.name,
                                                      audit_exports.c.owner == self.owner)
                         .values(cursor=end, checkpoint_cursor=new_cp))
        self.sent += len(lines)
        return len(lines)

    def _claim(self) -> tuple[int, int] | None:
        now = datetime.now(UTC)
        with self.log.store.engine.begin() as conn:
            taken = conn.execute(audit_exports.update().where(
                audit_exports.c.name == self.cfg.name,
                sa.or_(audit_exports.c.owner == self.owner, audit_exports.c.lease_until < now))
                .values(owner=self.owner, lease_until=now + LEASE)).rowcount
            if not taken:
                exists = conn.execute(sa.select(audit_exports.c.name).where(
                    audit_exports.c.name == self.cfg.name)).first()
                if exists is not None:
                    return None
                conn.execute(audit_exports.insert().values(name=self.cfg.name, cursor=0, checkpoint_cursor=0,
                                                           owner=self.owner, lease_until=now + LEASE))
            row = conn.execute(sa.select(audit_exports).where(audit_exports.c.name == self.cfg.name)).one()
        return int(row.cursor), int(row.checkpoint_cursor)

    def _send(self, lines: list[str]) -> None:
        if self._sock is None:
            self._sock = self._connect()
        if self.cfg.format == "syslog":
            data = b"".join(b"%d %s" % (len(b), b) for b in (s.encode() for s in lines))
        else:
            data = b"".join(s.encode() + b"\n" for s in lines)
        self._sock.sendall(data)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=10)
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.cfg.ca_file) if self.cfg.ca_file else None)
            sock = context.wrap_socket(sock, server_hostname=self.address[0])
        return sock

    def _close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def public(self) -> dict[str, Any]:
        return {"url": self.cfg.url, "sent": self.sent, "failures": self.failures}
