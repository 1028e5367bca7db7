"""Operations on a user's data that span the store and the checkpointer."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore

from memory_agent.errors import ConfigurationError
from memory_agent.graph import Agent
from memory_agent.memory.namespaces import validate_user_id
from memory_agent.memory.service import ForgetReceipt, MemoryService


def _parts(agent: Agent) -> tuple[BaseStore, BaseCheckpointSaver[Any] | None]:
    if not isinstance(agent.store, BaseStore):
        raise ConfigurationError("this agent has no store: open it with open_agent()")
    checkpointer = (
        agent.checkpointer if isinstance(agent.checkpointer, BaseCheckpointSaver) else None
    )
    return agent.store, checkpointer


def memories(agent: Agent) -> MemoryService:
    """The memory service over the agent's store."""
    return MemoryService(_parts(agent)[0])


async def forget_user(agent: Agent, user_id: str) -> ForgetReceipt:
    """Delete every memory of the user and every thread they own; return what was deleted."""
    store, checkpointer = _parts(agent)
    receipt = await MemoryService(store).forget_user(validate_user_id(user_id))
    if checkpointer is not None:
        for thread_id in receipt["threads"]:
            await checkpointer.adelete_thread(thread_id)
    receipt["deleted"]["threads"] = len(receipt["threads"]) if checkpointer is not None else 0
    return receipt
