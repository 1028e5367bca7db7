"""The PostgreSQL side of memory: an inverted index for BM25, the embedder record, re-embedding.

Recall's BM25 (`bm25`) reads our inverted index. Our tables, created
by `memory_agent.persistence.migrations` (append-only: the index is the version):
- `memory_terms`: one row per (memory, term) with the term's weight and the memory's length,
  keyed (namespace, term, memory), so BM25 reads only the postings of the query's terms in the
  user's namespaces, however many memories the user has;
- `memory_term_stats`: per namespace, how many memories and their total length (BM25's N and
  mean length);
- `memory_agent_settings`: which embedder made the stored vectors, so that a changed embedder
  is refused with a clear error instead of silently mixing two vector spaces.
A trigger on the store's table keeps the index in step with every write of a current memory
(its value's `terms`), in the same transaction, whoever writes (this package, the LangGraph
server's routes, a `forget`), so the index can never drift from the memories.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypedDict, cast

import psycopg
from langgraph.store.base import BaseStore, Op, PutOp, Result, SearchItem
from langgraph.store.postgres import AsyncPostgresStore
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from memory_agent.errors import (
    ConfigurationError,
    database_error,
)

logger = logging.getLogger(__name__)


SELECT_SETTING = "SELECT value FROM memory_agent_settings WHERE name = %s"
UPSERT_SETTING = """
INSERT INTO memory_agent_settings (name, value) VALUES (%s, %s)
ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
"""
SELECT_VECTOR_DIMS = """
SELECT atttypmod AS dims FROM pg_attribute
WHERE attrelid = to_regclass('store_vectors') AND attname = 'embedding'
"""
COUNT_VECTORS = "SELECT count(*) AS n FROM store_vectors"
DELETE_VECTORS = "DELETE FROM store_vectors"
# Dimensions are an integer checked in Python; only that is ever formatted into this statement.
ALTER_VECTOR_DIMS = "ALTER TABLE store_vectors ALTER COLUMN embedding TYPE vector({dims})"
SELECT_NAMESPACE_PAGE = """
SELECT key, value, created_at, updated_at FROM store
WHERE prefix = %s AND key > %s AND value @> %s
  AND (expires_at IS NULL OR expires_at > now())
ORDER BY key
LIMIT %s
"""
"""One page of a namespace's items, by key: complete however many items share a timestamp
(the store's own search pages by offset over `updated_at`, and the items of one write
transaction all have the same one)."""
SELECT_STORE_PAGE = """
SELECT prefix, key, value FROM store
WHERE (prefix, key) > (%s, %s)
ORDER BY prefix, key
LIMIT %s
"""

REFRESH_TTL = """
UPDATE store SET expires_at = NOW() + (ttl_minutes || ' minutes')::interval
FROM unnest(%s::text[], %s::text[]) AS hit(prefix, key)
WHERE store.prefix = hit.prefix AND store.key = hit.key AND store.ttl_minutes IS NOT NULL
"""
"""Renew the TTL of the items read (those that have one)."""

EMBEDDER_SETTING = "embeddings"
_PAGE = 500

MAX_BATCH_OPS = 2_000
"""Most operations in one store batch. A write binds 4 to 6 parameters and its vector 4 more,
so a batch stays far under PostgreSQL's 65,535 bind parameters per statement, however many
sentences a turn holds."""

LOCK_SUBJECTS = "SELECT count(pg_advisory_xact_lock(k)) AS n FROM unnest(%s::bigint[]) AS k"
"""Transaction-scoped advisory locks, taken in the order given (sorted: no deadlock)."""


class EmbedderRecord(TypedDict):
    """Which embedder made the stored vectors."""

    name: str
    dims: int


class ReindexReceipt(TypedDict):
    """What `reindex` did."""

    items: int
    """Store items re-written (and re-embedded when they have a `text`)."""
    dims: int
    previous: EmbedderRecord | None
    """The embedder the vectors were made with before (None: not recorded)."""


@asynccontextmanager
async def connection(store: AsyncPostgresStore) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection of the store's: one from its pool, or its own one under its lock."""
    conn = store.conn
    if isinstance(conn, AsyncConnectionPool):
        async with conn.connection() as c:
            yield c
    else:
        async with store.lock:
            yield cast(psycopg.AsyncConnection[Any], conn)


