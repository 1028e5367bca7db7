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


ModelPurpose = Literal["answer", "intent", "teams", "extraction", "summary"]
MODEL_PURPOSES: tuple[ModelPurpose, ...] = ("answer", "intent", "teams", "extraction", "summary")
"""The kinds of model call a turn makes: the answer, and four internal decisions."""
CALL_LIMITS = ("temperature", "max_tokens", "timeout", "max_retries")
"""The bounds each model call gets (see `memory_agent.models.DEFAULT_LIMITS`)."""
StructuredOutputMethod = Literal["auto", "json_schema", "function_calling", "json_mode"]


def _env_number(name: str, kind: type[float] | type[int]) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError as exc:
        raise ConfigurationError(f"${name} must be a number, not {raw!r}") from exc


def _env_internal_model() -> str | None:
    return os.environ.get("MEMORY_AGENT_INTERNAL_MODEL") or None


def _env_structured_output() -> Any:
    return os.environ.get("MEMORY_AGENT_STRUCTURED_OUTPUT") or "auto"


def _env_model_timeout() -> float | None:
    value: float | None = _env_number("MEMORY_AGENT_MODEL_TIMEOUT", float)
    return value


def _env_model_max_retries() -> int | None:
    value: int | None = _env_number("MEMORY_AGENT_MODEL_MAX_RETRIES", int)
    return value


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
    internal_model: str | None = field(default_factory=_env_internal_model)
    """A (cheaper) model for the internal calls: intent, team choice, extraction, summary, as
    "offline" or "provider:model" (a string: a second model-instance field would break the
    context's JSON schema, which the server filters clients' context by). None: `model`.
    Defaults to $MEMORY_AGENT_INTERNAL_MODEL."""
    structured_output: StructuredOutputMethod = field(default_factory=_env_structured_output)
    """How structured answers are asked for: "json_schema" (`response_format` with a schema),
    "function_calling" (a forced tool call), "json_mode" (`response_format: json_object`), or
    "auto" (the provider package's default). llama.cpp's servers want "function_calling";
    see the README. Defaults to $MEMORY_AGENT_STRUCTURED_OUTPUT, else "auto"."""
    model_timeout: float | None = field(default_factory=_env_model_timeout)
    """Seconds one model request may take, for every call (None: per-purpose defaults).
    Defaults to $MEMORY_AGENT_MODEL_TIMEOUT."""
    model_max_retries: int | None = field(default_factory=_env_model_max_retries)
    """Retries of a failed model request (connection errors, 429, 5xx), for every call (None:
    per-purpose defaults). Defaults to $MEMORY_AGENT_MODEL_MAX_RETRIES."""
    model_limits: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    """Per-purpose overrides of a call's bounds, e.g. `{"answer": {"max_tokens": 4096},
    "extraction": {"timeout": 90}}`; purposes: answer, intent, teams, extraction, summary;
    bounds: temperature, max_tokens, timeout, max_retries (None: not sent to the provider)."""
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
        _check_model_settings(self)


def _check_model_settings(ctx: AgentContext) -> None:
    methods = ("auto", "json_schema", "function_calling", "json_mode")
    if ctx.structured_output not in methods:
        raise ConfigurationError(
            f"AgentContext.structured_output must be one of {methods}, "
            f"not {ctx.structured_output!r}"
        )
    if ctx.model_timeout is not None and not ctx.model_timeout > 0:
        raise ConfigurationError("AgentContext.model_timeout must be positive")
    if ctx.model_max_retries is not None and ctx.model_max_retries < 0:
        raise ConfigurationError("AgentContext.model_max_retries must not be negative")
    if not isinstance(ctx.model_limits, dict):
        raise ConfigurationError("AgentContext.model_limits must map purposes to bounds")
    for purpose, bounds in ctx.model_limits.items():
        if purpose not in MODEL_PURPOSES or not isinstance(bounds, dict):
            raise ConfigurationError(
                f"AgentContext.model_limits: unknown purpose {purpose!r}; "
                f"purposes are {list(MODEL_PURPOSES)}"
            )
        for name, value in bounds.items():
            if name not in CALL_LIMITS:
                raise ConfigurationError(
                    f"AgentContext.model_limits[{purpose!r}]: unknown bound {name!r}; "
                    f"bounds are {list(CALL_LIMITS)}"
                )
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(
                    f"AgentContext.model_limits[{purpose!r}][{name!r}] must be a number"
                )
            if value < 0 or (name in ("max_tokens", "timeout") and value == 0):
                raise ConfigurationError(
                    f"AgentContext.model_limits[{purpose!r}][{name!r}] is out of range: {value}"
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
