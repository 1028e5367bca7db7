"""Chat-model resolution, and the bounds and failures of model calls.

`resolve_chat_model("offline")` gives `offline.OfflineChatModel`, a deterministic chat model
that needs no API key. Anything else is "provider:model", resolved by LangChain's
`init_chat_model` (the `providers` extra plus the provider's package).

A turn makes up to five kinds of model call (`ModelPurpose`): the answer, and the internal
intent, team choice, extraction and summary calls. `chat_model_for` builds the model of one
purpose with its bounds (`DEFAULT_LIMITS`, overridden by the context). Internal calls are
tagged `nostream`, so only the answer reaches `stream_mode="messages"`. An internal decision
whose output is unusable falls back to rules (`ModelFallback`, recorded in the turn's
`error_log` and a `model_fallback` event); a model that cannot be reached is a `ModelError`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypedDict, TypeVar

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langgraph.constants import TAG_NOSTREAM
from pydantic import BaseModel

from memory_agent.context import AgentContext, ModelPurpose, StructuredOutputMethod
from memory_agent.embeddings import embedder_name, embedder_provider
from memory_agent.errors import (
    ConfigurationError,
    MemoryAgentError,
    ModelError,
    is_unusable_output,
)
from memory_agent.offline import OFFLINE, OfflineChatModel
from memory_agent.utils import message_text

logger = logging.getLogger(__name__)


def is_offline(model: str | BaseChatModel) -> bool:
    return isinstance(model, OfflineChatModel) or model == OFFLINE


def resolve_chat_model(
    spec: str | BaseChatModel, *, api_key: str | None = None, **limits: Any
) -> BaseChatModel:
    """The chat model named by `spec`: "offline", "provider:model", or an instance.

    `api_key` and `limits` (temperature, max_tokens, timeout, max_retries: LangChain's standard
    chat-model parameters) go to the provider's model ("provider:model" only).

    Raises:
        ConfigurationError: the spec is not understood, the provider's package is missing, or
            the model cannot be built (e.g. no API key in the environment).
    """
    if isinstance(spec, BaseChatModel):
        return spec
    if spec == OFFLINE:
        return OfflineChatModel()
    if ":" not in spec:
        raise ConfigurationError(
            f"model {spec!r} not understood: use 'offline' or 'provider:model' "
            "(e.g. 'openai:gpt-4o-mini')"
        )
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as exc:
        raise ConfigurationError(
            f"model {spec!r} needs LangChain's init_chat_model: "
            "pip install 'memory-agent[providers]' and the provider's package"
        ) from exc
    try:
        extra: dict[str, Any] = {"api_key": api_key} if api_key else {}
        extra |= {k: v for k, v in limits.items() if v is not None}
        model: BaseChatModel = init_chat_model(spec, **extra)
        return model
    except Exception as exc:
        raise ConfigurationError(f"model {spec!r} could not be initialised: {exc}") from exc


@dataclass(frozen=True)
class CallLimits:
    """The bounds of one model call; None: not sent (the provider's default)."""

    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    """Seconds per request."""
    max_retries: int | None = None
    """Retries of a request that failed to connect, timed out, or got a 429 or 5xx."""


DEFAULT_LIMITS: dict[ModelPurpose, CallLimits] = {
    # Generous enough for a small model on a CPU, tight enough that a runaway
    # generation ends in minutes, not at the context limit.
    "answer": CallLimits(max_tokens=1024, timeout=120.0, max_retries=2),
    "intent": CallLimits(temperature=0.0, max_tokens=200, timeout=60.0, max_retries=2),
    "teams": CallLimits(temperature=0.0, max_tokens=400, timeout=60.0, max_retries=2),
    "extraction": CallLimits(temperature=0.0, max_tokens=800, timeout=90.0, max_retries=2),
    "summary": CallLimits(temperature=0.0, max_tokens=400, timeout=90.0, max_retries=2),
}
"""Per-purpose bounds; `AgentContext.model_timeout`, `.model_max_retries` and `.model_limits`
override them."""


def limits_for(ctx: AgentContext, purpose: ModelPurpose) -> CallLimits:
    """The bounds of a `purpose` call under `ctx`."""
    limits = DEFAULT_LIMITS[purpose]
    if ctx.model_timeout is not None:
        limits = replace(limits, timeout=ctx.model_timeout)
    if ctx.model_max_retries is not None:
        limits = replace(limits, max_retries=ctx.model_max_retries)
    overrides = ctx.model_limits.get(purpose, {})
    return replace(limits, **overrides) if overrides else limits  # type: ignore[arg-type]


def spec_for(ctx: AgentContext, purpose: ModelPurpose) -> str | BaseChatModel:
    """The model setting a `purpose` call uses: `internal_model` for internal calls if set."""
    if purpose != "answer" and ctx.internal_model is not None:
        return ctx.internal_model
    return ctx.model


def chat_model_for(ctx: AgentContext, purpose: ModelPurpose) -> BaseChatModel:
    """The chat model of a `purpose` call, with its bounds (an instance is used as given)."""
    spec = spec_for(ctx, purpose)
    limits = limits_for(ctx, purpose)
    return resolve_chat_model(
        spec,
        api_key=ctx.api_key,
        temperature=limits.temperature,
        max_tokens=limits.max_tokens,
        timeout=limits.timeout,
        max_retries=limits.max_retries,
    )


def decision_model(ctx: AgentContext, purpose: ModelPurpose) -> BaseChatModel | None:
    """The model of an internal decision, or None when it is the offline one (rules decide)."""
    spec = spec_for(ctx, purpose)
    return None if is_offline(spec) else chat_model_for(ctx, purpose)


def check_models(ctx: AgentContext) -> None:
    """Resolve every model the run will use, so that a missing provider package, an unknown
    provider or missing credentials refuse the turn before anything of it is stored.

    Raises:
        ConfigurationError: saying which model and what to do.
    """
    for spec in {id(s): s for s in (ctx.model, ctx.internal_model) if s is not None}.values():
        resolve_chat_model(spec, api_key=ctx.api_key)


def provider_of(model: str | BaseChatModel) -> str:
    """The provider's name, for error messages ("openai", "anthropic", "offline", ...)."""
    if isinstance(model, str):
        return model.split(":", 1)[0]
    if isinstance(model, OfflineChatModel):
        return OFFLINE
    llm_type = getattr(model, "_llm_type", "") or ""
    name = str(llm_type).split("-", 1)[0]
    return name or type(model).__name__


# LangChain's provider-neutral classes of a failed model request (langchain-core 1.x; the
# provider packages raise subclasses), in the words the user reads.
_PERMANENT = frozenset(
    {
        "ModelAuthenticationError",
        "ModelPermissionDeniedError",
        "ModelNotFoundError",
        "ModelInvalidRequestError",
        "ContextOverflowError",
        # openai's own classes, for provider packages that do not map to LangChain's
        "AuthenticationError",
        "PermissionDeniedError",
        "NotFoundError",
        "BadRequestError",
        "UnprocessableEntityError",
    }
)
_FAILURES = [
    ("ModelConnectionError", "cannot be reached"),
    ("ModelTimeoutError", "timed out"),
    ("ModelRateLimitError", "rate limit (HTTP 429) after the retries"),
    ("ModelAPIError", "server error (HTTP 5xx) after the retries"),
    ("ModelAuthenticationError", "authentication failed: check the API key"),
    ("ModelPermissionDeniedError", "permission denied"),
    ("ModelNotFoundError", "model not found: check the model name"),
    ("ContextOverflowError", "the prompt is longer than the model's context"),
    ("ModelInvalidRequestError", "request refused as invalid"),
]


def _category(exc: BaseException) -> str | None:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "TimeoutError" in names or "APITimeoutError" in names:
        return "timed out"
    return next((words for name, words in _FAILURES if name in names), None)


def _cause(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:299] + "…"
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    category = _category(exc)
    return f"{category} ({detail})" if category else detail


def model_error(
    exc: BaseException, model: str | BaseChatModel, purpose: ModelPurpose
) -> ModelError:
    """`exc`, raised by a `purpose` call to `model`, as a `ModelError` naming provider and cause."""
    provider = provider_of(model)
    cause = _cause(exc)
    return ModelError(
        f"the {provider} model failed ({purpose} call): {cause}",
        provider=provider,
        purpose=purpose,
        cause=cause,
        retryable=not _permanent(exc),
    )


def embedding_error(exc: BaseException, embeddings: Embeddings, doing: str) -> ModelError:
    """`exc`, raised by `embeddings` while `doing` ("embedding the query"), as a `ModelError`
    naming the embedder, its provider and the cause."""
    cause = _cause(exc)
    provider = embedder_provider(embeddings)
    return ModelError(
        f"the {provider} embedding model ({embedder_name(embeddings)}) failed while {doing}: "
        f"{cause}",
        provider=provider,
        purpose="embedding",
        cause=cause,
        retryable=not _permanent(exc),
    )


def _permanent(exc: BaseException) -> bool:
    return any(cls.__name__ in _PERMANENT for cls in type(exc).__mro__)


class ModelFallback(TypedDict):
    """An internal decision made by rules because the model's answer was unusable."""

    purpose: ModelPurpose
    provider: str
    error: str
    """What was wrong with the answer."""
    fallback: str
    """What was used instead ("rules", "extractive summary")."""


def fallback_line(fallback: ModelFallback) -> str:
    """The `error_log` line of a fallback."""
    return (
        f"model {fallback['purpose']}: unusable answer from {fallback['provider']} "
        f"({fallback['error']}); used {fallback['fallback']}"
    )


S = TypeVar("S", bound=BaseModel)
T = TypeVar("T")


async def structured_call(
    model: BaseChatModel,
    schema: type[S],
    messages: list[tuple[str, str]],
    *,
    method: StructuredOutputMethod,
    purpose: ModelPurpose,
) -> S:
    """`schema` filled in by `model`, asked the `method` way, hidden from the messages stream.

    Raises:
        NotImplementedError: the model has no structured output.
        ValueError: the answer is not a valid `schema` (see `errors.is_unusable_output`).
        Exception: whatever the provider raises for a failed request.
    """
    kwargs: dict[str, Any] = {} if method == "auto" else {"method": method}
    runnable = model.with_structured_output(schema, include_raw=True, **kwargs).with_config(
        tags=[TAG_NOSTREAM], run_name=f"memory_agent_{purpose}"
    )
    out: Any = await runnable.ainvoke(messages)
    if isinstance(out, dict) and {"raw", "parsed", "parsing_error"} <= out.keys():
        if out["parsing_error"] is not None:
            raise ValueError(f"the answer does not parse: {out['parsing_error']}")
        raw = out["raw"]
        # Streamed tool-call arguments are parsed leniently (partial JSON): an answer cut at
        # the length limit may still validate, with what it holds cut short.
        if isinstance(raw, BaseMessage) and raw.response_metadata.get("finish_reason") == "length":
            raise ValueError("the answer stopped at the length limit (raise max_tokens)")
        result = out["parsed"]
    else:
        result = out  # a model whose structured output ignores include_raw
    if result is None:
        # A function call whose arguments do not parse is dropped by the parser.
        raise ValueError("the model gave no structured answer")
    if isinstance(result, schema):
        return result
    return schema.model_validate(result)


async def internal_text(model: BaseChatModel, prompt: str, *, purpose: ModelPurpose) -> str:
    """The text `model` answers to `prompt`, hidden from the messages stream."""
    runnable = model.with_config(tags=[TAG_NOSTREAM], run_name=f"memory_agent_{purpose}")
    return message_text(await runnable.ainvoke(prompt))


async def decide(
    purpose: ModelPurpose,
    model: BaseChatModel,
    ask: Callable[[], Awaitable[T]],
    rules: Callable[[], T],
    fallbacks: list[ModelFallback] | None,
    *,
    absorb_all: bool = False,
    fallback: str = "rules",
) -> T:
    """The model's decision (`ask`), or the rules' one when the model cannot give it.

    A model without structured output quietly gets the rules. An unusable answer (see
    `errors.is_unusable_output`) gets the rules too, and is appended to `fallbacks`. Any other
    failure (the model unreachable, HTTP errors after the retries, a time-out) is a
    `ModelError`, unless `absorb_all` (calls made after the answer, whose failure must not cost
    the answer), which records it and falls back as well.
    """
    try:
        return await ask()
    except NotImplementedError:
        logger.info(
            "model %s has no structured output; %s by %s", type(model).__name__, purpose, fallback
        )
        return rules()
    except MemoryAgentError:
        raise
    except Exception as exc:
        if not (absorb_all or is_unusable_output(exc)):
            raise model_error(exc, model, purpose) from exc
        record: ModelFallback = {
            "purpose": purpose,
            "provider": provider_of(model),
            "error": _cause(exc),
            "fallback": fallback,
        }
        logger.warning("%s", fallback_line(record))
        if fallbacks is not None:
            fallbacks.append(record)
        return rules()
