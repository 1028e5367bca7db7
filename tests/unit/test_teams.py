"""Teams on InMemorySaver/InMemoryStore: parallelism, failures, time-outs, retries, events,
the planner's choice (rules and a structured-output fake model) and the built-in teams."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import InjectedToolArg, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.types import RetryPolicy
from pydantic import BaseModel

from memory_agent import (
    AgentContext,
    ConfigurationError,
    MemoryService,
    Team,
    TransientError,
    build_graph,
    default_teams,
)
from memory_agent.cli import _progress
from memory_agent.teams import is_transient
from memory_agent.teams.builtin import search_memory
from tests.helpers import ask, cfg
from tests.helpers import offline_graph as make


class Probe:
    """Tool teams that record when each attempt ran."""

    def __init__(self) -> None:
        self.spans: dict[str, list[tuple[float, float]]] = {}
        self.attempts: dict[str, int] = {}

    def team(
        self,
        name: str,
        *,
        sleep: float = 0.0,
        fail: BaseException | None = None,
        fail_times: int = 10**6,
        **options: Any,
    ) -> Team:
        async def work(query: str) -> str:
            start = time.perf_counter()
            self.attempts[name] = self.attempts.get(name, 0) + 1
            try:
                await asyncio.sleep(sleep)
                if fail is not None and self.attempts[name] <= fail_times:
                    raise fail
                return f"{name} says {query}"
            finally:
                self.spans.setdefault(name, []).append((start, time.perf_counter()))

        worker = tool(name, description=f"The {name} team.")(work)
        return Team(name, f"The {name} team.", worker, keywords=[name], **options)


async def turn_time(agent: Any, text: str, thread: str) -> float:
    start = time.perf_counter()
    out = await agent.ainvoke(ask(text), cfg(thread))
    assert out["status"] == "completed"
    return time.perf_counter() - start


async def test_two_slow_teams_run_in_parallel() -> None:
    probe = Probe()
    agent = make([probe.team("alpha", sleep=0.5), probe.team("beta", sleep=0.5)])
    await turn_time(agent, "warm up", "w")  # first-run costs (imports, compilation caches)
    one = await turn_time(agent, "ask alpha", "t1")
    both = await turn_time(agent, "ask alpha and beta", "t2")
    (a_start, a_end), (b_start, b_end) = probe.spans["alpha"][-1], probe.spans["beta"][-1]
    assert a_start < b_end and b_start < a_end, "the two teams did not overlap"
    assert both < 1.6 * one, (both, one)
    state = (await agent.aget_state(cfg("t2"))).values
    assert sorted(state["completed_teams"]) == ["alpha", "beta"]
    assert state["team_results"] == {
        "alpha": "alpha says ask alpha and beta",
        "beta": "beta says ask alpha and beta",
    }
    assert state["active_teams"] == ["alpha", "beta"]


async def test_a_failing_team_is_isolated_and_the_answer_says_so() -> None:
    probe = Probe()
    agent = make([probe.team("broken", fail=ValueError("bad input")), probe.team("fine")])
    out = await agent.ainvoke(ask("ask broken and fine"), cfg("t1"))
    assert out["status"] == "completed"
    assert out["failed_teams"] == ["broken"]
    assert out["team_results"] == {"fine": "fine says ask broken and fine"}
    assert out["error_log"] == ["team broken: ValueError: bad input"]
    assert probe.attempts["broken"] == 1  # a ValueError is not transient: no retry
    answer = out["messages"][-1].content
    assert answer.endswith("Note: I could not use broken (ValueError: bad input).")


async def test_failures_are_per_turn() -> None:
    probe = Probe()
    agent = make([probe.team("broken", fail=ValueError("bad"))])
    first = await agent.ainvoke(ask("ask broken"), cfg("t1"))
    assert first["failed_teams"] == ["broken"] and first["error_log"]
    second = await agent.ainvoke(ask("Nothing for teams here."), cfg("t1"))
    assert second["failed_teams"] == [] and second["error_log"] == []
    assert second["team_results"] == {}
    assert "could not" not in second["messages"][-1].content
    third = await agent.ainvoke(ask("ask broken again"), cfg("t1"))
    assert third["failed_teams"] == ["broken"]  # not ["broken", "broken"]


async def test_a_team_that_times_out_fails_without_holding_up_the_turn() -> None:
    probe = Probe()
    agent = make([probe.team("sleepy", sleep=30, timeout=0.3), probe.team("quick")])
    events: list[dict[str, Any]] = []
    start = time.perf_counter()
    async for event in agent.astream(ask("ask sleepy and quick"), cfg("t1"), stream_mode="custom"):
        events.append(event)
    assert time.perf_counter() - start < 10
    state = (await agent.aget_state(cfg("t1"))).values
    assert state["failed_teams"] == ["sleepy"] and state["completed_teams"] == ["quick"]
    assert state["error_log"] == ["team sleepy: timed out after 0.3 s"]
    assert probe.attempts["sleepy"] == 1  # a time-out is not retried by default
    finished = next(e for e in events if e["event"] == "team_finished" and not e["ok"])
    assert finished["team"] == "sleepy" and finished["error"] == "timed out after 0.3 s"
    assert finished["ms"] >= 300
    assert "sleepy (timed out after 0.3 s)" in state["messages"][-1].content


async def test_a_transient_failure_is_retried_by_the_retry_policy() -> None:
    probe = Probe()
    agent = make([probe.team("flaky", fail=ConnectionError("reset by peer"), fail_times=1)])
    events = [e async for e in agent.astream(ask("ask flaky"), cfg("t1"), stream_mode="custom")]
    state = (await agent.aget_state(cfg("t1"))).values
    assert probe.attempts["flaky"] == 2
    assert state["completed_teams"] == ["flaky"] and state["failed_teams"] == []
    team_events = [(e["event"], e.get("ok")) for e in events if e["event"].startswith("team_")]
    assert team_events == [("team_started", None), ("team_finished", True)]


async def test_retries_stop_at_the_policy_limit() -> None:
    probe = Probe()
    quick_retry = RetryPolicy(initial_interval=0.01, jitter=False, max_attempts=4)
    agent = make([probe.team("down", fail=TransientError("503"), retry=quick_retry)])
    out = await agent.ainvoke(ask("ask down"), cfg("t1"))
    assert probe.attempts["down"] == 4
    assert out["error_log"] == ["team down: TransientError: 503"]


async def test_events_arrive_in_order_with_their_fields() -> None:
    probe = Probe()
    agent = make([probe.team("alpha", sleep=0.2), probe.team("beta", fail=KeyError("x"))])
    events = [
        e async for e in agent.astream(ask("ask alpha and beta"), cfg("t1"), stream_mode="custom")
    ]
    names = [e["event"] for e in events]
    assert names[:2] == ["memory_loaded", "plan_ready"]
    assert sorted(names[2:4]) == ["team_started", "team_started"]
    assert names[4:] == ["team_finished", "team_finished", "memory_saved"]
    plan = events[1]
    assert plan["teams"] == ["alpha", "beta"]
    assert plan["team_reasons"] == {
        "alpha": 'the message mentions "alpha"',
        "beta": 'the message mentions "beta"',
    }
    beta, alpha = events[4], events[5]  # beta fails at once, alpha takes 0.2 s
    assert (beta["team"], beta["ok"], beta["error"]) == ("beta", False, "KeyError: 'x'")
    assert (alpha["team"], alpha["ok"], alpha["error"]) == ("alpha", True, None)
    assert alpha["ms"] >= 200 and beta["ms"] is not None and beta["ms"] < alpha["ms"]
    assert {e["query"] for e in events[2:4]} == {"ask alpha and beta"}
    assert _progress(alpha).startswith("team alpha: done in ")
    assert _progress(beta).endswith("(KeyError: 'x')")


def test_transient_errors_are_told_apart() -> None:
    class Status(Exception):
        def __init__(self, code: int) -> None:
            self.status_code = code

    assert is_transient(ConnectionError()) and is_transient(TimeoutError())
    assert is_transient(TransientError("x")) and is_transient(Status(503))
    assert is_transient(Status(429))
    assert not is_transient(Status(400)) and not is_transient(ValueError("x"))
    assert not is_transient(ConfigurationError("x")) and not is_transient(RuntimeError())


class _Intent(BaseModel):
    intent: str


class StructuredFake(GenericFakeChatModel):
    """langchain-core's fake chat model, plus scripted structured output for the planner."""

    choice: dict[str, Any]

    def with_structured_output(  # type: ignore[override]
        self, schema: Any, **kwargs: Any
    ) -> Runnable[Any, Any]:
        fields = schema.model_fields
        value = {"intent": "question", "reason": "fake"} if "intent" in fields else self.choice
        return RunnableLambda(lambda _: schema.model_validate(value))


