"""Throughput: 20 and 100 concurrent users, 10 turns each, agent against bare, same database.

Every user talks on a thread of their own, all users at once (one asyncio task each, turns of a
user one after the other). The agent's users hold 200 memories each; agent turns run the full
graph (recall, answer, memory writes). The bare graph is one node appending to
`MessagesState`. Both use a pool of the same size (`open_agent`'s default of 10 connections),
so the figure includes waiting for connections. Agent and bare runs alternate, several times;
turns/second is the median. An error of any kind (a pool time-out included) is counted, not
hidden.

    python benchmarks/throughput.py [--quick]
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from common import (
    arguments,
    bare_agent,
    database,
    emit,
    log,
    machine,
    median,
    run,
    seed_memories,
)
from langchain_core.messages import HumanMessage
from turn_latency import agent_message

from memory_agent import AgentContext, open_agent

POOL_SIZE = 10
MEMORIES_PER_USER = 200
TARGET_SHARE = 0.6


async def session(graph: Any, user: str, thread: str, turns: int, agent: bool) -> int:
    """One user's turns; returns the number of failed turns."""
    rng = random.Random(thread)
    errors = 0
    ctx = AgentContext()
    for i in range(turns):
        text = agent_message(rng, i)
        config: Any = {"configurable": {"thread_id": thread}}
        try:
            if agent:
                await graph.ainvoke(
                    {"messages": [HumanMessage(text)], "user_id": user}, config, context=ctx
                )
            else:
                await graph.ainvoke({"messages": [HumanMessage(text)]}, config)
        except Exception as exc:  # counted and reported: an error must not pass unseen
            errors += 1
            log(f"{'agent' if agent else 'bare'} turn failed: {type(exc).__name__}: {exc}")
    return errors


async def burst(graph: Any, users: int, turns: int, agent: bool, tag: str) -> tuple[float, int]:
    started = time.perf_counter()
    errors = await asyncio.gather(
        *(
            session(graph, f"tp-user-{u}", f"{tag}-{'a' if agent else 'b'}-{u}", turns, agent)
            for u in range(users)
        )
    )
    elapsed = time.perf_counter() - started
    return users * turns / elapsed, sum(errors)


async def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    levels, turns, repeats = ((4, 10), 3, 2) if args.quick else ((20, 100), 10, 3)
    with database() as url:
        async with (
            open_agent(url, pool_size=POOL_SIZE) as agent,
            bare_agent(url, pool_size=POOL_SIZE) as bare,
        ):
            log(f"seeding {max(levels)} users with {MEMORIES_PER_USER} memories")
            for u in range(max(levels)):
                await seed_memories(agent.store, f"tp-user-{u}", MEMORIES_PER_USER)  # type: ignore[arg-type]
            await burst(agent, 4, 2, True, "warm")
            await burst(bare, 4, 2, False, "warm")
            runs: list[dict[str, Any]] = []
            for users in levels:
                agent_tps: list[float] = []
                bare_tps: list[float] = []
                errors = 0
                for r in range(repeats):
                    order = (True, False) if r % 2 == 0 else (False, True)
                    for is_agent in order:
                        tps, failed = await burst(
                            agent if is_agent else bare, users, turns, is_agent, f"r{r}u{users}"
                        )
                        (agent_tps if is_agent else bare_tps).append(tps)
                        errors += failed
                runs.append(
                    {
                        "users": users,
                        "agent_tps": round(median(agent_tps), 1),
                        "bare_tps": round(median(bare_tps), 1),
                        "agent_share": round(median(agent_tps) / median(bare_tps), 3),
                        "errors": errors,
                        "agent_tps_runs": [round(x, 1) for x in agent_tps],
                        "bare_tps_runs": [round(x, 1) for x in bare_tps],
                    }
                )
                log(f"{users} users: {runs[-1]}")
        info = machine(url)
    low = runs[0]
    result = {
        "benchmark": "throughput",
        "runs": runs,
        "turns_per_user": turns,
        "pool_size": POOL_SIZE,
        "targets": {"agent_share_min_at_low": TARGET_SHARE, "errors": 0},
        "met": low["agent_share"] >= TARGET_SHARE and all(r["errors"] == 0 for r in runs),
        "machine": info,
    }
    emit(result)


if __name__ == "__main__":
    run(main)
