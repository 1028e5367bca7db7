"""Persistence for the LangGraph server: the factories `langgraph.json` names.

`langgraph dev` (and the server image `langgraph build` makes) refuses a graph compiled with its
own checkpointer or store; it enters the async context managers named by `checkpointer.path`
and `store.path` once at start-up and closes them at shutdown. These open the same PostgreSQL as
`open_agent` ($DATABASE_URL, else the embedded database under $MEMORY_AGENT_HOME), create or
upgrade the tables, and give the server our exact-search store with our embedder, so threads and
memories written through the server and through a program are the same rows.

Nothing here runs at import time; a database that cannot be reached stops the server at start-up
with `DatabaseUnavailableError` instead of letting it fall back to its in-memory defaults.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    contextmanager,
)
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.types import StateUpdate
from starlette.exceptions import HTTPException

from memory_agent import errors
from memory_agent.agent.boundary import Guard, GuardedAgent, guard_agent, latest_turn
from memory_agent.context import AgentContext
from memory_agent.errors import (
    ConfigurationError,
    MemoryAgentError,
    ThreadOwnershipError,
    database_errors,
)
from memory_agent.graph import build_graph
from memory_agent.identity import authenticated_user, not_theirs
from memory_agent.persistence.checkpointer import BoundedPostgresSaver
from memory_agent.persistence.embedded import database_url, held_database
from memory_agent.persistence.locks import thread_locks
from memory_agent.persistence.opening import open_store
from memory_agent.persistence.pool import Pool, describe, open_pool, redact
from memory_agent.persistence.store import ExactSearchStore
from memory_agent.server.tokens import TokenTable

logger = logging.getLogger(__name__)

POOL_SIZE_ENV = "MEMORY_AGENT_SERVER_POOL_SIZE"
DEFAULT_POOL_SIZE = 5

OPEN_SERVER_WARNING = (
    "MEMORY_AGENT_AUTH_TOKENS is not set: THIS SERVER IS OPEN. No token is asked for; anyone "
    "who can reach its port can read, change and delete every thread and memory. Keep it on "
    "your own machine, or set MEMORY_AGENT_AUTH_TOKENS (see the README)."
)

T = TypeVar("T")


def _pool_size() -> int:
    raw = os.environ.get(POOL_SIZE_ENV, str(DEFAULT_POOL_SIZE))
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if size < 1:
        raise ConfigurationError(f"{POOL_SIZE_ENV} must be a positive integer, not {raw!r}")
    return size


@asynccontextmanager
async def server_pool() -> AsyncIterator[Pool]:
    """A pool to the configured database, for one of the server's components."""
    async with held_database() as url:
        logger.info("memory_agent server persistence on %s", redact(url))
        async with open_pool(url, max_size=_pool_size()) as pool:
            yield pool


class ThreadOfAnotherUser(HTTPException, ThreadOwnershipError):
    """A server request reached checkpoints that another user (or nobody) owns: answered 403."""

    def __init__(self, thread_id: object) -> None:
        detail = (
            f"thread {thread_id} holds another user's conversation; it cannot be read, run, "
            "copied or deleted by you (use a new thread id)"
        )
        HTTPException.__init__(self, status_code=403, detail=detail)


def _request_user(config: RunnableConfig | None) -> str | None:
    """Who the server authenticated for the request or run in progress (None: open server)."""
    if user := authenticated_user(config):
        return user
    from langgraph_api.utils import get_auth_ctx

    ctx = get_auth_ctx()
    identity = getattr(ctx.user, "identity", "") if ctx is not None else ""
    return str(identity) if identity else None


class ServerCheckpointer(BoundedPostgresSaver):
    """The server's checkpointer: our bounded saver, plus the one check every thread access of
    an authenticated server request passes (reads, history, runs, copies, deletions): the
    checkpoints must be the caller's. The server's own thread records (kept apart from
    PostgreSQL by `langgraph dev`) can be created for any id, lost on a restart, or name an id
    a program wrote; the checkpoints' recorded owner is what decides.

    It also carries the process's `Guard` (locks, pool), so server runs pass through the same
    run boundary as programs (`guard.GuardedAgent.boundary`).
    """

    def __init__(self, conn: Any, *, guard: Guard, **kwargs: Any) -> None:
        super().__init__(conn, **kwargs)
        self.guard = guard

    def _check(self, values: Mapping[str, Any], config: RunnableConfig) -> None:
        user = _request_user(config)
        if user is not None and not_theirs(values, user):
            raise ThreadOfAnotherUser((config.get("configurable") or {}).get("thread_id"))

    async def not_theirs(self, thread_id: str, user_id: str) -> str | None:
        """Why `thread_id`'s checkpoints are not `user_id`'s, if they are not (None: theirs,
        or no checkpoints at all)."""
        return (await latest_turn(self.guard.pool, thread_id)).problem_for(user_id)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        found = await super().aget_tuple(config)
        if found is not None:
            self._check(found.checkpoint["channel_values"], config)
        return found

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        async for item in super().alist(config, filter=filter, before=before, limit=limit):
            self._check(item.checkpoint["channel_values"], config or item.config)
            yield item

    async def _check_thread(self, thread_id: object) -> None:
        await self.aget_tuple({"configurable": {"thread_id": str(thread_id), "checkpoint_ns": ""}})

    async def adelete_thread(self, thread_id: str) -> None:
        await self._check_thread(thread_id)
        await super().adelete_thread(thread_id)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._check_thread(source_thread_id)
        await self._check_thread(target_thread_id)
        await super().acopy_thread(source_thread_id, target_thread_id)


