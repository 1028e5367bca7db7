"""Chat-model resolution and the offline default model.

`resolve_chat_model("offline")` gives `OfflineChatModel`, a deterministic chat model that needs
no API key: it answers from what the prompt carries (the memories the planning node loaded, the
running summary, the messages of the thread), by lexical overlap with the question, and streams
its answer token by token like any chat model. Anything else is "provider:model", resolved by
LangChain's `init_chat_model` (the `providers` extra plus the provider's package).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from memory_agent.errors import ConfigurationError
from memory_agent.memory.embeddings import STOPWORDS, _stem, tokens
from memory_agent.prompts import FAILED_PREFIX

OFFLINE = "offline"

_GREETING = re.compile(
    r"^\s*(hi|hello|hey|yo|hiya|good (morning|afternoon|evening)|greetings)\b", re.IGNORECASE
)
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


def message_text(message: BaseMessage) -> str:
    """The text of a message, whatever the shape of its content."""
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return " ".join(parts)


def _terms(text: str) -> set[str]:
    return {_stem(w) for w in tokens(text) if w not in STOPWORDS}


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
        names = [m.split(" is ", 1)[1].rstrip(".") for m in memories if m.startswith(_NAME_FACT)]
        name = names[0] if names else None
        if _GREETING.match(question) and len(_terms(question)) <= 3:
            return f"Hello{', ' + name if name else ''}! How can I help you today?"
        if not is_question(question):
            return "Got it, thank you for telling me."
        wanted = _terms(question)
        candidates: list[tuple[float, str]] = []
        for memory in memories:
            overlap = len(wanted & _terms(memory))
            if overlap:
                # A fact about the user answers better than a summary mentioning the same word.
                bonus = 1.0 if memory.startswith("The user") else 0.0
                candidates.append((overlap + bonus, _second_person(memory)))
        for earlier in dialogue[:-1]:
            text = message_text(earlier)
            if earlier.type == "human" and not is_question(text):
                overlap = len(wanted & _terms(text))
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


def resolve_chat_model(spec: str | BaseChatModel, *, api_key: str | None = None) -> BaseChatModel:
    """The chat model named by `spec`: "offline", "provider:model", or an instance.

    `api_key` goes to the provider's model ("provider:model" only).
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
        model: BaseChatModel = init_chat_model(spec, **extra)
        return model
    except Exception as exc:
        raise ConfigurationError(f"model {spec!r} could not be initialised: {exc}") from exc
