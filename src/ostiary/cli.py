"""The `ostiary` command: serve, config check, keys, audit, subjects, prompts, releases, eval,
mock-upstream."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ostiary import __version__
from ostiary.config.load import LoadedConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ostiary", description="A self-hosted, governed LLM gateway.")
    parser.add_argument("--version", action="version", version=f"ostiary {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the gateway")
    p.add_argument("--config", type=Path, help="YAML config file (default: the embedded default)")
    p.add_argument("--host", help="address to bind (default: server.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: server.port, 4000)")
    p.add_argument("--no-watch", action="store_true", help="do not reload when the config file changes")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=_serve)

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("check", help="validate a config file and print every error with its location")
    c.add_argument("file", type=Path)
    c.set_defaults(run=_config_check)

    from ostiary.identity.cli import add_parser as add_keys

    add_keys(sub)

    from ostiary.audit.cli import add_parser as add_audit

    add_audit(sub)

    from ostiary.llmops.cli import add_parser as add_prompts

    add_prompts(sub)

    from ostiary.llmops.release_cli import add_parser as add_releases

    add_releases(sub)

    from ostiary.llmops.eval_cli import add_parser as add_eval

    add_eval(sub)

    p = sub.add_parser("mock-upstream", help="run a fake OpenAI/Anthropic upstream for tests and benchmarks")
    from ostiary.mockup.server import add_arguments

    add_arguments(p)
    p.set_defaults(run=_mock_upstream)

    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


def _config_check(args: argparse.Namespace) -> int:
    from ostiary.config.load import ConfigError, load_file

    try:
        loaded = load_file(args.file)
    except ConfigError as e:
        print(f"{e.source}: invalid ({len(e.problems)} problem(s))", file=sys.stderr)
        for line in e.problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    c = loaded.config
    deployments = sum(len(r.deployments) for r in c.routes)
    print(f"{args.file}: valid, version {loaded.version}: {len(c.routes)} route(s), {deployments} deployment(s)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from ostiary.config.load import ConfigError, load_default, load_file
    from ostiary.identity.stage import is_loopback

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        loaded = load_file(args.config) if args.config else load_default()
    except ConfigError as e:
        print(f"ostiary: cannot serve {e.source}:", file=sys.stderr)
        for line in e.problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    host = args.host or loaded.config.server.host
    port = args.port or loaded.config.server.port
    secured = bool(loaded.config.identity.issuers) or _any_keys(loaded)
    if not is_loopback(host) and not secured:
        print(f"ostiary: refusing to listen on {host}: no authentication is configured, so anyone who can "
              "reach this address could use every model. Bind 127.0.0.1 (the default), or create an API "
              "key first (ostiary keys create --tenant NAME) or configure identity.issuers.", file=sys.stderr)
        return 2
    base = f"http://{_url_host(host)}:{port}"
    routes = ", ".join(r.name for r in loaded.config.routes) or "(none)"
    first = loaded.config.routes[0].name if loaded.config.routes else "MODEL"
    banner = "\n".join([
        f"ostiary {__version__} listening on {base}",
        f"  config: {args.config or 'embedded default'} (version {loaded.version}); models: {routes}",
        ("  a credential is required (Authorization: Bearer <API key or token>)" if secured else
         "  no authentication is configured: only clients on this machine (loopback) are served, without a key"),
        "  try it:",
        f"    curl -s {base}/v1/chat/completions -H 'content-type: application/json' \\",
        f"      -d '{{\"model\": \"{first}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'",
        (f"    python -c \"from openai import OpenAI; c = OpenAI(base_url='{base}/v1', api_key='none'); "
         f"print(c.chat.completions.create(model='{first}', messages=[{{'role': 'user', 'content': 'Hello'}}])"
         ".choices[0].message.content)\""),
    ])
    import uvloop

    from ostiary.server.run import serve

    try:
        uvloop.run(serve(args.config, host, port, watch=not args.no_watch, ready_line=banner))
    except KeyboardInterrupt:
        pass
    return 0


def _mock_upstream(args: argparse.Namespace) -> int:
    from ostiary.mockup.server import run, settings_from_args

    run(args.host, args.port, settings_from_args(args))
    return 0


def _any_keys(loaded: LoadedConfig) -> bool:
    from ostiary.identity.keys import KeyService

    service = KeyService.open(loaded.config)
    try:
        return bool(service.list())
    finally:
        service.store.close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
