"""Adversarial checks of recall's hybrid path (`persistence.hybrid`) on a real PostgreSQL:
isolation of look-alike user ids, equivalence with the in-memory store, the kinds filter,
TTL, users whose other rows crowd the nearest places, and concurrent searches."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from langchain_core.embeddings import Embeddings
from langgraph.store.base import PutOp
from langgraph.store.memory import InMemoryStore

from memory_agent import Agent, ModelError, open_agent
from memory_agent.embeddings import HashingEmbeddings
from memory_agent.memory.ranking import RecallWeights
from memory_agent.memory.service import MemoryService
from memory_agent.persistence import hybrid
from memory_agent.persistence.namespaces import user_namespace, user_prefix
from memory_agent.persistence.opening import open_store
from memory_agent.persistence.pool import open_pool
from tests.helpers import episodes

pytestmark = pytest.mark.integration

WHEN = "2024-03-01"
HYBRID = RecallWeights(semantic=1.0)
LEXICAL = RecallWeights(semantic=0)
# Labels that an unescaped LIKE pattern would confuse: "a_" matches "ab", "a%" ("a%25")
# matches "a%25" ("a%2525"), "a.b" is "a%2Eb", "a%2E" is "a%252E".
LOOKALIKES = ("a", "ab", "a_", "a%", "a%25", "a.b", "a%2E", "ü", "a@example.com", "a\\")


COFFEE = [f"I had coffee with my friend number {i} at the corner cafe." for i in range(6)]


@pytest.mark.parametrize("weights", [HYBRID, LEXICAL], ids=["semantic", "lexical"])
async def test_lookalike_user_ids_never_see_each_other(agent: Agent, weights: Any) -> None:
    service = MemoryService(agent.store, weights=weights)  # type: ignore[arg-type]
    for n, user in enumerate(LOOKALIKES):
        # Everyone says the same; only the thread tells whose a memory is.
        await service.save_episodes(user, episodes(COFFEE), thread_id=f"t{n}", when=WHEN)
    for n, user in enumerate(LOOKALIKES):
        found = await service.search(user, "coffee with a friend at the cafe", limit=20)
        assert len(found) == len(COFFEE), user
        assert {r["thread_id"] for r in found} == {f"t{n}"}, user
        recalled = await service.recall(user, "corner cafe", {"conversations": 0, "memories": 20})
        assert {r["thread_id"] for r in recalled} == {f"t{n}"}, user


CORPUS = [
    "I adopted a dog named Rex last spring.",
    "My dog loves the beach and long walks at sunset.",
    "We went hiking in the mountains with the dog in June.",
    "I started painting sunsets with watercolours.",
    "Painting is how I relax after a long day at work.",
    "The juniper bush in our garden finally bloomed.",
    "Café crème and a croissant is my usual breakfast in Paris.",
    "Meine Großmutter wohnt in der Müllerstraße in München.",
    "東京で寿司を食べました and it was wonderful.",
    "My sister Ana plays the violin in the city orchestra.",
    "I am learning to bake sourdough bread on weekends.",
    "The harbor was foggy when the ferry left for the island.",
]
FACTS = [
    ("pet", "The user has a dog named Rex."),
    ("hobby", "The user paints sunsets."),
    ("city", "The user lives in München near the Müllerstraße."),
    ("breakfast", "The user eats a croissant with café crème."),
]
QUERIES = [
    "the a of",
    "juniper",
    "Where did we go hiking with the dog, and what did my sister play in the orchestra "
    "while I was painting sunsets after a long day at work near the foggy harbor?",
    "Großmutter Müllerstraße",
    "café crème",
    "寿司",
    "sunset",
]


async def fill(service: MemoryService, user: str) -> None:
    await service.save_episodes(user, episodes(CORPUS), thread_id="t", when=WHEN)
    drafts: Any = [{"kind": "fact", "subject": s, "text": t} for s, t in FACTS]
    await service.save_turn(user, "t", None, drafts, message_ids=["m0"], when=WHEN)


def ranked(found: list[Any]) -> list[tuple[float, str, str, str]]:
    """Best first; members of a tie to 4 decimals (float32 vectors on PostgreSQL break exact
    ties by noise) in key order."""
    return sorted((-round(r["score"] or 0.0, 4), r["key"], r["kind"], r["text"]) for r in found)


async def test_hybrid_ranks_as_the_in_memory_store(agent: Agent) -> None:
    embeddings = HashingEmbeddings()
    memory = InMemoryStore(index={"embed": embeddings, "dims": embeddings.dims, "fields": ["text"]})
    on_pg = MemoryService(agent.store, weights=HYBRID)  # type: ignore[arg-type]
    in_py = MemoryService(memory, weights=HYBRID)
    for service in (on_pg, in_py):
        await fill(service, "jo")
    for query in QUERIES:
        for limit in (3, 8, 16):
            pg_found = await on_pg.search("jo", query, limit=limit)
            py_found = await in_py.search("jo", query, limit=limit)
            assert ranked(pg_found) == ranked(py_found), (query, limit)
            scores = [r["score"] for r in pg_found]
            assert scores == sorted(scores, reverse=True), (query, limit)
            assert len(pg_found) == limit, (query, limit)


async def test_kinds_filter_on_the_hybrid_path(agent: Agent) -> None:
    service = MemoryService(agent.store, weights=HYBRID)  # type: ignore[arg-type]
    await fill(service, "jo")
    for query in ("dog named Rex", "croissant café crème", "the a of"):
        facts = await service.search("jo", query, limit=10, kinds=["fact"])
        assert facts and {r["kind"] for r in facts} == {"fact"}, query
        assert len(facts) == len(FACTS), query
        eps = await service.search("jo", query, limit=30, kinds=["episode"])
        assert {r["kind"] for r in eps} == {"episode"} and len(eps) == len(CORPUS), query


def expiry(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT key, expires_at - now() FROM store WHERE prefix LIKE 'users.kim.%'"
        ).fetchall()
    return dict(rows)  # type: ignore[arg-type]


async def test_expired_memories_are_never_returned_and_returned_ones_renew(
    database_url: str,
) -> None:
    async with open_agent(database_url, memory_ttl="7d") as agent:
        service = MemoryService(agent.store, weights=HYBRID)  # type: ignore[arg-type]
        texts = [f"The river garden note number {i} about rivers." for i in range(20)]
        keys = await service.save_episodes("kim", episodes(texts), thread_id="t", when=WHEN)
        expired, alive = keys[:10], keys[10:]
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE store SET expires_at = now() - interval '1 hour' WHERE key = ANY(%s)",
                (expired,),
            )
            conn.execute(
                "UPDATE store SET expires_at = now() + interval '1 day' WHERE key = ANY(%s)",
                (alive,),
            )
        for query in ("river garden note", "rivers", "the a of"):
            found = await service.search("kim", query, limit=15)
            assert not {r["key"] for r in found} & set(expired), query
            assert len(found) == len(alive), query
        left = expiry(database_url)
        day = timedelta(days=1)
        for key in alive:  # every one was returned, so renewed to ~7 days
            assert left[key] > 6 * day, key
        for key in expired:  # never returned: not resurrected
            assert key not in left or left[key] < timedelta(0), key


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    )


async def test_crowded_user_still_gets_limit_memories(agent: Agent) -> None:
    store = agent.store
    service = MemoryService(store, weights=RecallWeights(lexical=0, semantic=1.0, importance=0))  # type: ignore[arg-type]
    user = "crowd"
    near = "river river river garden"
    # 30 real supersessions of one subject, each a version in history.
    for i in range(30):
        draft: Any = {"kind": "fact", "subject": "spot", "text": f"{near} spot {i}."}
        await service.save_turn(user, f"t{i}", None, [draft], when=WHEN)
    # Far more superseded versions and conversation records nearer than any memory.
    ops = [
        PutOp(user_namespace(user, "history"), f"h{i}", {"scope": "history", "text": near})
        for i in range(300)
    ] + [
        PutOp(
            user_namespace(user, "conversations"), f"c{i}", {"scope": "conversation", "text": near}
        )
        for i in range(150)
    ]
    await store.abatch(ops)
    texts = [f"The {w} by the river is lovely, note {i}." for i, w in enumerate(["bench"] * 70)]
    await service.save_episodes(user, episodes(texts), thread_id="e", when=WHEN)
    embeddings = HashingEmbeddings()
    current = {m["key"]: m["text"] for m in await service.list_memories(user)}
    current |= {m["key"]: m["text"] for m in await service.list_memories(user, kinds=["episode"])}
    assert len(current) == 71
    for limit in (5, 60):
        found = await service.search(user, "river garden", limit=limit)
        assert len(found) == limit
        assert {r["key"] for r in found} <= set(current)
        q = embeddings.embed_query("river garden")
        sim = {k: round(cosine(q, embeddings.embed_query(t)), 4) for k, t in current.items()}
        best = sorted(sim.values(), reverse=True)[:limit]
        # The nearest memories first (equal to 4 decimals: float32 ties). Further down, BM25
        # candidates outside the vector list take its lowest score (`ranking.fuse`) and tie.
        assert [sim[r["key"]] for r in found][:5] == best[:5]
        # The vector list alone is the exact nearest `limit` memories, however crowded.
        hits, _ = await hybrid.search(
            store,  # type: ignore[arg-type]
            store.embeddings,  # type: ignore[attr-defined]
            "river garden",
            user_prefix(user),
            [user_namespace(user, k) for k in ("facts", "preferences", "entities", "episodes")],
            [],
            limit=limit,
            k1=1.2,
            b=0.75,
        )
        assert len(hits) == limit
        got = sorted((round(h.semantic or 0.0, 4) for h in hits), reverse=True)
        assert got == best
        assert sorted((sim[h.key] for h in hits), reverse=True) == best


async def test_concurrent_searches_of_twenty_users(database_url: str) -> None:
    users = [f"u{n}@x.org" if n % 2 else f"u{n}_%" for n in range(20)]
    async with open_pool(database_url, max_size=4) as pool:
        store = await open_store(pool)
        service = MemoryService(store, weights=HYBRID)
        for n, user in enumerate(users):
            await service.save_episodes(user, episodes(COFFEE), thread_id=f"t{n}", when=WHEN)
        for _ in range(2):
            results = await asyncio.gather(
                *(service.search(u, "coffee with my friend", limit=10) for u in users)
            )
            for n, found in enumerate(results):
                assert len(found) == len(COFFEE), users[n]
                assert {r["thread_id"] for r in found} == {f"t{n}"}, users[n]


@pytest.mark.parametrize(
    ("near", "live", "query", "semantic"),
    [
        # The vector search: 60 expired memories nearer to the query than any live one.
        (
            "The river river river flows, note {}.",
            "Riverside riverbank walks, entry {}.",
            "river",
            1.0,
        ),
        # BM25: 120 expired memories outrank the live ones for the query's word.
        (
            "Harbor harbor harbor, note {}.",
            "We walked by the old harbor wall, entry {}.",
            "harbor",
            0.0,
        ),
        (
            "Harbor harbor harbor, note {}.",
            "We walked by the old harbor wall, entry {}.",
            "harbor",
            1.0,
        ),
    ],
)
async def test_expired_memories_do_not_hide_live_ones(
    database_url: str, near: str, live: str, query: str, semantic: float
) -> None:
    """Expired memories stay until `prune` deletes them; each search looks past them."""
    async with open_agent(database_url, memory_ttl="7d") as agent:
        service = MemoryService(agent.store, weights=RecallWeights(semantic=semantic))  # type: ignore[arg-type]
        stale = [near.format(i) for i in range(120)]
        expired = await service.save_episodes("kim", episodes(stale), thread_id="x", when=WHEN)
        fresh = [live.format(i) for i in range(10)]
        await service.save_episodes("kim", episodes(fresh), thread_id="y", when=WHEN)
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE store SET expires_at = now() - interval '1 hour' WHERE key = ANY(%s)",
                (expired,),
            )
        found = await service.search("kim", query, limit=8)
        assert len(found) == 8 and {r["thread_id"] for r in found} == {"y"}


class Flaky(Embeddings):
    """Offline vectors, off the event loop (not inlined), failing on demand."""

    name = "offline:hashing-v1"

    def __init__(self) -> None:
        self.inner, self.fail = HashingEmbeddings(), False

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        if self.fail:
            raise ConnectionError("provider unreachable")
        return self.inner.embed_query(text)


async def test_an_embedding_failure_is_a_model_error_and_leaks_nothing(database_url: str) -> None:
    flaky = Flaky()
    async with open_pool(database_url, max_size=2) as pool:
        store = await open_store(pool, embeddings=flaky)
        service = MemoryService(store, weights=HYBRID)
        await service.save_episodes("ada", episodes(COFFEE), thread_id="t", when=WHEN)
        flaky.fail = True
        for _ in range(6):  # more than the pool holds: a leaked connection would hang
            with pytest.raises(ModelError):
                await asyncio.wait_for(service.search("ada", "coffee friend", limit=3), 20)
        flaky.fail = False
        found = await asyncio.wait_for(service.search("ada", "coffee friend", limit=3), 20)
        assert len(found) == 3
