"""A process that starts a turn and hangs at a chosen point, for the SIGKILL tests.

    python -m tests.integration.killable_turn URL THREAD USER TEXT MARKER POINT

POINT is where the turn stops: "model" (inside the response node, once planning is stored) or
"persist" (the turn's memories and conversation record are committed, the response node's
checkpoint is not). On reaching it the process writes MARKER and sleeps until it is killed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from langgraph.store.base import Op, PutOp, Result

from memory_agent import AgentContext, open_agent
from memory_agent import persistence as persistence_module
from memory_agent.persistence import ExactSearchStore
from tests.models import HookModel


async def main(url: str, thread: str, user: str, text: str, marker: Path, point: str) -> None:
    config: Any = {"configurable": {"thread_id": thread}}

    async def hang() -> None:
        marker.write_text(point)
        await asyncio.sleep(3600)

    class HangingStore(ExactSearchStore):
        async def abatch(self, ops: Iterable[Op]) -> list[Result]:
            ops = list(ops)
            results = await super().abatch(ops)
            if point == "persist" and any(
                isinstance(op, PutOp) and op.namespace[-1] == "conversations" for op in ops
            ):
                await hang()
            return results

    persistence_module.ExactSearchStore = HangingStore  # type: ignore[misc]
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
