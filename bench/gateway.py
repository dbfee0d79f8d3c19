#!/usr/bin/env python
"""Load benchmark of the gateway against the mock upstream (not a test: it prints a table).

What it does (everything on 127.0.0.1, everything stopped at exit, ~4 minutes with the defaults):

* starts `ostiary mock-upstream` pinned to CPU 1, and `ostiary serve` pinned to CPU 0 (with taskset,
  where it exists) with one route to the mock through the `openai` provider;
* drives each with wrk (installed from Debian if missing, pinned to CPU 1 beside the mock) at
  concurrency 1, 16 and 64, streaming and not, `--reps` runs of `--duration` seconds, medians;
* measures the mock directly in the same run, so the latency the gateway adds is read against a
  baseline taken on the same machine at the same time;
* prints RPS, p50/p99 latency, added p50, the gateway's CPU use and its peak RSS (VmHWM).

usage: .venv/bin/python bench/gateway.py [--duration 5] [--reps 3] [--conc 1,16,64]
"""

from __future__ import annotations

import argparse
import atexit
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson
from harness import (  # the shared load-test machinery (bench/harness.py)
    PROXY_CPU,
    UPSTREAM_CPU,
    UPSTREAM_PIDS,
    _cleanup,
    ensure_wrk,
    free_port,
    machine_info,
    measure,
    pin,
    post_lua,
    start,
    stop,
    vm_hwm_mb,
)

PY = sys.executable
GATEWAY_CPU = PROXY_CPU  # wrk and the mock upstream: UPSTREAM_CPU
CWD = Path(__file__).resolve().parent / "stack"  # working directory of the started processes
MESSAGES = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Summarise the benefits of a governed LLM gateway in one sentence."}]


def body(model: str, stream: bool) -> bytes:
    b: dict = {"model": model, "messages": MESSAGES, "max_tokens": 64, "temperature": 0.2}
    if stream:
        b["stream"] = True
    return orjson.dumps(b)


def lua(tmp: Path, name: str, payload: bytes, headers: dict[str, str] | None = None) -> Path:
    return post_lua(tmp / f"{name}.lua", payload, headers)


