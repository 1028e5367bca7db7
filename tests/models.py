"""Fake chat models for the reliability tests (the one thing the tests fake)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from memory_agent import OfflineChatModel
from memory_agent.models import message_text


def echo(messages: list[BaseMessage]) -> str:
    """The answer that names its own question: 'answer to: <last user message>'."""
    last = [m for m in messages if m.type == "human"][-1]
    return f"answer to: {message_text(last)}"


class EchoModel(OfflineChatModel):
    """Answers every question with 'answer to: <question>', so pairs can be checked."""

    def _answer(self, messages: list[BaseMessage]) -> str:
        return echo(messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self._answer(messages)))])


class HookModel(OfflineChatModel):
    """The offline model, which first awaits `hook()` on each call while `hook` is set.

    The reliability tests use the hook to stop PostgreSQL, or to hang until killed, at a known
    point of a turn: inside the response node, after planning was checkpointed.
    """

    hook: Any = None

    async def _fire(self) -> None:
        hook: Callable[[], Awaitable[None]] | None = self.hook
        if hook is not None:
            await hook()

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        await self._fire()
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self._answer(messages)))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        await self._fire()
        yield ChatGenerationChunk(message=AIMessageChunk(content=self._answer(messages)))
