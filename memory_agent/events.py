"""Progress events, streamed with `stream_mode="custom"`.

Each event is a dict with `"event"` (its name) and the fields of its TypedDict below. They are
emitted through the run's stream writer, so they reach `astream(..., stream_mode=["custom"])`,
the LangGraph server's `custom` stream and the CLI's live progress; outside streaming they cost
nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

from langgraph.types import StreamWriter

EventName = Literal["memory_loaded", "plan_ready", "memory_saved", "team_started", "team_finished"]


class MemoryLoaded(TypedDict):
    event: Literal["memory_loaded"]
    user_id: str | None
    counts: dict[str, int]
    """Memories loaded by kind ("conversation", "fact", ...)."""
    memory_count: int
    ms: float
    skipped: str | None
    """Why nothing was looked up ("anonymous", "no budget"), else None."""
    timestamp: str


class PlanReady(TypedDict):
    event: Literal["plan_ready"]
    intent: str
    budget: dict[str, int]
    teams: list[str]
    reason: str
    timestamp: str


class MemorySaved(TypedDict):
    event: Literal["memory_saved"]
    user_id: str | None
    thread_id: str | None
    conversation: bool
    """Whether the conversation summary of this thread was written."""
    memories: list[str]
    """Keys of the facts/preferences/entities written or updated."""
    skipped: str | None
    ms: float
    timestamp: str


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def emit(writer: StreamWriter, event: EventName, **fields: Any) -> dict[str, Any]:
    """Send one progress event and return it."""
    payload: dict[str, Any] = {"event": event, **fields, "timestamp": now_iso()}
    writer(payload)
    return payload
