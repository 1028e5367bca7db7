"""Checkpoint storage of one long thread: the agent against the bare graph.

One thread of 1,000 turns for each, 200-character messages both ways (the agent's offline model
pads its answers to 200 characters; the bare graph answers with the reversed question). After
turns 10, 100 and 1,000: the bytes the thread holds in `checkpoints`, `checkpoint_blobs` and
`checkpoint_writes` (stored column sizes plus row headers). The bare graph keeps every message
in every checkpoint; the agent keeps a window of recent messages plus a running summary in its
state, and prunes superseded checkpoints (see memory_agent/checkpointer.py); the same agent
without pruning is measured too, up to the middle mark, to show what dominates. At the end the
agent's state is checked: the window holds the recent messages and the summary is not empty.

    python benchmarks/checkpoint_growth.py [--quick]
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
    run,
    sentence,
    thread_bytes,
    total_bytes,
)
from langchain_core.messages import BaseMessage, HumanMessage

from memory_agent import AgentContext, OfflineChatModel, open_agent

USER = "growth-user"
CHARS = 200
TARGET_RATIO = 12
TARGET_BYTES = 3_000_000


class PaddedOfflineModel(OfflineChatModel):
    """The offline model, its answers padded to 200 characters (the benchmark's message size)."""

    def _answer(self, messages: list[BaseMessage]) -> str:
        answer = super()._answer(messages)
        filler = " and so on" * (CHARS // 10)
        return (answer + filler)[:CHARS] if len(answer) < CHARS else answer[:CHARS]


def user_message(rng: random.Random, i: int) -> str:
    opening = f"Turn {i}: my note about the {rng.choice(('garden', 'river', 'violin'))} is this."
    return f"{opening} {sentence(rng, CHARS - len(opening) - 1)}"[:CHARS]


async def grow(
    graph: Any,
    thread: str,
    turns: int,
    marks: tuple[int, ...],
    url: str,
    *,
    agent: bool,
    rng: random.Random,
) -> tuple[dict[str, int], dict[str, Any], float]:
    config: Any = {"configurable": {"thread_id": thread}}
    ctx = AgentContext(model=PaddedOfflineModel())
    sizes: dict[str, int] = {}
    tables: dict[str, Any] = {}
    started = time.perf_counter()
    for i in range(1, turns + 1):
        text = user_message(rng, i)
        if agent:
            await graph.ainvoke(
                {"messages": [HumanMessage(text)], "user_id": USER}, config, context=ctx
            )
        else:
            await graph.ainvoke({"messages": [HumanMessage(text)]}, config)
        if i in marks:
            tables = thread_bytes(url, thread)
            sizes[str(i)] = total_bytes(tables)
            log(f"{'agent' if agent else 'bare'} turn {i}: {sizes[str(i)]:,} bytes {tables}")
    return sizes, tables, time.perf_counter() - started


async def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    marks = (2, 5, 10) if args.quick else (10, 100, 1000)
    turns = marks[-1]
    with database() as url:
        async with open_agent(url) as agent, bare_agent(url) as bare:
            agent_bytes, agent_tables, agent_s = await grow(
                agent, "growth-agent", turns, marks, url, agent=True, rng=random.Random(1)
            )
            bare_bytes, bare_tables, bare_s = await grow(
                bare, "growth-bare", turns, marks, url, agent=False, rng=random.Random(1)
            )
            state = await agent.aget_state({"configurable": {"thread_id": "growth-agent"}})
        # What pruning saves: the same agent keeping every checkpoint, for the first marks.
        async with open_agent(url, prune_every=None, setup=False) as unpruned:
            kept_bytes, kept_tables, _ = await grow(
                unpruned,
                "growth-unpruned",
                marks[1],
                marks[:2],
                url,
                agent=True,
                rng=random.Random(1),
            )
        info = machine(url)
    values = state.values
    window = values.get("messages", [])
    last, first = str(marks[-1]), str(marks[1])
    ratio = agent_bytes[last] / agent_bytes[first]
    result: dict[str, Any] = {
        "benchmark": "checkpoint_growth",
        "agent_bytes": agent_bytes,
        "bare_bytes": bare_bytes,
        "agent_ratio_last_to_middle": round(ratio, 2),
        "targets": {"ratio_max": TARGET_RATIO, "agent_bytes_last_max": TARGET_BYTES},
        "met": ratio <= TARGET_RATIO and agent_bytes[last] < TARGET_BYTES,
        "agent_unpruned_bytes": kept_bytes,
        "agent_unpruned_tables": kept_tables,
        "agent_tables_last": agent_tables,
        "bare_tables_last": bare_tables,
        "agent_state_last": {
            "window_messages": len(window),
            "last_message_is_latest_turn": bool(window)
            and f"Turn {turns}:" in str(window[-2].content if len(window) > 1 else ""),
            "summary_chars": len(values.get("summary", "")),
            "turn_count": values.get("turn_count"),
        },
        "seconds": {"agent": round(agent_s, 1), "bare": round(bare_s, 1)},
        "machine": info,
    }
    emit(result)


if __name__ == "__main__":
    run(main)
