"""The agent over the real OpenAI protocol: langchain-openai's `ChatOpenAI`, as a user runs it
with MEMORY_AGENT_MODEL=openai:... and OPENAI_BASE_URL, against the scripted server of
`tests.openai_server` (on the loopback interface; no model, no outside network)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk

from memory_agent import AgentContext, MemoryService, ModelError
from memory_agent.agent.boundary import cut_off
from tests.helpers import cfg
from tests.helpers import offline_graph as make
from tests.openai_server import (
    DEFAULT_SCRIPT,
    Reply,
    ScriptedOpenAI,
    good,
    length_limit,
    prose,
    serve,
    slow,
    status,
    truncated,
)

pytest.importorskip("langchain_openai")

ANSWER = "Nice to meet you, Ada. Lisbon is lovely."
METHODS = ["json_schema", "function_calling", "json_mode"]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    with serve() as state:
        monkeypatch.setenv("OPENAI_BASE_URL", state.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("MEMORY_AGENT_MODEL", "openai:scripted")
        state.set("answer", Reply(ANSWER))
        yield state


async def turn(
    agent: Any, thread: str, text: str, ctx: AgentContext, user: str = "ada"
) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """Run one streamed turn: its final state, every streamed message token, its events."""
    tokens: list[str] = []
    events: list[dict[str, Any]] = []
    async for mode, part in agent.astream(
        {"messages": [("user", text)], "user_id": user},
        cfg(thread),
        context=ctx,
        stream_mode=["messages", "custom"],
    ):
        if mode == "messages":
            message, _meta = part
            if isinstance(message, AIMessageChunk):
                tokens.append(str(message.content))
        else:
            events.append(part)
    state = await agent.aget_state(cfg(thread))
    return state.values, tokens, events


async def test_only_the_answer_reaches_the_messages_stream(server: ScriptedOpenAI) -> None:
    """Intent, team choice, extraction and summary calls stream too (ChatOpenAI streams
    whenever the run is streamed); none of their tokens may show as the answer."""
    server.set("intent", good({"intent": "statement", "reason": "tells facts"}))
    memory = {"kind": "fact", "subject": "location", "text": "The user lives in Lisbon."}
    server.set("extraction", good({"memories": [memory]}))
    server.set("summary", Reply("SUMMARY-TOKENS: Ada lives in Lisbon."))
    agent = make()
    # A two-message window: the second turn folds the first into the summary.
    ctx = AgentContext(message_window=2, structured_output="json_schema")
    _, first, _ = await turn(agent, "t1", "I live in Lisbon.", ctx)
    values, second, _ = await turn(agent, "t1", "My name is Ada.", ctx)
    assert "".join(first) == ANSWER
    assert "".join(second) == ANSWER
    assert values["summary"] == "SUMMARY-TOKENS: Ada lives in Lisbon."
    purposes = server.purposes()
    assert {"intent", "teams", "extraction", "summary", "answer"} <= set(purposes)
    # The internal calls did stream over the wire: the filter is ours, not the server's.
    assert all(r.get("stream") for r in server.requests if r["_purpose"] != "answer")
    mems = await MemoryService(agent.store).list_memories("ada")
    assert [m["text"] for m in mems] == ["The user lives in Lisbon."]


BAD_REPLIES: dict[str, Any] = {
    "prose": lambda value: prose(),
    "wrong shape": lambda value: good({key: 42 for key in value}),
    "truncated": truncated,
    "length limit": length_limit,
}
"""How a model gets structured output wrong, each made from the answer it should have given."""


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", list(BAD_REPLIES))
async def test_unusable_decisions_fall_back_to_rules_and_are_recorded(
    server: ScriptedOpenAI, method: str, case: str
) -> None:
    make_bad = BAD_REPLIES[case]
    server.set("intent", make_bad({"intent": "question", "reason": "from the model"}))
    server.set("teams", make_bad({"tasks": [{"team": "memory", "query": "q", "reason": "r"}]}))
    memory = {"kind": "fact", "subject": "name", "text": "The user is called Zed."}
    server.set("extraction", make_bad({"memories": [memory]}))
    agent = make()
    ctx = AgentContext(structured_output=method)  # type: ignore[arg-type]
    values, tokens, events = await turn(agent, "t1", "My name is Ada. I live in Lisbon.", ctx)
    assert values["status"] == "completed"
    assert "".join(tokens) == ANSWER
    # The rules decided: the offline classifier's intent and the rules' memories.
    assert values["intent"] == "statement"
    texts = {m["text"] for m in await MemoryService(agent.store).list_memories("ada")}
    assert texts == {"The user's name is Ada.", "The user lives in Lisbon."}
    logged = values["error_log"]
    for purpose in ("intent", "teams", "extraction"):
        assert any(
            line.startswith(f"model {purpose}: unusable answer from openai") for line in logged
        )
    fallbacks = [e for e in events if e["event"] == "model_fallback"]
    assert sorted(e["purpose"] for e in fallbacks) == ["extraction", "intent", "teams"]
    assert all(e["provider"] == "openai" and e["error"] for e in fallbacks)


@pytest.mark.parametrize("method", METHODS)
async def test_the_method_setting_reaches_the_wire(server: ScriptedOpenAI, method: str) -> None:
    agent = make()
    ctx = AgentContext(structured_output=method)  # type: ignore[arg-type]
    values, _, _ = await turn(agent, "t1", "I live in Lisbon.", ctx)
    assert values["status"] == "completed" and values["error_log"] == []
    intent = next(r for r in server.requests if r["_purpose"] == "intent")
    if method == "function_calling":
        assert intent["tools"][0]["function"]["name"] == "_IntentDecision"
        assert "response_format" not in intent
    else:
        expected = "json_schema" if method == "json_schema" else "json_object"
        assert intent["response_format"]["type"] == expected
        assert "tools" not in intent


async def test_bounds_and_the_internal_model_per_purpose(server: ScriptedOpenAI) -> None:
    agent = make()
    ctx = AgentContext(
        model="openai:big",
        internal_model="openai:small",
        model_limits={"answer": {"max_tokens": 333}, "intent": {"temperature": 0.5}},
    )
    values, _, _ = await turn(agent, "t1", "I live in Lisbon.", ctx)
    assert values["status"] == "completed"
    by_purpose = {r["_purpose"]: r for r in server.requests}
    assert by_purpose["answer"]["model"] == "big"
    assert {by_purpose[p]["model"] for p in ("intent", "teams", "extraction")} == {"small"}

    def max_tokens(request: dict[str, Any]) -> Any:
        return request.get("max_completion_tokens", request.get("max_tokens"))

    assert max_tokens(by_purpose["answer"]) == 333
    assert max_tokens(by_purpose["intent"]) == 200
    assert by_purpose["intent"]["temperature"] == 0.5
    assert by_purpose["teams"]["temperature"] == 0.0


@pytest.mark.parametrize(
    ("purpose", "reply", "cause"),
    [
        ("answer", status(500), "server error (HTTP 5xx) after the retries"),
        ("answer", status(429), "rate limit (HTTP 429) after the retries"),
        ("answer", slow(3.0), "timed out"),
        ("intent", status(503), "server error (HTTP 5xx) after the retries"),
    ],
)
async def test_failures_that_cannot_be_absorbed_are_model_errors(
    server: ScriptedOpenAI, purpose: str, reply: Reply, cause: str
) -> None:
    server.set(purpose, reply)
    agent = make()
    ctx = AgentContext(model_timeout=0.5, model_max_retries=1)
    with pytest.raises(ModelError) as caught:
        await turn(agent, "t1", "I live in Lisbon.", ctx)
    error = caught.value
    assert error.provider == "openai" and error.purpose == purpose
    assert error.cause is not None and error.cause.startswith(cause)
    assert "openai" in str(error) and cause in str(error)
    # One retry: the request was sent twice.
    assert server.purposes().count(purpose) == 2
    # The thread is cut off, not lost: the message is kept and the turn resumes once the
    # model answers again, with nothing stored twice.
    state = await agent.aget_state(cfg("t1"))
    assert state.next and state.values["messages"][-1].content == "I live in Lisbon."
    assert await MemoryService(agent.store).list_memories("ada") == []
    server.set(
        purpose,
        good({"intent": "statement", "reason": "ok"}) if purpose == "intent" else Reply(ANSWER),
    )
    out = await agent.ainvoke(None, cfg("t1"), context=ctx)
    assert out["status"] == "completed" and out["messages"][-1].content == ANSWER
    assert [m.type for m in out["messages"]] == ["human", "ai"]


async def test_unreachable_provider_is_a_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve() as closed:
        url = closed.url
    monkeypatch.setenv("OPENAI_BASE_URL", url)  # the server is gone: connection refused
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    ctx = AgentContext(model="openai:scripted", model_max_retries=0)
    with pytest.raises(ModelError, match=r"openai model failed \(intent call\): cannot be reached"):
        await turn(make(), "t1", "hello there", ctx)


async def test_after_the_answer_model_failures_cost_nothing(server: ScriptedOpenAI) -> None:
    """Extraction and summary run after the answer: their failure (even the model being
    unreachable) falls back to the rules and the extractive summary, recorded."""
    server.set("extraction", status(500))
    server.set("summary", status(500))
    agent = make()
    ctx = AgentContext(message_window=2, model_max_retries=0)
    await turn(agent, "t1", "I live in Lisbon.", ctx)
    values, tokens, events = await turn(agent, "t1", "My name is Ada.", ctx)
    assert values["status"] == "completed" and "".join(tokens) == ANSWER
    assert values["summary"] == "I live in Lisbon."
    assert {e["purpose"] for e in events if e["event"] == "model_fallback"} == {
        "extraction",
        "summary",
    }
    assert any("used the extractive summary" in line for line in values["error_log"])
    texts = {m["text"] for m in await MemoryService(agent.store).list_memories("ada")}
    assert texts == {"The user's name is Ada.", "The user lives in Lisbon."}


@pytest.mark.parametrize(
    ("purpose", "code", "cause"),
    [
        ("answer", 404, "model not found: check the model name"),
        ("intent", 401, "authentication failed: check the API key"),
        ("answer", 400, "request refused as invalid"),
    ],
)
async def test_failures_that_would_only_repeat_roll_the_turn_back(
    server: ScriptedOpenAI, purpose: str, code: int, cause: str
) -> None:
    """Resuming such a turn would meet the same error for ever and wedge the thread: it is
    rolled back instead, the thread as it was before the turn."""
    agent = make()
    ctx = AgentContext(model_max_retries=0)
    await turn(agent, "t1", "I live in Lisbon.", ctx)
    before = await agent.aget_state(cfg("t1"))
    service = MemoryService(agent.store)
    stored = await service.list_memories("ada", kinds=("fact", "episode"))
    assert len(stored) == 1  # the first turn's episode
    server.set(purpose, status(code))
    with pytest.raises(ModelError, match=f"openai model failed \\({purpose} call\\): {cause}"):
        await turn(agent, "t1", "My name is Ada.", ctx)
    after = await agent.aget_state(cfg("t1"))
    assert not await cut_off(agent, cfg("t1")) and after.values["status"] == "rejected"
    assert after.values["messages"] == before.values["messages"]
    assert after.values["turn_count"] == 1
    assert server.purposes().count(purpose) == 2  # no retry of what cannot change
    assert await service.list_memories("ada", kinds=("fact", "episode")) == stored
    server.set(purpose, DEFAULT_SCRIPT[purpose] if purpose != "answer" else Reply(ANSWER))
    values, tokens, _ = await turn(agent, "t1", "I work as a nurse.", ctx)
    assert values["status"] == "completed" and "".join(tokens) == ANSWER
    assert [m.content for m in values["messages"] if m.type == "human"] == [
        "I live in Lisbon.",
        "I work as a nurse.",
    ]


def test_the_context_has_a_json_schema_with_the_model_settings() -> None:
    """The LangGraph server filters a client's context by this schema; if it cannot be made,
    every configurable key reaches the context and the run is refused."""
    from memory_agent import graph

    schema = graph.get_context_jsonschema()
    assert schema is not None
    for name in ("internal_model", "structured_output", "model_timeout", "model_limits"):
        assert name in schema["properties"]
