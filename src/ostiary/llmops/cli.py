"""`ostiary prompts ...`: create versions, move labels, list, show and render prompts, on the
configured store (the gateways pick the change up within their refresh interval)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml

from ostiary.config.load import ConfigError, load_default, load_file
from ostiary.config.schema import Config
from ostiary.llmops.prompts import Prompts, parse_template
from ostiary.store import Store
from ostiary.store.events import CLI

T = TypeVar("T")
Command = Callable[[str, str, Callable[[argparse.Namespace, T], object]], argparse.ArgumentParser]


def commands(sub: argparse._SubParsersAction, make: Callable[[Config, Store], T]) -> Command[T]:  # type: ignore[type-arg]
    """A maker of subcommands that open the configured store (`--config`), build `make`'s service on
    it, and print what the command returns as JSON; bad input is a message and exit code 1."""

    def cmd(name: str, help: str, act: Callable[[argparse.Namespace, T], object]) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help)
        c.add_argument("--config", type=Path)
        c.set_defaults(run=lambda args: _run(args, make, act))
        return c

    return cmd


def _run(args: argparse.Namespace, make: Callable[[Config, Store], T],
         act: Callable[[argparse.Namespace, T], object]) -> int:
    try:
        loaded = load_file(args.config) if args.config else load_default()
        store = Store.open(loaded.config.database_url, loaded.config.server.data_dir)
        try:
            print(json.dumps(act(args, make(loaded.config, store)), indent=2, ensure_ascii=False))
        finally:
            store.close()
        return 0
    except (ConfigError, OSError, ValueError, yaml.YAMLError) as e:  # ValueError: prompt, release, msgspec errors
        print(f"ostiary: {e}", file=sys.stderr)
        return 1


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("prompts", help="the prompt registry: versions and labels")
    cmd = commands(p.add_subparsers(dest="prompts_command", required=True), _registry)

    c = cmd("create", "add a version (YAML or JSON: messages, variables, params)", _create)
    c.add_argument("name")
    c.add_argument("--file", type=Path, required=True)
    c.add_argument("--label", action="append", default=[], help="also point these labels at the new version")
    c.add_argument("--force", action="store_true", help="even a protected label (no evaluation run yet)")
    cmd("list", "prompts with their latest version and labels", lambda args, reg: reg.list())
    c = cmd("show", "one version (NAME, NAME@LABEL or NAME@VERSION)", _show)
    c.add_argument("ref")
    c = cmd("label", "point a label at a version (a deployment; pointing it back is the rollback)", _label)
    c.add_argument("name")
    c.add_argument("label")
    c.add_argument("version", type=int)
    c.add_argument("--force", action="store_true", help="move a protected label without a passing evaluation run")
    c = cmd("render", "render a version with variables, as a request would", _render)
    c.add_argument("ref")
    c.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="a string variable")
    c.add_argument("--vars", help="variables as a JSON object")


def _registry(cfg: Config, store: Store) -> Prompts:
    registry = Prompts(store, cfg.prompts.protected_labels)
    registry.load()
    return registry


def _create(args: argparse.Namespace, registry: Prompts) -> object:
    version = registry.create(args.name, parse_template(yaml.safe_load(args.file.read_text())), CLI)
    labels = [registry.label(args.name, label, version.version, CLI, args.force) for label in args.label]
    return {**version.public(), "labels": [entry["label"] for entry in labels]}


def _show(args: argparse.Namespace, registry: Prompts) -> object:
    version, label = registry.snapshot.resolve(args.ref)
    return {**version.public(), "label": label}


def _label(args: argparse.Namespace, registry: Prompts) -> object:
    return registry.label(args.name, args.label, args.version, CLI, args.force)


def _render(args: argparse.Namespace, registry: Prompts) -> object:
    variables = json.loads(args.vars) if args.vars else {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--var {item!r} must be NAME=VALUE")
        variables[name] = value
    rendered = registry.snapshot.render(args.ref, variables)
    return {"prompt": rendered.ref, "label": rendered.label, "messages": rendered.messages, "params": rendered.params}
