"""PostgreSQL: the connection pool, the checkpointer and store, and the embedded default.

One URL (`DATABASE_URL`) names the database. Without one, an embedded PostgreSQL 16 with
pgvector (the `pgserver` package) is started under `$MEMORY_AGENT_HOME`, else the user's data
directory, so a first run needs nothing installed. A database that cannot be reached raises
`DatabaseUnavailableError`; nothing ever falls back to an in-memory store.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import select
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import psycopg
from langchain_core.embeddings import Embeddings
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.base import Op, PutOp, Result, SearchOp, TTLConfig
from langgraph.store.postgres import AsyncPostgresStore
from langgraph.store.postgres.base import Migration, PostgresIndexConfig
from platformdirs import user_data_dir
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from psycopg_pool.pool_async import AddConnection, MaintenanceTask

from memory_agent import vector_search
from memory_agent.checkpointer import PRUNE_EVERY, BoundedPostgresSaver
from memory_agent.errors import ConfigurationError, DatabaseUnavailableError
from memory_agent.graph import build_graph
from memory_agent.guard import Guard, GuardedAgent, guard_agent
from memory_agent.locks import ThreadLocks, lock_key
from memory_agent.memory import pg
from memory_agent.memory.embeddings import HashingEmbeddings, embedder_name, resolve_embeddings
from memory_agent.migrations import apply_migrations
from memory_agent.retention import parse_age
from memory_agent.teams import Team
from memory_agent.vectors import PgVectorEmbeddings, register_vector_dumper

logger = logging.getLogger(__name__)

Pool = AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]

MAX_RECONNECT_DELAY = 1.0
"""Seconds between the pool's attempts to reconnect while PostgreSQL is down."""


class RecoveringPool(AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]):
    """A pool that retries a lost database every `MAX_RECONNECT_DELAY` seconds.

    psycopg_pool doubles the delay between reconnection attempts without bound (until its
    5-minute `reconnect_timeout`): after a one-minute outage it would wait up to another minute
    once PostgreSQL is back, failing every turn meanwhile. Capping the delay makes the pool
    recover within a second of the database.
    """

    async def schedule_task(self, task: MaintenanceTask, delay: float) -> None:
        if isinstance(task, AddConnection):
            delay = min(delay, MAX_RECONNECT_DELAY)
        await super().schedule_task(task, delay)


CONNECTION_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
}
"""The one place the connection settings are made: autocommit (the checkpointer and store
manage their own transactions); `prepare_threshold=0`, psycopg prepares each statement on its
first use, so the checkpointer's and store's repeated queries skip re-planning (behind a
PgBouncer in transaction mode, set it to None, which disables prepared statements); dict rows
(what langgraph-checkpoint-postgres expects)."""

_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]*@")
_EMBEDDED_DB = "memory_agent"


def redact(url: str) -> str:
    """`url` without its password, for messages and logs."""
    return _PASSWORD.sub(r"\1***@", url)


def describe(url: str) -> str:
    """How a database is named in messages: its name, host and port (never the password)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        return f"PostgreSQL at {redact(url)}"
    name, host, port = params.get("dbname"), params.get("host"), params.get("port")
    return f"PostgreSQL database {name or '?'!r} at {host or 'localhost'}:{port or 5432}"


def agent_home() -> Path:
    """Where the embedded database lives: $MEMORY_AGENT_HOME, else the user's data dir."""
    home = os.environ.get("MEMORY_AGENT_HOME")
    return Path(home).expanduser() if home else Path(user_data_dir("memory-agent"))


def _start_embedded(home: Path) -> str:
    from pgserver.postgres_server import get_server

    home.mkdir(parents=True, exist_ok=True)
    try:
        server = get_server(home / "pgdata", cleanup_mode="stop")
        server.psql(
            f"SELECT 'CREATE DATABASE {_EMBEDDED_DB}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{_EMBEDDED_DB}')\\gexec"
        )
    except Exception as exc:
        raise DatabaseUnavailableError(
            f"could not start the embedded PostgreSQL under {home}: {exc}. "
            "Set DATABASE_URL to use another PostgreSQL."
        ) from exc
    return str(server.get_uri(_EMBEDDED_DB))


