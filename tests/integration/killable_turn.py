"""A process that starts a turn and hangs at a chosen point, for the SIGKILL tests.

    python -m tests.integration.killable_turn URL THREAD USER TEXT MARKER POINT

POINT is where the turn stops: "model" (inside the response node, once planning is stored) or
"persist" (the turn's memories and conversation record are committed, the response node's
checkpoint is not). On reaching it the process writes MARKER and sleeps until it is killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from memory_agent import AgentContext, MemoryService, open_agent
from tests.models import HookModel


async def main(url: str, thread: str, user: str, text: str, marker: Path, point: str) -> None:
    config: Any = {"configurable": {"thread_id": thread}}

    async def hang() -> None:
        marker.write_text(point)
        await asyncio.sleep(3600)

    save_turn = MemoryService.save_turn

    async def save_and_hang(self: MemoryService, *args: Any, **kwargs: Any) -> Any:
        # After the turn's write transaction (memories and conversation record) committed.
        saved = await save_turn(self, *args, **kwargs)
        if point == "persist" and saved[0] is not None:
            await hang()
        return saved

    MemoryService.save_turn = save_and_hang  # type: ignore[method-assign]
    model = HookModel()
    async with open_agent(url) as agent:

        async def after_planning() -> None:
            while (await agent.aget_state(config)).next != ("response",):
                await asyncio.sleep(0.01)
            await hang()

        if point == "model":
            model.hook = after_planning
        turn = {"messages": [("user", text)], "user_id": user}
        await agent.ainvoke(turn, config, context=AgentContext(model=model))


if __name__ == "__main__":
    url, thread, user, text, marker, point = sys.argv[1:7]
    asyncio.run(main(url, thread, user, text, Path(marker), point))