async def test_a_real_model_chooses_the_teams_and_writes_their_queries() -> None:
    seen: list[str] = []

    @tool
    async def weather(city: str) -> str:
        """Current weather for a city."""
        seen.append(city)
        return f"Sunny in {city}"

    model = StructuredFake(
        messages=iter([AIMessage("It is sunny in Paris.")]),
        choice={
            "tasks": [
                {"team": "weather", "query": "Paris", "reason": "asks about the weather"},
                {"team": "nonexistent", "query": "x", "reason": "made up"},
            ]
        },
    )
    agent = make([Team.from_tool(weather)])
    out = await agent.ainvoke(
        ask("Should I bring an umbrella to Paris?"), cfg("t1"), context=AgentContext(model=model)
    )
    assert seen == ["Paris"]  # no keyword matched: the model chose, and wrote the query
    assert out["plan"]["tasks"] == [
        {"team": "weather", "query": "Paris", "reason": "asks about the weather"}
    ]
    assert out["team_results"] == {"weather": "Sunny in Paris"}
    assert out["messages"][-1].content == "It is sunny in Paris."


class EchoState(TypedDict, total=False):
    query: str
    user_id: str | None
    result: str


async def test_a_subgraph_team_gets_its_slice_of_the_state() -> None:
    async def echo(state: EchoState) -> dict[str, Any]:
        return {"result": f"{state['user_id']} asked {state['query']!r}"}

    sub = StateGraph(EchoState)
    sub.add_node("echo", echo)
    sub.add_edge(START, "echo")
    team = Team("echo", "Echoes the request.", sub.compile(), keywords=["echo"])
    out = await make([team]).ainvoke(ask("please echo this"), cfg("t1"))
    assert out["team_results"] == {"echo": "u1 asked 'please echo this'"}


