#!/usr/bin/env python
"""Choose the HTTP stack for the gateway's hot path: server x upstream client, plus JSON library.

What it does (everything bound to 127.0.0.1, everything stopped at exit, ~8-9 minutes on 2 cores):

* starts one fake upstream (raw ASGI app on granian, `bench/stack/upstream.py`) pinned to CPU 1;
* JSON micro-benchmark (timeit, pinned to CPU 0): orjson / msgspec.json / stdlib json;
* baseline: wrk straight at the upstream;
* screening pass: every server x client proxy at c=64 once; clients clearly dominated on a server
  (RPS < --prune (0.3) x best client on that server) are dropped from the full pass (and reported);
* full pass: each remaining proxy pinned to CPU 0, one worker, wrk -t1 (pinned to CPU 1 next to the
  upstream) at c=1/16/64 for --duration seconds; --reps repetitions, each one with freshly started
  processes and interleaved across variants; medians reported;
  peak RSS = VmHWM from /proc of the proxy process (and of its process tree, for the granian CLI).
* the machine may be shared: CPU used by foreign processes is measured during every wrk run
  (/proc/stat minus our processes); a run with > 15 % of a CPU foreign load is retried (up to 3 times,
  until --budget seconds have passed) and the remaining foreign load is reported in the table.

Proxies (bench/stack/): asgi_proxy.py (granian ASGI embedded / granian CLI / uvicorn), rsgi_proxy.py
(granian RSGI embedded); upstream client chosen by BENCH_CLIENT (bench/stack/clients.py).
The proxies all use orjson, so the server x client matrix is not confounded by the JSON library.

usage: .venv/bin/python bench/compare_stack.py [--duration 4] [--reps 3] [--full] [--quick]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.request
from pathlib import Path

from harness import (  # the shared load-test machinery (bench/harness.py)
    DEADLINE,
    PROXY_CPU,
    TASKSET,
    UPSTREAM_CPU,
    UPSTREAM_PIDS,
    _cleanup,
    ensure_wrk,
    free_port,
    machine_info,
    measure,
    median_of,
    pin,
    post_lua,
    proc_tree,
    run_wrk,
    start,
    stop,
    vm_hwm_mb,
)

HERE = Path(__file__).resolve().parent
STACK = HERE / "stack"
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
PY = sys.executable
sys.path.insert(0, str(STACK))
from payloads import CHAT_REQUEST, CHAT_RESPONSE, REQUEST_BYTES, RESPONSE_BYTES

CLIENTS = ["pyreqwest", "aiohttp", "httpx"]


def server_cmd(server: str, port: int) -> list[str]:
    p = str(port)
    if server == "granian-asgi-embed":
        return [PY, "serve_embed.py", "asgi", p]
    if server == "granian-rsgi-embed":
        return [PY, "serve_embed.py", "rsgi", p]
    if server == "granian-asgi-cli":
        return [str(BIN / "granian"), "--interface", "asgi", "--loop", "uvloop", "--workers", "1",
                "--runtime-threads", "1", "--http", "1", "--no-ws", "--log-level", "warning",
                "--host", "127.0.0.1", "--port", p, "asgi_proxy:app"]
    if server == "uvicorn":
        return [PY, "-m", "uvicorn", "asgi_proxy:app", "--host", "127.0.0.1", "--port", p, "--loop", "uvloop",
                "--http", "httptools", "--workers", "1", "--no-access-log", "--log-level", "warning"]
    raise ValueError(server)


SERVERS = ["granian-rsgi-embed", "granian-asgi-embed", "granian-asgi-cli", "uvicorn"]


# ----------------------------------------------------------------------------- readiness / wrk script
def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early ({proc.returncode}): {proc.args}")
        try:
            req = urllib.request.Request(url, data=REQUEST_BYTES, headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return json.loads(r.read())
        except Exception as e:  # noqa: BLE001
            last = e
        time.sleep(0.2)
    raise RuntimeError(f"not ready: {url}: {last}")


def write_lua(tmp: Path) -> Path:
    return post_lua(tmp / "post.lua", REQUEST_BYTES)


# ----------------------------------------------------------------------------- JSON micro-benchmark
def json_bench(seconds_per_case: float = 0.4) -> list[dict]:
    import msgspec
    import orjson

    menc, mdec = msgspec.json.Encoder(), msgspec.json.Decoder()
    libs = {
        "orjson": (orjson.loads, orjson.dumps),
        "msgspec.json (functions)": (msgspec.json.decode, msgspec.json.encode),
        "msgspec.json (Encoder/Decoder)": (mdec.decode, menc.encode),
        "json (stdlib)": (json.loads, lambda o: json.dumps(o, separators=(",", ":")).encode()),
    }
    try:
        old = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {int(PROXY_CPU)})
    except (AttributeError, OSError):
        old = None
    rows = []
    try:
        for name, (loads, dumps) in libs.items():
            assert loads(dumps(CHAT_REQUEST)) == CHAT_REQUEST and loads(dumps(CHAT_RESPONSE)) == CHAT_RESPONSE

            def hot_path(loads=loads, dumps=dumps):  # what a proxy does per request
                r = loads(REQUEST_BYTES)
                r["model"] = "gpt-4o-mini-2024-07-18"
                dumps(r)
                dumps(loads(RESPONSE_BYTES))

            cases = {"request": lambda loads=loads, dumps=dumps: dumps(loads(REQUEST_BYTES)),
                     "response": lambda loads=loads, dumps=dumps: dumps(loads(RESPONSE_BYTES)),
                     "proxy hot path": hot_path}
            row = {"lib": name}
            for case, fn in cases.items():
                t = timeit.Timer(fn)
                n, _ = t.autorange()
                n = max(1, int(n * seconds_per_case / 0.2 / 5))
                times = t.repeat(repeat=5, number=n)
                row[case] = n / min(times)  # best of 5: least disturbed by other processes
            rows.append(row)
    finally:
        if old is not None:
            os.sched_setaffinity(0, old)
    return rows


# ----------------------------------------------------------------------------- report
def fmt_table(results: dict, direct: dict, concs: list[int]) -> str:
    head = ("| variant (server + client) | conc | RPS | p50 ms | p99 ms | +p50 vs direct ms | proxy CPU % "
            "| ctx switches / req | peak RSS MB (serving proc / all procs) | errors | foreign CPU % |")
    lines = [head, "|" + "---|" * 11]
    for c in concs:
        d = direct[c]
        lines.append(f"| direct (upstream only) | {c} | {d['rps']:,.0f} | {d['p50']:.3f} | {d['p99']:.3f} | - | - | - | - "
                     f"| {d['errors']} | {d['noise']:.0f} |")
    for name, r in results.items():
        rss = f"{r['rss_proc']:.0f} / {r['rss_tree']:.0f}"
        for c in concs:
            m = r["conc"][c]
            lines.append(f"| {name} | {c} | {m['rps']:,.0f} | {m['p50']:.3f} | {m['p99']:.3f} "
                         f"| {m['p50'] - direct[c]['p50']:+.3f} | {m['cpu']:.0f} | {m['ctx']:.1f} | {rss} | {m['errors']} "
                         f"| {m['noise']:.0f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=4, help="seconds per wrk run (full pass)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--conc", default="1,16,64")
    ap.add_argument("--screen-duration", type=int, default=3)
    ap.add_argument("--prune", type=float, default=0.3,
                    help="drop a client on a server if its screening RPS < PRUNE x best client there")
    ap.add_argument("--full", action="store_true", help="no pruning: run every server x client combination")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 rep, 1s runs")
    ap.add_argument("--budget", type=float, default=480,
                    help="seconds after which no more waiting for a quiet machine / retries of disturbed runs")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.reps, args.screen_duration = 1, 1, 1
    concs = [int(x) for x in args.conc.split(",")]
    RESULTS.mkdir(exist_ok=True)
    atexit.register(_cleanup)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, lambda *_: sys.exit(1))
    t_start = time.monotonic()
    DEADLINE[0] = t_start + args.budget
    wrk = ensure_wrk()
    info = machine_info(wrk)
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), python {info['python']}, {info['wrk']}, "
          f"taskset={'yes' if TASKSET else 'NO (unpinned)'}", flush=True)

    print("\n== JSON micro-benchmark (ops/s, loads+dumps, pinned to CPU 0) ==", flush=True)
    jrows = json_bench()
    for r in jrows:
        print(f"  {r['lib']:32s} request {r['request']:>10,.0f}  response {r['response']:>10,.0f}  "
              f"proxy hot path {r['proxy hot path']:>10,.0f}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="ostiary-bench-"))
    lua = write_lua(tmp)
    up_port = free_port()
    up_url = f"http://127.0.0.1:{up_port}"
    env = {**os.environ, "PYTHONPATH": str(STACK), "BENCH_UPSTREAM": up_url, "PYTHONUNBUFFERED": "1"}
    upstream = start(pin(UPSTREAM_CPU, [str(BIN / "granian"), "--interface", "asgi", "--loop", "uvloop",
                                        "--workers", "1", "--http", "1", "--no-ws", "--log-level", "warning",
                                        "--host", "127.0.0.1", "--port", str(up_port), "upstream:app"]),
                     env, tmp / "upstream.log", cwd=STACK)
    target = "/v1/chat/completions"
    assert wait_ready(up_url + target, upstream) == CHAT_RESPONSE
    time.sleep(0.5)
    UPSTREAM_PIDS[:] = proc_tree(upstream.pid)

    def bench_proxy(server: str, client: str, concs_: list[int], reps: int, duration: float) -> dict:
        port = free_port()
        p = start(pin(PROXY_CPU, server_cmd(server, port)), {**env, "BENCH_CLIENT": client},
                  tmp / f"{server}-{client}.log", cwd=STACK)
        try:
            url = f"http://127.0.0.1:{port}{target}"
            got = wait_ready(url, p)
            assert got == CHAT_RESPONSE, got
            time.sleep(0.5)  # let the granian CLI finish spawning everything
            pids = proc_tree(p.pid)
            run_wrk(wrk, lua, url, 64, 1)  # warm-up: open the pooled upstream connections
            out = {}
            for c in concs_:
                out[c] = measure(wrk, lua, url, c, duration, reps, pids)
            pids = proc_tree(p.pid)
            hwm = {pid: vm_hwm_mb(pid) for pid in pids}
            return {"conc": out, "rss_proc": max(hwm.values()), "rss_tree": sum(hwm.values()), "nprocs": len(pids)}
        finally:
            stop(p)

    # baseline first
    print("\n== direct (wrk -> upstream) ==", flush=True)
    run_wrk(wrk, lua, up_url + target, 64, 1)
    direct = {c: measure(wrk, lua, up_url + target, c, args.duration, args.reps) for c in concs}
    for c in concs:
        print(f"  c={c:<3d} {direct[c]['rps']:>9,.0f} rps  p50 {direct[c]['p50']:.3f} ms  p99 {direct[c]['p99']:.3f} ms"
              f"  foreign {direct[c]['noise']:.0f}%",
              flush=True)

    # screening pass
    print(f"\n== screening pass: every server x client, c=64, 1 x {args.screen_duration}s ==", flush=True)
    screen: dict[str, dict[str, dict]] = {}
    for server in SERVERS:
        for client in CLIENTS:
            r = bench_proxy(server, client, [64], 1, args.screen_duration)
            screen.setdefault(server, {})[client] = r
            m = r["conc"][64]
            print(f"  {server:20s} + {client:10s} {m['rps']:>8,.0f} rps  p50 {m['p50']:.2f} ms  "
                  f"p99 {m['p99']:.2f} ms  cpu {m['cpu']:.0f}%  ctx/req {m['ctx']:.1f}  rss {r['rss_proc']:.0f} MB  foreign {m['noise']:.0f}%",
                  flush=True)
    keep, dropped = [], []
    for server in SERVERS:
        best = max(r["conc"][64]["rps"] for r in screen[server].values())
        for client in CLIENTS:
            rps = screen[server][client]["conc"][64]["rps"]
            (keep if args.full or rps >= args.prune * best else dropped).append((server, client, rps / best))
    for s, c, f in dropped:
        print(f"  dropped (dominated): {s} + {c} at {f:.0%} of the best client on {s}", flush=True)

    # full pass: each repetition starts every proxy afresh (run-to-run variance between process instances is
    # larger than within one instance), repetitions interleaved across variants to spread drift/noise.
    print(f"\n== full pass: c={concs}, {args.reps} x {args.duration}s (fresh processes each rep), medians ==",
          flush=True)
    names = [f"{s} + {c}" for s, c, _ in keep]
    raw = {n: {c: [] for c in concs} for n in names}
    mem = {n: {"rss_proc": 0.0, "rss_tree": 0.0} for n in names}
    for rep in range(args.reps):
        print(f"  -- repetition {rep + 1}/{args.reps}", flush=True)
        for (server, client, _), name in zip(keep, names):
            r = bench_proxy(server, client, concs, 1, args.duration)
            for c in concs:
                raw[name][c].extend(r["conc"][c]["reps"])
            mem[name]["rss_proc"] = max(mem[name]["rss_proc"], r["rss_proc"])
            mem[name]["rss_tree"] = max(mem[name]["rss_tree"], r["rss_tree"])
            print(f"  {name:32s} " + "; ".join(
                f"c={c} {r['conc'][c]['rps']:,.0f} rps p50 {r['conc'][c]['p50']:.2f} p99 {r['conc'][c]['p99']:.2f}"
                for c in concs) + f"; rss {r['rss_proc']:.0f}/{r['rss_tree']:.0f} MB", flush=True)
    results = {n: {"conc": {c: median_of(raw[n][c]) for c in concs}, **mem[n]} for n in names}

    # drift check: the direct baseline once more, 1 rep
    drift = {c: run_wrk(wrk, lua, up_url + target, c, args.duration) for c in concs}
    stop(upstream)

    table = fmt_table(results, direct, concs)
    print("\n== results (medians) ==\n" + table)
    print("\ndirect baseline re-run at the end (drift check): " + "; ".join(
        f"c={c} {drift[c]['rps']:,.0f} rps p50 {drift[c]['p50']:.3f} ms (foreign {drift[c]['noise']:.0f}%)"
        for c in concs))
    elapsed = time.monotonic() - t_start
    print(f"\ntotal runtime {elapsed:.0f}s")

    def _jsonable(r):
        return {k: ({str(c): m for c, m in v.items()} if k == "conc" else v) for k, v in r.items()}

    dump = {"machine": info, "args": vars(args), "json_bench": jrows,
            "direct": {str(c): v for c, v in direct.items()}, "direct_end": {str(c): v for c, v in drift.items()},
            "screen": {s: {c: _jsonable(r) for c, r in d.items()} for s, d in screen.items()},
            "dropped": dropped, "results": {n: _jsonable(r) for n, r in results.items()},
            "runtime_s": elapsed, "table_md": table}
    (RESULTS / "compare_stack.json").write_text(json.dumps(dump, indent=1))
    print(f"raw results: {RESULTS / 'compare_stack.json'}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
