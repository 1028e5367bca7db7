"""Chat-model resolution, the bounds and failures of model calls, and the offline model.

`resolve_chat_model("offline")` gives `OfflineChatModel`, a deterministic chat model that needs
no API key: it answers from what the prompt carries (the memories the planning node loaded, the
running summary, the messages of the thread), by lexical overlap with the question, and streams
its answer token by token like any chat model. Anything else is "provider:model", resolved by
LangChain's `init_chat_model` (the `providers` extra plus the provider's package).

A turn makes up to five kinds of model call (`ModelPurpose`): the answer, and the internal
intent, team choice, extraction and summary calls. `chat_model_for` builds the model of one
purpose with its bounds (`DEFAULT_LIMITS`, overridden by the context). Internal calls are
tagged `nostream`, so only the answer reaches `stream_mode="messages"`. An internal decision
whose output is unusable falls back to rules (`ModelFallback`, recorded in the turn's
`error_log` and a `model_fallback` event); a model that cannot be reached is a `ModelError`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypedDict, TypeVar

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.constants import TAG_NOSTREAM
from pydantic import BaseModel

from memory_agent.context import AgentContext, ModelPurpose, StructuredOutputMethod
from memory_agent.embeddings import STOPWORDS, _stem, tokens
from memory_agent.errors import (
    ConfigurationError,
    MemoryAgentError,
    ModelError,
    is_unusable_output,
)
from memory_agent.prompts import FAILED_PREFIX
from memory_agent.utils import GREETING, message_text

logger = logging.getLogger(__name__)

OFFLINE = "offline"

_QUESTION_START = re.compile(
    r"^\s*(what|who|where|when|why|how|which|do|does|did|is|are|can|could|would|will|tell me|"
    r"remind me|remember)\b",
    re.IGNORECASE,
)
_SECOND_PERSON = [
    (re.compile(r"\bThe user's\b"), "Your"),
    (re.compile(r"\bthe user's\b"), "your"),
    (re.compile(r"\bThe user does not\b"), "You do not"),
    (re.compile(r"\bThe user is\b"), "You are"),
    (re.compile(r"\bThe user (\w+?)s\b"), r"You \1"),
    (re.compile(r"\bThe user\b"), "You"),
]
_TOKEN = re.compile(r"\s*\S+")
_NAME_FACT = "The user's name is"
_ABOUT_ME = re.compile(
    r"\b(about me|who am i|know me|(know|remember) (of|on) me|my profile)\b"
    r"|^\s*(what|tell me what) (do|did|can|could) you (know|remember|recall)\s*[?.!]*\s*$",
    re.IGNORECASE,
)
_THANKS = re.compile(r"^\s*(many )?(thanks|thank you|thx|ty|cheers)\b", re.IGNORECASE)
_BYE = re.compile(r"^\s*(bye|goodbye|good night|see you|see ya|later)\b", re.IGNORECASE)
_STATED_NAME = re.compile(
    r"\b(?:my name is|my name's|i am called|i'm called|call me)\s+([A-Z][\w'-]*)", re.IGNORECASE
)
# Words that ask about the same thing as the memory's wording ("What do I like?" is answered by
# "The user loves hiking."): each group is one concept for the overlap of question and memory.
_CONCEPTS = [
    {
        "like",
        "likes",
        "love",
        "loves",
        "enjoy",
        "enjoys",
        "adore",
        "prefer",
        "favorite",
        "favourite",
        "fan",
    },
    {"job", "work", "works", "occupation", "profession", "career", "employer", "working"},
    {"live", "lives", "home", "city", "reside", "based", "located", "living"},
    {"name", "called", "named"},
]
_SUMMARY_PREFIX = "Earlier conversation"
_EPISODE = re.compile(r"^(\[[^\]]*\]\s*)?User:\s")
_MAX_LISTED = 6


_CONCEPT_OF = {_stem(w): min(group) for group in _CONCEPTS for w in group}
_CONCEPT_NAMES = set(_CONCEPT_OF.values())


def _terms(text: str) -> set[str]:
    """The stems of `text`'s words, a word of a `_CONCEPTS` group standing for its group."""
    stems = {_stem(w) for w in tokens(text) if w not in STOPWORDS or _stem(w) in _CONCEPT_OF}
    return {_CONCEPT_OF.get(t, t) for t in stems}


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _listing(facts: list[str]) -> str:
    said = [_second_person(f).rstrip(".") for f in facts]
    said = [said[0]] + [
        s[:1].lower() + s[1:] if s.startswith(("You", "Your")) else s for s in said[1:]
    ]
    return "; ".join(said) + "."


def _second_person(text: str) -> str:
    for pattern, repl in _SECOND_PERSON:
        text = pattern.sub(repl, text)
    return text


def is_question(text: str) -> bool:
    return text.rstrip().endswith("?") or bool(_QUESTION_START.match(text))


