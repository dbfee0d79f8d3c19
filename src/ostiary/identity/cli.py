"""`ostiary keys ...`: issue, list, revoke and rotate virtual API keys on the configured database."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import timedelta
from pathlib import Path

from ostiary.config.load import ConfigError, load_default, load_file
from ostiary.identity.keys import KeyAdminError, KeyService
from ostiary.limits.settings import BudgetRule, LimitRule

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def duration(text: str) -> timedelta:
    m = _DURATION.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 45s, 15m, 12h or 30d")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("keys", help="virtual API keys: create, list, revoke, rotate")
    ksub = p.add_subparsers(dest="keys_command", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--config", type=Path, help="config file (its database_url and identity.key_secret)")
        q.add_argument("--json", action="store_true", help="print JSON")

    c = ksub.add_parser("create", help="issue a key; it is shown once")
    common(c)
    c.add_argument("--tenant", required=True)
    c.add_argument("--user")
    c.add_argument("--role", default="developer")
    c.add_argument("--scopes", default="chat,embeddings", help="comma-separated: chat, embeddings, admin")
    c.add_argument("--models", help="comma-separated routes the key may use (default: all)")
    c.add_argument("--clearance", default="internal", help="public, internal, confidential, restricted")
    c.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    c.add_argument("--name", default="")
    c.add_argument("--expires-in", type=duration, help="e.g. 90d")
    c.add_argument("--budget", metavar="USD/PERIOD", help="the key's own budget, e.g. 50/month (day, month, total)")
    c.add_argument("--limits", metavar="NAME=N,...",
                   help="the key's own limits, e.g. rpm=600,tpm=100000 (rpm, tpm, input_tpm, output_tpm, concurrent)")
    c.set_defaults(run=_create)

    ls = ksub.add_parser("list", help="list keys (never their secrets)")
    common(ls)
    ls.add_argument("--tenant")
    ls.set_defaults(run=_list)

    r = ksub.add_parser("revoke", help="revoke a key at once, on every replica")
    common(r)
    r.add_argument("key_id")
    r.set_defaults(run=_revoke)

    ro = ksub.add_parser("rotate", help="issue a successor; the old key works for the grace period")
    common(ro)
    ro.add_argument("key_id")
    ro.add_argument("--grace", type=duration, default=timedelta(hours=1), help="default 1h")
    ro.set_defaults(run=_rotate)


def _service(args: argparse.Namespace) -> KeyService:
    try:
        loaded = load_file(args.config) if args.config else load_default()
    except ConfigError as e:
        raise SystemExit(f"ostiary: cannot use {e.source}:\n  " + "\n  ".join(e.problems)) from None
    return KeyService.open(loaded.config)


def _run(args: argparse.Namespace, action) -> int:  # type: ignore[no-untyped-def]
    try:
        return int(action(_service(args)) or 0)
    except ValueError as e:  # a key, directory or settings error: its message says what to fix
        print(f"ostiary: {e}", file=sys.stderr)
        return 1


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _create(args: argparse.Namespace) -> int:
    tags = {}
    for t in args.tag:
        k, sep, v = t.partition("=")
        if not sep:
            print(f"ostiary: --tag {t!r} must be KEY=VALUE", file=sys.stderr)
            return 2
        tags[k] = v

    def act(svc: KeyService) -> None:
        key, rec = svc.create(tenant=args.tenant, user=args.user, role=args.role, scopes=_split(args.scopes),
                              models=_split(args.models), clearance=args.clearance, tags=tags, name=args.name,
                              expires_in=args.expires_in, budget=_budget(args.budget), limits=_limits(args.limits))
        _show_new(args, key, rec.public())

    return _run(args, act)


def _budget(value: str | None) -> BudgetRule | None:
    if value is None:
        return None
    amount, sep, period = value.partition("/")
    try:
        return BudgetRule(amount_usd=float(amount), period=period if sep else "month")
    except ValueError as e:
        raise KeyAdminError(f"--budget {value!r}: {e} (e.g. 50/month)") from None


def _limits(value: str | None) -> LimitRule | None:
    if value is None:
        return None
    fields: dict[str, int] = {}
    for item in _split(value) or []:
        name, sep, n = item.partition("=")
        if not sep or not n.strip().isdigit():
            raise KeyAdminError(f"--limits {item!r} must be NAME=N, e.g. rpm=600")
        fields[name.strip()] = int(n)
    try:
        return LimitRule(**fields)
    except TypeError:
        raise KeyAdminError(f"--limits knows rpm, tpm, input_tpm, output_tpm, concurrent; not {value!r}") from None


def _show_new(args: argparse.Namespace, key: str, record: dict) -> None:  # type: ignore[type-arg]
    if args.json:
        print(json.dumps({"key": key, **record}))
    else:
        print(key)
        print(f"# {record['id']} for tenant {record['tenant']}: shown once, store it now", file=sys.stderr)


def _list(args: argparse.Namespace) -> int:
    def act(svc: KeyService) -> None:
        rows = [r.public() for r in svc.list(args.tenant)]
        if args.json:
            print(json.dumps(rows))
            return
        for r in rows:
            print(f"{r['id']}  {r['status']:8} tenant={r['tenant']} user={r['user'] or '-'} role={r['role']} "
                  f"scopes={','.join(r['scopes'])} models={','.join(r['models']) if r['models'] else '*'} "
                  f"expires={r['expires_at'] or 'never'}")

    return _run(args, act)


def _revoke(args: argparse.Namespace) -> int:
    def act(svc: KeyService) -> None:
        rec = svc.revoke(args.key_id).public()
        print(json.dumps(rec) if args.json else f"{rec['id']} revoked")

    return _run(args, act)


def _rotate(args: argparse.Namespace) -> int:
    def act(svc: KeyService) -> None:
        key, rec = svc.rotate(args.key_id, args.grace)
        _show_new(args, key, rec.public())

    return _run(args, act)
