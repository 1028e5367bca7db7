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

EventName = Literal[
    "memory_loaded", "plan_ready", "memory_saved", "team_started", "team_finished", "model_fallback"
]


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
    team_reasons: dict[str, str]
    """Why each team was chosen."""
    reason: str
    timestamp: str


class TeamStarted(TypedDict):
    event: Literal["team_started"]
    team: str
    query: str
    timestamp: str


class TeamFinished(TypedDict):
    event: Literal["team_finished"]
    team: str
    ok: bool
    ms: float | None
    """Wall time from the team's first attempt to its outcome, retries included (None when a
    failure was recorded before a crash and only handled on resume)."""
    error: str | None
    """Why it failed (None when ok)."""
    timestamp: str


class MemorySaved(TypedDict):
    event: Literal["memory_saved"]
    user_id: str | None
    thread_id: str | None
    conversation: bool
    """Whether the conversation summary of this thread was written."""
    memories: list[str]
    """Keys of the facts/preferences/entities written or updated."""
    episodes: list[str]
    """Keys of the episodes (the user's messages, kept word for word) written."""
    skipped: str | None
    ms: float
    timestamp: str


class ModelFallbackEvent(TypedDict):
    """An internal model decision was made without the model: its answer was unusable (or,
    after the answer, the model failed); the turn goes on."""

    event: Literal["model_fallback"]
    purpose: str
    """"intent", "teams", "extraction" or "summary"."""
    provider: str
    error: str
    fallback: str
    """What decided instead ("rules", "the extractive summary")."""
    timestamp: str


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def emit(writer: StreamWriter, event: EventName, **fields: Any) -> dict[str, Any]:
    """Send one progress event and return it."""
    payload: dict[str, Any] = {"event": event, **fields, "timestamp": now_iso()}
    writer(payload)
    return payload
