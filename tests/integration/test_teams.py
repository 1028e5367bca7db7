"""Teams on a real PostgreSQL: a user-registered team end to end, and resumption of a turn
killed between teams."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langchain_core.tools import tool

from memory_agent import Team, default_teams, open_agent
from tests.helpers import cfg
from tests.integration.crash_turn import QUESTION, crash_teams

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@tool
async def weather(city: str) -> str:
    """Current weather for a city."""
    return "It is sunny and 21 degrees in Paris." if "Paris" in city else "No forecast."


async def test_a_user_registered_team_end_to_end(database_url: str) -> None:
    teams = [*default_teams(), Team.from_tool(weather, keywords=["weather", "forecast"])]
    async with open_agent(database_url, teams=teams) as agent:
        told = {"messages": [("user", "I am planning a cycling trip.")], "user_id": "kim"}
        await agent.ainvoke(told, cfg("w-0"))
        events: list[dict[str, Any]] = []
        updates: list[str] = []
        async for mode, chunk in agent.astream(
            {"messages": [("user", "What is the weather like in Paris?")], "user_id": "kim"},
            cfg("w-1"),
            stream_mode=["custom", "updates"],
        ):
            if mode == "custom":
                events.append(chunk)
            else:
                updates.extend(chunk)
        assert [e["event"] for e in events if e["event"].startswith("team_")] == [
            "team_started",
            "team_finished",
        ]
        assert events[1]["teams"] == ["weather"]
        assert "team_weather" in updates
        history = await agent.ainvoke(
            {"messages": [("user", "What did we talk about last time?")], "user_id": "kim"},
            cfg("w-2"),
        )
    async with open_agent(database_url, teams=teams) as reopened:
        state = (await reopened.aget_state(cfg("w-1"))).values
    assert state["team_results"] == {"weather": "It is sunny and 21 degrees in Paris."}
    assert state["completed_teams"] == ["weather"] and state["failed_teams"] == []
    assert "sunny" in state["messages"][-1].content
    assert history["plan"]["teams"] == ["memory", "history"]
    assert "Paris" in history["team_results"]["history"][0]  # w-1 is the latest other thread


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


SAVED_OUTCOMES = """
SELECT count(*) FROM checkpoint_writes w
JOIN checkpoints c USING (thread_id, checkpoint_ns, checkpoint_id)
WHERE w.thread_id = %s AND w.channel = 'completed_teams'
"""


def _saved_outcomes(url: str, thread: str) -> int:
    """Saved writes to `completed_teams` whose checkpoint is saved too (initialize's reset
    is one; a finished team adds one)."""
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('checkpoint_writes')").fetchone() == (None,):
            return 0  # the child has not created the tables yet
        row = conn.execute(SAVED_OUTCOMES, (thread,)).fetchone()
    return int(row[0]) if row else 0


async def test_a_turn_killed_between_teams_resumes_without_rerunning_finished_ones(
    database_url: str, tmp_path: Path
) -> None:
    log, errors = tmp_path / "runs.log", tmp_path / "child.err"
    with errors.open("w") as err:
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.crash_turn", database_url, "k-1", str(log)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 90
        # Kill it once `quick` is saved as finished while `slow` is still running.
        while not (_saved_outcomes(database_url, "k-1") >= 2 and "slow" in _lines(log)):
            assert child.poll() is None, errors.read_text()
            assert time.monotonic() < deadline, "the child never got between the teams"
            await asyncio.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
    assert sorted(_lines(log)) == ["quick", "slow"]
    async with open_agent(database_url, teams=crash_teams(log, block=False)) as agent:
        before = await agent.aget_state(cfg("k-1"))
        assert before.next == ("team_slow",)
        out = await agent.ainvoke(None, cfg("k-1"))
    assert sorted(_lines(log)) == ["quick", "slow", "slow"]  # quick did not run again
    assert out["team_results"] == {
        "quick": "quick found the treasure map",
        "slow": "slow found the golden key",
    }
    assert sorted(out["completed_teams"]) == ["quick", "slow"] and out["failed_teams"] == []
    assert [(m.type, m.content) for m in out["messages"][:1]] == [("human", QUESTION)]
    assert [m.type for m in out["messages"]] == ["human", "ai"] and out["status"] == "completed"
