"""Recall at scale: one user's semantic memory search in a store of about a million memories.

Three measured users hold 1k, 10k and 100k memories (facts, preferences, entities with real
offline embeddings); bystanders fill the store to about 1M memories (100 each, their vectors
drawn from a pool of real embeddings, inserted server-side to keep the build within minutes;
loaded in rounds interleaved with the measured users so that no one's rows sit together on
disk). Each query is the memory search the planning node runs: `store.asearch` under the
user's prefix, filter scope=memory, limit 6, the text embedded by the store (the embedder's
own time is reported separately as `embed_*`).

Two phases: first every user searched by exact scan (no per-user index), then after
`memory-agent db index` (`vector_search.index_large_users`, users from 5,000 memories get their
own HNSW index). `complete_ratio` is the share of queries that returned 6 results (every user
has more than 6); `recall_at_k` the share of returned items that score at least as well as the
exact 6th best (1.0 for the exact scan, below it for the approximate index).

    python benchmarks/memory_scale.py [--quick]
"""

from __future__ import annotations

import random
import time
from typing import Any

import psycopg
from common import arguments, database, emit, log, machine, median, ms, percentile, run
from langgraph.store.base import PutOp, SearchOp
from langgraph.store.postgres import AsyncPostgresStore

from memory_agent.events import now_iso
from memory_agent.memory.embeddings import resolve_embeddings
from memory_agent.memory.namespaces import user_namespace, user_prefix
from memory_agent.memory.service import memory_key
from memory_agent.persistence import ExactSearchStore, index_config, open_pool, setup_database
from memory_agent.vector_search import MIN_MEMORIES, index_large_users
from memory_agent.vectors import vector_text

K = 6
ROUNDS = 10
BYSTANDER_MEMORIES = 100
VECTOR_POOL = 2_000

_POOL_TABLE = "CREATE TEMP TABLE vector_pool (id int PRIMARY KEY, embedding vector)"
_BYSTANDER_ROWS = """
INSERT INTO store (prefix, key, value, created_at, updated_at)
SELECT 'users.bystander-' || (g / %(per)s) || '.facts', 'k' || g,
       jsonb_build_object('scope', 'memory', 'kind', 'fact', 'subject', 's' || g,
                          'text', 'A bystander memory number ' || g || '.'),
       now(), now()
FROM generate_series(%(lo)s, %(hi)s - 1) AS g
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
        ops.append(PutOp(user_namespace(user, ns_kind), memory_key(f"{subject} {i}"), value))
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
        for r in range(ROUNDS):
            lo, hi = bystanders * r // ROUNDS, bystanders * (r + 1) // ROUNDS
            params = {"lo": lo, "hi": hi, "per": BYSTANDER_MEMORIES, "pool": VECTOR_POOL}
            await conn.execute(_BYSTANDER_ROWS, params)
            await conn.execute(_BYSTANDER_VECTORS, params)
            for user, ops in per_user_ops.items():
                part = ops[len(ops) * r // ROUNDS : len(ops) * (r + 1) // ROUNDS]
                if part:
                    await copy_user(conn, user, part, emb)
            log(f"build round {r + 1}/{ROUNDS}")
        await conn.execute("VACUUM (ANALYZE) store")
        await conn.execute("VACUUM (ANALYZE) store_vectors")
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


async def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    if args.quick:
        sizes = {"scale-1k": 100, "scale-10k": 400, "scale-100k": 1_200}
        total, queries, min_memories = 5_000, 10, 1_000
    else:
        sizes = {"scale-1k": 1_000, "scale-10k": 10_000, "scale-100k": 100_000}
        total, queries, min_memories = 1_000_000, 100, MIN_MEMORIES
    emb, dims = resolve_embeddings("offline")
    index = index_config(emb, dims)
    rng = random.Random(11)
    with database() as url:
        started = time.perf_counter()
        async with open_pool(url) as pool:
            await setup_database(pool, index)
            user_ops = {user: memory_ops(user, n, seed=n) for user, n in sizes.items()}
            stored = await build(url, user_ops, total, emb)
            build_s = time.perf_counter() - started
            log(f"built {stored:,} memories in {build_s:.0f} s")
            store = ExactSearchStore(pool, index=index)
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
                    has_index = phase == "indexed" and n >= min_memories
                    runs.append(
                        {
                            "user_memories": n,
                            "total_memories": stored,
                            **figures,
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
        "targets": {"p95_ms_max": 10, "complete_ratio": 1.0},
        "met": all(r["p95_ms"] <= 10 and r["complete_ratio"] == 1.0 for r in final),
        "build_s": round(build_s, 1),
        "index_s": round(index_s, 1),
        "k": K,
        "machine": info,
    }
    emit(result)


if __name__ == "__main__":
    run(main)
