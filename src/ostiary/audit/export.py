"""Audit export for SIEMs: JSON lines, ArcSight CEF, or syslog (RFC 5424) lines, checkpoints included.

Events are exported as stored: the envelope in clear, personal content still encrypted (a SIEM gets
no more than the log holds; `ostiary subjects export` is the way to personal data). Checkpoints
come in order among the events, after the event that completes them, so the receiver can check
what it got against signed roots.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from ostiary.audit.log import AuditLog

FORMATS = ("jsonl", "cef", "syslog")
_CEF_ESCAPE = str.maketrans({"\\": "\\\\", "=": "\\=", "\n": "\\n", "\r": "\\r"})
_CEF_HEADER_ESCAPE = str.maketrans({"\\": "\\\\", "|": "\\|"})


def export(log: AuditLog, fmt: str, since: datetime | None = None, until: datetime | None = None) -> Iterator[str]:
    """Lines (without newline) of the events whose time is in [since, until), with checkpoints."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    checkpoints = {int(c.size): c.note for c in log.checkpoints()}
    host = socket.gethostname()
    for row in log.rows(since=since, until=until):
        yield line(fmt, orjson.loads(row.body), host)
        note = checkpoints.get(row.seq + 1)
        if note is not None:
            yield line(fmt, checkpoint_event(row.seq + 1, note, _utc(row.at)), host)


def checkpoint_event(size: int, note: str, at: datetime) -> dict[str, Any]:
    return {"kind": "checkpoint", "seq": size - 1, "size": size, "note": note, "at": _utc(at).isoformat()}


def line(fmt: str, event: dict[str, Any], host: str) -> str:
    if fmt == "jsonl":
        return orjson.dumps(event).decode()
    if fmt == "cef":
        return cef(event)
    return syslog(event, host)


def cef(event: dict[str, Any]) -> str:
    kind = str(event.get("kind", "event"))
    status = event.get("status")
    severity = 7 if isinstance(status, int) and status >= 500 else 5 if isinstance(status, int) and status >= 400 else 3
    name = kind if kind != "request" else f"{event.get('api')} {event.get('model')} {status}"
    ext = {"rt": event.get("at"), "externalId": event.get("request_id"), "cs1Label": "tenant",
           "cs1": event.get("tenant"), "cs2Label": "route", "cs2": event.get("route"), "cn1Label": "seq",
           "cn1": event.get("seq"), "msg": orjson.dumps(event).decode()}
    extension = " ".join(f"{k}={str(v).translate(_CEF_ESCAPE)}" for k, v in ext.items() if v is not None)
    header = "|".join(str(x).translate(_CEF_HEADER_ESCAPE) for x in
                      ("CEF:0", "Ostiary", "Ostiary Gateway", "1", kind, name, severity))
    return f"{header}|{extension}"


def syslog(event: dict[str, Any], host: str) -> str:
    """RFC 5424: facility 13 (log audit), severity notice (5); the event as the message."""
    status = event.get("status")
    severity = 3 if isinstance(status, int) and status >= 500 else 4 if isinstance(status, int) and status >= 400 else 5
    pri = 13 * 8 + severity
    msgid = str(event.get("kind", "-"))[:32]
    sd = f'[ostiary@32473 seq="{event.get("seq", "-")}" tenant="{_sd(event.get("tenant"))}"]'
    return f"<{pri}>1 {event.get('at', '-')} {host} ostiary - {msgid} {sd} {orjson.dumps(event).decode()}"


def _sd(value: Any) -> str:
    return str(value if value is not None else "-").replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _utc(at: datetime) -> datetime:
    # SQLite gives times back without their zone: they are UTC, as everything the gateway stores.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
