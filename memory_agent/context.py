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

TIGHTEN = {"client": "tighten"}
"""Field metadata: a server client may lower this limit, never raise it."""
CLIENT_SETS = {"client": "set"}
"""Field metadata: a server client may set this freely (it changes neither cost nor safety)."""


def _env_model() -> str:
    return os.environ.get("MEMORY_AGENT_MODEL", "offline")


@dataclass(kw_only=True)
class AgentContext:
    """Settings of one run."""

    model: str | BaseChatModel = field(default_factory=_env_model)
    """Chat model: "offline" (the deterministic built-in) or "provider:model" (any chat model
    LangChain's `init_chat_model` knows, e.g. "openai:gpt-4o-mini"), or a model instance.
    Defaults to $MEMORY_AGENT_MODEL, else "offline"."""
    max_input_chars: int = field(default=16_000, metadata=TIGHTEN)
    """Longest user message accepted (characters of text); a longer one is refused with
    InvalidInputError."""
    max_input_messages: int = field(default=16, metadata=TIGHTEN)
    """Most messages one turn's input may hold."""
    max_input_bytes: int = field(default=262_144, metadata=TIGHTEN)
    """Most bytes one turn's input may take once serialised for its checkpoint: text, content
    blocks (images included) and extra fields (`additional_kwargs`) together."""
    message_window: int = field(default=12, metadata=TIGHTEN)
    """Messages kept in the checkpointed state; older ones are folded into `summary`."""
    recent_conversations: int = field(default=3, metadata=TIGHTEN)
    """Recent conversation summaries loaded for an ordinary turn (5 when the user refers to the
    past, none for small talk)."""
    max_memories: int = field(default=6, metadata=TIGHTEN)
    """Relevant memories loaded for an ordinary turn (doubled when the user refers to the past)."""
    extractor: Literal["auto", "model", "rules"] = "auto"
    """How facts are extracted: "rules" (deterministic), "model" (structured output of the chat
    model), "auto" (model unless the model is the offline one)."""
    summary_chars: int = field(default=1_200, metadata=TIGHTEN)
    """Upper bound of the running thread summary."""
    now: str | None = field(default=None, metadata=CLIENT_SETS)
    """ISO-8601 time of the turn (default: the clock). Set it when importing a past
    conversation: memories are dated by it and "yesterday" in the message is resolved
    against it."""
    api_key: str | None = field(default=None, repr=False, metadata={"secret": True})
    """API key for a "provider:model" chat model (else the provider's environment variable).
    Secret: never checkpointed, never stored, hidden from `repr`."""

    def __post_init__(self) -> None:
        for name in (
            "max_input_chars",
            "max_input_messages",
            "max_input_bytes",
            "message_window",
            "summary_chars",
        ):
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


def client_context(
    value: AgentContext | dict[str, Any] | None, server: AgentContext
) -> AgentContext:
    """The context of a run asked for by a server client, within the server's own settings.

    A client (anyone with a token) may lower a limit marked `TIGHTEN` and set a field marked
    `CLIENT_SETS`; every other field (the model, its key, the extractor: what changes cost or
    where data goes) is the deployment's, and asking for another value is refused rather than
    ignored, so a client is never misled about what ran.

    Raises:
        ConfigurationError: an unknown field, a limit raised, or a server-only field changed.
    """
    asked = value if isinstance(value, dict) else _as_dict(value)
    known = {f.name: f for f in fields(AgentContext)}
    unknown = sorted(set(asked) - set(known))
    if unknown:
        raise ConfigurationError(
            f"unknown context field(s) {unknown}; known fields are {sorted(known)}"
        )
    chosen: dict[str, Any] = {}
    for name, wanted in asked.items():
        policy = known[name].metadata.get("client")
        current = getattr(server, name)
        if policy == "set" or wanted == current:
            chosen[name] = wanted
        elif policy == "tighten":
            if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted > current:
                raise ConfigurationError(
                    f"context field {name!r} may only be lowered by a client: the server's "
                    f"limit is {current}, the run asked for {wanted!r}"
                )
            chosen[name] = wanted
        else:
            raise ConfigurationError(
                f"context field {name!r} is set by the server's deployment, not by a client"
            )
    base = {f: getattr(server, f) for f in known}
    return AgentContext(**(base | chosen))


def _as_dict(value: AgentContext | None) -> dict[str, Any]:
    if value is None:
        return {}
    default = AgentContext()
    return {
        f.name: getattr(value, f.name)
        for f in fields(AgentContext)
        if getattr(value, f.name) != getattr(default, f.name)
    }
