"""The boundary's cheap look at a thread's latest checkpoints agrees with LangGraph's own view
(the state's pending tasks) at every point a process could die: after each checkpoint of turns
with and without teams, a refused turn, and a first turn."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from memory_agent import GuardedAgent, ThreadOwnershipError, open_agent
from memory_agent.agent.boundary import LATEST_CHECKPOINTS, LatestTurn
from tests.helpers import cfg

pytestmark = pytest.mark.integration


async def langgraph_says_cut_off(agent: GuardedAgent, thread: str) -> bool:
    state = await agent.aget_state(cfg(thread))
    return bool(state.tasks) and not any(t.name == "reject" for t in state.tasks)


async def probe(agent: GuardedAgent, thread: str) -> LatestTurn:
    assert agent.guard is not None
    async with agent.guard.pool.connection() as conn:
        return LatestTurn.of(await (await conn.execute(LATEST_CHECKPOINTS, (thread,))).fetchall())


def drop_latest_checkpoint(url: str, thread: str) -> bool:
    """Forget the thread's latest checkpoint, as if the process died before writing it."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = '' "
            "ORDER BY checkpoint_id DESC LIMIT 1",
            (thread,),
        ).fetchone()
        if row is None:
            return False
        conn.execute("DELETE FROM checkpoint_writes WHERE checkpoint_id = %s", (row[0],))
        conn.execute("DELETE FROM checkpoints WHERE checkpoint_id = %s", (row[0],))
        return True


@pytest.mark.parametrize(
    "turns",
    [
        ["My name is Ida."],  # a first turn
        ["My name is Ida.", "What did we talk about before?"],  # teams on the second
        ["My name is Ida.", "I live in Oslo.", ("mallory", "Let me in.")],  # a refused turn
    ],
)
async def test_the_probe_agrees_with_langgraph_after_every_checkpoint(
    database_url: str, turns: list[Any]
) -> None:
    thread = "probe"
    async with open_agent(database_url, prune_every=None) as agent:
        for turn in turns:
            user, text = turn if isinstance(turn, tuple) else ("ida", turn)
            try:
                await agent.ainvoke({"messages": [("user", text)], "user_id": user}, cfg(thread))
            except ThreadOwnershipError:
                # The boundary refuses before writing; run it past the boundary, as the server
                # would, so the refusal's checkpoints exist.
                bare = agent.copy({"guard": None})
                with pytest.raises(ThreadOwnershipError):
                    await bare.ainvoke({"messages": [("user", text)], "user_id": user}, cfg(thread))
        checked = 0
        while True:
            expected = await langgraph_says_cut_off(agent, thread)
            assert (await probe(agent, thread)).cut_off == expected, f"after {checked} drops"
            checked += 1
            if not drop_latest_checkpoint(database_url, thread):
                break
    assert checked > 3 * len(turns)  # every checkpoint of every turn was a crash point
