"""Concurrent turns: serialised per thread, nothing lost or interleaved; many users at once."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import psycopg
import pytest

from memory_agent import AgentContext, GuardedAgent, ThreadBusyError, memories, open_agent
from memory_agent.persistence.locks import thread_key
from tests.models import EchoModel

pytestmark = pytest.mark.integration

CTX = AgentContext(model=EchoModel(), message_window=100)


def cfg(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


async def turn(agent: GuardedAgent, user: str, thread: str, text: str) -> dict[str, Any]:
    out: dict[str, Any] = await agent.ainvoke(
        {"messages": [("user", text)], "user_id": user}, cfg(thread), context=CTX
    )
    return out


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
        outs = await asyncio.gather(*(turn(agent, "ann", "busy", q) for q in questions))
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
            *(turn(a if q.startswith("from a") else b, "ann", "shared", q) for q in questions)
        )
        state = (await a.aget_state(cfg("shared"))).values
    assert state["turn_count"] == 16
    assert_paired(state["messages"], questions)


async def test_a_thread_held_too_long_is_busy_and_nothing_is_stored(database_url: str) -> None:
    async with open_agent(database_url, lock_timeout=0.3) as agent:
        await turn(agent, "ann", "held", "first")
        before = await agent.aget_state(cfg("held"))
        with psycopg.connect(database_url, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", (thread_key("held"),))
            started = time.monotonic()
            with pytest.raises(ThreadBusyError, match="busy"):
                await turn(agent, "ann", "held", "second")
            assert time.monotonic() - started < 5
        after = await agent.aget_state(cfg("held"))
        assert after.config == before.config  # not even a new checkpoint
        # Released (the other session ended): the thread works again.
        assert (await turn(agent, "ann", "held", "third"))["status"] == "completed"


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def test_many_users_at_once_no_errors_bounded_pool(database_url: str) -> None:
    """A reduced `benchmarks/load.py` (which runs 200 users x 10 turns)."""
    users, turns, pool_size = 40, 4, 4
    dbname = database_url.rsplit("/", 1)[-1].split("?")[0]
    peak = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            while not done.is_set():
                row = await (
                    await conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                        "AND pid <> pg_backend_pid()",
                        (dbname,),
                    )
                ).fetchone()
                assert row is not None
                peak = max(peak, int(row[0]))
                await asyncio.sleep(0.02)

    async def user(agent: GuardedAgent, u: int) -> None:
        await turn(agent, f"user{u}", f"t{u}", f"My name is Name{u}.")
        for i in range(1, turns):
            await turn(agent, f"user{u}", f"t{u}", f"What is my name? ({i})")

    async with open_agent(database_url, pool_size=pool_size, pool_timeout=60) as agent:
        watcher = asyncio.create_task(watch())
        rss = [_rss_mb()]
        for _ in range(2):  # the second round should not cost memory the first did not
            await asyncio.gather(*(user(agent, u) for u in range(users)))
            rss.append(_rss_mb())
        done.set()
        await watcher
        states = [(await agent.aget_state(cfg(f"t{u}"))).values for u in range(users)]
        facts = [await memories(agent).list_memories(f"user{u}") for u in range(users)]
    assert peak <= pool_size + 1, peak  # the pool, plus the one lock connection
    for u, (state, mems) in enumerate(zip(states, facts, strict=True)):
        assert state["turn_count"] == 2 * turns
        assert state["messages"][-1].content.startswith("answer to: What is my name?")
        assert [m["text"] for m in mems] == [f"The user's name is Name{u}."]
    assert rss[2] - rss[1] < 64, rss
