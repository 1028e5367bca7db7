"""Recall: a user's current memories ranked for a query, over any `BaseStore`.

Candidates come from BM25 (on PostgreSQL one SQL statement over the inverted index, on another
store scored here over the user's items) and from the vector index; `ranking.fuse` ranks them
with recency and importance. Both searches are exact scans of one user's rows. On PostgreSQL
with a semantic weight, `persistence.hybrid` runs the two (the query embedded while BM25 runs);
elsewhere the vector search is the store's own. What recall returns is read: its TTL, if the
store gives memories one, is renewed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from langgraph.store.base import BaseStore, Item, Result, SearchItem, SearchOp

from memory_agent.errors import InvalidInputError
from memory_agent.memory.dates import day, parse_when, query_dates
from memory_agent.memory.lexical import K1, B, bm25_scores, query_terms
from memory_agent.memory.ranking import Candidate, RecallWeights, fuse
from memory_agent.memory.records import (
    KIND_NAMESPACE,
    MEMORY_KINDS,
    MEMORY_SCOPE,
    MemoryBudget,
    MemoryKind,
    MemoryRecord,
)
from memory_agent.persistence import bm25, hybrid
from memory_agent.persistence import store_sql as pg
from memory_agent.persistence.namespaces import user_namespace, user_prefix
from memory_agent.utils import concurrently


async def recall(
    store: BaseStore,
    weights: RecallWeights,
    user_id: str,
    query: str,
    budget: MemoryBudget,
    exclude_thread: str | None,
) -> list[MemoryRecord]:
    """Recent conversation summaries (but `exclude_thread`'s) plus the memories most relevant
    to `query`, in one round of searches (see `MemoryService.recall`)."""
    wanted = budget["conversations"]
    recent = SearchOp(user_namespace(user_id, "conversations"), limit=wanted + 1)
    memories, extra = await search(
        store, weights, user_id, query, budget["memories"], None, [recent] if wanted > 0 else []
    )
    convs = [i for i in (extra[0] if extra else []) if i.key != exclude_thread]
    convs.sort(key=lambda i: str(i.value.get("updated_at", "")), reverse=True)
    return [*(_conversation_record(i) for i in convs[:wanted]), *memories]


async def search(
    store: BaseStore,
    weights: RecallWeights,
    user_id: str,
    query: str,
    limit: int,
    kinds: Sequence[MemoryKind] | None,
    extra: list[SearchOp],
) -> tuple[list[MemoryRecord], list[list[SearchItem]]]:
    """The memories for `query`, and the results of `extra` searches run in the same batch.

    The searches run concurrently with one batch to the store holding `extra`.
    An empty query gives the most recent memories.
    """
    prefix = user_prefix(user_id)
    wanted = tuple(kinds or MEMORY_KINDS)
    ops = list(extra)
    if limit < 1:
        results = await store.abatch(ops) if ops else []
        return [], [cast(list[SearchItem], r) for r in results]
    if not query.strip():
        ops.append(SearchOp(prefix, filter={"scope": MEMORY_SCOPE}, limit=limit))
        results = await store.abatch(ops)
        recent = [i for i in cast(list[SearchItem], results[-1]) if i.value.get("kind") in wanted]
        return (
            [_memory_record(i.key, i.value, None) for i in recent],
            [cast(list[SearchItem], r) for r in results[:-1]],
        )
    n = max(weights.candidates, limit)
    days, words = query_dates(query)
    terms = query_terms(words)
    postgres = pg.postgres(store)
    embeddings = getattr(postgres, "embeddings", None)
    if weights.semantic > 0 and postgres is not None and embeddings is not None:
        # Both searches, the query embedded while BM25 runs (`persistence.hybrid`), beside
        # the `extra` batch.
        namespaces = [user_namespace(user_id, KIND_NAMESPACE[k]) for k in wanted]
        (found, complete), results = await concurrently(
            hybrid.search(
                postgres, embeddings, query, prefix, namespaces, terms, limit=n, k1=K1, b=B
            ),
            _batch(store, ops),
        )
        pool = {
            (f.namespace, f.key): Candidate(
                f.namespace, f.key, f.value, lexical=f.lexical, semantic=f.semantic
            )
            for f in found
        }
    else:
        pool, complete, results = await _separately(
            store, weights, user_id, query, terms, n, wanted, ops
        )
    ranked = fuse(
        pool.values(), weights, limit, lexical_complete=complete, days=days, query_terms=terms
    )
    await pg.renew_ttl(store, [(c.namespace, c.key) for c in ranked])
    return (
        [_memory_record(c.key, c.value, c.score) for c in ranked],
        [cast(list[SearchItem], r) for r in results[: len(extra)]],
    )


async def _separately(
    store: BaseStore,
    weights: RecallWeights,
    user_id: str,
    query: str,
    terms: list[str],
    n: int,
    wanted: tuple[MemoryKind, ...],
    ops: list[SearchOp],
) -> tuple[dict[tuple[tuple[str, ...], str], Candidate], bool, list[Result]]:
    """BM25 beside one batch to the store: `ops`, and its vector search when semantic counts.

    Returns the candidates, whether the BM25 list is every match, and the batch's results.
    """
    semantic = weights.semantic > 0
    if semantic:
        ops = [
            *ops,
            SearchOp(user_prefix(user_id), filter={"scope": MEMORY_SCOPE}, limit=n, query=query),
        ]
    (lexical, complete), results = await concurrently(
        _lexical(store, user_id, terms, n, wanted), _batch(store, ops)
    )
    pool: dict[tuple[tuple[str, ...], str], Candidate] = {}
    for item in lexical:
        pool[(item.namespace, item.key)] = Candidate(
            item.namespace, item.key, item.value, lexical=item.score
        )
    for item in cast(list[SearchItem], results[-1]) if semantic else []:
        # A store without a vector index answers with no scores: nothing to rank by.
        if item.score is None or item.value.get("kind") not in wanted:
            continue
        c = pool.setdefault(
            (item.namespace, item.key), Candidate(item.namespace, item.key, item.value)
        )
        c.semantic = item.score
    return pool, complete, results


async def _batch(store: BaseStore, ops: list[SearchOp]) -> list[Result]:
    return await store.abatch(ops) if ops else []


async def _lexical(
    store: BaseStore, user_id: str, terms: list[str], n: int, kinds: tuple[MemoryKind, ...]
) -> tuple[list[SearchItem], bool]:
    """BM25 candidates, and whether they are every match (not cut by `n`)."""
    if not terms:
        return [], True
    namespaces = [user_namespace(user_id, KIND_NAMESPACE[k]) for k in kinds]
    postgres = pg.postgres(store)
    if postgres is not None:
        found = await bm25.lexical_search(postgres, namespaces, terms, limit=n, k1=K1, b=B)
        return found, len(found) < n
    items = [
        i for ns in namespaces for i in await pg.namespace_items(store, ns, {"scope": MEMORY_SCOPE})
    ]
    docs = [(i.value.get("terms") or {}, float(i.value.get("length") or 0)) for i in items]
    scored = [(s, i) for s, i in zip(bm25_scores(terms, docs), items, strict=True) if s > 0]
    scored.sort(key=lambda p: (-p[0], p[1].key))
    for score, item in scored:
        item.score = score
    return [item for _, item in scored[:n]], len(scored) <= n


def _conversation_record(item: Item) -> MemoryRecord:
    v = item.value
    text = f'Earlier conversation "{v.get("title", "")}": {v.get("summary", "")}'.strip()
    return {
        "kind": "conversation",
        "key": item.key,
        "text": text,
        "score": None,
        "updated_at": str(v.get("updated_at", item.updated_at.isoformat())),
        "thread_id": item.key,
    }


def _memory_record(key: str, v: dict[str, Any], score: float | None) -> MemoryRecord:
    """A stored memory as loaded for a turn."""
    text = str(v.get("text", ""))
    said_at = str(v.get("said_at") or v.get("created_at") or "")
    if v.get("kind") == "episode" and said_at:
        # The model sees when it was said: "yesterday" in it was already made absolute.
        try:
            text = f"[{day(parse_when(said_at))}] {text}"
        except InvalidInputError:
            pass
    return {
        "kind": v.get("kind", "fact"),
        "key": key,
        "text": text,
        "score": score,
        "updated_at": str(v.get("updated_at", "")),
        "said_at": said_at,
        "thread_id": v.get("thread_id"),
        "message_ids": list(v.get("message_ids") or []),
    }
