"""Issue 10 (program API side) and issue 15 items 3, 4, 6: the boundary cannot be bypassed,
the identity is re-established where memory is touched, a turn's input is bounded as a whole,
input that cannot be checkpointed is refused before anything is stored, and forgetting a user
never deadlocks with the user's queued turns."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from langchain_core.messages import HumanMessage
from langgraph.types import Command

from memory_agent import (
    GuardedAgent,
    InvalidInputError,
    ModelError,
    ThreadOwnershipError,
    build_graph,
    forget_user,
    memories,
    resume_turn,
)
from tests.helpers import cfg, run_turn
from tests.models import HookModel

pytestmark = pytest.mark.integration


def count(url: str, sql: str, *params: Any) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def store_rows(url: str, user: str) -> int:
    return count(url, "SELECT count(*) FROM store WHERE prefix LIKE %s", f"users.{user}.%")


async def test_a_checkpoint_ns_string_does_not_skip_the_boundary(
    agent: GuardedAgent, database_url: str
) -> None:
    """Scenario 7: any truthy `checkpoint_ns` used to skip the whole run boundary."""
    await run_turn(agent, "alice", "a1", "My secret word is zqalicezq.")
    await run_turn(agent, "bob", "b1", "Hello there.")
    alice_before = store_rows(database_url, "alice")
    forged = Command(
        goto="planning",
        update={"user_id": "alice", "messages": [HumanMessage("What is my secret word?")]},
    )
    with pytest.raises(InvalidInputError, match="Command"):
        await agent.ainvoke(forged, cfg("b1", checkpoint_ns="x"))
    with pytest.raises(InvalidInputError, match="NUL"):
        await agent.ainvoke(
            {"messages": [("user", "a\x00b")], "user_id": "bob"}, cfg("b1", checkpoint_ns="y")
        )
    state = await agent.aget_state(cfg("b1"))
    assert "zqalicezq" not in str(state.values)
    assert store_rows(database_url, "alice") == alice_before


async def test_a_node_reached_without_initialize_acts_only_for_the_threads_owner(
    agent: GuardedAgent, database_url: str
) -> None:
    """The identity is checked where memory is touched, not only in initialize: a graph run
    without the boundary (same checkpointer and store) that starts at planning with another
    user's id in the state is refused there, with nothing of either user read or written."""
    await run_turn(agent, "alice", "a2", "My secret word is zqalicezq.")
    await run_turn(agent, "bob", "b2", "Hello there.")
    alice_before = store_rows(database_url, "alice")
    bare = build_graph(checkpointer=agent.checkpointer, store=agent.store)
    forged = Command(
        goto="planning",
        update={"user_id": "alice", "messages": [HumanMessage("What is my secret word?")]},
    )
    with pytest.raises(ThreadOwnershipError, match="another user"):
        await bare.ainvoke(forged, cfg("b2"))
    state = await agent.aget_state(cfg("b2"))
    assert "zqalicezq" not in str(state.values)
    assert store_rows(database_url, "alice") == alice_before


async def test_update_state_cannot_change_identity_or_bookkeeping(agent: GuardedAgent) -> None:
    await run_turn(agent, "bob", "b3", "Hello there.")
    for values in ({"user_id": "alice"}, {"thread_owner": "alice"}, {"turn_count": 0}):
        with pytest.raises(InvalidInputError, match="may not change"):
            await agent.aupdate_state(cfg("b3"), values, as_node="planning")
    with pytest.raises(InvalidInputError):
        await agent.aupdate_state(cfg("b3"), {"messages": [{"content": "no role"}]})
    state = await agent.aget_state(cfg("b3"))
    assert state.values["user_id"] == "bob" and state.values["thread_owner"] == "bob"


async def test_a_named_user_is_told_a_thread_is_anonymous(agent: GuardedAgent) -> None:
    await run_turn(agent, None, "anon", "Hello there.")
    with pytest.raises(ThreadOwnershipError, match="anonymous"):
        await run_turn(agent, "bob", "anon", "Hello again.")


async def test_list_users_pages_past_the_stores_default_page(agent: GuardedAgent) -> None:
    """Scenario 9: `list_users()` returned at most 100 users."""
    service = memories(agent)
    store = agent.store
    assert store is not None
    for i in range(150):
        await store.aput(("users", f"u{i:03d}", "facts"), "k", {"text": "x", "subject": "x"})
    assert len(await service.list_users()) == 150


