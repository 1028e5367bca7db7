"""response: answer from the messages, the loaded memories and the running summary; then
persist what should outlive the thread and keep the checkpointed message window bounded."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Literal

from langchain_core.messages import AIMessage, AnyMessage, RemoveMessage, SystemMessage
from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import Command

from memory_agent.analysis import turn_entry
from memory_agent.context import AgentContext, resolve_context, thread_id_of
from memory_agent.errors import MemoryAgentError, ModelError, StorageRefusedError
from memory_agent.events import emit
from memory_agent.identity import acting_user
from memory_agent.memory.ingest import Saved, TurnRecord, extract, remember_turn
from memory_agent.memory.service import MemoryService
from memory_agent.memory.summaries import extractive_summary, fold_summary
from memory_agent.models import ModelFallback, chat_model_for, fallback_line, model_error
from memory_agent.nodes.rollback import roll_back
from memory_agent.nodes.teams import team_prompt
from memory_agent.prompts import MEMORIES_BLOCK, SUMMARY_BLOCK, SYSTEM_PROMPT
from memory_agent.state import SupervisorState, TurnSaved
from memory_agent.utils import message_text

logger = logging.getLogger(__name__)


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
    user_id = acting_user(state, get_config())  # a refused identity gets no answer
    ctx = resolve_context(runtime.context)
    messages: list[AnyMessage] = list(state["messages"])
    try:
        answer = await _answer(ctx, [SystemMessage(system_prompt(state)), *messages])
    except ModelError as exc:
        if exc.retryable:
            raise
        return roll_back(state, exc)  # it would fail the same way when resumed
    window = [*messages, answer]
    overflow = window[: max(0, len(window) - ctx.message_window)]
    summary = state.get("summary", "")
    fallbacks: list[ModelFallback] = []
    if overflow:
        summary_model = chat_model_for(ctx, "summary")
        summary = await fold_summary(
            summary_model, summary, overflow, ctx.summary_chars, fallbacks=fallbacks
        )
    message_count = state.get("message_count", 0) + len(state.get("turn_messages", [])) + 1
    try:
        saved = await _persist(
            state, runtime, ctx, user_id, window, summary, message_count, fallbacks
        )
    except StorageRefusedError as exc:
        return roll_back(state, exc)  # nothing was stored, and a resume would fail the same way
    for fallback in fallbacks:
        emit(runtime.stream_writer, "model_fallback", **fallback)
    done: TurnSaved = {
        "conversation": bool(saved and saved["conversation"]),
        "memories": list(saved["memories"]) if saved else [],
        "episodes": len(saved["episodes"]) if saved else 0,
        "skipped": None if saved else ("anonymous" if user_id is None else "no store"),
    }
    entry = turn_entry(state, answer_id=answer.id, saved=done, now=time.time())
    return {
        "error_log": [fallback_line(f) for f in fallbacks],
        "messages": [answer, *(RemoveMessage(id=m.id) for m in overflow if m.id)],
        "summary": summary,
        "status": "completed",
        "turn_count": state.get("turn_count", 0) + 1,
        "message_count": message_count,
        "last_message_id": answer.id,
        "turn_log": [entry],
    }


async def _answer(ctx: AgentContext, prompt: list[AnyMessage]) -> AIMessage:
    """The answer call: the one model call a turn cannot do without.

    Raises:
        ModelError: the model failed (unreachable, HTTP errors after its retries, time-out).
    """
    model = chat_model_for(ctx, "answer")
    try:
        answer = await model.ainvoke(prompt)
    except MemoryAgentError:
        raise
    except Exception as exc:
        raise model_error(exc, ctx.model, "answer") from exc
    if answer.response_metadata.get("finish_reason") == "length":
        logger.warning("the answer stopped at its length limit; raise model_limits.answer")
    return AIMessage(content=message_text(answer), id=answer.id or str(uuid.uuid4()))


async def _persist(
    state: SupervisorState,
    runtime: Runtime[AgentContext],
    ctx: AgentContext,
    user_id: str | None,
    window: list[AnyMessage],
    summary: str,
    message_count: int,
    fallbacks: list[ModelFallback],
) -> Saved | None:
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
    drafts = await extract(
        said,
        chat_model_for(ctx, "extraction"),
        ctx.extractor,
        when=ctx.now,
        method=ctx.structured_output,
        fallbacks=fallbacks,
    )
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
