"""Audit trail throughput: events spooled (encrypted, fsynced) and drained to the store per second,
in-process cost of describing a call, `audit verify` speed, and the time of an inclusion proof (from
the stored tiles, and as before them from every leaf), on SQLite and PostgreSQL.

    .venv/bin/python bench/audit.py [--events 20000] [--pg postgresql://postgres@127.0.0.1:5432/test]

Prints a table. A fresh PostgreSQL database is created and dropped for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from ostiary.audit import merkle
from ostiary.audit.event import describe
from ostiary.audit.trail import AuditTrail
from ostiary.audit.verify import verify
from ostiary.config.schema import Audit
from ostiary.identity.principal import Principal
from ostiary.pipeline.call import Call
from ostiary.store import Store


def _call(i: int) -> Call:
    call = Call(id=f"bench-{i}", api="openai.chat", body={"model": "m", "messages": [
        {"role": "system", "content": "You are a helpful assistant." * 4},
        {"role": "user", "content": f"Question number {i}: " + "what is the meaning of this? " * 20}]},
        model="m", stream=False, config_version="v1", client_ip="10.1.2.3")
    call.principal = Principal(kind="key", subject="ost-bench", tenant=f"t{i % 10}", user=f"user{i % 500}",
                               role="developer", scopes=frozenset({"chat"}), models=None, clearance="internal")
    call.route, call.deployment, call.upstream_model = "m", "openai:m", "m-2026"
    call.usage = {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160}
    return call


ANSWER = {"content": "The meaning is in the question. " * 12, "tool_calls": None}


async def _spool(trail: AuditTrail, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await trail.record(describe(_call(i), 200, None, ANSWER, time.perf_counter()))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - t0


def run(name: str, url: str | None, n: int, tmp: Path) -> dict[str, float]:
    store = Store.open(url, tmp / name)
    trail = AuditTrail(Audit(checkpoint_every=1000), store, tmp / name)
    trail.start()
    try:
        calls = [_call(i) for i in range(2000)]
        t0 = time.perf_counter()
        for c in calls:
            describe(c, 200, None, ANSWER, t0)
        describe_us = (time.perf_counter() - t0) / len(calls) * 1e6
        spool_s = asyncio.run(_spool(trail, n, 64))
        t0 = time.perf_counter()
        trail.flush(timeout=600)
        drain_extra = time.perf_counter() - t0
        trail.log.append([], force_checkpoint=True)
        t0 = time.perf_counter()
        report = verify(trail.log, [trail.signer.verifier()])
        verify_s = time.perf_counter() - t0
        assert report.ok and report.size >= n, report.problems
        with store.engine.connect() as conn:
            avg = conn.execute(sa.text("SELECT avg(length(body)) FROM audit_log")).scalar()
        size = trail.log.size()
        picks = [random.Random(i).randrange(size) for i in range(20)]
        t0 = time.perf_counter()
        for seq in picks:
            trail.log.inclusion(seq, size)
        tiles_ms = (time.perf_counter() - t0) / len(picks) * 1000
        t0 = time.perf_counter()
        for seq in picks[:3]:  # as proofs were made before tiles: every leaf read
            merkle.inclusion_proof([bytes.fromhex(r.leaf) for r in trail.log.rows(0, size)], seq, size)
        leaves_ms = (time.perf_counter() - t0) / 3 * 1000
        return {"describe_us": describe_us, "spooled_per_s": n / spool_s,
                "drained_per_s": n / (spool_s + drain_extra), "verify_per_s": report.size / verify_s,
                "bytes": float(avg or 0), "proof_ms": tiles_ms, "proof_leaves_ms": leaves_ms}
    finally:
        trail.close()
        store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    rows = []
    for name in ("sqlite", "postgresql"):
        results = []
        for _ in range(args.reps):
            tmp = Path(tempfile.mkdtemp(prefix="ostiary-audit-bench-"))
            url = None
            admin = None
            if name == "postgresql":
                db = f"ostiary_bench_{secrets.token_hex(4)}"
                admin = sa.create_engine(args.pg, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(sa.text(f"CREATE DATABASE {db}"))
                url = args.pg.rsplit("/", 1)[0] + f"/{db}"
            try:
                results.append(run(name, url, args.events, tmp))
            finally:
                if admin is not None:
                    with admin.connect() as conn:
                        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                    admin.dispose()
        rows.append((name, {k: statistics.median(r[k] for r in results) for k in results[0]}))
    print(f"\n{args.events} events per run, 64 concurrent writers, medians of {args.reps} runs\n")
    print("| store | describe a call (us) | spooled events/s (fsync) | in the store events/s | verify events/s "
          "| stored bytes/event | inclusion proof ms (tiles) | (every leaf read) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['describe_us']:.1f} | {r['spooled_per_s']:,.0f} | {r['drained_per_s']:,.0f} "
              f"| {r['verify_per_s']:,.0f} | {r['bytes']:,.0f} | {r['proof_ms']:.1f} | {r['proof_leaves_ms']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
