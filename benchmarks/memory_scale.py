"""Recall at scale: one user's memory search in a store of about a million memories.

Three measured users hold 1k, 10k and 100k memories (facts, preferences, entities with real
offline embeddings and their BM25 terms) and 20 conversation records each; bystanders fill the
store to about 1M memories (100 each, their vectors drawn from a pool of real embeddings and
their terms from the same made-up vocabulary, inserted server-side to keep the build within
minutes; loaded in rounds interleaved with the measured users so that no one's rows sit
together on disk). Each user is measured three ways:
- `recall_*`: the whole `MemoryService.recall` the planning node makes (a "recall" turn's
  budget: 5 recent conversations, 12 memories), with the store's default (offline) weights:
  BM25 over the inverted index plus the recent conversations, in one batch;
- `recall_vectors_*`: the same with the vector signal on (`semantic=1`, as with a neural
  embedder): BM25, the vector search and the recent conversations;
- `p50_ms` / `p95_ms`: the vector search alone, `store.asearch` under the user's prefix, filter
  scope=memory, limit 6, the text embedded by the store (the embedder's own time is reported
  separately as `embed_*`).

Two phases: first every user searched by exact scan (no per-user index), then after
`memory-agent db index` (`vector_search.index_large_users`, users from 5,000 memories get their
own HNSW index). `complete_ratio` is the share of queries that returned 6 results (every user
has more than 6); `recall_at_k` the share of returned items that score at least as well as the
exact 6th best (1.0 for the exact scan, below it for the approximate index).

    python benchmarks/memory_scale.py [--quick] [--total 1000000] [--largest 100000]

`--total` and `--largest` shrink the store and the largest user when a full build takes too
long on a small machine (the JSON says which sizes ran).
"""

from __future__ import annotations

import random
import time
from typing import Any

import psycopg
from common import arguments, database, emit, log, machine, median, ms, percentile, run
from langgraph.store.base import PutOp, SearchOp
from langgraph.store.postgres import AsyncPostgresStore

from memory_agent.embeddings import resolve_embeddings
from memory_agent.events import now_iso
from memory_agent.memory.conversation import ConversationFields
from memory_agent.memory.dates import query_dates
from memory_agent.memory.lexical import K1, B, query_terms, stem
from memory_agent.memory.ranking import RecallWeights
from memory_agent.memory.records import MemoryBudget, with_terms
from memory_agent.memory.service import MemoryService, memory_key
from memory_agent.persistence.bm25 import lexical_search
from memory_agent.persistence.namespaces import user_namespace, user_prefix
from memory_agent.persistence.opening import open_store
from memory_agent.persistence.pool import open_pool
from memory_agent.persistence.store import ExactSearchStore
from memory_agent.persistence.vector_search import MIN_MEMORIES, index_large_users
from memory_agent.persistence.vectors import vector_text

K = 6
ROUNDS = 10
BYSTANDER_MEMORIES = 100
VECTOR_POOL = 2_000
WORD_POOL = 5_000
BYSTANDER_TERMS = 8
CONVERSATIONS = 20
BUDGET: MemoryBudget = {"conversations": 5, "memories": 12}
"""A "recall" turn's budget (`intent.budget_for` with the default context): the largest."""

_POOL_TABLE = "CREATE TEMP TABLE vector_pool (id int PRIMARY KEY, embedding vector)"
_WORD_TABLE = "CREATE TEMP TABLE word_pool (id int PRIMARY KEY, word text)"
# Each bystander memory gets BYSTANDER_TERMS terms of the measured users' vocabulary, so the
# inverted index holds other users' postings of the very terms the measured users search for.
_BYSTANDER_ROWS = """
INSERT INTO store (prefix, key, value, created_at, updated_at)
SELECT 'users.bystander-' || (g / %(per)s) || '.facts', 'k' || g,
       jsonb_build_object('scope', 'memory', 'kind', 'fact', 'subject', 's' || g,
                          'text', 'A bystander memory number ' || g || '.',
                          'terms', t.terms, 'length', %(terms)s),
       now(), now()
FROM generate_series(%(lo)s, %(hi)s - 1) AS g
CROSS JOIN LATERAL (
    SELECT jsonb_object_agg(w.word, 1) AS terms
    FROM generate_series(1, %(terms)s) AS i
    JOIN word_pool w ON w.id = (g::bigint * 7919 + i * 104729) %% %(words)s
) AS t
"""
_BYSTANDER_VECTORS = """
INSERT INTO store_vectors (prefix, key, field_name, embedding, created_at, updated_at)
SELECT 'users.bystander-' || (g / %(per)s) || '.facts', 'k' || g, 'text', p.embedding, now(), now()
FROM generate_series(%(lo)s, %(hi)s - 1) AS g JOIN vector_pool p ON p.id = g %% %(pool)s
"""