def postgres(store: BaseStore) -> AsyncPostgresStore | None:
    """`store` when this module's SQL runs on it, else None (another `BaseStore`): the one
    place that tells the stores apart, so the memory layer works on any of them."""
    return store if isinstance(store, AsyncPostgresStore) else None


@asynccontextmanager
async def transaction(store: BaseStore) -> AsyncIterator[BaseStore]:
    """`store` bound to one connection inside one transaction for the block: every batch run
    through it commits together at the end, or not at all. A store that is not PostgreSQL has
    no transactions and is yielded as it is.

    The bound copy shares the store's configuration (embedder, TTL) and runs its batches on
    the block's connection, so reads in the block see its own writes and the advisory locks of
    `lock_subjects` hold until the commit. It is for one task's sequential calls: its lock is a
    no-op, as upstream's is per call on a pool (the store's exact search nests a batch inside
    its cursor, which a real lock on one connection would deadlock).
    """
    postgres_store = postgres(store)
    if postgres_store is None:
        yield store
        return
    async with connection(postgres_store) as conn, conn.transaction():
        bound = copy.copy(postgres_store)
        bound.conn = conn
        bound.pipe = None
        bound.lock = contextlib.nullcontext()  # type: ignore[assignment]
        # Its own (idle) queue for `aget`/`asearch`: the store's batching task is the store's,
        # and a copy sharing it would cancel it when garbage-collected.
        bound._aqueue = asyncio.Queue()
        bound._task = None
        yield bound


