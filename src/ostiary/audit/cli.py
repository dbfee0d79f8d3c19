"""`ostiary audit ...` and `ostiary subjects ...`: verify the trail, prove, export; erase and export a
data subject. They work on the configured store directly (no running gateway needed), with the same
keys the gateway uses. Exit codes: 0 success, 1 a check failed or the request cannot be met, 2 usage.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ostiary.audit.checkpoint import NoteError, Signer, Verifier
from ostiary.audit.evidence import BundleError, check_bundle, make_bundle
from ostiary.audit.export import FORMATS, export
from ostiary.audit.grants import grants_sql
from ostiary.audit.keys import load_keyring, open_log
from ostiary.audit.log import AuditLog
from ostiary.audit.subjects import SubjectError, Subjects
from ostiary.audit.verify import trusted, verify_and_record
from ostiary.config.load import ConfigError, load_default, load_file
from ostiary.config.schema import Config
from ostiary.store import Store


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("audit", help="the tamper-evident audit trail: verify, proofs, evidence, export")
    asub = p.add_subparsers(dest="audit_command", required=True)

    def cmd(name: str, help: str, run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        c = asub.add_parser(name, help=help)
        c.add_argument("--config", type=Path, help="config file (its database and audit keys)")
        c.set_defaults(run=run)
        return c

    c = cmd("verify", "recompute the whole log and check every checkpoint; exit 1 on any failure", _verify)
    c.add_argument("--witness", type=Path, help="also check the checkpoints in this directory "
                   "(default: audit.witness_dir)")
    c.add_argument("--key", action="append", default=[], metavar="VKEY",
                   help="trusted verifier key (default: the configured signer and audit.verifier_keys)")
    c.add_argument("--json", action="store_true")
    c = asub.add_parser("keygen", help="write a new checkpoint signing key and master key into a directory")
    c.add_argument("directory", type=Path)
    c.add_argument("--origin", default="ostiary/audit", help="the log's name (audit.origin)")
    c.set_defaults(run=_keygen)
    cmd("key", "print the verifier key of the checkpoint signer (give it to auditors and witnesses)", _key)
    c = cmd("proof", "inclusion proof of one event in the latest checkpoint", _proof)
    _event_arg(c)
    c = cmd("consistency", "consistency proof between two tree sizes", _consistency)
    c.add_argument("old", type=int)
    c.add_argument("new", type=int)
    c = cmd("bundle", "evidence bundle of one request, for a third party to check offline", _bundle)
    _event_arg(c)
    c.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    c = asub.add_parser("check-bundle", help="check an evidence bundle offline with a trusted verifier key")
    c.add_argument("bundle", type=Path)
    c.add_argument("--key", action="append", required=True, metavar="VKEY")
    c.set_defaults(run=_check_bundle)
    c = cmd("export", "events (and checkpoints) between two times, for a SIEM", _export)
    c.add_argument("--since", type=_time, help="ISO time, e.g. 2026-11-01 or 2026-11-01T12:00:00+01:00")
    c.add_argument("--until", type=_time)
    c.add_argument("--format", choices=FORMATS, default="jsonl")
    c = asub.add_parser("grants", help="print the PostgreSQL GRANTs for the gateway's role (audit tables: "
                        "insert and select only); run them as the database owner")
    c.add_argument("role")
    c.set_defaults(run=_grants)
    cmd("retention", "shred content past audit.retention.content_days now (the gateway does it hourly)", _retention)
    cmd("tiles", "store the proof tiles a log written before them lacks (once, after upgrading; proofs work "
        "without, only slower)", _tiles)

    p = sub.add_parser("subjects", help="data subjects (GDPR): erase, access export, legal holds")
    ssub = p.add_subparsers(dest="subjects_command", required=True)
    for name, help, run in (("erase", "erase a subject's personal data everywhere the gateway keeps it", _erase),
                            ("export", "everything the gateway keeps about a subject, decrypted (JSON)", _sexport),
                            ("hold", "place a legal hold (no erasure, no retention); '*' holds everything", _hold),
                            ("release", "lift a legal hold", _release)):
        c = ssub.add_parser(name, help=help)
        c.add_argument("subject", help="TENANT/USER: the user id (or the key id or token subject of calls without a user)")
        c.add_argument("--config", type=Path)
        if name == "hold":
            c.add_argument("--reason", required=True)
        c.set_defaults(run=run)


def _event_arg(c: argparse.ArgumentParser) -> None:
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("request_id", nargs="?", help="the x-request-id of the request")
    g.add_argument("--seq", type=int, help="the event's index in the log instead")


def _time(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or time") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _open(args: argparse.Namespace) -> tuple[Config, AuditLog]:
    loaded = load_file(args.config) if args.config else load_default()
    cfg = loaded.config
    return cfg, open_log(cfg.audit, Store.open(cfg.database_url, cfg.server.data_dir), cfg.server.data_dir)


def _guard(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except (ConfigError, BundleError, SubjectError, NoteError, ValueError, OSError) as e:
            print(f"ostiary: {e}", file=sys.stderr)
            return 1
    return guarded


def _out(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


@_guard
def _verify(args: argparse.Namespace) -> int:
    cfg, log = _open(args)
    keys = trusted(log, cfg.audit.verifier_keys, args.key)
    report = verify_and_record(log, keys, args.witness or cfg.audit.witness_dir)
    if args.json:
        _out(report.public())
    elif report.ok:
        print(f"ok: {report.size} events, {report.checkpoints} checkpoints"
              + (f", {report.witnessed} witnessed" if report.witnessed else ""))
    else:
        print(f"FAILED: first bad index {report.first_bad if report.first_bad is not None else 'unknown'}")
        for problem in report.problems:
            print(f"  - {problem}")
    return 0 if report.ok else 1


@_guard
def _keygen(args: argparse.Namespace) -> int:
    signing, master = write_keys(args.directory, args.origin)
    print(f"audit:\n  origin: {args.origin}\n  signing_key_file: {signing}\n  master_key_file: {master}")
    verifier = Signer.from_key_string(signing.read_text().strip()).verifier().key_string()
    print(f"# verifier key (for auditors and witnesses): {verifier}", file=sys.stderr)
    return 0


def write_keys(directory: Path, origin: str) -> tuple[Path, Path]:
    """A signing key and a master key, created (never overwritten) with owner-only permissions."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in (("signing.key", Signer.generate(origin).key_string()), ("master.key", secrets.token_hex(32))):
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        out.append(path.resolve())
    return out[0], out[1]


