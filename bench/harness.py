"""Shared load-test machinery for the benchmarks in this folder (compare_stack.py, gateway.py).

Generic pieces only, nothing specific to what is being measured:

* processes: `start` (own session, output to a log file, explicit working directory) / `stop`, with the
  list of started processes that `_cleanup` stops at exit; `pin` (taskset) and `free_port`;
* /proc readers: `proc_tree`, `vm_hwm_mb` (peak RSS), `ctx_switches`, `cpu_ticks`, `busy_ticks`,
  `children_ticks`;
* wrk: `ensure_wrk` (installed from Debian if missing), `run_wrk` (one run, parsed: RPS, p50/p99,
  errors, CPU % of the measured processes, context switches per request, foreign CPU load), `measure`
  (repetitions, retrying runs disturbed by foreign CPU load, medians via `median_of`), `wait_quiet`;
  the noise constants, `UPSTREAM_PIDS` (our own upstream processes, not counted as foreign load) and
  `DEADLINE` (runtime budget) are module-level and meant to be set by the calling script;
* `machine_info`: CPU, kernel, Python, wrk and the versions of the HTTP/JSON packages.

CPU layout: the process under test on PROXY_CPU, the upstream and wrk on UPSTREAM_CPU.
The scripts import this as a top-level module (`from harness import ...`): run as
`.venv/bin/python bench/<script>.py`, the script's folder is sys.path[0].
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

TASKSET = shutil.which("taskset")
PROXY_CPU, UPSTREAM_CPU = "0", "1"  # wrk runs on UPSTREAM_CPU
_children: list[subprocess.Popen] = []


# ----------------------------------------------------------------------------- processes
def pin(cpu: str, cmd: list[str]) -> list[str]:
    return [TASKSET, "-c", cpu, *cmd] if TASKSET else cmd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict, log: Path, cwd: Path | str) -> subprocess.Popen:
    with open(log, "wb") as fh:  # the child keeps its own copy of the descriptor
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    _children.append(p)
    return p


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        for sig, wait in ((signal.SIGINT, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(p.pid, sig)  # own session: only the processes this script started
            except ProcessLookupError:
                break
            try:
                p.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    if p in _children:
        _children.remove(p)


def _cleanup(*_a) -> None:
    for p in list(_children):  # stop() removes from _children  # noqa: PERF101
        stop(p)


# ----------------------------------------------------------------------------- /proc
def proc_tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def ctx_switches(pids: list[int]) -> int:
    """Voluntary + involuntary context switches of all threads of `pids`."""
    total = 0
    for pid in pids:
        for st in Path(f"/proc/{pid}/task").glob("*/status"):
            try:
                for line in st.read_text().splitlines():
                    if "ctxt_switches" in line:
                        total += int(line.split()[1])
            except OSError:
                pass
    return total


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])  # utime + stime
        except OSError:
            pass
    return total


def busy_ticks() -> int:
    """user+nice+system ticks of the whole machine (irq/softirq/steal excluded)."""
    f = Path("/proc/stat").read_text().splitlines()[0].split()
    return int(f[1]) + int(f[2]) + int(f[3])


def children_ticks() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (ru.ru_utime + ru.ru_stime) * CLK


# ----------------------------------------------------------------------------- wrk
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
CLK = os.sysconf("SC_CLK_TCK")
UPSTREAM_PIDS: list[int] = []
NOISE_LIMIT = 15.0  # % of one CPU used by processes that are not ours (other people's tests...)
MAX_RETRIES = 3
DEADLINE = [float("inf")]  # after this monotonic time: no more waiting for quiet / retries (runtime budget)


def _ms(tok: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", tok)
    return float(m.group(1)) * UNITS[m.group(2)]


def ensure_wrk() -> str:
    w = shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)
    if w:
        return w
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=True)
    return shutil.which("wrk") or "/usr/bin/wrk"


def wait_quiet(own: list[int], max_wait: float = 15.0) -> None:
    """Before a run, wait (bounded) until foreign processes use < NOISE_LIMIT % CPU over 0.5 s."""
    end = min(time.monotonic() + max_wait, DEADLINE[0])
    while time.monotonic() < end:
        b0, o0 = busy_ticks(), cpu_ticks(own)
        time.sleep(0.5)
        if 100.0 * ((busy_ticks() - b0) - (cpu_ticks(own) - o0)) / CLK / 0.5 < NOISE_LIMIT:
            return


def run_wrk(wrk: str, lua: Path, url: str, conc: int, duration: int, pids: list[int] | None = None) -> dict:
    """One wrk run. `cpu` = proxy CPU % (of one core); `noise` = CPU % used meanwhile by foreign processes."""
    cmd = pin(UPSTREAM_CPU, [wrk, "-t1", f"-c{conc}", f"-d{int(duration)}s", "--latency", "-s", str(lua), url])
    own = (pids or []) + UPSTREAM_PIDS
    x0 = ctx_switches(pids or [])
    t0, p0, o0, b0, k0 = time.monotonic(), cpu_ticks(pids or []), cpu_ticks(own), busy_ticks(), children_ticks()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30, check=False)
    wall, p1, o1, b1, k1 = time.monotonic() - t0, cpu_ticks(pids or []), cpu_ticks(own), busy_ticks(), children_ticks()
    x1 = ctx_switches(pids or [])
    out = proc.stdout
    if "Requests/sec:" not in out:
        raise RuntimeError(f"wrk failed: {cmd}\n{out}\n{proc.stderr}")
    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
           "p50": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1)),
           "p99": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1)),
           "errors": 0, "cpu": 100.0 * (p1 - p0) / CLK / wall if pids else None,
           "noise": max(0.0, 100.0 * ((b1 - b0) - (o1 - o0) - (k1 - k0)) / CLK / wall)}
    total = int(re.search(r"(\d+) requests in", out).group(1))
    res["ctx"] = (x1 - x0) / total if pids and total else None
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        res["errors"] += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        res["errors"] += sum(int(x) for x in m.groups())
    return res


def measure(wrk: str, lua: Path, url: str, conc: int, duration: int, reps: int, pids: list[int] | None = None) -> dict:
    """`reps` wrk runs; a run disturbed by foreign CPU load (> NOISE_LIMIT) is retried up to MAX_RETRIES
    times (the least disturbed attempt is kept). Returns medians."""
    runs = []
    own = (pids or []) + UPSTREAM_PIDS
    for _ in range(reps):
        wait_quiet(own)
        tries = [run_wrk(wrk, lua, url, conc, duration, pids)]
        while tries[-1]["noise"] > NOISE_LIMIT and len(tries) <= MAX_RETRIES and time.monotonic() < DEADLINE[0]:
            print(f"    (c={conc}: {tries[-1]['noise']:.0f}% foreign CPU during the run, retrying)", flush=True)
            wait_quiet(own)
            tries.append(run_wrk(wrk, lua, url, conc, duration, pids))
        best = min(tries, key=lambda r: r["noise"])
        best["retries"] = len(tries) - 1
        runs.append(best)
    return median_of(runs)


def median_of(runs: list[dict]) -> dict:
    out = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")}
    out["errors"] = sum(r["errors"] for r in runs)
    cpus = [r["cpu"] for r in runs if r["cpu"] is not None]
    out["cpu"] = statistics.median(cpus) if cpus else None
    ctxs = [r["ctx"] for r in runs if r.get("ctx") is not None]
    out["ctx"] = statistics.median(ctxs) if ctxs else None
    out["noise"] = max(r["noise"] for r in runs)
    out["reps"] = runs
    return out


# ----------------------------------------------------------------------------- report
def machine_info(wrk: str) -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    vers = {}
    for pkg in ["granian", "uvloop", "uvicorn", "httptools", "pyreqwest", "aiohttp", "httpx", "orjson", "msgspec"]:
        try:
            vers[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            vers[pkg] = "not installed"
    wv = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    return {"nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "cpu": cpu,
            "kernel": platform.release(), "python": platform.python_version(), "versions": vers,
            "wrk": (wv.stdout + wv.stderr).splitlines()[0].split(" [")[0], "taskset": bool(TASKSET)}


def post_lua(path: Path, payload: bytes, headers: dict[str, str] | None = None) -> Path:
    """A wrk script that POSTs `payload` as JSON (with extra `headers`)."""
    text = payload.decode().replace("\\", "\\\\").replace("'", "\\'")
    extra = "".join(f"wrk.headers['{k}'] = '{v}'\n" for k, v in (headers or {}).items())
    path.write_text(f"wrk.method = 'POST'\nwrk.body = '{text}'\nwrk.headers['Content-Type'] = 'application/json'\n"
                    + extra)
    return path
