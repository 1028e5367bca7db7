"""The graph's nodes with InMemoryStore, InMemorySaver and langchain-core's fake chat models."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from memory_agent import (
    AgentContext,
    ConfigurationError,
    InvalidInputError,
    MemoryService,
    ThreadOwnershipError,
    graph,
)
from tests.helpers import cfg
from tests.helpers import offline_graph as make


def fake(*answers: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(a) for a in answers]))


async def test_fake_model_answer_and_memory_written_with_provenance() -> None:
    agent = make()
    ctx = AgentContext(model=fake("Nice to meet you, Alice."), extractor="rules")
    out = await agent.ainvoke(
        {"messages": [("user", "My name is Alice.")], "user_id": "u1"}, cfg("t1"), context=ctx
    )
    assert out["messages"][-1].content == "Nice to meet you, Alice."
    assert out["status"] == "completed"
    mems = await MemoryService(agent.store).list_memories("u1")
    assert [m["text"] for m in mems] == ["The user's name is Alice."]
    assert mems[0]["thread_id"] == "t1"
    assert mems[0]["message_ids"] == [out["messages"][0].id]
    conv = await MemoryService(agent.store).get_conversation("u1", "t1")
    assert conv is not None and conv["message_count"] == 2 and conv["title"] == "My name is Alice."


async def test_greeting_loads_no_memory_and_events_say_why() -> None:
    agent = make()
    events: list[dict[str, Any]] = []
    async for chunk in agent.astream(
        {"messages": [("user", "hello")], "user_id": "u1"}, cfg("t1"), stream_mode="custom"
    ):
        events.append(chunk)
    assert [e["event"] for e in events] == ["memory_loaded", "plan_ready", "memory_saved"]
    assert events[0]["skipped"] == "no budget" and events[0]["memory_count"] == 0
    assert events[1]["intent"] == "greeting" and events[1]["budget"]["memories"] == 0


async def test_window_stays_bounded_and_summary_carries_the_rest() -> None:
    agent = make()
    ctx = AgentContext(message_window=4)
    for i in range(6):
        await agent.ainvoke(
            {"messages": [("user", f"Fact number {i}: the sky is blue.")], "user_id": "u1"},
            cfg("t1"),
            context=ctx,
        )
    state = (await agent.aget_state(cfg("t1"))).values
    assert len(state["messages"]) == 4
    assert state["message_count"] == 12 and state["turn_count"] == 6
    assert "Fact number 0" in state["summary"] and "Fact number 3" in state["summary"]
    assert "Fact number 4" not in state["summary"]


async def test_auth_identity_wins_and_a_different_user_id_is_refused() -> None:
    agent = make()
    out = await agent.ainvoke({"messages": [("user", "My name is Ann.")]}, cfg("t1", "ann"))
    assert out["user_id"] == "ann"
    with pytest.raises(ThreadOwnershipError, match="authenticated"):
        await agent.ainvoke({"messages": [("user", "hi")], "user_id": "bob"}, cfg("t2", user="ann"))
    assert (await agent.aget_state(cfg("t2"))).values.get("messages") == []


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"messages": []}, "user message"),
        ({"messages": [("ai", "hi")]}, "user message"),
        ({"messages": [("user", "")]}, "empty"),
        ({"messages": [("user", "hi")], "user_id": ""}, "user_id"),
        ({"messages": [("user", "hi")], "user_id": "a\x00b"}, "control"),
    ],
)
async def test_bad_input_gets_a_clear_error(payload: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        await make().ainvoke(payload, cfg("t1"))


async def test_persistence_free_graph_runs_anonymous_and_needs_a_store_for_users() -> None:
    out = await graph.ainvoke({"messages": [("user", "What is 2+2?")]})
    assert out["status"] == "completed"
    with pytest.raises(ConfigurationError, match="store"):
        await graph.ainvoke({"messages": [("user", "What is my name?")], "user_id": "u"})
