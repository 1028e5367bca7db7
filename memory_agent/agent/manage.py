"""Operations on a user's data that span the store and the checkpointer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from langchain_core.embeddings import Embeddings
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.base import BaseStore, SearchOp
from langgraph.store.postgres import AsyncPostgresStore
from psycopg_pool import AsyncConnectionPool

from memory_agent.errors import ConfigurationError, InvalidInputError
from memory_agent.graph import Agent
from memory_agent.memory.records import KNOWLEDGE, with_terms
from memory_agent.memory.service import MemoryService
from memory_agent.persistence.embedded import database_url
from memory_agent.persistence.namespaces import KINDS, user_namespace, validate_user_id
from memory_agent.persistence.pool import open_pool
from memory_agent.persistence.retention import (
    ForgetReceipt,
    PruneReceipt,
    forget_user_data,
    parse_age,
    prune_threads,
)
from memory_agent.persistence.schema import reindex_database
from memory_agent.persistence.store import index_config, resolve
from memory_agent.persistence.store_sql import ReindexReceipt


def _parts(agent: Agent) -> tuple[BaseStore, BaseCheckpointSaver[Any] | None]:
    if not isinstance(agent.store, BaseStore):
        raise ConfigurationError("this agent has no store: open it with open_agent()")
    checkpointer = (
        agent.checkpointer if isinstance(agent.checkpointer, BaseCheckpointSaver) else None
    )
    return agent.store, checkpointer


def _pool(agent: Agent) -> AsyncConnectionPool[Any] | None:
    """The pool of an agent whose checkpointer and store share one PostgreSQL pool."""
    saver, store = agent.checkpointer, agent.store
    if (
        isinstance(saver, AsyncPostgresSaver)
        and isinstance(store, AsyncPostgresStore)
        and isinstance(saver.conn, AsyncConnectionPool)
        and saver.conn is store.conn
    ):
        return saver.conn
    return None


def memories(agent: Agent) -> MemoryService:
    """The memory service over the agent's store."""
    return MemoryService(_parts(agent)[0])


async def known_user(agent: Agent, user_id: str) -> bool:
    """Whether the store holds anything of the user (a memory or a conversation record).

    False for a user never seen, and for one forgotten (`forget_user`).
    """
    store = _parts(agent)[0]
    user_id = validate_user_id(user_id)
    found = await store.abatch([SearchOp(user_namespace(user_id, k), limit=1) for k in KINDS])
    return any(found)


async def resolve_memory_key(agent: Agent, user_id: str, name: str) -> str:
    """The store key of the user's memory named `name`: its key, or its subject.

    Facts, preferences and entities are stored under a hash of their subject; a person names
    them by the subject (`location`, `preference:pizza`), or by its last part (`pizza`) when
    only one subject ends so. Keys (as `--json` and the API show them) keep working.

    Raises:
        InvalidInputError: no memory of the user has this key or subject, or several subjects
            end with it (the message lists them).
    """
    service = memories(agent)
    wanted = name.strip()
    if wanted and await service.get_memory(user_id, wanted) is not None:
        return wanted
    folded = wanted.casefold()
    current = await service.list_memories(user_id, kinds=KNOWLEDGE)
    exact = [m["key"] for m in current if m.get("subject", "").casefold() == folded]
    if exact:
        return exact[0]
    ending = {
        m.get("subject", ""): m["key"]
        for m in current
        if folded and m.get("subject", "").casefold().replace("/", ":").endswith(":" + folded)
    }
    if len(ending) == 1:
        return next(iter(ending.values()))
    if ending:
        raise InvalidInputError(
            f"{name!r} could be any of {', '.join(sorted(ending))}: name one of those subjects"
        )
    raise InvalidInputError(
        f"user {user_id!r} has no memory {name!r}: name it by its subject, as "
        "`memory-agent memories list` shows it, or by its key"
    )


async def forget_user(agent: Agent, user_id: str, *, lock_timeout: float = 60.0) -> ForgetReceipt:
    """Delete every memory of the user and every thread they own; return what was deleted.

    On PostgreSQL (`open_agent`) this is one transaction, which first waits (up to
    `lock_timeout` seconds) for the user's turns in flight; the receipt counts threads,
    checkpoints, checkpoint blobs and writes, and store items by kind. Other stores (tests with
    `InMemoryStore`) delete item by item.

    Raises:
        InvalidInputError: the user id is invalid.
        ThreadBusyError: the user's turns did not finish in time; nothing was deleted.
        DatabaseUnavailableError: PostgreSQL failed; nothing was deleted.
    """
    user_id = validate_user_id(user_id)
    pool = _pool(agent)
    if pool is not None:
        return await forget_user_data(pool, user_id, lock_timeout=lock_timeout)
    store, checkpointer = _parts(agent)
    receipt = await MemoryService(store).forget_user(user_id)
    if checkpointer is not None:
        for thread_id in receipt["threads"]:
            await checkpointer.adelete_thread(thread_id)
    receipt["deleted"]["threads"] = len(receipt["threads"]) if checkpointer is not None else 0
    return receipt


async def prune(
    agent: Agent,
    older_than: timedelta | str,
    *,
    keep_summaries: bool = True,
    dry_run: bool = False,
) -> PruneReceipt:
    """Delete threads inactive for longer than `older_than` ("30d" or a timedelta).

    Their checkpoints go; their conversation records stay (the user's history of what was
    discussed) unless `keep_summaries=False`; memories stay. Expired memories (see
    `open_agent(memory_ttl=...)`) are deleted too. Threads a turn holds are skipped.

    Raises:
        ConfigurationError: the agent is not on PostgreSQL (`open_agent`).
        InvalidInputError: `older_than` is not a positive duration.
        DatabaseUnavailableError: PostgreSQL failed.
    """
    pool = _pool(agent)
    if pool is None:
        raise ConfigurationError("prune needs the PostgreSQL agent of open_agent()")
    age = parse_age(older_than) if isinstance(older_than, str) else older_than
    return await prune_threads(pool, age, keep_summaries=keep_summaries, dry_run=dry_run)


async def reindex_store(
    database: str | None = None, *, embeddings: str | Embeddings | None = None
) -> ReindexReceipt:
    """Re-embed every stored item with `embeddings` (default: $MEMORY_AGENT_EMBEDDINGS).

    Run it after changing the embedder: `open_agent` refuses vectors made by another one.
    """
    emb, dims = await resolve(embeddings)
    url = await database_url(database)
    async with open_pool(url, max_size=2) as pool:
        return await reindex_database(pool, index_config(emb, dims), with_terms)
