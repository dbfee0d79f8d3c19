"""`ostiary eval run SUITE.yaml` and `ostiary redteam run`: through a gateway, print the gate, store the run.

The run goes through a running gateway (`--url`, a key from `--key-env`), so what is measured is what
users get: routing, guardrails and the prompt registry included. The run is stored (`eval_runs`)
and recorded in the audit trail as an administrative event (suite, target, dataset hash, seed,
metric signatures, verdict). Exit code: 0 the gate passed, 1 it failed, 2 the suite or the
gateway could not be used.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from ostiary.config.load import ConfigError, load_default, load_file
from ostiary.llmops.evaluate import Answer, Suite, SuiteError, load_suite, run, signatures
from ostiary.llmops.redteam import OWASP, Reply, attacks_source, attempts, summarise
from ostiary.llmops.redteam import run as redteam_run
from ostiary.llmops.reports import write_html, write_json, write_junit
from ostiary.store import Store
from ostiary.store.events import CLI, record_by
from ostiary.store.schema import eval_runs


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("eval", help="evaluation suites: run one through the gateway and gate on it")
    esub = p.add_subparsers(dest="eval_command", required=True)
    c = esub.add_parser("run", help="run a suite; exit 1 when its gate fails")
    c.add_argument("suite", type=Path)
    c.add_argument("--baseline", help="a stored run id to compare with, or 'last' (the suite's last passing run)")
    _gateway_run_args(c)
    c.set_defaults(run=_run)

    p = sub.add_parser("redteam", help="built-in attacks (OWASP LLM Top 10) through the gateway: which control held")
    rsub = p.add_subparsers(dest="redteam_command", required=True)
    c = rsub.add_parser("run", help="attack a route; exit 1 when anything leaked")
    c.add_argument("--route", required=True, help="the route (model name) to attack")
    c.add_argument("--only", help="comma-separated OWASP ids, e.g. LLM01,LLM07")
    c.add_argument("--release", metavar="ID", help="attack that release's candidate (an admin key): the run is "
                   "then the release's gate, e.g. for a new guardrail policy")
    _gateway_run_args(c)
    c.set_defaults(run=_redteam)


def _gateway_run_args(c: argparse.ArgumentParser) -> None:
    """What eval and red-team runs share: the gateway and its key, the reports, the store, the bar."""
    c.add_argument("--url", default="http://127.0.0.1:4000", help="the gateway")
    c.add_argument("--key-env", default="OSTIARY_KEY", help="environment variable holding the API key")
    c.add_argument("--json", type=Path, dest="json_out")
    c.add_argument("--junit", type=Path)
    c.add_argument("--html", type=Path)
    c.add_argument("--config", type=Path, help="config file: the store where runs are kept")
    c.add_argument("--no-progress", action="store_true")


def _open_store(args: argparse.Namespace) -> Store:
    loaded = load_file(args.config) if args.config else load_default()
    return Store.open(loaded.config.database_url, loaded.config.server.data_dir)


def _client(args: argparse.Namespace, timeout: float, release: str | None = None) -> httpx.Client:
    """`release` ("ID=ARM"): put every call on that arm of the release."""
    headers = {"authorization": f"Bearer {os.environ.get(args.key_env, 'none')}"}
    if release is not None:
        headers["x-ostiary-release"] = release
    return httpx.Client(base_url=args.url.rstrip("/"), timeout=timeout, headers=headers)


def _finish(args: argparse.Namespace, report: dict[str, Any]) -> int:
    """Write the reports asked for, print the summary; the exit code of the gate."""
    for writer, path in ((write_json, args.json_out), (write_junit, args.junit), (write_html, args.html)):
        if path is not None:
            writer(path, report)
    _print(report)
    return 0 if report["passed"] else 1


def _redteam(args: argparse.Namespace) -> int:
    attacks, digest = attacks_source()
    only = {x.strip().upper() for x in args.only.split(",")} if args.only else None
    items = attempts(args.route, attacks, only)
    if not items:
        print(f"ostiary: no attack in {sorted(only or [])}; known: {', '.join(OWASP)}", file=sys.stderr)
        return 2
    try:
        store = _open_store(args)
    except (ConfigError, OSError) as e:
        print(f"ostiary: {e}", file=sys.stderr)
        return 2
    try:
        client = _client(args, 60, f"{args.release}=candidate" if args.release else None)
        bar = _Progress(len(items), enabled=not args.no_progress)
        started = datetime.now(UTC)
        t0 = time.monotonic()
        done = redteam_run(items, lambda body: _attack(client, body), progress=bar.advance)
        bar.close()
        client.close()
        if all(o == "error" for _, _, o in done):
            print(f"ostiary: every attack failed to get an answer, e.g.: {done[0][1].error or done[0][1].code}",
                  file=sys.stderr)
            return 2
        results, report_items = summarise(done)
        report = {"run_id": "redteam-" + secrets.token_hex(6), "suite": f"redteam:{args.route}",
                  "started_at": started.isoformat(), "seconds": time.monotonic() - t0,
                  "passed": all(r["passed"] for r in results), "target": {"route": args.route, "prompt": None,
                                                                          "params": {}, "releases": _arms(report_items)},
                  "dataset": "builtin redteam.yaml", "dataset_sha256": digest, "rows": len(items), "repeats": 1,
                  "seed": 0, "signatures": {}, "results": results,
                  "errors": sum(1 for i in report_items if i["outcome"] == "error"), "items": report_items}
        _store(store, report, started)
    finally:
        store.close()
    code = _finish(args, report)
    for r in results:
        print(f"    {r['assertion']}: " + ", ".join(f"{k} {v}" for k, v in r["outcomes"].items() if v))
    for item in report_items:
        if item["outcome"] == "leaked":
            print(f"  LEAKED {item['attack']} ({item['variant']})")
    return code


def _post(client: httpx.Client, body: dict[str, Any]) -> tuple[httpx.Response | None, float, str | None]:
    """One chat call through the gateway: (the response or None, milliseconds, the transport error)."""
    t0 = time.perf_counter()
    try:
        r = client.post("/v1/chat/completions", json=body)
    except httpx.HTTPError as e:
        return None, (time.perf_counter() - t0) * 1000, f"{e.__class__.__name__}: {e}"
    return r, (time.perf_counter() - t0) * 1000, None


def _message(data: dict[str, Any]) -> dict[str, Any]:
    """The first choice's message of a chat completion."""
    return dict((data.get("choices") or [{}])[0].get("message") or {})