_SYLLABLES = "ka lo mi re su ta ne vi do ra po li fe gu sha mo ni ta be zo".split()
_RELATIONS = ("sister", "colleague", "neighbour", "dentist", "cousin", "landlord", "coach")
_THINGS = ("favourite dish", "bike", "garden", "book club", "car", "laptop", "running route")
_KINDS = (("fact", "facts"), ("preference", "preferences"), ("entity", "entities"))


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))


def memory_ops(user: str, count: int, seed: int) -> list[PutOp]:
    """`count` distinct memories of one user: each names its own things (names and places are
    made-up words), as a real user's memories do, so that a question has a clear answer."""
    rng = random.Random(seed)
    now = now_iso()
    ops: list[PutOp] = []
    for i in range(count):
        kind, ns_kind = _KINDS[i % len(_KINDS)]
        a, b, c = _word(rng), _word(rng), _word(rng)
        if i % 2:
            subject = f"{rng.choice(_RELATIONS)} {a}"
            text = f"The user's {subject.split()[0]} {a.capitalize()} lives in {b} near {c}."
        else:
            subject = f"{rng.choice(_THINGS)} {a}"
            text = f"The user's {subject.rsplit(' ', 1)[0]} is the {a} {b}, bought in {c}."
        value = {
            "scope": "memory",
            "kind": kind,
            "subject": subject,
            "text": text,
            "thread_id": f"seed-{i % 50}",
            "message_ids": [],
            "created_at": now,
            "updated_at": now,
        }
        key = memory_key(f"{subject} {i}")
        ops.append(PutOp(user_namespace(user, ns_kind), key, with_terms(value)))
    return ops


def query_texts(ops: list[PutOp], rng: random.Random, n: int) -> list[str]:
    """Questions about memories the user has (the names in them), asked in other words."""
    out: list[str] = []
    for op in rng.sample(ops, min(n, len(ops))):
        words = str(op.value["text"]).rstrip(".").split()
        name = (words[3] if words[2] in _RELATIONS else words[-4]).rstrip(",")
        forms = ("Where does {n} live?", "What do you know about {n}?", "Tell me about {n}.")
        out.append(rng.choice(forms).format(n=name))
    return out


async def copy_user(
    conn: psycopg.AsyncConnection[Any], user: str, ops: list[Any], emb: Any
) -> None:
    """Bulk-load one user's memories with their real embeddings (COPY, as the store stores
    them: one `store` row and one `store_vectors` row per memory)."""
    vectors = emb.embed_documents([op.value["text"] for op in ops])
    async with conn.cursor() as cur:
        async with cur.copy(
            "COPY store (prefix, key, value, created_at, updated_at) FROM STDIN"
        ) as copy:
            for op in ops:
                await copy.write_row(
                    (
                        ".".join(op.namespace),
                        op.key,
                        psycopg.types.json.Jsonb(op.value),
                        "now",
                        "now",
                    )
                )
        async with cur.copy(
            "COPY store_vectors (prefix, key, field_name, embedding, created_at, updated_at) "
            "FROM STDIN"
        ) as copy:
            for op, vector in zip(ops, vectors, strict=True):
                await copy.write_row(
                    (".".join(op.namespace), op.key, "text", vector_text(vector), "now", "now")
                )