@_guard
def _grants(args: argparse.Namespace) -> int:
    for statement in grants_sql(args.role):
        print(statement + ";")
    return 0


@_guard
def _key(args: argparse.Namespace) -> int:
    _, log = _open(args)
    print(log.signer.verifier().key_string())
    return 0


@_guard
def _proof(args: argparse.Namespace) -> int:
    bundle = make_bundle(_open(args)[1], args.request_id, args.seq)
    _out({k: bundle[k] for k in ("index", "tree_size", "inclusion_proof", "checkpoint")})
    return 0


@_guard
def _consistency(args: argparse.Namespace) -> int:
    _, log = _open(args)
    size = log.size()
    if not 0 <= args.old <= args.new <= size:
        raise ValueError(f"sizes must satisfy 0 <= old <= new <= {size} (the log's size)")
    proof = log.consistency(args.old, args.new)
    _out({"old": args.old, "new": args.new, "proof": [base64.b64encode(h).decode() for h in proof]})
    return 0


@_guard
def _bundle(args: argparse.Namespace) -> int:
    bundle = make_bundle(_open(args)[1], args.request_id, args.seq)
    text = json.dumps(bundle, indent=2, ensure_ascii=False)
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    return 0


@_guard
def _check_bundle(args: argparse.Namespace) -> int:
    try:
        bundle = json.loads(args.bundle.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{args.bundle} is not JSON: {e}") from None
    result = check_bundle(bundle, [Verifier.from_key_string(k) for k in args.key])
    print(f"ok: event {result['index']} is in the log {result['origin']} of size {result['tree_size']}, "
          "whose checkpoint is signed by a trusted key")
    return 0


@_guard
def _export(args: argparse.Namespace) -> int:
    _, log = _open(args)
    for line in export(log, args.format, args.since, args.until):
        sys.stdout.write(line + "\n")
    return 0


def _subjects(args: argparse.Namespace) -> tuple[Config, Subjects]:
    cfg, log = _open(args)
    return cfg, Subjects(log, load_keyring(cfg.audit, cfg.server.data_dir))


@_guard
def _tiles(args: argparse.Namespace) -> int:
    _out({"stored": _open(args)[1].backfill_tiles()})
    return 0


@_guard
def _retention(args: argparse.Namespace) -> int:
    cfg, subjects = _subjects(args)
    _out(subjects.retain(cfg.audit.retention.content_days, "cli"))
    return 0


@_guard
def _erase(args: argparse.Namespace) -> int:
    _out(_subjects(args)[1].erase(args.subject, "cli"))
    return 0


@_guard
def _sexport(args: argparse.Namespace) -> int:
    _out(_subjects(args)[1].export(args.subject))
    return 0


@_guard
def _hold(args: argparse.Namespace) -> int:
    _out(_subjects(args)[1].hold(args.subject, args.reason, "cli"))
    return 0


@_guard
def _release(args: argparse.Namespace) -> int:
    _out(_subjects(args)[1].release(args.subject, "cli"))
    return 0
