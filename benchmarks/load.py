"""Load: many concurrent users, each holding a conversation, on one agent (one pool).

    python benchmarks/load.py [--users 200] [--turns 10] [--pool-size 10] [--database URL]
                              [--quick] [--unguarded] [--upstream-lock]

Every user talks on a thread of their own, all users at once: the first turn tells the agent a
name and a city, the others alternate questions about them with new statements. Prints one JSON
object: errors (must be 0), wrong or leaked answers (must be 0), throughput, turn latency
percentiles, the most connections the database saw from us (pool + the lock connection), the
pool's own statistics and the process's memory (RSS before, after, peak).

Without --database (or $DATABASE_URL) it runs on a fresh embedded PostgreSQL in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import time
from typing import Any

from common import arguments, database, emit, peak_connections, rss_mb

from memory_agent import Agent, build_graph, open_agent


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    wrong: list[str] = []
    leaked: list[str] = []
    names = [f"Person{u}x" for u in range(args.users)]

    async def say(agent: Agent, u: int, text: str) -> str:
        started = time.perf_counter()
        try:
            out = await agent.ainvoke(
                {"messages": [("user", text)], "user_id": f"user-{u}@example.com"},
                {"configurable": {"thread_id": f"load-{u}"}},
            )
        except Exception as exc:  # every failure is counted and reported
            errors.append(f"{type(exc).__name__}: {exc}")
            return ""
        latencies.append(time.perf_counter() - started)
        return str(out["messages"][-1].content)

    async def user(agent: Agent, u: int) -> None:
        await say(agent, u, f"My name is {names[u]} and I live in City{u}x.")
        for i in range(1, args.turns):
            if i % 2:
                answer = await say(agent, u, "What is my name?")
                if names[u] not in answer:
                    wrong.append(answer)
                if any(n in answer for n in names if n != names[u]):
                    leaked.append(answer)
            else:
                await say(agent, u, f"I like hobby{i}.")

    rss_before = rss_mb()
    async with open_agent(url, pool_size=args.pool_size, pool_timeout=120) as guarded:
        agent: Any = guarded
        if args.upstream_lock:  # upstream's one lock per saver, for comparison
            guarded.checkpointer.lock = asyncio.Lock()  # type: ignore[union-attr]
        if args.unguarded:  # the bare graph on the same persistence, for comparison
            agent = build_graph(checkpointer=guarded.checkpointer, store=guarded.store)
        async with peak_connections(url) as peak:
            started = time.perf_counter()
            await asyncio.gather(*(user(agent, u) for u in range(args.users)))
            elapsed = time.perf_counter() - started
        pool = agent.checkpointer.conn  # type: ignore[union-attr]
        pool_stats = pool.get_stats()
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    return {
        "benchmark": "load",
        "guarded": not args.unguarded,
        "upstream_saver_lock": args.upstream_lock,
        "users": args.users,
        "turns_per_user": args.turns,
        "turns": args.users * args.turns,
        "errors": len(errors),
        "error_samples": errors[:3],
        "wrong_answers": len(wrong),
        "leaked_answers": len(leaked),
        "seconds": round(elapsed, 2),
        "turns_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": {
            "p50": pct(0.5),
            "p95": pct(0.95),
            "p99": pct(0.99),
            "max": pct(1.0),
            "mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        },
        "pool_size": args.pool_size,
        "peak_connections": peak.value,
        "met": {
            "no_errors": not errors and not wrong and not leaked,
            # The pool, plus the one connection that holds the thread locks.
            "bounded_connections": peak.value <= args.pool_size + 1,
        },
        "pool": {
            k: pool_stats.get(k)
            for k in ("pool_max", "requests_num", "requests_queued", "requests_wait_ms")
        },
        "rss_mb": {
            "before": round(rss_before, 1),
            "after": round(rss_mb(), 1),
            "peak": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        },
    }


async def main() -> int:
    p = arguments(__doc__ or "")
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--pool-size", type=int, default=10)
    p.add_argument("--database", default=os.environ.get("DATABASE_URL"))
    p.add_argument(
        "--unguarded",
        action="store_true",
        help="run the bare graph (no run boundary: no thread locks) to measure the boundary",
    )
    p.add_argument(
        "--upstream-lock",
        action="store_true",
        help="serialise the checkpointer through one lock, as upstream does, for comparison",
    )
    args = p.parse_args()
    if args.quick:
        args.users, args.turns = 10, 3
    with database(args.database) as url:
        result = await run(args, url)
    emit(result)
    return 0 if result["errors"] == result["wrong_answers"] == result["leaked_answers"] == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
