"""`open_agent`: where the agent is assembled (graph, checkpointer, store, locks, boundary)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

from langchain_core.embeddings import Embeddings

from memory_agent.agent.boundary import Guard, GuardedAgent, guard_agent
from memory_agent.graph import build_graph
from memory_agent.persistence.checkpointer import PRUNE_EVERY, BoundedPostgresSaver
from memory_agent.persistence.embedded import database_url
from memory_agent.persistence.locks import thread_locks
from memory_agent.persistence.opening import open_store
from memory_agent.persistence.pool import describe, open_pool
from memory_agent.teams import Team


@asynccontextmanager
async def open_agent(
    database: str | None = None,
    *,
    embeddings: str | Embeddings | None = None,
    setup: bool = True,
    pool_size: int = 10,
    teams: Sequence[Team] | None = None,
    prune_every: int | None = PRUNE_EVERY,
    pool_timeout: float = 30.0,
    lock_timeout: float = 60.0,
    memory_ttl: timedelta | str | None = None,
) -> AsyncIterator[GuardedAgent]:
    """The supervisor graph compiled with PostgreSQL persistence, for the life of the block.

    Every run goes through the boundary of `guard.GuardedAgent`: its input is validated before
    anything is stored, turns on one thread run one at a time (across processes), and a
    PostgreSQL failure raises `DatabaseUnavailableError`, after which the thread resumes from
    its last checkpoint.

    Args:
        database: a PostgreSQL URL; default $DATABASE_URL, else the embedded database.
        embeddings: "offline", "local", "provider:model" or an `Embeddings`; default
            $MEMORY_AGENT_EMBEDDINGS, else "offline".
        setup: create/upgrade the tables first (idempotent).
        pool_size: the most connections the pool opens (the thread locks use one more).
        pool_timeout: seconds to wait for a pooled connection before failing the run.
        lock_timeout: seconds a turn waits for its thread before `ThreadBusyError`.
        memory_ttl: memories (and conversation records) not read or written for this long
            expire, e.g. "90d" or a `timedelta`; default $MEMORY_AGENT_MEMORY_TTL, else never.
        teams: the supervisor's teams; None: the built-in `memory` and `history` teams
            (see `build_graph`).
        prune_every: prune a thread's superseded checkpoints every this many turns, keeping
            its storage bounded (see `checkpointer`); None keeps the full history.

    Raises:
        DatabaseUnavailableError: PostgreSQL cannot be reached or set up.
        ConfigurationError: a setting is wrong (the message says which).
    """
    url = await database_url(database)
    async with open_pool(url, max_size=pool_size, timeout=pool_timeout) as pool:
        store = await open_store(pool, embeddings=embeddings, setup=setup, memory_ttl=memory_ttl)
        checkpointer = BoundedPostgresSaver(pool, prune_every=prune_every)
        locks = thread_locks(url, timeout=lock_timeout)
        try:
            agent = build_graph(checkpointer=checkpointer, store=store, teams=teams)
            yield guard_agent(agent, Guard(locks=locks, database=describe(url), pool=pool))
        finally:
            await locks.close()
