"""A turn whose `slow` team never finishes: run as a process and killed by test_teams.py.

`python -m tests.integration.crash_turn DATABASE_URL THREAD LOG`
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from langchain_core.tools import tool

from memory_agent import Team, open_agent

QUESTION = "Can quick and slow find the treasure?"


def crash_teams(log: Path, *, block: bool) -> list[Team]:
    """Two teams that note each run in `log`; with `block`, `slow` never returns."""

    def note(name: str) -> None:
        with log.open("a") as f:
            f.write(name + "\n")

    @tool
    async def quick(query: str) -> str:
        """Answers at once."""
        note("quick")
        return "quick found the treasure map"

    @tool
    async def slow(query: str) -> str:
        """Takes its time."""
        note("slow")
        if block:
            await asyncio.Event().wait()
        return "slow found the golden key"

    return [Team.from_tool(quick, keywords=["quick"]), Team.from_tool(slow, keywords=["slow"])]


async def main(url: str, thread: str, log: str) -> None:
    async with open_agent(url, teams=crash_teams(Path(log), block=True)) as agent:
        await agent.ainvoke(
            {"messages": [("user", QUESTION)], "user_id": "kim"},
            {"configurable": {"thread_id": thread}},
        )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
