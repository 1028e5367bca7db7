"""Concurrent turns: serialised per thread, nothing lost or interleaved; many users at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest

from benchmarks.common import peak_connections, rss_mb
from memory_agent import AgentContext, GuardedAgent, ThreadBusyError, memories, open_agent
from memory_agent.persistence.locks import thread_key
from tests.helpers import cfg, run_turn
from tests.models import EchoModel

pytestmark = pytest.mark.integration

CTX = AgentContext(model=EchoModel(), message_window=100)


def assert_paired(messages: list[Any], questions: list[str]) -> None:
    """Questions and answers alternate, each answer right after its own question."""
    pairs = list(zip(messages[::2], messages[1::2], strict=True))
    assert [(q.type, a.type) for q, a in pairs] == [("human", "ai")] * len(pairs)
    assert all(a.content == f"answer to: {q.content}" for q, a in pairs)
    assert sorted(q.content for q, _ in pairs) == sorted(questions)


async def test_twenty_turns_at_once_on_one_thread_run_one_after_another(
    database_url: str,
) -> None:
    questions = [f"question {i:02d}" for i in range(20)]
    async with open_agent(database_url) as agent:
        outs = await asyncio.gather(
            *(run_turn(agent, "ann", "busy", q, context=CTX) for q in questions)
        )
        state = (await agent.aget_state(cfg("busy"))).values
    assert all(o["status"] == "completed" for o in outs)
    # Each caller got the answer to its own question.
    assert [o["messages"][-1].content for o in outs] == [f"answer to: {q}" for q in questions]
    assert len(state["messages"]) == 40 and state["turn_count"] == 20
    assert_paired(state["messages"], questions)
    # Within one process the turns run in the order they arrived.
    assert [m.content for m in state["messages"][::2]] == questions


async def test_turns_from_two_processes_worth_of_pools_are_serialised(database_url: str) -> None:
    """Two agents (two pools, two lock sessions): only PostgreSQL's lock stands between them."""
    questions = [f"from {side} {i}" for i in range(8) for side in ("a", "b")]
    async with open_agent(database_url) as a, open_agent(database_url, setup=False) as b:
        await asyncio.gather(
            *(
                run_turn(a if q.startswith("from a") else b, "ann", "shared", q, context=CTX)
                for q in questions
            )
        )
        state = (await a.aget_state(cfg("shared"))).values
    assert state["turn_count"] == 16
    assert_paired(state["messages"], questions)


async def test_a_thread_held_too_long_is_busy_and_nothing_is_stored(database_url: str) -> None:
    async with open_agent(database_url, lock_timeout=0.3) as agent:
        await run_turn(agent, "ann", "held", "first", context=CTX)
        before = await agent.aget_state(cfg("held"))
        with psycopg.connect(database_url, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", (thread_key("held"),))
            started = time.monotonic()
            with pytest.raises(ThreadBusyError, match="busy"):
                await run_turn(agent, "ann", "held", "second", context=CTX)
            assert time.monotonic() - started < 5
        after = await agent.aget_state(cfg("held"))
        assert after.config == before.config  # not even a new checkpoint
        # Released (the other session ended): the thread works again.
        assert (await run_turn(agent, "ann", "held", "third", context=CTX))["status"] == "completed"


async def test_many_users_at_once_no_errors_bounded_pool(database_url: str) -> None:
    """A reduced `benchmarks/load.py` (which runs 200 users x 10 turns)."""
    users, turns, pool_size = 40, 4, 4

    async def user(agent: GuardedAgent, u: int) -> None:
        await run_turn(agent, f"user{u}", f"t{u}", f"My name is Name{u}.", context=CTX)
        for i in range(1, turns):
            await run_turn(agent, f"user{u}", f"t{u}", f"What is my name? ({i})", context=CTX)

    async with open_agent(database_url, pool_size=pool_size, pool_timeout=60) as agent:
        async with peak_connections(database_url, every=0.02) as peak:
            rss = [rss_mb()]
            for _ in range(2):  # the second round should not cost memory the first did not
                await asyncio.gather(*(user(agent, u) for u in range(users)))
                rss.append(rss_mb())
        states = [(await agent.aget_state(cfg(f"t{u}"))).values for u in range(users)]
        facts = [await memories(agent).list_memories(f"user{u}") for u in range(users)]
    assert peak.value <= pool_size + 1, peak.value  # the pool, plus the one lock connection
    for u, (state, mems) in enumerate(zip(states, facts, strict=True)):
        assert state["turn_count"] == 2 * turns
        assert state["messages"][-1].content.startswith("answer to: What is my name?")
        assert [m["text"] for m in mems] == [f"The user's name is Name{u}."]
    assert rss[2] - rss[1] < 64, rss