async def build(url: str, per_user_ops: dict[str, list[PutOp]], total: int, emb: Any) -> int:
    bystanders = max(0, total - sum(len(ops) for ops in per_user_ops.values()))
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(_POOL_TABLE)
        pool_texts = [str(op.value["text"]) for op in memory_ops("pool", VECTOR_POOL, seed=99)]
        async with conn.cursor() as cur, cur.copy("COPY vector_pool FROM STDIN") as copy:
            for i, v in enumerate(emb.embed_documents(pool_texts)):
                await copy.write_row((i, vector_text(v)))
        await conn.execute(_WORD_TABLE)
        rng = random.Random(5)
        words = sorted({stem(_word(rng)) for _ in range(WORD_POOL * 2)})[:WORD_POOL]
        async with conn.cursor() as cur, cur.copy("COPY word_pool FROM STDIN") as copy:
            for i, w in enumerate(words):
                await copy.write_row((i, w))
        for r in range(ROUNDS):
            lo, hi = bystanders * r // ROUNDS, bystanders * (r + 1) // ROUNDS
            params = {
                "lo": lo,
                "hi": hi,
                "per": BYSTANDER_MEMORIES,
                "pool": VECTOR_POOL,
                "words": len(words),
                "terms": BYSTANDER_TERMS,
            }
            await conn.execute(_BYSTANDER_ROWS, params)
            await conn.execute(_BYSTANDER_VECTORS, params)
            for user, ops in per_user_ops.items():
                part = ops[len(ops) * r // ROUNDS : len(ops) * (r + 1) // ROUNDS]
                if part:
                    await copy_user(conn, user, part, emb)
            log(f"build round {r + 1}/{ROUNDS}")
        await conn.execute("VACUUM (ANALYZE) store")
        await conn.execute("VACUUM (ANALYZE) store_vectors")
        await conn.execute("VACUUM (ANALYZE) memory_terms")
        row = await (await conn.execute("SELECT count(*) AS n FROM store_vectors")).fetchone()
    return int(row[0]) if row else 0


async def measure(store: ExactSearchStore, user: str, texts: list[str], emb: Any) -> dict[str, Any]:
    latencies: list[float] = []
    embed: list[float] = []
    answers: list[list[Any]] = []
    for text in texts:
        started = time.perf_counter()
        emb.embed_query(text)
        embed.append(ms(time.perf_counter() - started))
        started = time.perf_counter()
        found = await store.asearch(
            user_prefix(user), query=text, filter={"scope": "memory"}, limit=K
        )
        latencies.append(ms(time.perf_counter() - started))
        answers.append(found)
    # The exact answers afterwards: their full scans would evict the index from the cache.
    complete = found_best = 0
    for text, found in zip(texts, answers, strict=True):
        complete += len(found) == K
        exact = (
            await AsyncPostgresStore.abatch(
                store, [SearchOp(user_prefix(user), {"scope": "memory"}, K, 0, text)]
            )
        )[0]
        # Ties are common (memories alike): an item scoring at least the exact k-th best score
        # is as good as any exact one, whichever of the tied items the scan returned.
        kth = min((i.score or 0.0) for i in exact) if exact else 0.0  # type: ignore[union-attr]
        found_best += sum((i.score or 0.0) >= kth - 1e-6 for i in found)
    return {
        "p50_ms": round(percentile(latencies, 50), 3),
        "p95_ms": round(percentile(latencies, 95), 3),
        "embed_p50_ms": round(median(embed), 3),
        "embed_p95_ms": round(percentile(embed, 95), 3),
        "complete_ratio": round(complete / len(texts), 4),
        "recall_at_k": round(found_best / (K * len(texts)), 4),
        "queries": len(texts),
    }


async def measure_recall(
    service: MemoryService, user: str, texts: list[str], weights: RecallWeights
) -> dict[str, Any]:
    """The planning node's whole recall: BM25 (+ vectors if weighted) + recent conversations.

    Complete: the budget's conversations, and its memories (or, with BM25 alone, as many as
    match a word of the query when fewer do).
    """
    service.weights = weights
    for text in texts[:3]:  # warm-up
        await service.recall(user, text, BUDGET)
    latencies: list[float] = []
    found: list[list[Any]] = []
    for text in texts:
        started = time.perf_counter()
        found.append(await service.recall(user, text, BUDGET))
        latencies.append(ms(time.perf_counter() - started))
    complete = 0
    namespaces = [user_namespace(user, kind) for _, kind in _KINDS]
    for text, records in zip(texts, found, strict=True):
        wanted = BUDGET["memories"]
        if weights.semantic == 0:
            terms = query_terms(query_dates(text)[1])
            matches = await lexical_search(
                service.store,  # type: ignore[arg-type]
                namespaces,
                terms,
                limit=wanted,
                k1=K1,
                b=B,
            )
            wanted = len(matches)
        memories = [r for r in records if r["kind"] != "conversation"]
        conversations = len(records) - len(memories)
        complete += len(memories) == wanted and conversations == BUDGET["conversations"]
    return {
        "p50_ms": round(percentile(latencies, 50), 3),
        "p95_ms": round(percentile(latencies, 95), 3),
        "complete_ratio": round(complete / len(texts), 4),
    }


async def add_conversations(service: MemoryService, users: list[str]) -> None:
    for user in users:
        for i in range(CONVERSATIONS):
            record: ConversationFields = {
                "title": f"Conversation {i}",
                "summary": f"The user talked about topic {i}.",
                "last_message": "Thanks!",
                "message_count": 2,
            }
            await service.save_turn(user, f"{user}-thread-{i}", record, [])


async def main() -> None:
    parser = arguments(__doc__ or "")
    parser.add_argument("--total", type=int, help="memories in the store (default 1,000,000)")
    parser.add_argument("--largest", type=int, help="the largest user's memories (100,000)")
    args = parser.parse_args()
    if args.quick:
        sizes = {"scale-1k": 100, "scale-10k": 400, "scale-100k": 1_200}
        total, queries, min_memories = 5_000, 10, 1_000
    else:
        largest = args.largest or 100_000
        sizes = {"scale-1k": 1_000, "scale-10k": 10_000, "scale-100k": largest}
        total, queries, min_memories = args.total or 1_000_000, 100, MIN_MEMORIES
    emb, _ = resolve_embeddings("offline")
    rng = random.Random(11)
    with database() as url:
        started = time.perf_counter()
        async with open_pool(url) as pool:
            store = await open_store(pool, embeddings=emb)
            user_ops = {user: memory_ops(user, n, seed=n) for user, n in sizes.items()}
            stored = await build(url, user_ops, total, emb)
            build_s = time.perf_counter() - started
            log(f"built {stored:,} memories in {build_s:.0f} s")
            service = MemoryService(store)
            offline, with_vectors = service.weights, RecallWeights(semantic=1.0)
            await add_conversations(service, list(sizes))
            runs: list[dict[str, Any]] = []
            for phase in ("exact", "indexed"):
                if phase == "indexed":
                    started = time.perf_counter()
                    async with pool.connection() as conn:
                        await conn.execute("SET maintenance_work_mem = '512MB'")
                        indexed = await index_large_users(conn, min_memories=min_memories)
                    index_s = time.perf_counter() - started
                    log(f"indexed {indexed} in {index_s:.0f} s")
                for user, n in sizes.items():
                    # An exact scan of 100k rows is slow: fewer queries are enough to show it.
                    count = queries if phase == "indexed" or n < 50_000 else max(5, queries // 5)
                    texts = query_texts(user_ops[user], rng, count)
                    await measure(store, user, texts[:3], emb)  # warm-up
                    figures = await measure(store, user, texts, emb)
                    recall = await measure_recall(service, user, texts, offline)
                    both = await measure_recall(service, user, texts, with_vectors)
                    has_index = phase == "indexed" and n >= min_memories
                    runs.append(
                        {
                            "user_memories": n,
                            "total_memories": stored,
                            **figures,
                            **{f"recall_{k}": v for k, v in recall.items()},
                            **{f"recall_vectors_{k}": v for k, v in both.items()},
                            "search": "user HNSW index" if has_index else "exact scan",
                        }
                    )
                    log(f"{phase} {n}: {runs[-1]}")
        info = machine(url)
    final = [r for r in runs[len(sizes) :]]
    result = {
        "benchmark": "memory_scale",
        "runs": final,
        "exact_scan_runs": runs[: len(sizes)],
        "targets": {"p95_ms_max": 10, "recall_p95_ms_max": 10, "complete_ratio": 1.0},
        "met": all(r["p95_ms"] <= 10 and r["complete_ratio"] == 1.0 for r in final),
        "recall_met": all(
            r["recall_p95_ms"] <= 10 and r["recall_complete_ratio"] == 1.0 for r in final
        ),
        "build_s": round(build_s, 1),
        "index_s": round(index_s, 1),
        "k": K,
        "machine": info,
    }
    emit(result)


if __name__ == "__main__":
    run(main)
