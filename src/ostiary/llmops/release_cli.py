"""`ostiary releases ...`: create, list, show and decide progressive releases on the configured store
(the gateways pick a change up within their refresh interval; their controllers do the steps)."""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec
import yaml

from ostiary.llmops.cli import commands
from ostiary.llmops.prompts import Prompts
from ostiary.llmops.releases import NewRelease, Releases
from ostiary.store.events import CLI

_ACTIONS = {"start": "begin the first step", "pause": "hold the release at its step",
            "resume": "continue a paused release (its step's clock starts again)",
            "promote": "make the candidate the pointer's value for everyone",
            "rollback": "send everyone back to the baseline"}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("releases", help="progressive releases of prompt labels, route deployments, guardrail policies")
    cmd = commands(p.add_subparsers(dest="releases_command", required=True),
                   lambda cfg, store: Releases(store, Prompts(store, cfg.prompts.protected_labels), lambda: cfg))

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


def _create(args: argparse.Namespace, releases: Releases) -> object:
    spec = yaml.safe_load(args.spec.read_text()) if args.spec else {}
    new = msgspec.convert({"kind": args.kind, "target": args.target, "candidate": args.candidate,
                           "spec": spec or {}, "start": args.start}, NewRelease)
    return releases.create(new, CLI).public()


def _act(args: argparse.Namespace, releases: Releases) -> object:
    return releases.act(args.id, args.action, CLI, getattr(args, "force", False), args.reason).public()
