"""Vector search of one user's memories that stays fast and complete among millions of rows.

pgvector 0.6 (what pgserver ships) has no iterative index scans: an HNSW index over the whole
`store_vectors` table returns its `ef_search` nearest rows of *all* users and filters by
namespace afterwards, so a user among many gets too few results. The store's own search is exact
instead (it ranks the rows of the namespace found through the prefix index): complete, but about
3 microseconds a row.

What this module adds (figures: `benchmarks/memory_scale.py`, one user among 1M memories):

- `SETUP`: vectors of up to about 2,000 dimensions stay inside the table row
  (`toast_tuple_target`) instead of going to TOAST storage, fetched through its index for every
  row scanned (pgvector asks for out-of-line storage and a 512-dimension vector is just over the
  default 2 kB threshold), which makes every scan fetch each vector again. And an index on
  `store_vectors.prefix text_pattern_ops`, so one user's vectors are found without the store.
- `search`: ranks the candidates in `store_vectors` alone (`ORDER BY embedding <=> q LIMIT n`
  under the user's prefix), then joins the store rows of the winners and applies the filter. For
  a user without an index of their own this is an exact scan. If the filter leaves fewer than
  asked while more candidates exist, it widens `n`, and at last falls back to the store's exact
  query: the result is always complete.
- `index_large_users` (`memory-agent db index`, opt-in): a partial HNSW index per user with at
  least `min_memories` vectors (`WHERE prefix LIKE 'users.<label>.%'`). The search repeats that
  predicate literally, so the planner uses the index for that user only and the approximate
  scan sees that user's rows alone: complete, and far faster than an exact scan of a large
  user (`benchmarks/memory_scale.py`). The ranking is approximate, though. With a dense
  semantic embedder HNSW finds nearly all of the exact best; with the offline hashing embedder
  (sparse, nearly orthogonal vectors, on which graph search navigates badly) it finds well under
  half of the exact best, and
  raising `ef_search` buys little (`memory_scale.py` reports `recall_at_k`). Hence opt-in:
  without it every search is exact. Indexes are built `CONCURRENTLY`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from langgraph.store.base import SearchItem, SearchOp
from psycopg import sql
from psycopg.rows import dict_row

from memory_agent.persistence.namespaces import ROOT
from memory_agent.persistence.store_sql import REFRESH_TTL
from memory_agent.persistence.vectors import vector_text
from memory_agent.utils import escape_like

logger = logging.getLogger(__name__)

SETUP: tuple[str, ...] = (
    # Keep rows up to a page inside the heap: vectors of up to ~2,000 dimensions stay inline.
    "ALTER TABLE store_vectors SET (toast_tuple_target = 8160)",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS store_vectors_prefix_pattern_idx "
    "ON store_vectors (prefix text_pattern_ops)",
)
"""Idempotent statements run by `setup_database` after the store's own migrations."""

MIN_MEMORIES = 5_000
"""`index_large_users` default: users from this many vectors get an HNSW index of their own
(below it an exact scan of their rows is fast enough; `benchmarks/memory_scale.py`)."""

HNSW_MIN_EF = 40
"""The smallest `hnsw.ef_search` a search uses (pgvector's default)."""

HNSW_EF_MAX = 1_000
"""pgvector's largest `hnsw.ef_search`: an HNSW scan returns at most this many rows."""

USER_INDEX_PREFIX = "store_vectors_user_"

_CANDIDATES = """
SET hnsw.ef_search = {ef};
WITH q AS MATERIALIZED (SELECT {q}::vector AS v), hits AS MATERIALIZED (
    (SELECT prefix, key, embedding <=> (SELECT v FROM q) AS distance
     FROM store_vectors WHERE prefix = {namespace}
     ORDER BY embedding <=> (SELECT v FROM q) LIMIT {n})
    UNION ALL
    (SELECT prefix, key, embedding <=> (SELECT v FROM q) AS distance
     FROM store_vectors WHERE prefix LIKE {pattern} ESCAPE '\\'
     ORDER BY embedding <=> (SELECT v FROM q) LIMIT {n})
), best AS (
    SELECT prefix, key, min(distance) AS distance FROM hits GROUP BY prefix, key
)
SELECT c.candidates, r.*
FROM (SELECT count(*) AS candidates FROM hits) AS c
LEFT JOIN LATERAL (
    SELECT s.prefix, s.key, s.value, s.created_at, s.updated_at, 1 - b.distance AS score
    FROM best b JOIN store s ON s.prefix = b.prefix AND s.key = b.key
    WHERE TRUE {filters}
    ORDER BY b.distance, s.prefix, s.key
    LIMIT {limit} OFFSET {offset}
) AS r ON TRUE
"""
"""Two statements in one round trip (no parameters: psycopg sends them as a simple query).
`hnsw.ef_search` is set for the session: an HNSW scan returns at most that many rows, and every
search sets it before it runs."""

_LARGE_USERS = """
SELECT split_part(prefix, '.', 2) AS label, count(*) AS vectors
FROM store_vectors WHERE prefix LIKE %s
GROUP BY 1 HAVING count(*) >= %s
"""

_USER_INDEXES = "SELECT indexname FROM pg_indexes WHERE tablename = 'store_vectors'"

