"""Per-user vector search: same answers as the store's exact query, complete, index or not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from langgraph.store.base import PutOp, SearchOp
from langgraph.store.postgres import AsyncPostgresStore
from psycopg import sql

from memory_agent.memory.ranking import RecallWeights
from memory_agent.memory.service import MemoryService
from memory_agent.persistence import hybrid
from memory_agent.persistence.namespaces import encode_label, user_namespace, user_prefix
from memory_agent.persistence.opening import open_store
from memory_agent.persistence.pool import open_pool
from memory_agent.persistence.store import ExactSearchStore
from memory_agent.persistence.vector_search import index_large_users, user_index_name

pytestmark = pytest.mark.integration

USERS = ("a_b%c@example.com", "plain")
WORDS = "river garden violin harbor forest silver meadow juniper lantern orange".split()


def texts(n: int) -> list[str]:
    return [f"The user's {WORDS[i % 10]} {WORDS[(i * 7) % 10]} note {i}." for i in range(n)]


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ExactSearchStore]:
    async with open_pool(database_url) as pool:
        store = await open_store(pool)
        for user in USERS:
            ops = [
                PutOp(user_namespace(user, "facts"), f"k{i}", {"scope": "memory", "text": t})
                for i, t in enumerate(texts(300))
            ]
            # Conversation records that match better than any memory: the filter drops them.
            ops += [
                PutOp(
                    user_namespace(user, "conversations"),
                    f"t{i}",
                    {"scope": "conversation", "text": "river river river garden " * 3},
                )
                for i in range(40)
            ]
            await store.abatch(ops)
        yield store


async def exact(store: ExactSearchStore, op: SearchOp) -> list[Any]:
    return (await AsyncPostgresStore.abatch(store, [op]))[0]  # type: ignore[return-value]


def scores(items: list[Any]) -> list[float]:
    return [round(i.score, 5) for i in items]


@pytest.mark.parametrize("user", USERS)
async def test_same_answers_as_the_exact_query(store: ExactSearchStore, user: str) -> None:
    for query in ("river garden", "silver note 17", "juniper lantern"):
        op = SearchOp(user_prefix(user), {"scope": "memory"}, 6, 0, query)
        mine = (await store.abatch([op]))[0]
        ref = await exact(store, op)
        assert len(mine) == 6  # type: ignore[arg-type]
        assert scores(mine) == scores(ref)  # type: ignore[arg-type]
        assert all(i.value["scope"] == "memory" for i in mine)  # type: ignore[union-attr]
        assert all(i.namespace[1] == encode_label(user) for i in mine)  # type: ignore[union-attr]


async def test_complete_even_when_the_filter_rejects_the_best_candidates(
    store: ExactSearchStore,
) -> None:
    # 40 conversation records outrank every memory; 60 memories are asked for.
    op = SearchOp(user_prefix("plain"), {"scope": "memory"}, 60, 0, "river river garden")
    mine = (await store.abatch([op]))[0]
    assert scores(mine) == scores(await exact(store, op))  # type: ignore[arg-type]
    assert len(mine) == 60  # type: ignore[arg-type]


async def test_a_large_users_own_index_is_used_and_complete(
    store: ExactSearchStore, database_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        built = await index_large_users(conn, min_memories=300)
        assert set(built) == {encode_label(u) for u in USERS}
        assert await index_large_users(conn, min_memories=300) == []  # idempotent
    with psycopg.connect(database_url) as conn:
        names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes")}
    assert {user_index_name(encode_label(u)) for u in USERS} <= names
    for user in USERS:
        for query in ("river garden", "meadow forest note"):
            op = SearchOp(user_prefix(user), {"scope": "memory"}, 6, 0, query)
            mine = (await store.abatch([op]))[0]
            assert len(mine) == 6  # type: ignore[arg-type]
            assert all(i.value["scope"] == "memory" for i in mine)  # type: ignore[union-attr]
            # Approximate, but on this small index it finds the exact best.
            assert scores(mine)[0] == scores(await exact(store, op))[0]  # type: ignore[arg-type]


async def test_other_searches_go_to_the_store_query(store: ExactSearchStore) -> None:
    recent = SearchOp(user_namespace("plain", "facts"), None, 5, 0, None)
    ranged = SearchOp(user_prefix("plain"), {"scope": {"$ne": "conversation"}}, 5, 0, "river")
    found = await store.abatch([recent, ranged])
    assert len(found[0]) == 5  # type: ignore[arg-type]
    assert scores(found[1]) == scores(await exact(store, ranged))  # type: ignore[arg-type]


async def test_recall_of_a_large_user_reads_their_own_index(
    store: ExactSearchStore, database_url: str
) -> None:
    """Recall's vector statement (`persistence.hybrid`) is planned on the user's HNSW index and
    still returns only that user's current memories."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await index_large_users(conn, min_memories=300)
    user = USERS[0]
    vector = await store.embeddings.aembed_query("river garden")  # type: ignore[union-attr]
    statement = hybrid.semantic_query(
        user_prefix(user), [user_namespace(user, "facts")], vector, limit=20, fetch=40
    )
    with psycopg.connect(database_url) as conn:
        conn.execute("SET enable_seqscan = off")  # a tiny table: the planner would scan it
        plan = "\n".join(r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + statement))
    assert user_index_name(encode_label(user)) in plan
    service = MemoryService(store, weights=RecallWeights(semantic=1.0))
    found = await service.search(user, "river garden", limit=12)
    assert len(found) == 12
    assert {r["key"] for r in found} <= {f"k{i}" for i in range(300)}


async def test_recall_looks_past_the_users_other_rows(store: ExactSearchStore) -> None:
    """40 conversation records outrank every memory: recall's vector search (first fetching
    twice the rows it wants under the user's prefix) widens until it has its 30 memories, the
    same as the store's exact query."""
    user = "plain"
    query = "river river garden"
    found, complete = await hybrid.search(
        store,
        store.embeddings,  # type: ignore[arg-type]
        query,
        user_prefix(user),
        [user_namespace(user, "facts")],
        [],
        limit=30,
        k1=1.2,
        b=0.75,
    )
    ref = await exact(store, SearchOp(user_prefix(user), {"scope": "memory"}, 30, 0, query))
    assert complete and len(found) == 30
    by_distance = sorted(found, key=lambda f: (-(f.semantic or 0), f.key))
    assert [round(f.semantic or 0, 5) for f in by_distance] == scores(ref)
