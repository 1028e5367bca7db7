"""The vertical slice on a real PostgreSQL: threads, memory across threads, isolation."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from langchain_core.messages import AIMessageChunk

from memory_agent import (
    Agent,
    DatabaseUnavailableError,
    InvalidInputError,
    MemoryService,
    ThreadOwnershipError,
    open_agent,
)
from memory_agent.agent.manage import forget_user, memories
from tests.helpers import cfg, say

pytestmark = pytest.mark.integration


def count(url: str, sql: str, *params: Any) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


async def test_name_told_in_one_thread_is_answered_in_another(agent: Agent) -> None:
    await say(agent, "alice", "a-1", "Hello there. My name is Alice and I live in Seoul.")
    answer = await say(agent, "alice", "a-2", "What is my name?")
    assert "Alice" in answer
    assert "Seoul" in await say(agent, "alice", "a-3", "Where do I live?")


async def test_another_user_gets_nothing_of_it(agent: Agent, database_url: str) -> None:
    await say(agent, "alice", "a-1", "My name is Alice.")
    answer = await say(agent, "bob", "b-1", "What is my name?")
    assert "Alice" not in answer
    bob = await MemoryService(agent.store).recall(  # type: ignore[arg-type]
        "bob", "name Alice", {"conversations": 10, "memories": 10}
    )
    # Bob's own thread and his own words (an episode), nothing of Alice's.
    assert [(r["kind"], r.get("thread_id")) for r in bob] == [
        ("conversation", "b-1"),
        ("episode", "b-1"),
    ]
    assert not any("Alice" in r["text"] for r in bob)
    assert (
        count(database_url, "SELECT count(*) FROM store WHERE prefix LIKE %s", "users.bob.%") == 2
    )


async def test_anonymous_turn_writes_no_memory(agent: Agent, database_url: str) -> None:
    answer = await say(agent, None, "anon-1", "My name is Zed and I love jazz.")
    assert answer
    assert count(database_url, "SELECT count(*) FROM store") == 0
    assert count(database_url, "SELECT count(*) FROM checkpoints WHERE thread_id = 'anon-1'") > 0


async def test_thread_is_checkpointed_and_resumes_after_reopen(database_url: str) -> None:
    async with open_agent(database_url) as agent:
        await say(agent, "carol", "c-1", "I love hiking in the Alps.")
    assert count(database_url, "SELECT count(*) FROM checkpoints WHERE thread_id = 'c-1'") > 0
    async with open_agent(database_url) as agent:
        state = await agent.aget_state(cfg("c-1"))
        assert [m.type for m in state.values["messages"]] == ["human", "ai"]
        answer = await say(agent, "carol", "c-1", "What do I love?")
        assert "hiking" in answer
        state = await agent.aget_state(cfg("c-1"))
        assert len(state.values["messages"]) == 4
        assert state.values["turn_count"] == 2


async def test_turn_by_another_user_on_a_thread_is_refused(agent: Agent) -> None:
    await say(agent, "alice", "a-1", "My name is Alice.")
    before = await agent.aget_state(cfg("a-1"))
    with pytest.raises(ThreadOwnershipError, match="another user"):
        await say(agent, "mallory", "a-1", "My name is Mallory.")
    with pytest.raises(ThreadOwnershipError):
        await say(agent, None, "a-1", "anonymous intrusion")
    after = await agent.aget_state(cfg("a-1"))
    assert [m.content for m in after.values["messages"]] == [
        m.content for m in before.values["messages"]
    ]
    assert after.values["user_id"] == "alice"
    assert await memories(agent).list_memories("mallory") == []
    # The owner carries on normally afterwards.
    assert "Alice" in await say(agent, "alice", "a-1", "What is my name?")


async def test_invalid_input_is_refused_and_nothing_is_kept(agent: Agent) -> None:
    await say(agent, "dave", "d-1", "I work as a baker.")
    with pytest.raises(InvalidInputError, match="empty"):
        await say(agent, "dave", "d-1", "   ")
    with pytest.raises(InvalidInputError, match="limit"):
        await say(agent, "dave", "d-1", "x" * 20_000)
    state = await agent.aget_state(cfg("d-1"))
    assert [m.content for m in state.values["messages"]][0] == "I work as a baker."
    assert len(state.values["messages"]) == 2


async def test_progress_events_arrive_in_order_with_tokens(agent: Agent) -> None:
    await say(agent, "erin", "e-1", "My name is Erin.")
    seen: list[str] = []
    async for mode, chunk in agent.astream(
        {"messages": [("user", "What is my name?")], "user_id": "erin"},
        cfg("e-2"),
        stream_mode=["custom", "updates", "messages"],
    ):
        if mode == "custom":
            seen.append(chunk["event"])
            if chunk["event"] == "memory_loaded":
                assert chunk["user_id"] == "erin"
                assert chunk["counts"].get("fact") == 1
                assert chunk["ms"] >= 0
            if chunk["event"] == "memory_saved":
                assert chunk["conversation"] is True
        elif mode == "messages" and isinstance(chunk[0], AIMessageChunk):
            if chunk[0].content and (not seen or seen[-1] != "token"):
                seen.append("token")
        elif mode == "updates":
            seen.extend(f"update:{node}" for node in chunk)
    assert seen == [
        "update:initialize",
        "memory_loaded",
        "plan_ready",
        "update:planning",
        "team_started",
        "team_finished",
        "update:team_memory",
        "token",
        "memory_saved",
        "update:response",
    ]


async def test_email_user_id(agent: Agent, database_url: str) -> None:
    user = "first.last+tag@example.co.kr"
    await say(agent, user, "m-1", "My name is Jiwoo.")
    assert "Jiwoo" in await say(agent, user, "m-2", "What is my name?")
    assert await MemoryService(agent.store).list_users() == [user]  # type: ignore[arg-type]
    # The raw address never becomes a label: one row per namespace level, no stray dots.
    with psycopg.connect(database_url) as conn:
        prefixes = {row[0] for row in conn.execute("SELECT DISTINCT prefix FROM store")}
    assert all(p.count(".") == 2 for p in prefixes), prefixes


async def test_threads_are_listed_and_forget_removes_everything(agent: Agent) -> None:
    await say(agent, "fay", "f-1", "My name is Fay.")
    await say(agent, "fay", "f-2", "I love tea.")
    await say(agent, "gus", "g-1", "My name is Gus.")
    convs = await memories(agent).list_conversations("fay")
    assert {c["thread_id"] for c in convs} == {"f-1", "f-2"}
    assert all(c["message_count"] == 2 and c["title"] for c in convs)
    receipt = await forget_user(agent, "fay")
    assert receipt["deleted"]["threads"] == 2
    assert receipt["deleted"]["facts"] == 1
    assert await memories(agent).list_memories("fay") == []
    assert (await agent.aget_state(cfg("f-1"))).values == {}
    assert "Gus" in await say(agent, "gus", "g-2", "What is my name?")


async def test_unreachable_database_is_a_clear_error() -> None:
    url = "postgresql://memory:secret@127.0.0.1:1/nowhere"
    with pytest.raises(DatabaseUnavailableError) as info:
        async with open_agent(url):
            pass
    message = str(info.value)
    assert "127.0.0.1" in message and "secret" not in message