@asynccontextmanager
async def checkpointer() -> AsyncIterator[AsyncPostgresSaver]:
    """The server's checkpointer (`checkpointer.path` in langgraph.json): threads keep bounded
    storage here too (superseded checkpoints pruned, see `persistence.checkpointer`), and every
    access is checked against the caller (`ServerCheckpointer`).

    Entered once at start-up: it warns when the server is open (no tokens configured), and a
    failure stops the server (see `_fatal_at_startup`)."""
    if TokenTable.from_env() is None:
        logger.warning(OPEN_SERVER_WARNING)
    async with _fatal_at_startup(_checkpointer()) as saver:
        yield saver


@asynccontextmanager
async def store() -> AsyncIterator[ExactSearchStore]:
    """The server's long-term memory store (`store.path` in langgraph.json)."""
    async with _fatal_at_startup(_store()) as opened:
        yield opened


@asynccontextmanager
async def _checkpointer() -> AsyncIterator[AsyncPostgresSaver]:
    url = await database_url()
    async with server_pool() as pool:
        locks = thread_locks(url)
        guard = Guard(locks=locks, database=describe(url), pool=pool)
        saver = ServerCheckpointer(pool, guard=guard)
        with database_errors("setting up the checkpointer", database=describe(url)):
            await saver.setup()
        _RUNNING.append(saver)
        try:
            yield saver
        finally:
            _RUNNING.remove(saver)
            await locks.close()


_RUNNING: list[ServerCheckpointer] = []
"""The checkpointer of the running server (the server enters `checkpointer()` once)."""


async def thread_taken(thread_id: str, user_id: str) -> str | None:
    """Why `user_id` may not adopt `thread_id` on this server (another user's checkpoints are
    there), if so; None when it may, or when no server checkpointer runs (auth unit tests)."""
    if not _RUNNING:
        return None
    return await _RUNNING[-1].not_theirs(thread_id, user_id)


_STATUS: tuple[tuple[type[MemoryAgentError], int, str], ...] = (
    (errors.InvalidInputError, 422, "invalid_input"),
    (errors.StorageRefusedError, 422, "storage_refused"),
    (errors.ConfigurationError, 400, "bad_request"),
    (errors.ThreadOwnershipError, 403, "forbidden"),
    (errors.ThreadBusyError, 409, "busy"),
    (errors.DatabaseUnavailableError, 503, "database_unavailable"),
    (errors.ModelError, 502, "model_failed"),
)


def http_status(exc: MemoryAgentError) -> tuple[int, str]:
    """The HTTP status and error code the server answers `exc` with (the graph's runs and the
    memory routes alike)."""
    return next(
        ((code, name) for cls, code, name in _STATUS if isinstance(exc, cls)), (500, "error")
    )


def http_error(exc: MemoryAgentError) -> HTTPException:
    """`exc` as the server reports it to the client: a status and the reason, named.

    The server shows a client the message of an `HTTPException` (and of a few built-in
    errors), and "An internal error occurred" for anything else.
    """
    if isinstance(exc, HTTPException):
        return exc
    status, _ = http_status(exc)
    return _answered(type(exc))(status_code=status, detail=str(exc))


_ANSWERED: dict[str, type[HTTPException]] = {}


def _answered(cls: type[MemoryAgentError]) -> type[HTTPException]:
    """An `HTTPException` carrying `cls`'s name, which the server reports as the error's type
    (`{"error": "InvalidInputError", "message": "422: ..."}`)."""
    name = cls.__name__
    if name not in _ANSWERED:
        _ANSWERED[name] = type(name, (HTTPException,), {"__module__": __name__})
    return _ANSWERED[name]


@contextmanager
def _answered_as_http() -> Iterator[None]:
    """Our errors raised in the block leave it as `http_error` makes them."""
    try:
        yield
    except MemoryAgentError as exc:
        raise http_error(exc) from exc


class ServerAgent(GuardedAgent):
    """The graph the server runs: the run boundary, with the locks of `ServerCheckpointer`, a
    client's context held to the deployment's settings, and our errors answered readably."""

    async def astream(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        context: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        with _answered_as_http():
            async for part in super().astream(input, config, context=context, **kwargs):
                yield part

    async def abulk_update_state(
        self, config: RunnableConfig, supersteps: Sequence[Sequence[StateUpdate]]
    ) -> RunnableConfig:
        with _answered_as_http():
            return await super().abulk_update_state(config, supersteps)


graph = guard_agent(build_graph(), None, cls=ServerAgent, client_context=AgentContext())
"""The graph `langgraph.json` names: compiled without persistence (the server attaches
`checkpointer()` and `store()`), behind the run boundary. The server's own settings are
`AgentContext()` at start-up (its environment); a client's run context may only tighten them."""


@asynccontextmanager
async def _store() -> AsyncIterator[ExactSearchStore]:
    async with server_pool() as pool:
        yield await open_store(pool)


@asynccontextmanager
async def _fatal_at_startup(opening: AbstractAsyncContextManager[T]) -> AsyncIterator[T]:
    """Enter `opening`; if that fails, the whole dev server stops instead of lingering.

    Without `--no-reload`, `langgraph dev` runs the app in a child of uvicorn's reloader, which
    outlives a child whose start-up failed: it kept running without listening. The child tells
    the reloader to stop (SIGTERM, its clean shutdown). With `--no-reload` (`make server`) the
    failed start-up ends the process itself, with uvicorn's start-up-failure status 3.
    """
    async with AsyncExitStack() as stack:
        try:
            value = await stack.enter_async_context(opening)
        except MemoryAgentError as exc:
            logger.critical("memory_agent cannot start the server: %s", exc)
            reloader = multiprocessing.parent_process()
            if reloader is not None and reloader.pid is not None and "uvicorn" in sys.modules:
                logger.critical("stopping the dev server's reloader (pid %d)", reloader.pid)
                os.kill(reloader.pid, signal.SIGTERM)
            raise
        yield value