def wait_http(url: str, payload: bytes, headers: dict[str, str] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            req = urllib.request.Request(url, data=payload, headers={"content-type": "application/json",
                                                                     **(headers or {})})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    r.read()
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--conc", default="1,16,64")
    ap.add_argument("--auth", action="store_true", help="issue an API key and send it (identity stage on)")
    ap.add_argument("--limits", choices=["off", "memory", "redis"], default="off",
                    help="rpm limits per key, tenant and route and concurrency limits per key and tenant (high "
                         "enough never to refuse), counted in "
                         "memory or in Redis at 127.0.0.1:6379")
    ap.add_argument("--tokens", action="store_true",
                    help="with --limits: token limits (tpm) per key and tenant too, and with --auth a monthly budget "
                         "for the key's tenant (prompts counted offline, reserved and settled on every request)")
    ap.add_argument("--guardrails", action="store_true",
                    help="the default guardrail policy on every request: PII redacted, secrets and injection blocked "
                         "on input, secrets blocked on output")
    ap.add_argument("--audit", choices=["on", "off", "nofsync"], default="on",
                    help="the audit trail (on by default, as shipped): off, or on without fsync of the spool")
    ap.add_argument("--release", action="store_true",
                    help="a running release on the route: half the requests (by request) to a second route to the "
                         "same upstream, assigned, counted and analysed every second")
    args = ap.parse_args()
    concs = [int(c) for c in args.conc.split(",")]
    atexit.register(_cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    wrk = ensure_wrk()
    tmp = Path(tempfile.mkdtemp(prefix="ostiary-gw-bench-"))
    up_port, gw_port = free_port(), free_port()
    up = start(pin(UPSTREAM_CPU, [PY, "-m", "ostiary.mockup", "--port", str(up_port)]), {}, tmp / "mock.log",
               cwd=CWD)
    UPSTREAM_PIDS.append(up.pid)
    cfg = tmp / "ostiary.yaml"
    limits = ""
    if args.limits != "off":
        tpm = ", tpm: 1000000000000" if args.tokens else ""
        limits = (f"limits: {{key: {{rpm: 100000000, concurrent: 100000{tpm}}}, tenant: {{rpm: 100000000, "
                  f"concurrent: 100000{tpm}}}, route: {{rpm: 100000000}}}}\n"
                  "pricing: {bench-up: {input: 0.01, output: 0.01}}\n")
        if args.limits == "redis":
            limits += "redis_url: redis://127.0.0.1:6379/0\n"
    if args.guardrails:
        limits += ("guardrails:\n  default: standard\n  policies:\n    standard:\n      input:\n"
                   "        - {scanner: pii, action: redact}\n        - {scanner: secrets, action: block}\n"
                   "        - {scanner: injection, action: block}\n"
                   "      output:\n        - {scanner: secrets, action: block}\n")
    if args.audit != "on":
        limits += "audit: {enabled: false}\n" if args.audit == "off" else "audit: {fsync: false}\n"
    route = "    deployments:\n      - {{provider: openai, model: bench-up, api_base: 'http://127.0.0.1:{port}/v1', id: {id}}}\n"
    routes = "  - name: bench\n" + route.format(port=up_port, id="up")
    if args.release:
        routes += "  - name: bench-next\n" + route.format(port=up_port, id="up-next")
    cfg.write_text(f"server: {{data_dir: {tmp / 'data'}}}\n{limits}routes:\n{routes}")
    if args.release:
        (tmp / "release.yaml").write_text("steps: [50]\nstickiness: request\ninterval_seconds: 86400\n")
        subprocess.run([PY, "-m", "ostiary", "releases", "create", "route", "bench", "bench-next", "--start",
                        "--spec", str(tmp / "release.yaml"), "--config", str(cfg)], capture_output=True, check=True)
    gw_headers = {}
    if args.auth:
        out = subprocess.run([PY, "-m", "ostiary", "keys", "create", "--tenant", "bench", "--config", str(cfg)],
                             capture_output=True, text=True, check=True)
        gw_headers = {"Authorization": f"Bearer {out.stdout.strip()}"}
        if args.tokens:
            from ostiary.limits.settings import BudgetRule, Settings
            from ostiary.store import Store
            from ostiary.store.events import CLI

            Settings(Store(f"sqlite:///{tmp / 'data' / 'ostiary.db'}")).set_budget(
                "tenant:bench", BudgetRule(amount_usd=1e9, period="month"), actor=CLI)
    gw = start(pin(GATEWAY_CPU, [PY, "-m", "ostiary", "serve", "--config", str(cfg), "--port", str(gw_port),
                                 "--no-watch", "--log-level", "warning"]), {}, tmp / "gateway.log", cwd=CWD)
    direct_url = f"http://127.0.0.1:{up_port}/v1/chat/completions"
    gw_url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
    wait_http(direct_url, body("bench-up", False))
    wait_http(gw_url, body("bench", False), gw_headers)

    info = machine_info(wrk)
    print(f"machine: {info}", flush=True)
    rows = []
    for stream in (False, True):
        mode = "stream" if stream else "chat"
        direct_lua = lua(tmp, f"d-{mode}", body("bench-up", stream))
        gw_lua = lua(tmp, f"g-{mode}", body("bench", stream), gw_headers)
        for c in concs:
            d = measure(wrk, direct_lua, direct_url, c, args.duration, args.reps)
            g = measure(wrk, gw_lua, gw_url, c, args.duration, args.reps, pids=[gw.pid])
            row = {"mode": mode, "conc": c, "direct": d, "gateway": g, "added_p50": g["p50"] - d["p50"]}
            rows.append(row)
            print(f"  {mode:6} c={c:<3} direct {d['rps']:>8,.0f} rps p50 {d['p50']:.3f} ms | gateway "
                  f"{g['rps']:>8,.0f} rps p50 {g['p50']:.3f} ms p99 {g['p99']:.3f} ms "
                  f"(+{row['added_p50']:.3f} ms) cpu {g['cpu']:.0f}% errors {g['errors']}", flush=True)
    rss = vm_hwm_mb(gw.pid)
    stop(gw)
    stop(up)

    print()
    print("| mode | conc | direct RPS | direct p50 ms | gateway RPS | gateway p50 ms | gateway p99 ms "
          "| added p50 ms | gateway CPU % | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d, g = r["direct"], r["gateway"]
        print(f"| {r['mode']} | {r['conc']} | {d['rps']:,.0f} | {d['p50']:.3f} | {g['rps']:,.0f} | {g['p50']:.3f} "
              f"| {g['p99']:.3f} | +{r['added_p50']:.3f} | {g['cpu']:.0f} | {g['errors']} |")
    print(f"\nidentity: {'an API key on every request' if args.auth else 'no keys (anonymous loopback, through the identity stage)'}; "
          f"rate limits: {args.limits}{' with token limits and a budget' if args.tokens else ''}; "
          f"guardrails: {'pii, secrets, injection in; secrets out' if args.guardrails else 'off'}; "
          f"audit: {args.audit}; release: {'50 % of requests to a second route' if args.release else 'none'}; "
          f"gateway peak RSS (VmHWM): {rss:.0f} MB; medians of {args.reps} x {args.duration}s runs; "
          f"gateway pinned to CPU {GATEWAY_CPU}, mock upstream and wrk to CPU {UPSTREAM_CPU}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "gateway.json").write_text(json.dumps({"machine": info, "rows": rows, "rss_mb": rss}, indent=1,
                                                 default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
