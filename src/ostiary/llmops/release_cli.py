"""`ostiary releases ...`: create, list, show and decide progressive releases on the configured store
(the gateways pick a change up within their refresh interval; their controllers do the steps)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
import yaml

from ostiary.config.load import ConfigError, load_default, load_file
from ostiary.llmops.prompts import Prompts
from ostiary.llmops.releases import NewRelease, ReleaseError, Releases
from ostiary.store import Store
from ostiary.store.events import CLI

_ACTIONS = {"start": "begin the first step", "pause": "hold the release at its step",
            "resume": "continue a paused release (its step's clock starts again)",
            "promote": "make the candidate the pointer's value for everyone",
            "rollback": "send everyone back to the baseline"}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("releases", help="progressive releases of prompt labels, route deployments, guardrail policies")
    rsub = p.add_subparsers(dest="releases_command", required=True)

    def cmd(name: str, help: str, run: Callable[[argparse.Namespace, Releases], object]) -> argparse.ArgumentParser:
        c = rsub.add_parser(name, help=help)
        c.add_argument("--config", type=Path)
        c.set_defaults(run=lambda args: _run(args, run))
        return c

    c = cmd("create", "create a release (pending until started)", _create)
    c.add_argument("kind", choices=("prompt", "route", "guardrails"))
    c.add_argument("target", help="NAME@LABEL for a prompt, else a route name")
    c.add_argument("candidate", help="a version (prompt), a route (route) or a policy (guardrails)")
    c.add_argument("--spec", type=Path, help="YAML or JSON: steps, stickiness, interval_seconds, min_requests, "
                   "analysis, ...")
    c.add_argument("--start", action="store_true", help="begin the first step at once")
    c = cmd("list", "releases, newest first", lambda args, rel: rel.recent(args.state))
    c.add_argument("--state", choices=("pending", "running", "paused", "promoted", "rolled_back"))
    c = cmd("show", "one release with both arms' figures and its checks", lambda args, rel: rel.report(args.id))
    c.add_argument("id")
    for action, help in _ACTIONS.items():
        c = cmd(action, help, _act)
        c.add_argument("id")
        c.add_argument("--reason")
        c.set_defaults(action=action)
        if action == "promote":
            c.add_argument("--force", action="store_true", help="without a passing evaluation run (recorded)")


def _run(args: argparse.Namespace, act: Callable[[argparse.Namespace, Releases], object]) -> int:
    try:
        loaded = load_file(args.config) if args.config else load_default()
        store = Store.open(loaded.config.database_url, loaded.config.server.data_dir)
        try:
            releases = Releases(store, Prompts(store, loaded.config.prompts.protected_labels), lambda: loaded.config)
            print(json.dumps(act(args, releases), indent=2, ensure_ascii=False))
        finally:
            store.close()
        return 0
    except (ConfigError, ReleaseError, OSError, ValueError, yaml.YAMLError, msgspec.ValidationError) as e:
        print(f"ostiary: {e}", file=sys.stderr)
        return 1


def _create(args: argparse.Namespace, releases: Releases) -> object:
    spec = yaml.safe_load(args.spec.read_text()) if args.spec else {}
    new = msgspec.convert({"kind": args.kind, "target": args.target, "candidate": args.candidate,
                           "spec": spec or {}, "start": args.start}, NewRelease)
    return releases.create(new, CLI).public()


def _act(args: argparse.Namespace, releases: Releases) -> object:
    return releases.act(args.id, args.action, CLI, getattr(args, "force", False), args.reason).public()
