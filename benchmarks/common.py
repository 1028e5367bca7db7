"""What every benchmark shares: a throw-away database, the bare baseline graph, users seeded
with memories through the product's own store, statistics.

A benchmark runs on `$DATABASE_URL` when it is set (a fresh database is created on that server
and dropped afterwards), else on an embedded PostgreSQL (pgserver) in a temporary directory that
is deleted afterwards. Each script prints exactly one JSON object on stdout; progress goes to
stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from langchain_core.messages import AIMessage
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore, PutOp
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from memory_agent.events import now_iso
from memory_agent.memory.records import with_terms
from memory_agent.memory.service import memory_key
from memory_agent.persistence.namespaces import user_namespace

WORDS = (
    "river garden violin morning coffee mountain tennis paper window orange lantern harbor "
    "winter museum bicycle forest pepper silver theatre rocket meadow castle island thunder "
    "marble velvet compass canyon glacier falcon ember willow saffron cobalt juniper"
).split()


def log(message: str) -> None:
    """Progress on stderr (stdout carries only the JSON result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """Print the one JSON object of a benchmark."""
    print(json.dumps(result, sort_keys=False), flush=True)


def arguments(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="toy sizes: checks the script runs")
    return p


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    lo = int(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def sentence(rng: Any, chars: int) -> str:
    """A message of about `chars` characters made of random words."""
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(WORDS))
    return " ".join(words)[:chars]


def machine(url: str | None = None) -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
    }
    try:
        info["load_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    if url:
        with psycopg.connect(url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            info["postgres"] = row[0] if row else None
    return info


@contextmanager
def server_url(workdir: Path) -> Iterator[str]:
    """The admin URL of a PostgreSQL server: $DATABASE_URL's when set, else an embedded one
    (pgserver) with its data in `workdir`, stopped and deleted on exit."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    from pgserver.postgres_server import get_server

    server = get_server(workdir / "pgdata", cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


@contextmanager
def fresh_database(admin_url: str, prefix: str = "t") -> Iterator[str]:
    """A new, empty database on the server of `admin_url`; dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(admin_url)
    params["dbname"] = name
    try:
        yield make_conninfo(**params)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database(server: str | None = None) -> Iterator[str]:
    """A fresh, empty database for one benchmark, on `server` (else $DATABASE_URL's server, else
    a temporary embedded one); dropped on exit."""
    if server:
        with fresh_database(server, "bench") as url:
            yield url
        return
    with (
        tempfile.TemporaryDirectory(prefix="ma-bench-") as tmp,
        server_url(Path(tmp)) as admin,
        fresh_database(admin, "bench") as url,
    ):
        yield url


def bare_graph(checkpointer: AsyncPostgresSaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The baseline: one node appending the answer to `MessagesState`, checkpointed."""

    async def reply(state: MessagesState) -> dict[str, Any]:
        question = str(state["messages"][-1].content)
        return {"messages": [AIMessage(content=question[::-1])]}

    builder = StateGraph(MessagesState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    return builder.compile(checkpointer=checkpointer, name="bare")


@asynccontextmanager
async def bare_agent(url: str, pool_size: int = 10) -> AsyncIterator[Any]:
    """The bare graph on its own pool (same settings as the agent's) over `url`."""
    from memory_agent.persistence.pool import open_pool

    async with open_pool(url, max_size=pool_size) as pool:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        yield bare_graph(saver)


# --- users seeded with memories ------------------------------------------------------------

TOPICS = (
    "favourite food",
    "home city",
    "sister's name",
    "employer",
    "favourite book",
    "dog's name",
    "weekend hobby",
    "travel plan",
    "allergy",
    "favourite band",
    "car",
    "coffee order",
    "gym routine",
    "birthday",
    "language course",
)
KINDS = (("fact", "facts"), ("preference", "preferences"), ("entity", "entities"))


def memory_text(rng: random.Random, i: int) -> tuple[str, str]:
    """A (subject, text) pair that reads like an extracted memory."""
    topic = rng.choice(TOPICS)
    words = " ".join(rng.sample(WORDS, 4))
    subject = f"{topic} {i}"
    return subject, f"The user's {topic} ({i}) involves {words}."


def memory_ops(user_id: str, count: int, seed: int = 7) -> list[PutOp]:
    """`count` facts, preferences and entities of one user, as store puts."""
    rng = random.Random(seed)
    ops: list[PutOp] = []
    now = now_iso()
    for i in range(count):
        kind, ns_kind = KINDS[i % len(KINDS)]
        subject, text = memory_text(rng, i)
        value: dict[str, Any] = {
            "scope": "memory",
            "kind": kind,
            "subject": subject,
            "text": text,
            "thread_id": f"seed-{i % 20}",
            "message_ids": [],
            "created_at": now,
            "updated_at": now,
        }
        # With its lexical terms, as the service writes it (recall's BM25 reads them).
        ops.append(
            PutOp(user_namespace(user_id, ns_kind), memory_key(subject), with_terms(value))  # type: ignore[arg-type]
        )
    return ops


async def seed_memories(store: BaseStore, user_id: str, count: int, batch: int = 500) -> None:
    """Give `user_id` `count` memories (embedded by the store, like the product's writes)."""
    ops = memory_ops(user_id, count)
    for i in range(0, len(ops), batch):
        await store.abatch(ops[i : i + batch])


# --- what a thread costs ------------------------------------------------------------------

CHECKPOINT_COLUMNS = {
    "checkpoints": (
        "thread_id",
        "checkpoint_ns",
        "checkpoint_id",
        "parent_checkpoint_id",
        "type",
        "checkpoint",
        "metadata",
    ),
    "checkpoint_blobs": ("thread_id", "checkpoint_ns", "channel", "version", "type", "blob"),
    "checkpoint_writes": (
        "thread_id",
        "checkpoint_ns",
        "checkpoint_id",
        "task_id",
        "task_path",
        "idx",
        "channel",
        "type",
        "blob",
    ),
}
_ROW_HEADER = 24  # heap tuple header and item pointer, per row


def thread_bytes(url: str, thread_id: str) -> dict[str, dict[str, int]]:
    """Bytes and rows one thread holds in each checkpoint table.

    Bytes are the stored (possibly compressed) sizes of the row's columns plus a row header;
    indexes and free space are left out, so the figure is what the thread itself costs.
    """
    out: dict[str, dict[str, int]] = {}
    with psycopg.connect(url) as conn:
        for table, columns in CHECKPOINT_COLUMNS.items():
            size = " + ".join(f"coalesce(pg_column_size({c}), 0)" for c in columns)
            sql = (
                f"SELECT coalesce(sum({size} + {_ROW_HEADER}), 0)::bigint, count(*)::bigint "
                f"FROM {table} WHERE thread_id = %s"
            )
            row = conn.execute(sql, (thread_id,)).fetchone()
            assert row is not None
            out[table] = {"bytes": int(row[0]), "rows": int(row[1])}
    return out


def total_bytes(tables: dict[str, dict[str, int]]) -> int:
    return sum(t["bytes"] for t in tables.values())


class PeakConnections:
    """The most connections to one database seen at once (ours, this sampler's own left out)."""

    def __init__(self) -> None:
        self.value = 0


@asynccontextmanager
async def peak_connections(url: str, every: float = 0.05) -> AsyncIterator[PeakConnections]:
    """Sample `pg_stat_activity` every `every` seconds while the block runs; its `.value` is the
    peak once the block is done."""
    dbname = conninfo_to_dict(url).get("dbname")
    peak = PeakConnections()
    done = asyncio.Event()

    async def watch() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            while not done.is_set():
                cur = await conn.execute(
                    # Client connections only: an autovacuum worker busy on the database
                    # is listed under its name too.
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                    (dbname,),
                )
                row = await cur.fetchone()
                peak.value = max(peak.value, int(row[0]) if row else 0)
                await asyncio.sleep(every)

    watcher = asyncio.create_task(watch())
    try:
        yield peak
    finally:
        done.set()
        await watcher


def rss_mb() -> float:
    """This process's resident memory now, in MiB."""
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(main: Any) -> None:
    """Run an async benchmark `main()` and exit."""
    asyncio.run(main())
