"""Streaming the audit log to a SIEM over TCP and TLS: in order, checkpoints after the events they
complete, one sender at a time, resumed from its cursor, nothing lost while the receiver is down."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ostiary.audit.checkpoint import Signer
from ostiary.audit.event import notice
from ostiary.audit.log import AuditLog, encode_event
from ostiary.audit.siem import SiemForwarder
from ostiary.config.schema import Siem
from ostiary.store import Store
from ostiary.store.schema import audit_exports
from tests.support import free_port


class Receiver:
    """A syslog-over-TCP receiver (octet-counted frames), optionally TLS."""

    def __init__(self, port: int, context: ssl.SSLContext | None = None) -> None:
        self.frames: list[dict[str, object]] = []
        self.server = socket.create_server(("127.0.0.1", port))
        self.context = context
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            if self.context is not None:
                try:
                    conn = self.context.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    conn.close()
                    continue
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b" " in buf:
                size, _, rest = buf.partition(b" ")
                if len(rest) < int(size):
                    break
                frame, buf = rest[:int(size)], rest[int(size):]
                # RFC 5424: the JSON event is the message after the structured data.
                self.frames.append(orjson.loads(frame[frame.index(b"] {") + 2:]))

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def log(store: Store) -> AuditLog:
    return AuditLog(store, Signer.generate("ostiary/audit"), "ostiary/audit", every=3, seconds=3600)


def _append(log: AuditLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.append([encode_event(notice("test", n=i).envelope)])


def _drain(fw: SiemForwarder) -> None:
    while fw.step():
        pass


def _until(pred: object, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)


def test_events_and_checkpoints_arrive_in_order_once(log: AuditLog, store: Store) -> None:
    port = free_port()
    rx = Receiver(port)
    try:
        _append(log, 7)
        fw = SiemForwarder(Siem(url=f"tcp://127.0.0.1:{port}"), log)
        _drain(fw)
        _until(lambda: len(rx.frames) >= 9)
        kinds = [(f["kind"], f.get("seq")) for f in rx.frames]
        events = [seq for kind, seq in kinds if kind == "test"]
        assert events == list(range(7))
        # Every checkpoint comes, once, right after the event that completes it.
        checkpoints = [i for i, (kind, _) in enumerate(kinds) if kind == "checkpoint"]
        assert len(checkpoints) == len(log.checkpoints()) >= 2
        assert all(kinds[i - 1] == ("test", kinds[i][1]) for i in checkpoints)
        # Another replica does not send while the lease is held.
        other = SiemForwarder(Siem(url=f"tcp://127.0.0.1:{port}"), log)
        _append(log, 2, start=7)
        assert other.step() == 0
        # The first one's lease lapses (it died): the other resumes from the cursor, without repeats.
        with store.engine.begin() as conn:
            conn.execute(audit_exports.update().values(lease_until=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))
        _drain(other)
        _until(lambda: len([f for f in rx.frames if f["kind"] == "test"]) >= 9)
        assert [f["seq"] for f in rx.frames if f["kind"] == "test"] == list(range(9))
    finally:
        rx.close()


def test_nothing_is_lost_while_the_receiver_is_down(log: AuditLog) -> None:
    port = free_port()
    fw = SiemForwarder(Siem(url=f"tcp://127.0.0.1:{port}"), log)
    _append(log, 4)
    with pytest.raises(OSError):
        fw.step()
    rx = Receiver(port)
    try:
        _drain(fw)
        _until(lambda: len([f for f in rx.frames if f["kind"] == "test"]) >= 4)
        assert [f["seq"] for f in rx.frames if f["kind"] == "test"] == [0, 1, 2, 3]
    finally:
        rx.close()


@pytest.fixture
def certificate(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "siem.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "siem.pem", tmp_path / "siem.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    yield cert_file, key_file


def test_tls_with_the_receivers_ca_and_refused_without(log: AuditLog, store: Store,
                                                       certificate: tuple[Path, Path]) -> None:
    cert_file, key_file = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    port = free_port()
    rx = Receiver(port, context)
    try:
        _append(log, 2)
        with pytest.raises(ssl.SSLError):  # the system CAs do not know this receiver
            SiemForwarder(Siem(url=f"tls://127.0.0.1:{port}", name="untrusted"), log).step()
        with store.engine.begin() as conn:
            conn.execute(sa.delete(audit_exports))
        fw = SiemForwarder(Siem(url=f"tls://127.0.0.1:{port}", ca_file=cert_file), log)
        _drain(fw)
        _until(lambda: len([f for f in rx.frames if f["kind"] == "test"]) >= 2)
        assert [f["seq"] for f in rx.frames if f["kind"] == "test"] == [0, 1]
    finally:
        rx.close()
