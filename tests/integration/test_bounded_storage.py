"""Bounded thread storage, the cheap pool check and write batching, on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from langchain_core.messages import HumanMessage

from memory_agent import MemoryService, open_agent
from memory_agent.graph import make_builder
from memory_agent.memory.extraction import MemoryDraft
from memory_agent.memory.service import ConversationFields
from memory_agent.persistence.checkpointer import BoundedPostgresSaver
from memory_agent.persistence.opening import open_store
from memory_agent.persistence.pool import open_pool
from tests.helpers import cfg

pytestmark = pytest.mark.integration


def rows(url: str, table: str, thread: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE thread_id = %s", (thread,))
        found = row.fetchone()
    assert found is not None
    return int(found[0])


async def turn(agent: Any, thread: str, text: str) -> dict[str, Any]:
    out: dict[str, Any] = await agent.ainvoke(
        {"messages": [HumanMessage(text)], "user_id": "ada"}, cfg(thread)
    )
    return out


async def test_a_long_thread_keeps_a_bounded_number_of_checkpoints(database_url: str) -> None:
    async with open_agent(database_url, prune_every=3) as agent:
        counts = []
        for i in range(12):
            await turn(agent, "long", f"My note number {i} is about the garden.")
            counts.append(rows(database_url, "checkpoints", "long"))
        state = await agent.aget_state(cfg("long"))
    # Pruned at the first turn and then every third one: down to the turn's own checkpoints.
    per_turn = counts[0]
    assert counts[:4] == [per_turn, 2 * per_turn, 3 * per_turn, per_turn]
    assert max(counts) == 3 * per_turn
    assert state.values["turn_count"] == 12
    assert "note number 11" in str(state.values["messages"][-2].content)
    assert "note number 0" in state.values["summary"]


async def test_without_pruning_the_whole_history_is_kept(database_url: str) -> None:
    async with open_agent(database_url, prune_every=None) as agent:
        for i in range(4):
            await turn(agent, "kept", f"Fact {i}: I like tea.")
        history = [s async for s in agent.aget_state_history(cfg("kept"))]
    assert len(history) == 4 * 5


async def test_a_turn_stopped_after_planning_resumes_from_its_checkpoint(
    database_url: str,
) -> None:
    async with open_pool(database_url) as pool:
        store = await open_store(pool)
        saver = BoundedPostgresSaver(pool, prune_every=1)
        graph = make_builder().compile(
            checkpointer=saver, store=store, interrupt_before=["response"]
        )
        for i in range(3):
            await turn(graph, "stop", f"Earlier turn {i}.")
            await graph.ainvoke(None, cfg("stop"))
        await turn(graph, "stop", "My name is Ada.")
        paused = await graph.aget_state(cfg("stop"))
        assert paused.next == ("response",)
        assert paused.values["plan"]["intent"] == "statement"
        # The previous turns are pruned; this turn's checkpoints are all still there.
        assert rows(database_url, "checkpoints", "stop") == 4
        await graph.ainvoke(None, cfg("stop"))
        done = await graph.aget_state(cfg("stop"))
    assert done.next == ()
    assert done.values["turn_count"] == 4
    assert done.values["status"] == "completed"


async def test_the_pool_replaces_connections_the_server_closed(database_url: str) -> None:
    """Without a round trip per hand-out: the closed socket tells (see `check_connection`)."""
    async with open_pool(database_url, min_size=2, max_size=2) as pool:
        async with pool.connection() as a, pool.connection() as b:
            killed = {a.info.backend_pid, b.info.backend_pid}
        with psycopg.connect(database_url, autocommit=True) as admin:
            for pid in killed:
                admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        for _ in range(4):
            async with pool.connection() as conn:
                row = await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone()
                assert row is not None and row["pid"] not in killed


@pytest.fixture
async def service(database_url: str) -> AsyncIterator[MemoryService]:
    async with open_agent(database_url) as agent:
        yield MemoryService(agent.store)  # type: ignore[arg-type]


async def updated_at(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT prefix || '/' || key, updated_at FROM store").fetchall()
    return dict(found)  # type: ignore[arg-type]


async def test_a_repeated_turn_writes_nothing(service: MemoryService, database_url: str) -> None:
    drafts: list[MemoryDraft] = [
        {"kind": "fact", "subject": "home city", "text": "The user lives in Busan."},
        {"kind": "preference", "subject": "tea", "text": "The user likes green tea."},
    ]
    fields = ConversationFields(
        title="Moving", summary="moved", last_message="I moved to Busan.", message_count=2
    )
    record, written = await service.save_turn("ada", "t-1", fields, drafts, message_ids=["m1"])
    assert record is not None and len(written) == 2
    before = await updated_at(database_url)
    again, rewritten = await service.save_turn("ada", "t-1", fields, drafts, message_ids=["m1"])
    assert rewritten == []
    assert again is not None and again["created_at"] == record["created_at"]
    assert await updated_at(database_url) == before
    changed = [{**drafts[0], "text": "The user lives in Seoul."}]
    _, written = await service.save_turn("ada", "t-1", None, changed)
    assert len(written) == 1
    assert (await service.recall("ada", "Seoul", {"conversations": 0, "memories": 1}))[0][
        "text"
    ] == "The user lives in Seoul."


async def test_the_last_of_two_drafts_about_one_subject_stands(service: MemoryService) -> None:
    drafts: list[MemoryDraft] = [
        {"kind": "fact", "subject": "home city", "text": "The user lives in Busan."},
        {"kind": "fact", "subject": "home city", "text": "The user lives in Seoul."},
    ]
    _, written = await service.save_turn("ada", "t-1", None, drafts)
    assert len(written) == 1
    (memory,) = await service.list_memories("ada")
    assert memory["text"] == "The user lives in Seoul."
