"""PostgreSQL stopped in the middle of a turn: a clear error, then the thread resumes.

These tests run on a PostgreSQL of their own (`StoppableServer`), stopped and started again
while the agent (and its pool) stays open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from memory_agent import (
    AgentContext,
    DatabaseUnavailableError,
    GuardedAgent,
    MemoryService,
    open_agent,
    resume_turn,
)
from tests.helpers import cfg
from tests.models import HookModel
from tests.pg import StoppableServer, fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stoppable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoppableServer]:
    server = StoppableServer(tmp_path_factory.mktemp("pg-faults"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def fault_url(stoppable: StoppableServer) -> Iterator[str]:
    with fresh_database(stoppable.url) as url:
        yield url
    # a test that failed half-way must not leave the server down for the next one
    stoppable.start()


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql, params).fetchall())


class StopAfterTurnWrites:
    """Stops PostgreSQL (once armed) right after a turn's writes (memories and conversation
    record) are committed: the response node's checkpoint then cannot be."""

    stop: Any = None
    save_turn = MemoryService.save_turn

    @staticmethod
    async def save_turn_then_stop(service: MemoryService, *args: Any, **kwargs: Any) -> Any:
        saved = await StopAfterTurnWrites.save_turn(service, *args, **kwargs)
        stop = StopAfterTurnWrites.stop
        if stop is not None and saved[0] is not None:
            StopAfterTurnWrites.stop = None
            await stop()
        return saved


async def wait_for_planning_checkpoint(agent: GuardedAgent, thread: str) -> None:
    """Until the checkpoint after planning is stored (with async durability it may lag)."""
    for _ in range(200):
        if (await agent.aget_state(cfg(thread))).next == ("response",):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("planning was never checkpointed")


@pytest.mark.parametrize("point", ["before_response", "after_persist"])
async def test_database_stopped_mid_turn_then_the_thread_resumes(
    point: str,
    stoppable: StoppableServer,
    fault_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(MemoryService, "save_turn", StopAfterTurnWrites.save_turn_then_stop)
    thread = f"fault-{point}"
    model = HookModel()
    ctx = AgentContext(model=model)
    dbname = fault_url.split("/")[-1].split("?")[0]

    async def stop() -> None:
        await asyncio.to_thread(stoppable.stop)

    async def stop_after_planning() -> None:
        model.hook = None
        await wait_for_planning_checkpoint(agent, thread)
        await stop()

    async with open_agent(fault_url, pool_timeout=2, lock_timeout=10) as agent:
        await agent.ainvoke(
            {"messages": [("user", "I live in Busan.")], "user_id": "ann"}, cfg(thread), context=ctx
        )
        if point == "before_response":
            model.hook = stop_after_planning
        else:
            StopAfterTurnWrites.stop = stop
        with pytest.raises(DatabaseUnavailableError) as failed:
            await agent.ainvoke(
                {"messages": [("user", "My name is Ann.")], "user_id": "ann"},
                cfg(thread),
                context=ctx,
            )
        assert dbname in str(failed.value), failed.value
        # While it is down, a new turn fails at once with the same clear error.
        with pytest.raises(DatabaseUnavailableError, match=dbname):
            await agent.ainvoke(
                {"messages": [("user", "Hello?")], "user_id": "ann"}, cfg("other"), context=ctx
            )

        await asyncio.to_thread(stoppable.start)
        # Same process, same pool: the cut-off turn finishes from its last checkpoint, either
        # explicitly or first thing when the next turn arrives.
        expected = [
            ("human", "I live in Busan."),
            ("ai", "Got it, thank you for telling me."),
            ("human", "My name is Ann."),
            ("ai", "Got it, thank you for telling me."),
        ]
        if point == "before_response":
            resumed = await resume_turn(agent, cfg(thread), context=ctx)
            assert resumed is not None and resumed["status"] == "completed"
            assert await resume_turn(agent, cfg(thread), context=ctx) is None
        else:
            await agent.ainvoke(
                {"messages": [("user", "What is my name?")], "user_id": "ann"},
                cfg(thread),
                context=ctx,
            )
            expected += [("human", "What is my name?"), ("ai", "Your name is Ann.")]
        state = (await agent.aget_state(cfg(thread))).values
        assert [(m.type, m.content) for m in state["messages"]] == expected
        assert state["turn_count"] == len(expected) // 2
        assert state["message_count"] == len(expected)
        answer = await agent.ainvoke(
            {"messages": [("user", "What is my name?")], "user_id": "ann"},
            cfg("after"),
            context=ctx,
        )
        assert "Ann" in answer["messages"][-1].content

    name_rows = rows(
        fault_url,
        "SELECT value->>'text', value->'message_ids' FROM store "
        "WHERE prefix = 'users.ann.facts' AND value->>'subject' = 'name'",
    )
    assert len(name_rows) == 1 and name_rows[0][0] == "The user's name is Ann."
    assert name_rows[0][1] == [state["messages"][2].id]
    conversations = rows(
        fault_url,
        "SELECT value->>'message_count' FROM store "
        "WHERE prefix = 'users.ann.conversations' AND key = %s",
        thread,
    )
    assert conversations == [(str(len(expected)),)]