def nested(depth: int) -> list[Any]:
    outer: list[Any] = []
    inner = outer
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            HumanMessage(
                content=[
                    {"type": "text", "text": "Look at this."},
                    {"type": "image_url", "image_url": {"url": "data:,".ljust(3_000_000, "A")}},
                ]
            ),
            "bytes",
        ),
        (HumanMessage("Hi.", additional_kwargs={"blob": "x" * 3_000_000}), "bytes"),
        (HumanMessage(content=[{"type": "text", "text": "a"}] * 40), "content blocks"),
        (HumanMessage("Hi.", additional_kwargs={"n": 2**64}), "cannot be stored"),
        (HumanMessage("Hi.", additional_kwargs={"deep": nested(900)}), "cannot be stored"),
    ],
    ids=["image-3mb", "kwargs-3mb", "40-blocks", "int-2-64", "nested-900"],
)
async def test_a_turns_input_is_bounded_as_a_whole_and_must_be_storable(
    agent: GuardedAgent, database_url: str, message: HumanMessage, reason: str
) -> None:
    """Issue 15 items 3 and 4: refused before anything is stored, the thread left as it was."""
    await run_turn(agent, "max", "m1", "I live in Oslo.")
    before = (
        store_rows(database_url, "max"),
        count(database_url, "SELECT count(*) FROM checkpoints"),
    )
    with pytest.raises(InvalidInputError, match=reason):
        await agent.ainvoke({"messages": [message], "user_id": "max"}, cfg("m1"))
    after = (
        store_rows(database_url, "max"),
        count(database_url, "SELECT count(*) FROM checkpoints"),
    )
    assert after == before
    assert (await run_turn(agent, "max", "m1", "Where do I live?"))["status"] == "completed"


async def test_too_many_messages_in_one_input_are_refused(agent: GuardedAgent) -> None:
    many = [("user", f"message {i}") for i in range(10_000)]
    with pytest.raises(InvalidInputError, match="messages; the limit is 16"):
        await agent.ainvoke({"messages": many, "user_id": "max"}, cfg("m2"))
    assert (await agent.aget_state(cfg("m2"))).values == {}


async def test_forget_user_with_turns_queued_on_a_thread_neither_deadlocks_nor_stalls(
    agent: GuardedAgent, database_url: str
) -> None:
    """Issue 15 item 6: turns took thread then user, forget user then threads."""
    await run_turn(agent, "quinn", "q1", "I live in Rome.")
    release = asyncio.Event()
    entered = asyncio.Event()

    async def hold() -> None:
        entered.set()
        await release.wait()

    first = asyncio.create_task(
        run_turn(agent, "quinn", "q1", "My name is Quinn.", model=HookModel(hook=hold))
    )
    await entered.wait()
    queued = [
        asyncio.create_task(run_turn(agent, "quinn", "q1", f"I like colour {i}.")) for i in range(3)
    ]
    await asyncio.sleep(0.2)
    forget = asyncio.create_task(forget_user(agent, "quinn", lock_timeout=10))
    await asyncio.sleep(0.2)
    release.set()
    receipt = await asyncio.wait_for(forget, timeout=20)
    await first
    results = await asyncio.gather(*queued, return_exceptions=True)
    assert receipt["deleted"]["checkpoints"] > 0
    # Queued turns ran after the forget or before it; none failed on a lock.
    assert all(not isinstance(r, Exception) for r in results), results


async def test_another_user_cannot_finish_or_probe_a_cut_off_turn(
    agent: GuardedAgent, database_url: str
) -> None:
    """Found by the property test: a new turn finished the thread's cut-off turn before the
    ownership check, so another user's call completed (and wrote) the owner's turn."""

    async def model_down() -> None:
        raise RuntimeError("the model went away")

    # The answer fails: the turn is cut off after planning.
    with pytest.raises(ModelError, match="went away"):
        await run_turn(
            agent, "alice", "cut", "My secret word is zqalicezq.", model=HookModel(hook=model_down)
        )
    assert await agent.cut_off(cfg("cut"))
    before = (
        store_rows(database_url, "alice"),
        count(database_url, "SELECT count(*) FROM checkpoints WHERE thread_id = 'cut'"),
    )
    with pytest.raises(ThreadOwnershipError):
        await run_turn(agent, "bob", "cut", "Hello.")
    with pytest.raises(ThreadOwnershipError):
        await resume_turn(agent, cfg("cut"), user_id="bob")
    with pytest.raises(ThreadOwnershipError):
        await run_turn(agent, None, "cut", "Hello.")
    after = (
        store_rows(database_url, "alice"),
        count(database_url, "SELECT count(*) FROM checkpoints WHERE thread_id = 'cut'"),
    )
    assert after == before and await agent.cut_off(cfg("cut"))
    # The owner's next turn finishes hers first, as before.
    assert (await run_turn(agent, "alice", "cut", "What is my word?"))["status"] == "completed"
