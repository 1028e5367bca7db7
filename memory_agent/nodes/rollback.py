"""Rolling a turn back when its model, or PostgreSQL storing its memories, fails in a way that
would only repeat.

A turn cut off by a passing failure (the provider unreachable, a time-out) keeps its message and
is finished before the thread's next turn. A failure that the same request meets again (a wrong
API key or model name, a request refused as invalid, a prompt longer than the model's context)
would fail that resumed turn too, for ever: such a turn is rolled back like a refused one (its
messages removed, then the `reject` node raises the error), and the thread stays usable. So is a
turn whose memory write PostgreSQL refused (bad data, a limit: `StorageRefusedError`; the write
is one transaction, so nothing of it was stored).
"""

from __future__ import annotations

from typing import Literal

from langchain_core.messages import RemoveMessage
from langgraph.types import Command

from memory_agent.errors import ModelError, StorageRefusedError
from memory_agent.nodes.initialize import new_messages
from memory_agent.state import Rejection, SupervisorState


def roll_back(
    state: SupervisorState, error: ModelError | StorageRefusedError
) -> Command[Literal["reject"]]:
    """The update that removes this turn's messages and hands `error` to `reject`."""
    code: Literal["model", "storage"] = "model" if isinstance(error, ModelError) else "storage"
    rejection: Rejection = {"code": code, "message": str(error)}
    return Command(
        goto="reject",
        update={
            "messages": [RemoveMessage(id=m.id) for m in new_messages(state) if m.id],
            "user_id": state.get("thread_owner"),
            "status": "rejected",
            "rejection": rejection,
        },
    )