_CREATE_USER_INDEX = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON store_vectors "
    "USING hnsw (embedding vector_cosine_ops) WHERE prefix LIKE {pattern} ESCAPE '\\'"
)


def _equality_filters(op: SearchOp) -> list[tuple[str, Any]] | None:
    """The op's filter as (key, value) equalities, or None if it has other operators."""
    out: list[tuple[str, Any]] = []
    for key, value in (op.filter or {}).items():
        if isinstance(value, dict):
            if set(value) != {"$eq"}:
                return None
            value = value["$eq"]
        out.append((key, value))
    return out


def handles(op: Any) -> bool:
    """Whether `search` serves this operation (a semantic search under a namespace, with
    equality filters); others go to the store's own query."""
    return (
        isinstance(op, SearchOp)
        and bool(op.query)
        and bool(op.namespace_prefix)
        and _equality_filters(op) is not None
    )


def user_index_name(label: str) -> str:
    """The name of the HNSW index of one user (by the namespace label, hashed: names are short
    and labels may hold any character)."""
    return USER_INDEX_PREFIX + hashlib.sha256(label.encode()).hexdigest()[:16]


def _statement(
    op: SearchOp, vector: Sequence[float], n: int, *, omit_expired: bool
) -> sql.Composed:
    # Everything is a literal, safely quoted: the planner can then prove the predicate of a
    # user's partial index (a parameter would hide it), and with no parameters the `%` of the
    # LIKE pattern needs no escaping from psycopg.
    path = ".".join(op.namespace_prefix)
    filters: list[sql.Composable] = [
        sql.SQL("AND s.value->{} = {}::jsonb").format(sql.Literal(key), sql.Literal(json.dumps(v)))
        for key, v in _equality_filters(op) or []
    ]
    if omit_expired:
        filters.append(sql.SQL("AND (s.expires_at IS NULL OR s.expires_at > NOW())"))
    return sql.SQL(_CANDIDATES).format(
        ef=sql.Literal(min(max(n, HNSW_MIN_EF), HNSW_EF_MAX)),
        q=sql.Literal(vector_text(vector)),
        namespace=sql.Literal(path),
        pattern=sql.Literal(escape_like(path) + ".%"),
        n=sql.Literal(n),
        filters=sql.SQL(" ").join(filters),
        limit=sql.Literal(op.limit),
        offset=sql.Literal(op.offset),
    )


async def search(
    conn: psycopg.AsyncConnection[Any],
    op: SearchOp,
    vector: Sequence[float],
    *,
    omit_expired: bool = False,
    refresh_ttl: bool = False,
) -> list[SearchItem] | None:
    """The `op.limit` items under `op.namespace_prefix` nearest to `vector`, best first.

    Returns None when ranking candidates cannot make the result complete (the filter rejects
    too many of them): the caller then runs the store's exact query.
    """
    wanted = op.limit + op.offset
    n = 4 * wanted + 16
    while True:
        statement = _statement(op, vector, n, omit_expired=omit_expired)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(statement, prepare=False)
        cur.nextset()  # past the SET
        rows = await cur.fetchall()
        candidates = int(rows[0]["candidates"])  # one row at least, with the count
        rows = [r for r in rows if r["key"] is not None]
        if rows and refresh_ttl:
            await cur.execute(REFRESH_TTL, ([r["prefix"] for r in rows], [r["key"] for r in rows]))
        # Fewer rows than asked is the complete answer once every candidate was ranked.
        if len(rows) >= op.limit or candidates < n:
            return [_item(r) for r in rows]
        if n >= HNSW_EF_MAX:
            return None
        n = min(n * 4, HNSW_EF_MAX)


def _item(row: dict[str, Any]) -> SearchItem:
    value = row["value"]
    if not isinstance(value, dict):
        value = json.loads(value)
    return SearchItem(
        namespace=tuple(str(row["prefix"]).split(".")),
        key=row["key"],
        value=value,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        score=float(row["score"]),
    )


async def index_large_users(
    conn: psycopg.AsyncConnection[Any], *, min_memories: int = MIN_MEMORIES
) -> list[str]:
    """Give every user with at least `min_memories` vectors an HNSW index of their own.

    Idempotent; builds only the missing indexes, one at a time, `CONCURRENTLY` (`conn` must be
    in autocommit mode). Returns the labels of the users indexed now.
    """
    pattern = escape_like(ROOT) + ".%"
    cur = conn.cursor(row_factory=dict_row)
    rows = await (await cur.execute(_LARGE_USERS, (pattern, min_memories))).fetchall()
    existing = {r["indexname"] for r in await (await cur.execute(_USER_INDEXES)).fetchall()}
    built: list[str] = []
    for row in rows:
        label = str(row["label"])
        name = user_index_name(label)
        if name in existing:
            continue
        logger.info("building the vector index of %s (%s vectors)", label, row["vectors"])
        await conn.execute(
            sql.SQL(_CREATE_USER_INDEX).format(
                name=sql.Identifier(name),
                pattern=sql.Literal(escape_like(f"{ROOT}.{label}") + ".%"),
            )
        )
        built.append(label)
    if built:
        await conn.execute("ANALYZE store_vectors")
    return built