async def database_url(url: str | None = None) -> str:
    """The database to use: `url`, else $DATABASE_URL, else the embedded one (started now)."""
    url = url or os.environ.get("DATABASE_URL")
    if url:
        return url
    return await asyncio.to_thread(_start_embedded, agent_home())


async def check_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's check before it hands out a connection: a round trip only when needed.

    An idle connection that is healthy has nothing to read; one the server closed (a restart,
    `pg_terminate_backend`, an idle timeout) has its error message or end-of-file waiting on the
    socket. So the socket is polled (no round trip) and only a connection with something waiting
    gets psycopg's full check, which raises for a dead one (the pool then discards it and tries
    another). Measured: the full check on every hand-out cost a round trip per checkpoint write
    and store call, about a third of a turn's database time.
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        await AsyncConnectionPool.check_connection(conn)


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    register_vector_dumper(conn)


@asynccontextmanager
async def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 30.0
) -> AsyncIterator[Pool]:
    """A connection pool to `url`, checked on open; closed on exit.

    Connections are checked before they are handed out (`check_connection`), so the pool
    recovers by itself after PostgreSQL restarts.
    """
    try:
        probe = await psycopg.AsyncConnection.connect(url, connect_timeout=10)
        await probe.close()
    except psycopg.Error as exc:
        raise DatabaseUnavailableError(
            f"cannot connect to PostgreSQL at {redact(url)}: {str(exc).strip()}"
        ) from exc
    pool: Pool = RecoveringPool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        kwargs=CONNECTION_KWARGS,
        check=check_connection,
        configure=_configure,
        open=False,
    )
    try:
        await pool.open(wait=True, timeout=timeout)
    except PoolTimeout as exc:
        raise DatabaseUnavailableError(f"cannot open a pool to {redact(url)}: {exc}") from exc
    try:
        yield pool
    finally:
        await pool.close()


class ExactSearchStore(AsyncPostgresStore):
    """`AsyncPostgresStore` whose vector search is exact per user, or indexed per large user.

    No ANN index over the whole table is created: upstream's `setup()` (3.2.0) ignores
    `Migration.condition`, so `ann_index_config={"kind": "flat"}` fails there instead of
    skipping the index; the index migration is replaced by a no-op, keeping the numbering.
    Semantic searches under a namespace go through `vector_search.search` (candidates ranked in
    `store_vectors` alone, a large user's own HNSW index when they have one, always complete);
    everything else is upstream's.
    """

    VECTOR_MIGRATIONS = [*AsyncPostgresStore.VECTOR_MIGRATIONS[:2], Migration("SELECT 1")]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = [self._with_default_ttl(op) for op in ops]
        mine = [i for i, op in enumerate(ops) if self.embeddings and vector_search.handles(op)]
        if not mine:
            return await super().abatch(ops)
        results: list[Result] = [None] * len(ops)
        rest = [i for i in range(len(ops)) if i not in set(mine)]

        async def searches() -> None:
            assert self.embeddings is not None
            queries = [cast(SearchOp, ops[i]).query or "" for i in mine]
            vectors = await self.embeddings.aembed_documents(queries)
            async with self._cursor() as cur:
                for i, vector in zip(mine, vectors, strict=True):
                    op = cast(SearchOp, ops[i])
                    found = await vector_search.search(
                        cur.connection,
                        op,
                        vector,
                        omit_expired=self._omit_expired,
                        refresh_ttl=bool(self.ttl_config) and op.refresh_ttl,
                    )
                    results[i] = (
                        found
                        if found is not None
                        else (await super(ExactSearchStore, self).abatch([op]))[0]
                    )

        async def others() -> None:
            for i, result in zip(
                rest,
                await super(ExactSearchStore, self).abatch([ops[i] for i in rest]),
                strict=True,
            ):
                results[i] = result

        if not rest:
            await searches()
        elif any(isinstance(ops[i], PutOp) for i in rest):
            await searches()  # upstream runs a batch's searches before its writes, too
            await others()
        else:
            await asyncio.gather(searches(), others())
        return results

    def _with_default_ttl(self, op: Op) -> Op:
        # `aput` gives an item the default TTL; a `PutOp` written directly (batched writes)
        # would not get one: every item written without a TTL gets the default here.
        default = (self.ttl_config or {}).get("default_ttl")
        if (
            default is not None
            and isinstance(op, PutOp)
            and op.value is not None
            and op.ttl is None
        ):
            return op._replace(ttl=default)
        return op