class OfflineChatModel(BaseChatModel):
    """A deterministic chat model that answers from its prompt; no network, no API key."""

    @property
    def _llm_type(self) -> str:
        return "memory-agent-offline"

    def _answer(self, messages: list[BaseMessage]) -> str:
        answer = self._reply(messages)
        # Teams that failed this turn are listed on one line of the system prompt: say so.
        for m in messages:
            for line in message_text(m).splitlines() if m.type == "system" else ():
                if line.startswith(FAILED_PREFIX):
                    failures = line.removeprefix(FAILED_PREFIX).strip().rstrip(".")
                    return f"{answer} Note: I could not use {failures}."
        return answer

    def _reply(self, messages: list[BaseMessage]) -> str:
        system = [message_text(m) for m in messages if m.type == "system"]
        dialogue = [m for m in messages if m.type in ("human", "ai")]
        if not dialogue or dialogue[-1].type != "human":
            return "How can I help?"
        question = message_text(dialogue[-1]).strip()
        memories = [
            line[2:].strip()
            for block in system
            for line in block.splitlines()
            if line.startswith("- ")
        ]
        facts = [m for m in memories if m.startswith("The user")]
        names = [m.split(" is ", 1)[1].rstrip(".") for m in facts if m.startswith(_NAME_FACT)]
        stated = _STATED_NAME.search(question)
        # Small talk loads no memories: a name said earlier in this thread still counts.
        earlier = [
            found.group(1)
            for m in dialogue[:-1]
            if m.type == "human" and (found := _STATED_NAME.search(message_text(m)))
        ]
        name = stated.group(1) if stated else names[0] if names else (earlier or [None])[-1]
        if GREETING.match(question) and (stated or len(_terms(question)) <= 3):
            met = " Nice to meet you." if stated else ""
            return f"Hello{', ' + name if name else ''}!{met} How can I help you today?"
        if _THANKS.match(question) and not is_question(question):
            return f"You're welcome{', ' + name if name else ''}!"
        if _BYE.match(question) and len(_terms(question)) <= 3:
            return f"Goodbye{', ' + name if name else ''}! I'll remember what you told me."
        if not is_question(question):
            return "Got it, thank you for telling me."
        if _ABOUT_ME.search(question):
            if not facts:
                return "I don't know anything about you yet. Tell me, and I will remember it."
            return "Here is what I know about you: " + _listing(facts[:_MAX_LISTED])
        return self._best_match(question, memories, facts, dialogue[:-1])

    def _best_match(
        self,
        question: str,
        memories: list[str],
        facts: list[str],
        earlier: list[BaseMessage],
    ) -> str:
        """The memories that answer `question` best: the facts about the user sharing the most
        concepts with it (every one tied at the best, so "What do I like?" lists all likes),
        else the best sentence of a summary, episode or earlier message."""
        wanted = _terms(question)
        # "Do I like coffee?" is about coffee: a fact sharing only "like" does not answer it.
        specific = wanted - _CONCEPT_NAMES

        def score(fact: str) -> int:
            terms = _terms(fact)
            return 0 if specific and not specific & terms else len(wanted & terms)

        scored = [(score(f), f) for f in facts]
        best = max((score for score, _ in scored), default=0)
        if best:
            tied = [f for score, f in scored if score == best]
            return _sentence_case(_listing(tied[:_MAX_LISTED]))
        candidates: list[tuple[int, str]] = []
        for memory in memories:
            if memory in facts:
                continue
            said = _EPISODE.match(memory)
            if memory.startswith(_SUMMARY_PREFIX):
                # A summary lists what was said ("a; b; c"): answer with its best part.
                parts = memory.split(": ", 1)[-1].split("; ")
            elif said:
                parts = [memory[said.end() :]]
            else:  # what a team found, or a fact about someone else: as it stands
                terms = _terms(memory)
                overlap = 0 if specific and not specific & terms else len(wanted & terms)
                if overlap:
                    candidates.append((overlap, _second_person(memory)))
                continue
            for part in parts:
                terms = _terms(part)
                overlap = 0 if specific and not specific & terms else len(wanted & terms)
                if overlap and not is_question(part):
                    candidates.append((overlap, f'Earlier you told me: "{part.strip()}"'))
        for m in earlier:
            text = message_text(m)
            if m.type == "human" and not is_question(text):
                terms = _terms(text)
                overlap = 0 if specific and not specific & terms else len(wanted & terms)
                if overlap:
                    candidates.append((overlap, f'Earlier you told me: "{text.strip()}"'))
        if not candidates:
            return "I don't know that yet. Tell me, and I will remember it."
        candidates.sort(key=lambda c: -c[0])
        return candidates[0][1]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self._answer(messages)))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for token in _TOKEN.findall(self._answer(messages)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for token in _TOKEN.findall(self._answer(messages)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager:
                await run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk


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
    # Generous enough for a small model on a CPU (~15 tokens/s), tight enough that a runaway
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
    permanent = any(cls.__name__ in _PERMANENT for cls in type(exc).__mro__)
    return ModelError(
        f"the {provider} model failed ({purpose} call): {cause}",
        provider=provider,
        purpose=purpose,
        cause=cause,
        retryable=not permanent,
    )


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