def _attack(client: httpx.Client, body: dict[str, Any]) -> Reply:
    r, ms, failed = _post(client, body)
    if r is None:
        return Reply(0, None, "", (), ms, failed)
    try:
        data = r.json()
    except ValueError:
        return Reply(r.status_code, None, r.text[:500], (), ms, None if r.status_code < 500 else r.text[:200])
    if r.status_code != 200:
        error = data.get("error") if isinstance(data, dict) else None
        return Reply(r.status_code, (error or {}).get("code"), "", (), ms, release=r.headers.get("x-ostiary-release"))
    message = _message(data)
    tools = tuple(((tc.get("function") or {}).get("name") or "") for tc in message.get("tool_calls") or ())
    return Reply(200, None, message.get("content") or "", tools, ms, release=r.headers.get("x-ostiary-release"))


def _run(args: argparse.Namespace) -> int:
    try:
        suite, rows, digest = load_suite(args.suite)
        store = _open_store(args)
    except (SuiteError, ConfigError, OSError) as e:
        print(f"ostiary: {e}", file=sys.stderr)
        return 2
    try:
        baseline = _baseline(store, suite.name, args.baseline) if args.baseline else None
        arm = f"{suite.target.release}={suite.target.arm}" if suite.target.release else None
        client = _client(args, suite.timeout, arm)
        bar = _Progress(len(rows) * suite.repeats, enabled=not args.no_progress)
        started = datetime.now(UTC)
        t0 = time.monotonic()
        # Judges are asked without the release header: it names the target's release, not theirs.
        judge = _client(args, suite.timeout) if arm is not None else client
        results, items = run(suite, rows, lambda body: _call(client, body), baseline, bar.advance,
                             ask=lambda body: _call(judge, body))
        bar.close()
        client.close()
        judge.close()
        if all(i["error"] for i in items):
            print(f"ostiary: every call failed, e.g.: {items[0]['error']}", file=sys.stderr)
            return 2
        report = _report(suite, rows, digest, results, items, started, time.monotonic() - t0)
        _store(store, report, started)
    except (SuiteError, httpx.HTTPError, ValueError) as e:
        print(f"ostiary: {e}", file=sys.stderr)
        return 2
    finally:
        store.close()
    return _finish(args, report)


