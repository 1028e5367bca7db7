"""Recall's two searches on PostgreSQL, overlapped: the query is embedded while BM25 runs.

With a neural embedder, recall used to run BM25 (`bm25.lexical_search`) beside one store
batch that embedded the query and then ran `vector_search.search` (a statement built for any
filter: two candidate branches, a widening loop). `search` here starts BM25 first, embeds the
query in the meantime, and then runs one lean vector statement over the user's kind namespaces
on a second connection; the two lists are merged, each memory once with both raw scores.
`benchmarks/locomo.py --embedder local` measured recall p50 13.1 -> 7.6 ms (README).

Both searches stay exact, as before. The vector statement ranks the user's rows of
`store_vectors` found through their prefix, or, for a user given an HNSW index of their own by
`vector_search.index_large_users`, that index (approximate, as there: the literal `LIKE`
predicate lets the planner prove the index's), and keeps the kind namespaces' rows among them,
looking further when the user's other rows took too many places (complete, as
`vector_search.search` is). Everything in it is a literal, safely quoted
(see `vector_search._statement`), so the `SET` of `hnsw.ef_search` rides in the same round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from langchain_core.embeddings import Embeddings
from langgraph.store.postgres import AsyncPostgresStore
from psycopg import sql
from psycopg.rows import dict_row

from memory_agent.errors import database_error
from memory_agent.persistence.bm25 import lexical_search
from memory_agent.persistence.store_sql import connection, fetch_sizes
from memory_agent.persistence.vector_search import HNSW_EF_MAX, HNSW_MIN_EF
from memory_agent.persistence.vectors import vector_text
from memory_agent.utils import concurrently, escape_like

_SET_EF = "SET hnsw.ef_search = {ef}"
_SEMANTIC = """
WITH q AS MATERIALIZED (SELECT {vector}::vector AS v),
nearest AS MATERIALIZED (
    SELECT prefix, key, embedding <=> (SELECT v FROM q) AS distance
    FROM store_vectors
    WHERE {where}
    ORDER BY embedding <=> (SELECT v FROM q)
    LIMIT {fetch}
),
semantic AS MATERIALIZED (
    SELECT n.prefix, n.key, 1 - n.distance AS score FROM nearest n
    JOIN store st ON st.prefix = n.prefix AND st.key = n.key
    WHERE n.prefix = ANY({namespaces}) AND (st.expires_at IS NULL OR st.expires_at > now())
    ORDER BY n.distance, n.prefix, n.key
    LIMIT {limit}
)
SELECT f.fetched, s.prefix, s.key, st.value - 'terms' - 'context' AS value, s.score
FROM (SELECT count(*) AS fetched FROM nearest) AS f
LEFT JOIN (semantic s JOIN store st ON st.prefix = s.prefix AND st.key = s.key) ON TRUE
"""
"""The nearest `fetch` rows under the user's prefix, then the best `limit` of the kind
namespaces among them that have not expired. The scan's only predicate is the prefix pattern,
the one a user's HNSW index is built on: with the namespaces in it too, the planner misjudged
how many rows match and scanned every vector of a 10k-memory user instead of using their index
(`memory_scale.py`,
`recall_vectors_p50_ms` at 10k: 13.0 ms that way, 5.5 ms this way). `fetched` tells whether
`fetch` cut the scan: see `search`."""

FETCH_FACTOR = 2
"""Rows first fetched per wanted one: the user's conversation records, superseded versions and
expired memories share the prefix and may take some of the nearest places."""


@dataclass
class Found:
    """A memory found by either search, with its raw scores."""

    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    lexical: float | None
    semantic: float | None


def semantic_query(
    user_prefix: tuple[str, ...],
    namespaces: Sequence[tuple[str, ...]],
    vector: Sequence[float],
    limit: int,
    fetch: int | None = None,
) -> sql.Composed:
    """The vector search: the `limit` memories of `namespaces` nearest to `vector`, with values,
    among the `fetch` nearest rows under `user_prefix` (None: all of them, no cut)."""
    pattern = sql.SQL("prefix LIKE {} ESCAPE '\\'").format(
        sql.Literal(escape_like(".".join(user_prefix)) + ".%")
    )
    prefixes = sql.Literal([".".join(ns) for ns in namespaces])
    return sql.SQL(_SEMANTIC).format(
        vector=sql.Literal(vector_text(vector)),
        where=pattern
        if fetch is not None
        else pattern + sql.SQL(" AND prefix = ANY({})").format(prefixes),
        fetch=sql.Literal(fetch) if fetch is not None else sql.SQL("ALL"),
        namespaces=prefixes,
        limit=sql.Literal(limit),
    )


async def search(
    store: AsyncPostgresStore,
    embeddings: Embeddings,
    query: str,
    user_prefix: tuple[str, ...],
    namespaces: Sequence[tuple[str, ...]],
    terms: Sequence[str],
    *,
    limit: int,
    k1: float,
    b: float,
) -> tuple[list[Found], bool]:
    """The best `limit` memories of `namespaces` (all under `user_prefix`) by BM25 over `terms`,
    and the best `limit` by cosine similarity to `query` embedded by `embeddings`, merged; and
    whether the BM25 list holds every match (it was not cut by `limit`).

    The query is embedded while PostgreSQL computes BM25; the vector search follows on a
    second connection.

    Raises:
        ConfigurationError: the inverted index is missing (`setup_database` was not run).
        DatabaseUnavailableError: PostgreSQL failed.
    """

    async def semantic() -> list[dict[str, Any]]:
        vector = await embeddings.aembed_query(query)
        try:
            async with connection(store) as conn, conn.cursor(row_factory=dict_row) as cur:
                for fetch in fetch_sizes(limit * FETCH_FACTOR, HNSW_EF_MAX):
                    ef = min(max(fetch or HNSW_EF_MAX, HNSW_MIN_EF), HNSW_EF_MAX)
                    statement = sql.SQL("; ").join(
                        [
                            sql.SQL(_SET_EF).format(ef=sql.Literal(ef)),
                            semantic_query(user_prefix, namespaces, vector, limit, fetch),
                        ]
                    )
                    await cur.execute(statement, prepare=False)
                    cur.nextset()  # past the SET
                    got = await cur.fetchall()  # one row at least, with `fetched`
                    rows = [r for r in got if r["key"] is not None]
                    # Enough rows, or every row was ranked (else the user's other rows took the
                    # places: conversation records, superseded versions, expired memories).
                    if len(rows) >= limit or fetch is None or int(got[0]["fetched"]) < fetch:
                        break
        except psycopg.Error as exc:
            raise database_error(exc, "searching memories") from exc
        return rows

    lexical, nearest = await concurrently(
        lexical_search(store, namespaces, terms, limit=limit, k1=k1, b=b), semantic()
    )
    found = {
        (item.namespace, item.key): Found(item.namespace, item.key, item.value, item.score, None)
        for item in lexical
    }
    for row in nearest:
        namespace = tuple(str(row["prefix"]).split("."))
        hit = found.setdefault(
            (namespace, row["key"]), Found(namespace, row["key"], row["value"], None, None)
        )
        hit.semantic = float(row["score"])
    return list(found.values()), len(lexical) < limit
