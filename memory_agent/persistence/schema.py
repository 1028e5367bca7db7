"""Creating and upgrading the schema (LangGraph's tables, then ours), one process at a time,
and re-embedding the store after a change of embedder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg
from langchain_core.embeddings import Embeddings
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.postgres.base import PostgresIndexConfig
from psycopg.rows import DictRow

from memory_agent.embeddings import embedder_name
from memory_agent.errors import ConfigurationError, DatabaseUnavailableError, database_error
from memory_agent.persistence import store_sql as pg
from memory_agent.persistence import vector_search
from memory_agent.persistence.locks import lock_key
from memory_agent.persistence.migrations import apply_migrations
from memory_agent.persistence.pool import CONNECTION_KWARGS, Pool, describe
from memory_agent.persistence.store import ExactSearchStore

SETUP_LOCK = lock_key("setup", "schema")
"""Advisory lock held while tables are created or upgraded: two processes starting at once
would otherwise race on LangGraph's CREATE TABLE IF NOT EXISTS and on our migrations."""
TRY_SETUP_LOCK = "SELECT pg_try_advisory_lock(%s) AS ok"
SETUP_WAIT = 600.0


def _embedder_record(index: PostgresIndexConfig) -> pg.EmbedderRecord:
    embed = index.get("embed")
    name = embedder_name(embed) if isinstance(embed, Embeddings) else str(embed)
    return {"name": name, "dims": int(index["dims"])}


async def setup_database(pool: Pool, index: PostgresIndexConfig) -> None:
    """Create or upgrade every table (idempotent: safe on a database made by an older version).

    Runs LangGraph's checkpointer and store migrations, then ours (`migrations.MIGRATIONS`),
    one process at a time.

    Raises:
        DatabaseUnavailableError: PostgreSQL failed.
        ConfigurationError: the database was made by a newer memory_agent, or the stored
            vectors were made by another embedder (run `memory-agent memories reindex`).
    """
    url = pool.conninfo
    if not isinstance(url, str):
        raise ConfigurationError("setup_database needs a pool opened with a URL (open_pool)")
    try:
        async with await psycopg.AsyncConnection.connect(
            url, **CONNECTION_KWARGS, connect_timeout=10
        ) as conn:
            await _take_setup_lock(conn)
            await AsyncPostgresSaver(pool).setup()
            await ExactSearchStore(pool, index=index).setup()
            for statement in vector_search.SETUP:
                await conn.execute(statement)
            await apply_migrations(conn)
            await pg.check_embedder(conn, _embedder_record(index))
    except psycopg.Error as exc:
        raise database_error(exc, "setting up the tables", database=describe(url)) from exc


async def _take_setup_lock(conn: psycopg.AsyncConnection[DictRow]) -> None:
    # Polled, not a blocking pg_advisory_lock: a session left waiting inside a statement would
    # hold a snapshot, and LangGraph's CREATE INDEX CONCURRENTLY in the setup that holds the lock
    # waits for every such snapshot: the two would wait for each other forever.
    deadline = asyncio.get_running_loop().time() + SETUP_WAIT
    while True:
        row = await (await conn.execute(TRY_SETUP_LOCK, (SETUP_LOCK,))).fetchone()
        if row is not None and row["ok"]:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise DatabaseUnavailableError(
                f"another process has been setting up the database for {SETUP_WAIT:g} s"
            )
        await asyncio.sleep(0.1)


async def reindex_database(
    pool: Pool,
    index: PostgresIndexConfig,
    refresh: Callable[[dict[str, Any]], dict[str, Any]],
) -> pg.ReindexReceipt:
    """Re-embed every stored item with `index`'s embedder (`refresh` renews a memory's terms).

    Raises:
        DatabaseUnavailableError: PostgreSQL failed.
    """
    try:
        await AsyncPostgresSaver(pool).setup()
        await ExactSearchStore(pool, index=index).setup()
        async with pool.connection() as conn:
            await apply_migrations(conn)
        store = ExactSearchStore(pool, index=index)
        return await pg.reindex(store, _embedder_record(index), refresh)
    except psycopg.Error as exc:
        raise database_error(
            exc, "re-indexing the store", database=describe(str(pool.conninfo))
        ) from exc
