"""Run-scoped settings: what a caller may change per run without rebuilding the graph.

Pass an `AgentContext` as `context=` to `invoke`/`stream` (the LangGraph server accepts the same
fields as a JSON object). Settings live here rather than in `config["configurable"]` because
LangGraph copies every configurable string or number into checkpoint metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langgraph.runtime import Runtime

from memory_agent.errors import ConfigurationError


def _env_model() -> str:
    return os.environ.get("MEMORY_AGENT_MODEL", "offline")


@dataclass(kw_only=True)
class AgentContext:
    """Settings of one run."""

    model: str | BaseChatModel = field(default_factory=_env_model)
    """Chat model: "offline" (the deterministic built-in) or "provider:model" (any chat model
    LangChain's `init_chat_model` knows, e.g. "openai:gpt-4o-mini"), or a model instance.
    Defaults to $MEMORY_AGENT_MODEL, else "offline"."""
    max_input_chars: int = 16_000
    """Longest user message accepted; a longer one is refused with InvalidInputError."""
    message_window: int = 12
    """Messages kept in the checkpointed state; older ones are folded into `summary`."""
    recent_conversations: int = 3
    """Recent conversation summaries loaded for an ordinary turn (5 when the user refers to the
    past, none for small talk)."""
    max_memories: int = 6
    """Relevant memories loaded for an ordinary turn (doubled when the user refers to the past)."""
    extractor: Literal["auto", "model", "rules"] = "auto"
    """How facts are extracted: "rules" (deterministic), "model" (structured output of the chat
    model), "auto" (model unless the model is the offline one)."""
    summary_chars: int = 1_200
    """Upper bound of the running thread summary."""
    now: str | None = None
    """ISO-8601 time of the turn (default: the clock). Set it when importing a past
    conversation: memories are dated by it and "yesterday" in the message is resolved
    against it."""
    api_key: str | None = field(default=None, repr=False, metadata={"secret": True})
    """API key for a "provider:model" chat model (else the provider's environment variable).
    Secret: never checkpointed, never stored, hidden from `repr`."""

    def __post_init__(self) -> None:
        for name in ("max_input_chars", "message_window", "summary_chars"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"AgentContext.{name} must be positive")
        for name in ("recent_conversations", "max_memories"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"AgentContext.{name} must not be negative")
        if self.message_window < 2:
            raise ConfigurationError("AgentContext.message_window must keep at least 2 messages")
        if self.now is not None:
            try:
                datetime.fromisoformat(self.now)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(
                    f"AgentContext.now must be an ISO-8601 time, not {self.now!r}"
                ) from exc
        if self.extractor not in ("auto", "model", "rules"):
            raise ConfigurationError(
                f"AgentContext.extractor must be 'auto', 'model' or 'rules', not {self.extractor!r}"
            )


def thread_id_of(runtime: Runtime[Any]) -> str | None:
    """The thread of the running graph (None without a checkpointer)."""
    info = runtime.execution_info
    return info.thread_id if info is not None else None


def resolve_context(value: AgentContext | dict[str, Any] | None) -> AgentContext:
    """The run's context as an `AgentContext` (the server may hand over a dict, or nothing)."""
    if isinstance(value, AgentContext):
        return value
    if value is None:
        return AgentContext()
    known = {f.name for f in fields(AgentContext)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigurationError(
            f"unknown context field(s) {unknown}; known fields are {sorted(known)}"
        )
    return AgentContext(**value)
