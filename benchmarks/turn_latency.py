"""Turn latency: a full agent turn against a bare one-node graph, same database, same run.

The agent's user holds 1,000 memories (facts, preferences, entities); every agent turn runs
initialize, planning (intent by rules, recall through the store), the teams the plan picks,
response (offline model, conversation record and extracted facts written) and the message
window. The bare graph is one node appending a reply to `MessagesState` with
`AsyncPostgresSaver`. Two more graphs show where the difference comes from: `anonymous` is the
agent without a user id (no memory read or written), `chain` three no-op nodes in a row
checkpointed like the agent (the cost of the supersteps alone). The four take turns in a
rotating order, so drift on a noisy machine hits all. Several rounds; the figures are the
medians over rounds of each round's p50/p95.

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
    seed_memories,
    sentence,
)
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import START, MessagesState, StateGraph

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


def chain_graph(saver: Any, nodes: int = 3) -> Any:
    """The agent's shape without its work: `nodes` no-op nodes in a row (the last one appends
    the reply), checkpointed like the agent. What the extra supersteps alone cost."""

    def step(last: bool) -> Any:
        async def node(state: MessagesState) -> dict[str, Any]:
            if not last:
                return {}
            return {"messages": [AIMessage(str(state["messages"][-1].content)[::-1])]}

        return node

    builder = StateGraph(MessagesState)
    previous = START
    for i in range(nodes):
        builder.add_node(f"step{i}", step(i == nodes - 1))
        builder.add_edge(previous, f"step{i}")
        previous = f"step{i}"
    return builder.compile(checkpointer=saver, name="chain")


async def measure(
    graphs: dict[str, tuple[Any, bool]], *, threads: int, turns: int, rng: random.Random
) -> dict[str, list[float]]:
    """Turn times (ms) per graph; the graphs take turns in a rotating order."""
    ctx = AgentContext()
    times: dict[str, list[float]] = {name: [] for name in graphs}
    names = list(graphs)
    tag = f"{time.time_ns():x}"
    for t in range(threads):
        for i in range(turns):
            text = agent_message(rng, i)
            rotation = (t * turns + i) % len(names)
            for name in names[rotation:] + names[:rotation]:
                graph, with_user = graphs[name]
                turn: dict[str, Any] = {"messages": [HumanMessage(text)]}
                if with_user is not None:
                    turn["user_id"] = USER if with_user else None
                config: Any = {"configurable": {"thread_id": f"{name}-{tag}-{t}"}}
                started = time.perf_counter()
                if with_user is None:
                    await graph.ainvoke(turn, config)
                else:
                    await graph.ainvoke(turn, config, context=ctx)
                times[name].append(ms(time.perf_counter() - started))
    return times


async def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    rounds, threads, turns, memories = (2, 2, 3, 50) if args.quick else (5, 8, 10, 1000)
    rng = random.Random(5)
    with database() as url:
        async with open_agent(url) as agent, bare_agent(url) as bare:
            log(f"seeding {memories} memories")
            await seed_memories(agent.store, USER, memories)  # type: ignore[arg-type]
            graphs: dict[str, tuple[Any, bool | None]] = {
                "agent": (agent, True),
                "anonymous": (agent, False),
                "chain": (chain_graph(bare.checkpointer), None),
                "bare": (bare, None),
            }
            log("warm-up")
            await measure(graphs, threads=2, turns=3, rng=rng)
            per_round: list[dict[str, float]] = []
            for r in range(rounds):
                times = await measure(graphs, threads=threads, turns=turns, rng=rng)
                per_round.append(
                    {
                        f"{name}_{q}_ms": round(percentile(values, p), 3)
                        for name, values in times.items()
                        for q, p in (("p50", 50), ("p95", 95))
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
    result["chain_p50_ratio"] = round(result["chain_p50_ms"] / result["bare_p50_ms"], 2)
    result["memory_p50_ms"] = round(result["agent_p50_ms"] - result["anonymous_p50_ms"], 3)
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
