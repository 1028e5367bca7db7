"""response: answer from the messages, the loaded memories and the running summary; then
persist what should outlive the thread and keep the checkpointed message window bounded."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, RemoveMessage, SystemMessage
from langgraph.runtime import Runtime
from langgraph.types import Command

from memory_agent.context import AgentContext, resolve_context, thread_id_of
from memory_agent.errors import StorageRefusedError
from memory_agent.events import emit
from memory_agent.memory.ingest import Saved, TurnRecord, extract, remember_turn
from memory_agent.memory.service import MemoryService
from memory_agent.memory.summaries import extractive_summary, fold_summary
from memory_agent.models import message_text, resolve_chat_model
from memory_agent.nodes.teams import team_prompt
from memory_agent.prompts import MEMORIES_BLOCK, SUMMARY_BLOCK, SYSTEM_PROMPT
from memory_agent.state import SupervisorState


def system_prompt(state: SupervisorState) -> str:
    memories = state.get("loaded_memories", [])
    lines = "\n".join(f"- {m['text']}" for m in memories)
    summary = state.get("summary", "")
    found, failed = team_prompt(state)
    return SYSTEM_PROMPT.format(
        memories=MEMORIES_BLOCK.format(lines=lines) if memories else "",
        teams=found + failed,
        summary=SUMMARY_BLOCK.format(summary=summary) if summary else "",
    ).strip()


async def response(
    state: SupervisorState, runtime: Runtime[AgentContext]
) -> dict[str, Any] | Command[Literal["reject"]]:
    ctx = resolve_context(runtime.context)
    model = resolve_chat_model(ctx.model, api_key=ctx.api_key)
    messages: list[AnyMessage] = list(state["messages"])
    answer = await model.ainvoke([SystemMessage(system_prompt(state)), *messages])
    answer = AIMessage(content=message_text(answer), id=answer.id or str(uuid.uuid4()))
    window = [*messages, answer]
    overflow = window[: max(0, len(window) - ctx.message_window)]
    summary = state.get("summary", "")
    if overflow:
        summary = await fold_summary(model, summary, overflow, ctx.summary_chars)
    message_count = state.get("message_count", 0) + len(state.get("turn_messages", [])) + 1
    try:
        await _persist(state, runtime, ctx, model, window, summary, message_count)
    except StorageRefusedError as exc:
        return _refused(state, exc)
    return {
        "messages": [answer, *(RemoveMessage(id=m.id) for m in overflow if m.id)],
        "summary": summary,
        "status": "completed",
        "turn_count": state.get("turn_count", 0) + 1,
        "message_count": message_count,
        "last_message_id": answer.id,
    }


def _refused(state: SupervisorState, error: StorageRefusedError) -> Command[Literal["reject"]]:
    """Roll the turn back: PostgreSQL refused its memories (nothing was stored; see
    `MemoryService.save_turn`), and finishing it again would fail the same way, so the thread
    drops the turn's messages and `reject` raises the error, as for a refused input."""
    return Command(
        goto="reject",
        update={
            "messages": [RemoveMessage(id=i) for i in state.get("turn_messages", [])],
            "status": "rejected",
            "rejection": {"code": "storage", "message": str(error)},
        },
    )


async def _persist(
    state: SupervisorState,
    runtime: Runtime[AgentContext],
    ctx: AgentContext,
    model: BaseChatModel,
    window: list[AnyMessage],
    summary: str,
    message_count: int,
) -> Saved | None:
    user_id = state.get("user_id")
    thread_id = thread_id_of(runtime)
    started = time.perf_counter()
    if user_id is None or runtime.store is None:
        skipped = "anonymous" if user_id is None else "no store"
        emit(
            runtime.stream_writer,
            "memory_saved",
            user_id=user_id,
            thread_id=thread_id,
            conversation=False,
            memories=[],
            episodes=[],
            skipped=skipped,
            ms=0.0,
        )
        return None
    turn_ids = set(state.get("turn_messages", []))
    said = [m for m in window if m.id in turn_ids]
    drafts = await extract(said, model, ctx.extractor, when=ctx.now)
    turn: TurnRecord = {
        "thread_id": thread_id,
        "title": state.get("title", ""),
        "summary": extractive_summary(summary, window, ctx.summary_chars),
        "last_message": message_text(said[-1]) if said else "",
        "message_count": message_count,
        "created_at": state.get("created_at"),
        "when": ctx.now,
    }
    service = MemoryService(runtime.store)
    saved = await remember_turn(service, user_id, turn, window, turn_ids, drafts)
    emit(
        runtime.stream_writer,
        "memory_saved",
        user_id=user_id,
        thread_id=thread_id,
        conversation=saved["conversation"],
        memories=saved["memories"],
        episodes=saved["episodes"],
        skipped=None,
        ms=round((time.perf_counter() - started) * 1000, 3),
    )
    return saved
