"""`BoundedPostgresSaver` against LangGraph's own checkpointer conformance suite.

`langgraph-checkpoint-conformance` checks the contract every checkpointer owes LangGraph and
the LangGraph server: the five base capabilities (put, put_writes, get_tuple, list,
delete_thread) and the three extended ones (delete_for_runs, copy_thread, prune), each detected
only when the saver overrides the method. The server calls `adelete_for_runs` to roll back a
run and `acopy_thread` to copy a thread.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.graph import START, StateGraph

from memory_agent.persistence.checkpointer import BoundedPostgresSaver
from memory_agent.persistence.pool import open_pool

pytestmark = pytest.mark.integration

TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


async def test_every_capability_passes(database_url: str) -> None:
    async with open_pool(database_url, max_size=2) as pool:
        await BoundedPostgresSaver(pool).setup()

        @checkpointer_test(name="BoundedPostgresSaver")
        async def bounded() -> AsyncIterator[BoundedPostgresSaver]:
            yield BoundedPostgresSaver(pool)

        report = await validate(bounded)

    results = {name: result for name, result in report.results.items()}
    assert set(results) == {c.value for c in ALL_CAPABILITIES}
    failures = {
        name: (r.detected, r.failures) for name, r in results.items() if r.passed is not True
    }
    assert not failures, failures
    assert all(r.tests_passed > 0 and r.tests_failed == 0 for r in results.values())


class Counter(TypedDict):
    items: Annotated[list[str], operator.add]


def _graph(saver: BoundedPostgresSaver) -> Any:
    builder = StateGraph(Counter)
    builder.add_node("one", lambda s: {"items": ["one"]})
    builder.add_node("two", lambda s: {"items": ["two"]})
    builder.add_edge(START, "one")
    builder.add_edge("one", "two")
    return builder.compile(checkpointer=saver)


def _run(config: dict[str, Any], run_id: uuid.UUID) -> Any:
    # As the LangGraph server runs a graph: the run id in the config's metadata, which
    # LangGraph copies into every checkpoint's metadata.
    return {**config, "metadata": {"run_id": str(run_id)}}


def _rows(url: str, table: str, thread_id: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {table} WHERE thread_id = %s", (thread_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_rolled_back_run_leaves_the_thread_as_the_run_before_left_it(
    database_url: str,
) -> None:
    async with open_pool(database_url, max_size=2) as pool:
        saver = BoundedPostgresSaver(pool, prune_every=None)
        await saver.setup()
        graph = _graph(saver)
        config: dict[str, Any] = {"configurable": {"thread_id": "t"}}
        await graph.ainvoke({"items": ["a"]}, _run(config, uuid.uuid4()))
        before = await graph.aget_state(config)
        counts = {t: _rows(database_url, t, "t") for t in TABLES}
        rolled_back = uuid.uuid4()
        await graph.ainvoke({"items": ["b"]}, _run(config, rolled_back))
        assert (await graph.aget_state(config)).values["items"][-1] == "two"
        assert _rows(database_url, "checkpoints", "t") > counts["checkpoints"]

        await saver.adelete_for_runs([str(rolled_back)])

        after = await graph.aget_state(config)
        assert after.values == before.values == {"items": ["a", "one", "two"]}
        assert after.config == before.config
        assert {t: _rows(database_url, t, "t") for t in TABLES} == counts
        # The thread goes on from there, and a copy of it is the same thread.
        await graph.ainvoke({"items": ["c"]}, config)
        await saver.acopy_thread("t", "copy")
        copied = await graph.aget_state({"configurable": {"thread_id": "copy"}})
        assert copied.values["items"] == ["a", "one", "two", "c", "one", "two"]
        history = [s.values async for s in graph.aget_state_history(config)]
        copy_config = {"configurable": {"thread_id": "copy"}}
        assert [s.values async for s in graph.aget_state_history(copy_config)] == history


async def test_deleting_a_run_in_the_middle_keeps_the_chain_of_parents(database_url: str) -> None:
    async with open_pool(database_url, max_size=2) as pool:
        saver = BoundedPostgresSaver(pool, prune_every=None)
        await saver.setup()
        graph = _graph(saver)
        config: dict[str, Any] = {"configurable": {"thread_id": "m"}}
        runs = [uuid.uuid4() for _ in range(3)]
        for run in runs:
            await graph.ainvoke({"items": [str(run)[:4]]}, _run(config, run))
        await saver.adelete_for_runs([str(runs[1])])
        ids = {
            s.config["configurable"]["checkpoint_id"]
            async for s in graph.aget_state_history(config)
        }
        parents = [
            s.parent_config["configurable"]["checkpoint_id"]
            async for s in graph.aget_state_history(config)
            if s.parent_config is not None
        ]
        assert parents and set(parents) <= ids, "every parent is a checkpoint still there"
        assert len(ids) == len(parents) + 1, "one chain, one root"
