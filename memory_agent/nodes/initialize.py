"""initialize: validate the turn, establish who is talking, reset the per-turn fields.

LangGraph applies the input to the state before any node runs, so a refused turn cannot simply
raise here: the offending message would stay in the thread. Instead the node removes the turn's
messages, restores the owner, and hands over to `reject`, which raises the typed error once that
clean state is checkpointed.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from langchain_core.messages import AnyMessage, RemoveMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import Command

from memory_agent.context import AgentContext, resolve_context
from memory_agent.errors import REJECTION_ERRORS, InvalidInputError, MemoryAgentError
from memory_agent.events import now_iso
from memory_agent.identity import acting_user
from memory_agent.memory.summaries import title_for
from memory_agent.state import Rejection, SupervisorState, reset_team_accounting
from memory_agent.utils import message_text
from memory_agent.validation import storage_problem


def new_messages(state: SupervisorState) -> list[AnyMessage]:
    """The messages this turn's input added (those after the previous turn's last one)."""
    messages = state.get("messages", [])
    last = state.get("last_message_id")
    if last is None:
        return list(messages)
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].id == last:
            return list(messages[i + 1 :])
    return list(messages)


def _check(state: SupervisorState, config: RunnableConfig, ctx: AgentContext) -> str | None:
    """The canonical user id of the turn; raises MemoryAgentError subclasses on refusal."""
    user_id = acting_user(state, config)
    added = new_messages(state)
    if not added or added[-1].type != "human":
        raise InvalidInputError("a turn needs a user message as its last message")
    text = message_text(added[-1])
    if not text.strip():
        raise InvalidInputError("the message is empty")
    if len(text) > ctx.max_input_chars:
        raise InvalidInputError(
            f"the message is {len(text)} characters long; the limit is {ctx.max_input_chars}"
        )
    if problem := storage_problem(text):
        raise InvalidInputError(f"the message {problem}")
    return user_id


def _rejected(
    state: SupervisorState, error: MemoryAgentError
) -> Command[Literal["planning", "reject"]]:
    code = next(c for c, cls in REJECTION_ERRORS.items() if isinstance(error, cls))
    rejection: Rejection = {"code": code, "message": str(error)}  # type: ignore[typeddict-item]
    update: dict[str, Any] = {
        "messages": [RemoveMessage(id=m.id) for m in new_messages(state) if m.id],
        "user_id": state.get("thread_owner"),
        "status": "rejected",
        "rejection": rejection,
    }
    return Command(goto="reject", update=update)


async def initialize(
    state: SupervisorState, runtime: Runtime[AgentContext]
) -> Command[Literal["planning", "reject"]]:
    ctx = resolve_context(runtime.context)
    try:
        user_id = _check(state, get_config(), ctx)
    except MemoryAgentError as exc:
        return _rejected(state, exc)
    first_turn = state.get("turn_count", 0) == 0
    update: dict[str, Any] = {
        "user_id": user_id,
        "status": "running",
        "start_time": time.time(),
        **reset_team_accounting(),
        "loaded_memories": [],
        "memory_load_time": 0.0,
        "rejection": None,
        "turn_messages": [m.id for m in new_messages(state) if m.id],
    }
    if first_turn:
        first = message_text(new_messages(state)[-1])
        # An imported conversation (`AgentContext.now`) starts when its first turn happened.
        created = ctx.now or now_iso()
        update |= {"thread_owner": user_id, "title": title_for(first), "created_at": created}
    return Command(goto="planning", update=update)


def reject(state: SupervisorState) -> dict[str, Any]:
    """Raise the error recorded by initialize (the thread's state is already clean)."""
    rejection = state.get("rejection") or {"code": "invalid_input", "message": "turn refused"}
    raise REJECTION_ERRORS[rejection["code"]](rejection["message"])