def test_bad_teams_are_refused_clearly() -> None:
    @tool
    async def two(a: str, b: str) -> str:
        """Takes two."""
        return a + b

    @tool
    async def secret(q: str, api_key: Annotated[str, InjectedToolArg]) -> str:
        """Needs something we do not have."""
        return q

    with pytest.raises(ConfigurationError, match="name"):
        Team("Bad Name", "x", secret)
    with pytest.raises(ConfigurationError, match="reserved"):
        Team("response", "x", search_memory)
    with pytest.raises(ConfigurationError, match="one argument"):
        Team.from_tool(two)
    with pytest.raises(ConfigurationError, match="api_key"):
        Team.from_tool(secret)
    with pytest.raises(ConfigurationError, match="tool or a compiled"):
        Team("fn", "x", lambda q: q)  # type: ignore[arg-type]
    sub = StateGraph(EchoState)
    sub.add_node("n", lambda s: {})
    sub.add_edge(START, "n")
    with pytest.raises(ConfigurationError, match="checkpointer"):
        Team("sub", "x", sub.compile(checkpointer=InMemorySaver()))
    with pytest.raises(ConfigurationError, match="timeout"):
        Team("slow", "x", search_memory, timeout=0)
    with pytest.raises(ConfigurationError, match="two teams"):
        build_graph(teams=[*default_teams(), Team("memory", "again", search_memory)])
    with pytest.raises(ConfigurationError, match="Team objects"):
        build_graph(teams=[search_memory])  # type: ignore[list-item]


async def test_no_teams_means_none_run() -> None:
    agent = make([])
    events = [
        e
        async for e in agent.astream(
            ask("What did I tell you about my sister?"), cfg("t1"), stream_mode="custom"
        )
    ]
    assert not any(e["event"].startswith("team_") for e in events)
    assert events[1]["teams"] == []


async def test_memory_team_searches_with_its_own_query_and_skips_what_was_loaded() -> None:
    agent = make()
    facts = ["My sister is Mina.", "I live in Busan.", "My favorite food is kimchi."]
    for i, fact in enumerate(facts):
        await agent.ainvoke(ask(fact), cfg(f"t{i}"))
    store = agent.store
    found = await search_memory.ainvoke(
        {"query": "sister", "user_id": "u1", "memories": [], "store": store}
    )
    assert found[0] == "The user's sister is Mina."
    mems = await MemoryService(store).list_memories("u1")
    sister = next(m for m in mems if "sister" in m["text"])
    again = await search_memory.ainvoke(
        {"query": "sister", "user_id": "u1", "memories": [{"key": sister["key"]}], "store": store}
    )
    assert "The user's sister is Mina." not in again
    anonymous = {"query": "sister", "user_id": None, "memories": [], "store": store}
    assert await search_memory.ainvoke(anonymous) == []
    out = await agent.ainvoke(ask("Do you remember who my sister is?"), cfg("t9"))
    task = out["plan"]["tasks"][0]
    assert task["team"] == "memory" and task["query"] == "sister"
    assert "Mina" in out["messages"][-1].content


async def test_history_team_reports_the_conversations_asked_about() -> None:
    agent = make()
    await agent.ainvoke(ask("I am planning a trip to Japan in spring."), cfg("japan"))
    await agent.ainvoke(ask("I baked sourdough bread today."), cfg("bread"))
    out = await agent.ainvoke(ask("What did we talk about last time?"), cfg("now"))
    assert "history" in out["plan"]["teams"]
    lines = out["team_results"]["history"]
    assert lines[0].startswith("Last time, on ") and '"I baked sourdough bread today."' in lines[0]
    assert len(lines) == 2  # the current thread is not a past conversation
    assert "bread" in out["messages"][-1].content
    topic = await agent.ainvoke(ask("What did we discuss about Japan?"), cfg("now2"))
    assert '"I am planning a trip to Japan in spring."' in topic["team_results"]["history"][0]
    anonymous = await agent.ainvoke(ask("What did we talk about last time?", user=None), cfg("a"))
    assert anonymous["plan"]["teams"] == []
