"""Recall's two searches on PostgreSQL, overlapped: the query is embedded while BM25 runs.

With a neural embedder, recall used to run BM25 (`store_sql.lexical_search`) beside one store
batch that embedded the query and then ran `vector_search.search` (a statement built for any
filter: two candidate branches, a widening loop). `search` here starts BM25 first, embeds the
query in the meantime, and then runs one lean vector statement over the user's kind namespaces
on a second connection; the two lists are merged, each memory once with both raw scores.
`benchmarks/locomo.py --embedder local` measured recall p50 13.1 -> 9.3 ms (README).

Both searches stay exact, as before. The vector statement ranks the user's rows of
`store_vectors` found through their prefix, or, for a user given an HNSW index of their own by
`vector_search.index_large_users`, that index (approximate, as there: the literal `LIKE`
predicate lets the planner prove the index's). Everything in it is a literal, safely quoted
(see `vector_search._statement`), so the `SET` of `hnsw.ef_search` rides in the same round trip.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from langchain_core.embeddings import Embeddings
from langgraph.store.postgres import AsyncPostgresStore
from psycopg import sql
from psycopg.rows import dict_row

from memory_agent.errors import database_error
from memory_agent.persistence.store_sql import connection, lexical_search
from memory_agent.persistence.vector_search import HNSW_EF_MAX, HNSW_MIN_EF
from memory_agent.persistence.vectors import vector_text
from memory_agent.utils import concurrently, escape_like

_SET_EF = "SET hnsw.ef_search = {ef}"
_SEMANTIC = """
WITH q AS MATERIALIZED (SELECT {vector}::vector AS v),
semantic AS MATERIALIZED (
    SELECT prefix, key, 1 - (embedding <=> (SELECT v FROM q)) AS score
    FROM store_vectors
    WHERE prefix LIKE {pattern} ESCAPE '\\' AND prefix = ANY({namespaces})
    ORDER BY embedding <=> (SELECT v FROM q)
    LIMIT {limit}
)
SELECT s.prefix, s.key, st.value - 'terms' - 'context' AS value, s.score
FROM semantic s
JOIN store st ON st.prefix = s.prefix AND st.key = s.key
WHERE st.expires_at IS NULL OR st.expires_at > now()
"""


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
) -> sql.Composed:
    """The vector search: the `limit` memories of `namespaces` nearest to `vector`, with values."""
    return sql.SQL(_SEMANTIC).format(
        vector=sql.Literal(vector_text(vector)),
        pattern=sql.Literal(escape_like(".".join(user_prefix)) + ".%"),
        namespaces=sql.Literal([".".join(ns) for ns in namespaces]),
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
        statement = sql.SQL("; ").join(
            [
                sql.SQL(_SET_EF).format(ef=sql.Literal(min(max(limit, HNSW_MIN_EF), HNSW_EF_MAX))),
                semantic_query(user_prefix, namespaces, vector, limit),
            ]
        )
        try:
            async with connection(store) as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(statement, prepare=False)
                cur.nextset()  # past the SET
                return await cur.fetchall()
        except psycopg.Error as exc:
            raise database_error(exc, "searching memories") from exc

    lexical, nearest = await concurrently(
        lexical_search(store, namespaces, terms, limit=limit, k1=k1, b=b), semantic()
    )
    found = {
        (item.namespace, item.key): Found(item.namespace, item.key, item.value, item.score, None)
        for item in lexical
    }
    for row in nearest:
        namespace = tuple(str(row["prefix"]).split("."))
        value = row["value"] if isinstance(row["value"], dict) else json.loads(row["value"])
        hit = found.setdefault(
            (namespace, row["key"]), Found(namespace, row["key"], value, None, None)
        )
        hit.semantic = float(row["score"])
    return list(found.values()), len(lexical) < limit
