"""Teams: do chosen teams run in parallel, and what does a team cost a turn?

Turns on PostgreSQL (open_agent, offline model and embedder), side by side in every round: the
same message with no team and with one, two and four teams that each sleep `--sleep` seconds
(`two_vs_one` near 1.0 means parallel; `team_overhead_ms` is what one team adds beyond its own
work); and a recall question without teams and with the built-in `memory` team. Rounds
alternate the order; the figures are medians over rounds.

    python benchmarks/teams_parallel.py [--rounds N] [--sleep S] [--quick]

Runs on $DATABASE_URL (a fresh database, dropped afterwards) or on an embedded PostgreSQL in a
temporary directory. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from common import arguments, database, emit, log, machine
from langchain_core.tools import BaseTool, tool

from memory_agent import Agent, Team, default_teams, open_agent

USER = "bench-teams"


def sleeper(name: str, seconds: float) -> Team:
    async def work(query: str) -> str:
        await asyncio.sleep(seconds)
        return f"{name} done"

    worker: BaseTool = tool(name, description=f"Sleeps {seconds} s.")(work)
    return Team(name, f"Sleeps {seconds} s.", worker, keywords=[name])


async def timed(agent: Agent, text: str, thread: str) -> float:
    start = time.perf_counter()
    out = await agent.ainvoke(
        {"messages": [("user", text)], "user_id": USER}, {"configurable": {"thread_id": thread}}
    )
    assert out["status"] == "completed" and not out["failed_teams"], out["error_log"]
    return (time.perf_counter() - start) * 1000


async def main(args: argparse.Namespace) -> dict[str, Any]:
    sleepers = [sleeper(f"s{i}", args.sleep) for i in range(4)]
    setups = {
        "no_team": "ask s0",
        "one_slow": "ask s0",
        "two_slow": "ask s0 s1",
        "four_slow": "ask s0 s1 s2 s3",
        "recall_no_team": "What is my name?",
        "recall_memory_team": "What is my name?",
    }
    samples: dict[str, list[float]] = {k: [] for k in setups}
    with database() as url:
        async with (
            open_agent(url, teams=[]) as bare,
            open_agent(url, teams=default_teams()) as builtin,
            open_agent(url, teams=sleepers, setup=False) as slow,
        ):
            agents = {"no_team": bare, "recall_no_team": bare, "recall_memory_team": builtin}
            await timed(bare, "My name is Ada and I live in Busan.", "seed")
            for rnd in range(args.rounds + 1):  # round 0 warms up and is not counted
                order = list(setups) if rnd % 2 else list(reversed(setups))
                for key in order:
                    elapsed = await timed(agents.get(key, slow), setups[key], f"{key}-{rnd}")
                    if rnd:
                        samples[key].append(elapsed)
                log(f"round {rnd}/{args.rounds}")
    p50 = {k: round(statistics.median(v), 1) for k, v in samples.items()}
    return {
        "benchmark": "teams_parallel",
        "rounds": args.rounds,
        "team_sleep_ms": args.sleep * 1000,
        "turn_ms_p50": p50,
        "two_vs_one": round(p50["two_slow"] / p50["one_slow"], 3),
        "four_vs_one": round(p50["four_slow"] / p50["one_slow"], 3),
        "team_overhead_ms": round(p50["one_slow"] - p50["no_team"] - args.sleep * 1000, 1),
        "memory_team_extra_ms": round(p50["recall_memory_team"] - p50["recall_no_team"], 1),
        "machine": machine(),
    }


if __name__ == "__main__":
    parser = arguments(__doc__ or "")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sleep", type=float, default=0.2)
    ns = parser.parse_args()
    if ns.quick:
        ns.rounds = 3
    emit(asyncio.run(main(ns)))
