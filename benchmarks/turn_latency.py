"""Turn latency: a full agent turn against a bare one-node graph, same database, same run.

The agent's user holds 1,000 memories (facts, preferences, entities); every agent turn runs
initialize, planning (intent by rules, recall through the store), response (offline model,
conversation record and extracted facts written) and the message window. The bare graph is one
node appending a reply to `MessagesState` with `AsyncPostgresSaver`. Turns alternate between the
two (agent first on even rounds, bare first on odd ones) so drift on a noisy machine hits both.
Several rounds; the reported figures are the medians over rounds of each round's p50/p95.

    python benchmarks/turn_latency.py [--quick]
"""

from __future__ import annotations

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
    ms,
    percentile,
    run,
    sentence,
)
from langchain_core.messages import HumanMessage
from seed import seed_memories

from memory_agent import AgentContext, open_agent

USER = "bench-user@example.com"

STATEMENTS = (
    "My favourite food is {w} soup and I cook it every {w2}.",
    "I live near the {w} museum, next to the {w2} garden.",
    "I work at {w} labs as an engineer on the {w2} team.",
    "My sister's name is {W} and she plays the {w2}.",
)
QUESTIONS = (
    "What is my favourite food?",
    "Where do I live again?",
    "Who is my sister?",
    "Do you remember where I work?",
    "What do you know about my {w} plans?",
)


def agent_message(rng: random.Random, i: int) -> str:
    w, w2 = rng.choice(_W), rng.choice(_W)
    template = rng.choice(STATEMENTS if i % 2 == 0 else QUESTIONS)
    text = template.format(w=w, w2=w2, W=w.capitalize())
    return f"{text} {sentence(rng, max(0, 200 - len(text) - 1))}".strip()[:200]


_W = ("river", "garden", "violin", "harbor", "forest", "silver", "meadow", "juniper")


async def measure(
    agent: Any, bare: Any, *, threads: int, turns: int, rng: random.Random
) -> tuple[list[float], list[float]]:
    ctx = AgentContext()
    agent_ms: list[float] = []
    bare_ms: list[float] = []
    tag = f"{time.time_ns():x}"
    for t in range(threads):
        a_cfg: Any = {"configurable": {"thread_id": f"a-{tag}-{t}"}}
        b_cfg: Any = {"configurable": {"thread_id": f"b-{tag}-{t}"}}
        for i in range(turns):
            text = agent_message(rng, i)
            a_in = {"messages": [HumanMessage(text)], "user_id": USER}
            b_in = {"messages": [HumanMessage(text)]}

            async def a_turn(a_in: Any = a_in, a_cfg: Any = a_cfg) -> None:
                started = time.perf_counter()
                await agent.ainvoke(a_in, a_cfg, context=ctx)
                agent_ms.append(ms(time.perf_counter() - started))

            async def b_turn(b_in: Any = b_in, b_cfg: Any = b_cfg) -> None:
                started = time.perf_counter()
                await bare.ainvoke(b_in, b_cfg)
                bare_ms.append(ms(time.perf_counter() - started))

            order = (a_turn, b_turn) if (t + i) % 2 == 0 else (b_turn, a_turn)
            for step in order:
                await step()
    return agent_ms, bare_ms


async def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    rounds, threads, turns, memories = (2, 2, 3, 50) if args.quick else (5, 8, 10, 1000)
    rng = random.Random(5)
    with database() as url:
        async with open_agent(url) as agent, bare_agent(url) as bare:
            log(f"seeding {memories} memories")
            await seed_memories(agent.store, USER, memories)  # type: ignore[arg-type]
            log("warm-up")
            await measure(agent, bare, threads=2, turns=3, rng=rng)
            per_round: list[dict[str, float]] = []
            all_agent: list[float] = []
            all_bare: list[float] = []
            for r in range(rounds):
                a, b = await measure(agent, bare, threads=threads, turns=turns, rng=rng)
                all_agent += a
                all_bare += b
                per_round.append(
                    {
                        "agent_p50_ms": round(percentile(a, 50), 3),
                        "agent_p95_ms": round(percentile(a, 95), 3),
                        "bare_p50_ms": round(percentile(b, 50), 3),
                        "bare_p95_ms": round(percentile(b, 95), 3),
                    }
                )
                log(f"round {r + 1}/{rounds}: {per_round[-1]}")
        info = machine(url)
    result: dict[str, Any] = {
        "benchmark": "turn_latency",
        **{k: round(median([p[k] for p in per_round]), 3) for k in per_round[0]},
    }
    result["p50_ratio"] = round(result["agent_p50_ms"] / result["bare_p50_ms"], 2)
    result["p95_ratio"] = round(result["agent_p95_ms"] / result["bare_p95_ms"], 2)
    result["targets"] = {"p50_ratio_max": 2.0, "p95_ratio_max": 3.0}
    result["met"] = result["p50_ratio"] <= 2.0 and result["p95_ratio"] <= 3.0
    result |= {
        "user_memories": memories,
        "rounds": rounds,
        "turns_per_round": threads * turns,
        "per_round": per_round,
        "machine": info,
    }
    emit(result)


if __name__ == "__main__":
    run(main)