def _call(client: httpx.Client, body: dict[str, Any]) -> Answer:
    r, ms, failed = _post(client, body)
    if r is None:
        return Answer("", ms, None, failed)
    if r.status_code != 200:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:200]
        return Answer("", ms, None, f"HTTP {r.status_code}: {message}")
    content = _message(r.json()).get("content") or ""
    cost = r.headers.get("x-ostiary-cost-usd")
    return Answer(content, ms, float(cost) if cost is not None else None, prompt=r.headers.get("x-ostiary-prompt"),
                  release=r.headers.get("x-ostiary-release"))


def _baseline(store: Store, suite: str, which: str) -> dict[str, float]:
    q = sa.select(eval_runs.c.summary)
    q = q.where(eval_runs.c.suite == suite, eval_runs.c.passed.is_(True)).order_by(eval_runs.c.started_at.desc()) \
        if which == "last" else q.where(eval_runs.c.id == which)
    with store.engine.connect() as conn:
        summary = conn.execute(q.limit(1)).scalar()
    if summary is None:
        raise SuiteError(f"no baseline run {which!r} for suite {suite!r}")
    return {r["assertion"]: r["mean"] for r in summary["results"]}


def _report(suite: Suite, rows: list[dict[str, Any]], digest: str, results: list[Any], items: list[dict[str, Any]],
            started: datetime, seconds: float) -> dict[str, Any]:
    return {"run_id": "eval-" + secrets.token_hex(6), "suite": suite.name, "started_at": started.isoformat(),
            "seconds": seconds, "passed": all(r.passed for r in results),
            "target": {"route": suite.target.route, "prompt": suite.target.prompt, "params": suite.target.params,
                       # The versions the gateway rendered: what a protected label's gate looks for.
                       "prompt_versions": sorted({i["prompt"] for i in items if i.get("prompt")}),
                       # The release arms its calls were on: what a release's gate looks for.
                       "releases": _arms(items)},
            "dataset": suite.dataset, "dataset_sha256": digest, "rows": len(rows), "repeats": suite.repeats,
            "seed": suite.seed, "signatures": signatures(suite), "results": [r.public() for r in results],
            "errors": sum(1 for i in items if i["error"]), "items": items}


def _arms(items: list[dict[str, Any]]) -> dict[str, list[str]]:
    seen: dict[str, set[str]] = {}
    for item in items:
        for part in (item.get("release") or "").split(","):
            rid, sep, arm = part.strip().partition("=")
            if sep:
                seen.setdefault(rid, set()).add(arm)
    return {rid: sorted(arms) for rid, arms in seen.items()}


def _store(store: Store, report: dict[str, Any], started: datetime) -> None:
    summary = {k: report[k] for k in ("results", "signatures", "rows", "repeats", "seed", "errors", "dataset")}
    with store.engine.begin() as conn:
        conn.execute(eval_runs.insert().values(id=report["run_id"], suite=report["suite"][:200], started_at=started,
                                               passed=report["passed"], target=report["target"],
                                               dataset_sha256=report["dataset_sha256"], summary=summary,
                                               created_by=CLI.subject))
        record_by(conn, CLI, "eval.run", tenant=None, target=report["run_id"], details={
            "suite": report["suite"], "passed": report["passed"], "target": report["target"],
            "dataset_sha256": report["dataset_sha256"], "seed": report["seed"], "signatures": report["signatures"]})


def _print(report: dict[str, Any]) -> None:
    print(f"{report['suite']}: {'PASSED' if report['passed'] else 'FAILED'}  (run {report['run_id']}, "
          f"{report['rows']} rows x {report['repeats']}, {report['errors']} errors, {report['seconds']:.1f} s)")
    for r in report["results"]:
        base = f"  baseline {r['baseline']}" if r["baseline"] is not None else ""
        print(f"  {'ok  ' if r['passed'] else 'FAIL'} {r['assertion']:<24} mean {r['mean']:<8} "
              f"95% CI [{r['ci95'][0]}, {r['ci95'][1]}]  threshold {r['threshold']}{base}")
    for name, sig in report["signatures"].items():
        print(f"  signature {name}: {sig}")


class _Progress:
    """A progress bar on standard error (tqdm, when installed and the output is a terminal)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar: Any = None
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="call", file=sys.stderr)
            except ImportError:
                self.bar = None

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