def subject_lock(namespace: tuple[str, ...], key: str) -> int:
    """The advisory-lock key of one stored subject (a stable 64-bit hash; two subjects may share
    one, which only serialises two unrelated writes)."""
    raw = "memory_agent:subject:" + ".".join(namespace) + "\x00" + key
    digest = hashlib.blake2b(raw.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock_subjects(bound: BaseStore, keys: Iterable[int]) -> None:
    """Take transaction-scoped advisory locks on `keys` (see `transaction`): two writers of one
    subject then read and write it one after the other. A store that is not PostgreSQL has
    nothing to lock."""
    postgres_store = postgres(bound)
    ordered = sorted(set(keys))
    if ordered and postgres_store is not None:
        conn = cast(psycopg.AsyncConnection[Any], postgres_store.conn)
        await conn.execute(LOCK_SUBJECTS, (ordered,))


async def batched(store: BaseStore, ops: Sequence[Op]) -> list[Result]:
    """`store.abatch(ops)` in batches of at most `MAX_BATCH_OPS` (see there)."""
    results: list[Result] = []
    for start in range(0, len(ops), MAX_BATCH_OPS):
        results.extend(await store.abatch(ops[start : start + MAX_BATCH_OPS]))
    return results


async def namespace_items(
    store: BaseStore, namespace: tuple[str, ...], filter: dict[str, Any] | None = None
) -> list[SearchItem]:
    """Every current item of one namespace whose value contains `filter` (on PostgreSQL by
    key; another store's items in the order its search pages them)."""
    postgres_store = postgres(store)
    items: list[SearchItem] = []
    if postgres_store is None:
        while True:
            page = await store.asearch(namespace, filter=filter, limit=_PAGE, offset=len(items))
            items.extend(page)
            if len(page) < _PAGE:
                return items
    prefix = ".".join(namespace)
    last = ""
    while True:
        async with connection(postgres_store) as conn:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(SELECT_NAMESPACE_PAGE, (prefix, last, Jsonb(filter or {}), _PAGE))
                rows = await cur.fetchall()
        items.extend(
            SearchItem(namespace, r["key"], r["value"], r["created_at"], r["updated_at"])
            for r in rows
        )
        if len(rows) < _PAGE:
            return items
        last = rows[-1]["key"]


def fetch_sizes(first: int, most: int) -> Iterator[int | None]:
    """How many rows a search ranks before a filter drops some (expired memories, other rows of
    the user), try after try: `first`, four times more while within `most`, then all (None).
    A search stops early once it has enough rows, or once a try ranked every row."""
    size = first
    while size <= most:
        yield size
        size *= 4
    yield None


async def renew_ttl(store: BaseStore, items: Sequence[tuple[tuple[str, ...], str]]) -> None:
    """Renew the TTL of the (namespace, key) `items` a search read, as the store's own reads do
    when its TTL settings say `refresh_on_read` (a store without TTLs has nothing to renew)."""
    postgres_store = postgres(store)
    ttl = getattr(postgres_store, "ttl_config", None)
    if postgres_store is None or not items or not ttl or not ttl.get("refresh_on_read", True):
        return
    prefixes = [".".join(ns) for ns, _ in items]
    try:
        async with connection(postgres_store) as conn:
            await conn.execute(REFRESH_TTL, (prefixes, [key for _, key in items]))
    except psycopg.Error as exc:
        raise database_error(exc, "renewing the memories' TTL") from exc


async def recorded_embedder(conn: psycopg.AsyncConnection[DictRow]) -> EmbedderRecord | None:
    row = await (await conn.execute(SELECT_SETTING, (EMBEDDER_SETTING,))).fetchone()
    return cast(EmbedderRecord, row["value"]) if row else None


async def record_embedder(conn: psycopg.AsyncConnection[DictRow], record: EmbedderRecord) -> None:
    await conn.execute(UPSERT_SETTING, (EMBEDDER_SETTING, Jsonb(dict(record))))


async def check_embedder(conn: psycopg.AsyncConnection[DictRow], record: EmbedderRecord) -> None:
    """Refuse an embedder other than the one that made the stored vectors.

    A database with no record yet adopts `record` when its vector column has the same
    dimensions (or holds no vectors at all).

    Raises:
        ConfigurationError: the vectors were made by another embedder (or have other
            dimensions); the message names both and the command that fixes it.
    """
    fix = "run `memory-agent memories reindex` to re-embed the stored memories"
    recorded = await recorded_embedder(conn)
    if recorded is not None:
        if recorded["name"] != record["name"] or recorded["dims"] != record["dims"]:
            raise ConfigurationError(
                f"the stored memories were embedded with {recorded['name']!r} "
                f"({recorded['dims']} dims) but the embedder is now {record['name']!r} "
                f"({record['dims']} dims): {fix} (or set MEMORY_AGENT_EMBEDDINGS back)"
            )
        return
    row = await (await conn.execute(SELECT_VECTOR_DIMS)).fetchone()
    dims = row["dims"] if row else -1
    if dims not in (-1, record["dims"]):
        count = await (await conn.execute(COUNT_VECTORS)).fetchone()
        if count and count["n"]:
            raise ConfigurationError(
                f"the store's vectors have {dims} dimensions but the embedder gives "
                f"{record['dims']}: {fix}"
            )
        await conn.execute(ALTER_VECTOR_DIMS.format(dims=int(record["dims"])))
    await record_embedder(conn, record)


async def reindex(
    store: AsyncPostgresStore,
    record: EmbedderRecord,
    refresh: Callable[[dict[str, Any]], dict[str, Any]],
) -> ReindexReceipt:
    """Re-embed every stored item with `store`'s embedder; `refresh` renews a memory's terms.

    The vector column is re-typed when the dimensions change; items are re-written through
    the store (so it embeds them) page by page, and the new embedder is recorded last: an
    interrupted re-index leaves the old record, so the next start still asks for a re-index.
    """
    dims = int(record["dims"])
    async with connection(store) as conn:
        previous = await recorded_embedder(conn)
        row = await (await conn.execute(SELECT_VECTOR_DIMS)).fetchone()
        if row and row["dims"] != dims:
            async with conn.transaction():
                await conn.execute(DELETE_VECTORS)
                await conn.execute(ALTER_VECTOR_DIMS.format(dims=dims))
    items = 0
    last = ("", "")
    while True:
        async with connection(store) as conn:
            cur = await conn.execute(SELECT_STORE_PAGE, (*last, _PAGE))
            rows = await cur.fetchall()
        if not rows:
            break
        ops = []
        for r in rows:
            value = r["value"]
            if isinstance(value, dict) and "terms" in value:
                value = refresh(value)
            ops.append(PutOp(tuple(r["prefix"].split(".")), r["key"], value))
        await store.abatch(ops)
        items += len(rows)
        last = (rows[-1]["prefix"], rows[-1]["key"])
        logger.info("re-indexed %d items", items)
    async with connection(store) as conn:
        await record_embedder(conn, record)
    return {"items": items, "dims": dims, "previous": previous}
