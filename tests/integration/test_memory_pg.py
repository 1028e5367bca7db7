"""Long-term memory on a real PostgreSQL: supersession through the agent, exact recall for one
user among many, BM25 in SQL equal to BM25 in Python, re-indexing after an embedder change."""

from __future__ import annotations

import psycopg
import pytest
from langgraph.store.memory import InMemoryStore

from memory_agent import Agent, ConfigurationError, open_agent
from memory_agent.agent.manage import memories, reindex_store
from memory_agent.embeddings import HashingEmbeddings
from memory_agent.memory.ranking import RecallWeights
from memory_agent.memory.service import MemoryService
from tests.helpers import episodes, say

pytestmark = pytest.mark.integration


async def test_moving_supersedes_the_city_and_nothing_else(agent: Agent) -> None:
    await say(agent, "ada@example.com", "a-1", "I live in Seoul. I love pizza.", now="2023-05-01")
    await say(agent, "ada@example.com", "a-2", "I moved to Busan yesterday.", now="2023-09-02")
    answer = await say(agent, "ada@example.com", "a-3", "Where do I live?")
    assert "Busan" in answer and "Seoul" not in answer
    service = memories(agent)
    facts = {m["subject"]: m for m in await service.list_memories("ada@example.com")}
    assert facts["preference:pizza"]["version"] == 1
    history = await service.history("ada@example.com", facts["location"]["key"])
    assert [(v["text"], v["thread_id"]) for v in history] == [
        ("The user lives in Seoul.", "a-1"),
        ("The user lives in Busan.", "a-2"),
    ]
    assert history[0]["valid_to"] == history[1]["said_at"] == "2023-09-02T00:00:00+00:00"
    # Provenance: the episode of that turn names its thread, message and (resolved) date.
    moved = [
        e
        for e in await service.list_memories("ada@example.com", kinds=["episode"])
        if "Busan" in e["text"]
    ]
    assert [e["text"] for e in moved] == ["User: I moved to Busan yesterday (2023-09-01)."]
    assert moved[0]["thread_id"] == "a-2" and moved[0]["message_ids"] == history[1]["message_ids"]
    imported = await service.get_conversation("ada@example.com", "a-1")
    assert imported is not None and imported["created_at"].startswith("2023-05-01")


async def test_recall_is_exact_for_one_user_among_many(agent: Agent) -> None:
    service = MemoryService(agent.store, weights=RecallWeights(semantic=1.0))  # type: ignore[arg-type]
    for u in range(25):
        said = episodes([f"I had coffee with friend {i} at cafe {u}" for i in range(12)])
        await service.save_episodes(f"user.{u}", said, thread_id="t")
    for u in (0, 13, 24):
        found = await service.search(f"user.{u}", "coffee with a friend", limit=10)
        assert len(found) == 10
        assert all(r["text"].endswith(f"at cafe {u}") for r in found)


async def test_bm25_in_sql_ranks_as_bm25_in_python(agent: Agent) -> None:
    texts = [
        "I adopted a dog named Rex last spring",
        "my dog loves the beach and long walks",
        "we went hiking in the mountains with the dog",
        "I started painting sunsets",
        "painting is how I relax after work",
        "the beach at sunset is my favorite place",
    ]
    said = episodes(texts, speaker="Jo")
    lexical = RecallWeights(semantic=0, importance=0)
    pg_service = MemoryService(agent.store, weights=lexical)  # type: ignore[arg-type]
    py_service = MemoryService(InMemoryStore(), weights=lexical)
    for service in (pg_service, py_service):
        await service.save_episodes("jo", said, thread_id="t", when="2023-01-01")
    for query in ("dog at the beach", "painting sunsets", "hiking"):
        on_pg = await pg_service.search("jo", query, limit=6)
        in_py = await py_service.search("jo", query, limit=6)
        assert [(r["text"], round(r["score"] or 0, 6)) for r in on_pg] == [
            (r["text"], round(r["score"] or 0, 6)) for r in in_py
        ]
        assert on_pg


class TinyEmbeddings(HashingEmbeddings):
    """Another embedder (fewer dimensions, another name) for the re-index test."""

    name = "test:tiny-hashing"

    def __init__(self) -> None:
        super().__init__(dims=64)


async def test_changing_the_embedder_needs_a_reindex_then_works(database_url: str) -> None:
    async with open_agent(database_url) as agent:
        await say(agent, "kim", "k-1", "My name is Kim and I love sailing.")
    with pytest.raises(ConfigurationError, match="memories reindex"):
        async with open_agent(database_url, embeddings=TinyEmbeddings()):
            pass
    receipt = await reindex_store(database_url, embeddings=TinyEmbeddings())
    assert receipt["dims"] == 64 and receipt["items"] >= 4
    assert receipt["previous"] == {"name": "offline:hashing-v1", "dims": 512}
    with psycopg.connect(database_url) as conn:
        dims = conn.execute("SELECT DISTINCT vector_dims(embedding) FROM store_vectors").fetchall()
    assert dims == [(64,)]
    async with open_agent(database_url, embeddings=TinyEmbeddings()) as agent:
        service = MemoryService(agent.store, weights=RecallWeights(lexical=0))  # type: ignore[arg-type]
        found = await service.search("kim", "sailing", limit=3)
        assert found and found[0]["text"] in {"The user loves sailing.", "The user's name is Kim."}
        assert "Kim" in await say(agent, "kim", "k-2", "What is my name?")