def index_config(embeddings: Embeddings, dims: int) -> PostgresIndexConfig:
    """The store's vector index: our embedder on the `text` field, exact (flat) search.

    Flat on purpose: an HNSW index filters by namespace after the approximate scan, and for one
    user among many it returned too few results; an exact scan restricted to one user's prefix
    is both complete and fast at per-user sizes.
    """
    if not isinstance(embeddings, PgVectorEmbeddings):
        # Cheap to dump (see `vectors`); the offline embedder also runs inline (~0.2 ms).
        inline = isinstance(embeddings, HashingEmbeddings)
        embeddings = PgVectorEmbeddings(embeddings, inline=inline)
    return {
        "dims": dims,
        "embed": embeddings,
        "fields": ["text"],
        "distance_type": "cosine",
        "ann_index_config": {"kind": "flat"},
    }


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
        raise DatabaseUnavailableError(
            f"database setup failed on {describe(url)}: {str(exc).strip()}"
        ) from exc


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


async def reindex_store(
    database: str | None = None, *, embeddings: str | Embeddings | None = None
) -> pg.ReindexReceipt:
    """Re-embed every stored item with `embeddings` (default: $MEMORY_AGENT_EMBEDDINGS).

    Run it after changing the embedder: `open_agent` refuses vectors made by another one.
    """
    emb, dims = await _resolve(embeddings)
    index = index_config(emb, dims)
    url = await database_url(database)
    async with open_pool(url, max_size=2) as pool:
        try:
            await AsyncPostgresSaver(pool).setup()
            await ExactSearchStore(pool, index=index).setup()
            async with pool.connection() as conn:
                await apply_migrations(conn)
            return await pg.reindex(ExactSearchStore(pool, index=index), _embedder_record(index))
        except psycopg.Error as exc:
            raise DatabaseUnavailableError(f"re-indexing failed: {exc}") from exc


async def _resolve(embeddings: str | Embeddings | None) -> tuple[Embeddings, int]:
    if isinstance(embeddings, Embeddings):
        return embeddings, len(await embeddings.aembed_query("dimension probe"))
    return resolve_embeddings(embeddings)


def ttl_config(memory_ttl: timedelta | str | None) -> TTLConfig | None:
    """The store's TTL settings for `memory_ttl` (None: memories never expire).

    Every store item written without its own TTL gets this one; reading an item renews it, and
    expired items are hidden at once and deleted by `prune`.
    """
    if memory_ttl is None:
        return None
    ttl = parse_age(memory_ttl) if isinstance(memory_ttl, str) else memory_ttl
    if ttl <= timedelta(0):
        raise ConfigurationError("memory_ttl must be positive")
    return {
        "default_ttl": ttl.total_seconds() / 60,
        "refresh_on_read": True,
        "omit_expired": True,
    }


def thread_locks(url: str, *, timeout: float = 60.0) -> ThreadLocks:
    """The advisory locks of one process on `url` (no I/O until the first lock is taken)."""
    connect = functools.partial(
        psycopg.AsyncConnection.connect,
        url,
        **CONNECTION_KWARGS,
        connect_timeout=10,
        application_name="memory_agent.locks",
    )
    return ThreadLocks(connect, timeout=timeout, describe=describe(url))


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
    emb, dims = await _resolve(embeddings)
    index = index_config(emb, dims)
    ttl = ttl_config(memory_ttl or os.environ.get("MEMORY_AGENT_MEMORY_TTL") or None)
    url = await database_url(database)
    async with open_pool(url, max_size=pool_size, timeout=pool_timeout) as pool:
        if setup:
            await setup_database(pool, index)
        checkpointer = BoundedPostgresSaver(pool, prune_every=prune_every)
        store = ExactSearchStore(pool, index=index, ttl=ttl)
        locks = thread_locks(url, timeout=lock_timeout)
        try:
            agent = build_graph(checkpointer=checkpointer, store=store, teams=teams)
            yield guard_agent(agent, Guard(locks=locks, database=describe(url), pool=pool))
        finally:
            await locks.close()
