"""The synchronous twin of `open_agent`: the same agent, driven from synchronous code.

    with open_agent_sync() as agent:
        out = agent.invoke({"messages": [("user", "Hi, I'm Ada.")], "user_id": "ada"},
                           {"configurable": {"thread_id": "t1"}})

Scripts, notebooks and WSGI views (Flask, Django) call a graph synchronously. Rather than a
second implementation on LangGraph's sync `PostgresSaver`/`PostgresStore` (a second boundary,
lock manager, checkpointer and store search to keep in step with the first), the sync agent
runs the one async agent of `open_agent` on an event loop of its own, in a background thread,
and each sync call waits for its coroutine there. The logic stays in one place; this shell only
carries calls across, so the run boundary, the locks, the errors and the management calls are
exactly those of the async agent.

A sync call made from a thread that runs an event loop is refused: it would block that loop
(use `open_agent` there). Interrupting a call (Ctrl-C) cancels its coroutine, which frees the
thread's lock; the turn is then cut off and resumable like any other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot

from memory_agent.agent.boundary import GuardedAgent, resume_turn
from memory_agent.agent.manage import forget_user, memories, prune
from memory_agent.agent.open import open_agent
from memory_agent.errors import ConfigurationError
from memory_agent.persistence.retention import ForgetReceipt, PruneReceipt

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="memory_agent-loop", daemon=True
        )
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and wait for its result in the calling thread."""
        if threading.current_thread() is self.thread or _loop_running():
            coro.close()
            raise ConfigurationError(
                "a synchronous agent call was made from a running event loop, which it would "
                "block: in async code use 'async with open_agent() as agent' and ainvoke/astream"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            if not future.done():
                future.cancel()
                # The cancellation runs on the loop; wait for it so locks are released.
                with _suppressed():
                    future.result(timeout=30)
            raise

    def close(self) -> None:
        """Stop the loop, after the tasks still on it (the store's batcher) have ended."""
        with _suppressed():
            asyncio.run_coroutine_threadsafe(_drain(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


async def _drain() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@contextmanager
def _suppressed() -> Iterator[None]:
    try:
        yield
    except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError, Exception):
        pass


class SyncProxy:
    """Any object's coroutine methods, called synchronously on the agent's loop (e.g. the
    `MemoryService` of `SyncAgent.memories()`); other attributes pass through."""

    def __init__(self, target: Any, runner: _LoopThread) -> None:
        self._target = target
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            result = value(*args, **kwargs)
            if asyncio.iscoroutine(result):
                return self._runner.run(result)
            return result

        call.__name__ = name
        call.__doc__ = value.__doc__
        return call


class SyncAgent:
    """The agent of `open_agent`, with synchronous methods (see the module docstring).

    `aagent` is the async agent itself, for what this shell does not carry.
    """

    def __init__(self, agent: GuardedAgent, runner: _LoopThread) -> None:
        self.aagent = agent
        self._runner = runner

    def invoke(
        self, input: Any, config: RunnableConfig | None = None, *, context: Any = None, **kw: Any
    ) -> Any:
        """One turn (`ainvoke` of the async agent)."""
        return self._runner.run(self.aagent.ainvoke(input, config, context=context, **kw))

    def stream(
        self, input: Any, config: RunnableConfig | None = None, *, context: Any = None, **kw: Any
    ) -> Iterator[Any]:
        """One turn's stream (`astream` of the async agent), part by part as it arrives."""
        return self._iterate(self.aagent.astream(input, config, context=context, **kw))

    def get_state(self, config: RunnableConfig, *, subgraphs: bool = False) -> StateSnapshot:
        return self._runner.run(self.aagent.aget_state(config, subgraphs=subgraphs))

    def get_state_history(self, config: RunnableConfig, **kw: Any) -> Iterator[StateSnapshot]:
        return self._iterate(self.aagent.aget_state_history(config, **kw))

    def update_state(
        self,
        config: RunnableConfig,
        values: dict[str, Any] | Any | None,
        as_node: str | None = None,
    ) -> RunnableConfig:
        return self._runner.run(self.aagent.aupdate_state(config, values, as_node=as_node))

    def resume_turn(self, config: RunnableConfig, *, context: Any = None) -> dict[str, Any] | None:
        """Finish the thread's turn if one was cut off (see `guard.resume_turn`)."""
        return self._runner.run(resume_turn(self.aagent, config, context=context))

    def memories(self) -> Any:
        """The user memory service (`memories(agent)`), with synchronous methods."""
        return SyncProxy(memories(self.aagent), self._runner)

    def forget_user(self, user_id: str, *, lock_timeout: float = 60.0) -> ForgetReceipt:
        return self._runner.run(forget_user(self.aagent, user_id, lock_timeout=lock_timeout))

    def prune(
        self,
        older_than: timedelta | str,
        *,
        keep_summaries: bool = True,
        dry_run: bool = False,
    ) -> PruneReceipt:
        return self._runner.run(
            prune(self.aagent, older_than, keep_summaries=keep_summaries, dry_run=dry_run)
        )

    def _iterate(self, source: AsyncIterator[T]) -> Iterator[T]:
        next_part: Callable[[], Awaitable[T]] = source.__anext__
        try:
            while True:
                try:
                    yield self._runner.run(_step(next_part))
                except StopAsyncIteration:
                    return
        finally:
            closer = getattr(source, "aclose", None)
            if closer is not None:
                with _suppressed():
                    self._runner.run(closer())


async def _step(next_part: Callable[[], Awaitable[T]]) -> T:
    return await next_part()


@contextmanager
def open_agent_sync(database: str | None = None, **kwargs: Any) -> Iterator[SyncAgent]:
    """`open_agent` for synchronous code: the same arguments, the same agent, sync methods.

    Raises:
        DatabaseUnavailableError, ConfigurationError: as `open_agent`.
    """
    runner = _LoopThread()
    try:
        opened = open_agent(database, **kwargs)
        agent = runner.run(opened.__aenter__())
        try:
            yield SyncAgent(agent, runner)
        except BaseException as exc:
            if not runner.run(opened.__aexit__(type(exc), exc, exc.__traceback__)):
                raise
        else:
            runner.run(opened.__aexit__(None, None, None))
    finally:
        runner.close()