INDEX_FROM_STORE = """
SELECT s.prefix, s.key, t.key AS term, t.value::text::real AS tf
  FROM store s, jsonb_each(s.value->'terms') AS t
 WHERE s.value->>'scope' = 'memory'
"""


def assert_index_matches_store(url: str) -> None:
    with psycopg.connect(url) as conn:
        expected = set(conn.execute(INDEX_FROM_STORE).fetchall())
        indexed = set(conn.execute("SELECT prefix, key, term, tf FROM memory_terms").fetchall())
        stats = dict(
            conn.execute(
                "SELECT prefix, count(*) FROM store WHERE value->>'scope' = 'memory' "
                "GROUP BY prefix"
            ).fetchall()
        )
        counted = {p: n for p, n in conn.execute("SELECT prefix, docs FROM memory_term_stats") if n}
    assert indexed == expected and expected
    assert counted == stats


async def test_the_inverted_index_follows_every_write(agent: Agent, database_url: str) -> None:
    await say(agent, "eve", "e-1", "I live in Lyon. I love cheese. My dog's name is Pip.")
    await say(agent, "eve", "e-2", "I moved to Nantes.")
    service = memories(agent)
    assert_index_matches_store(database_url)
    location = next(m for m in await service.list_memories("eve") if m["subject"] == "location")
    await service.edit_memory("eve", location["key"], "The user lives in Brest.")
    [episode, *_] = await service.list_memories("eve", kinds=["episode"])
    await service.edit_memory("eve", episode["key"], "User: I live in Brest, in fact.")
    assert_index_matches_store(database_url)
    await service.delete_memory("eve", location["key"])
    assert_index_matches_store(database_url)
    found = await service.search("eve", "Brest", limit=5)
    assert [r["kind"] for r in found] == ["episode"]
    await service.forget_user("eve")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM memory_terms").fetchone() == (0,)
        assert conn.execute("SELECT sum(docs) FROM memory_term_stats").fetchone() == (0,)


HOBBIES = [
    "I adopted a dog named Rex last spring",
    "my dog loves the beach and long walks",
    "we went hiking in the mountains with the dog",
    "I started painting sunsets",
    "painting is how I relax after work",
    "the beach at sunset is my favorite place",
    "the mountains were cold but the hike was worth it",
    "Rex chased a seagull on the beach",
]


async def test_both_searches_in_one_call_rank_as_the_stores_own_searches(agent: Agent) -> None:
    """On PostgreSQL, BM25 and the vector search run in `persistence.hybrid`; another store runs
    the store's own vector search. Same memories, same embedder: the same ranking and scores."""
    said = episodes(HOBBIES, speaker="Jo")
    both = RecallWeights(semantic=1.0, importance=0)
    embedder = HashingEmbeddings()
    memory_store = InMemoryStore(
        index={"embed": embedder, "dims": embedder.dims, "fields": ["text"]}
    )
    pg_service = MemoryService(agent.store, weights=both)  # type: ignore[arg-type]
    py_service = MemoryService(memory_store, weights=both)
    for service in (pg_service, py_service):
        await service.save_episodes("jo", said, thread_id="t", when="2023-01-01")
        await service.save_episodes("other", said, thread_id="t", when="2023-01-01")
    for query in ("dog at the beach", "painting sunsets", "hiking in the cold mountains", "Rex"):
        on_pg = await pg_service.search("jo", query, limit=5)
        in_py = await py_service.search("jo", query, limit=5)
        assert [(r["key"], round(r["score"] or 0, 4)) for r in on_pg] == [
            (r["key"], round(r["score"] or 0, 4)) for r in in_py
        ]
        assert len(on_pg) == 5  # the vector search found memories BM25 did not


@pytest.mark.parametrize("semantic", [0.0, 1.0])
async def test_recall_renews_the_ttl_of_what_it_returns(database_url: str, semantic: float) -> None:
    async with open_agent(database_url, memory_ttl="7d") as agent:
        service = MemoryService(agent.store, weights=RecallWeights(semantic=semantic))  # type: ignore[arg-type]
        await service.save_episodes("kim", episodes(HOBBIES), thread_id="t")
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE store SET expires_at = now() + interval '1 minute'")
        found = await service.search("kim", "painting sunsets", limit=2)
        assert len(found) == 2
        with psycopg.connect(database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT key, expires_at > now() + interval '6 days' FROM store "
                "WHERE prefix = 'users.kim.episodes'"
            ).fetchall()
        renewed = {key for key, long in rows if long}
        assert renewed == {r["key"] for r in found}
