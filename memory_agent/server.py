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
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TypeVar

import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from memory_agent.auth import TokenTable
from memory_agent.checkpointer import BoundedPostgresSaver
from memory_agent.errors import ConfigurationError, DatabaseUnavailableError, MemoryAgentError
from memory_agent.memory.embeddings import resolve_embeddings
from memory_agent.persistence import (
    ExactSearchStore,
    Pool,
    held_database,
    index_config,
    open_pool,
    redact,
    setup_database,
)

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


@asynccontextmanager
async def open_server_store(pool: Pool, *, setup: bool = True) -> AsyncIterator[ExactSearchStore]:
    """Our store over `pool`, with the embedder of $MEMORY_AGENT_EMBEDDINGS (default offline).

    With `setup`, every table (checkpointer's and store's) is created or upgraded first.
    """
    embeddings, dims = resolve_embeddings()
    index = index_config(embeddings, dims)
    if setup:
        await setup_database(pool, index)
    yield ExactSearchStore(pool, index=index)


@asynccontextmanager
async def checkpointer() -> AsyncIterator[AsyncPostgresSaver]:
    """The server's checkpointer (`checkpointer.path` in langgraph.json): threads keep bounded
    storage here too (superseded checkpoints pruned, see `memory_agent.checkpointer`).

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
    async with server_pool() as pool:
        saver = BoundedPostgresSaver(pool)
        try:
            await saver.setup()
        except psycopg.Error as exc:
            raise DatabaseUnavailableError(f"checkpointer setup failed: {exc}") from exc
        yield saver


@asynccontextmanager
async def _store() -> AsyncIterator[ExactSearchStore]:
    async with server_pool() as pool, open_server_store(pool) as opened:
        yield opened


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
