"""BM25 over the inverted index (`memory_terms`, kept by a trigger on the store: see
`store_sql`): one user's best current memories for the query's terms, in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from langgraph.store.base import SearchItem
from langgraph.store.postgres import AsyncPostgresStore
from psycopg.rows import dict_row

from memory_agent.errors import ConfigurationError, database_error
from memory_agent.persistence.store_sql import connection, fetch_sizes

LEXICAL_SEARCH = """
WITH postings AS MATERIALIZED (
    SELECT prefix, key, term, tf::float8 AS tf, len::float8 AS len
    FROM memory_terms
    WHERE prefix = ANY(%(namespaces)s) AND term = ANY(%(terms)s::text[])
),
stats AS MATERIALIZED (
    SELECT coalesce(sum(docs), 0)::float8 AS n,
           greatest(coalesce(sum(total_len) / nullif(sum(docs), 0), 1.0), 1e-9) AS avgdl
    FROM memory_term_stats
    WHERE prefix = ANY(%(namespaces)s)
),
df AS MATERIALIZED (
    SELECT term, count(*)::float8 AS df FROM postings GROUP BY term
),
lexical AS MATERIALIZED (
    SELECT p.prefix, p.key,
           sum(ln(1 + (s.n - df.df + 0.5) / (df.df + 0.5)) * p.tf * (%(k1)s + 1)
               / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.len / s.avgdl))) AS score
    FROM postings p JOIN df USING (term) CROSS JOIN stats s
    GROUP BY p.prefix, p.key
    ORDER BY score DESC, p.key
    LIMIT %(fetch)s
),
live AS MATERIALIZED (
    SELECT l.prefix, l.key, st.value - 'terms' - 'context' AS value, st.created_at,
           st.updated_at, l.score
    FROM lexical l
    JOIN store st ON st.prefix = l.prefix AND st.key = l.key
    WHERE st.expires_at IS NULL OR st.expires_at > now()
    ORDER BY l.score DESC, l.key
    LIMIT %(limit)s
)
SELECT f.fetched, l.*
FROM (SELECT count(*) AS fetched FROM lexical) AS f LEFT JOIN live l ON TRUE
ORDER BY l.score DESC, l.key
"""
"""BM25 (same formula and parameters as `lexical.bm25_scores`) over the postings of the query's
terms in one user's namespaces (equality on the index's leading columns, so exact and
complete for one user among many): the best `fetch` (NULL: all), of which the best `limit`
not expired, with their values (the search-only fields stay in the database). `fetched` says
whether `fetch` cut the ranking: see `lexical_search`."""

MAX_FETCH = 10_000
"""The most BM25 candidates ranked before the expiry filter; beyond it, all of them."""


async def lexical_search(
    store: AsyncPostgresStore,
    namespaces: Sequence[tuple[str, ...]],
    terms: Sequence[str],
    *,
    limit: int,
    k1: float,
    b: float,
) -> list[SearchItem]:
    """The best `limit` current memories of `namespaces` by BM25 (`k1`, `b`) for `terms`.

    Raises:
        ConfigurationError: the inverted index is missing (the database was not set up by
            `setup_database`).
        DatabaseUnavailableError: PostgreSQL failed.
    """
    if not terms:
        return []
    params: dict[str, Any] = {
        "namespaces": [".".join(ns) for ns in namespaces],
        "terms": list(terms),
        "k1": k1,
        "b": b,
        "limit": limit,
    }
    try:
        async with connection(store) as conn, conn.cursor(row_factory=dict_row) as cur:
            for fetch in fetch_sizes(limit, MAX_FETCH):
                await cur.execute(LEXICAL_SEARCH, {**params, "fetch": fetch})
                got = await cur.fetchall()  # one row at least, with `fetched`
                rows = [r for r in got if r["key"] is not None]
                # Enough live ones, or every match was ranked (else expired memories, hidden
                # until `prune` deletes them, took the places: rank more).
                if len(rows) >= limit or fetch is None or int(got[0]["fetched"]) < fetch:
                    break
    except psycopg.errors.UndefinedTable as exc:
        raise ConfigurationError(
            "the memory index is missing: run `memory-agent db setup` (or setup_database)"
        ) from exc
    except psycopg.Error as exc:
        raise database_error(exc, "searching memories") from exc
    return [
        SearchItem(
            namespace=tuple(row["prefix"].split(".")),
            key=row["key"],
            value=row["value"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            score=float(row["score"]),
        )
        for row in rows
    ]
