"""`memory-agent db setup`: idempotent, safe on a database made by an earlier version."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from memory_agent import ConfigurationError, build_graph, forget_user, open_agent, open_pool
from memory_agent.memory.embeddings import resolve_embeddings
from memory_agent.migrations import MIGRATIONS
from memory_agent.persistence import ExactSearchStore, index_config

pytestmark = pytest.mark.integration

SCHEMA = """
SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = 'public'
ORDER BY 1, 3
"""


def schema(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(SCHEMA).fetchall())


def versions(url: str, table: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(f"SELECT v FROM {table} ORDER BY v")]  # noqa: S608


def db_setup(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memory_agent.cli", "db", "setup"],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": url},
        timeout=120,
        check=False,
    )


def cfg(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


def test_db_setup_is_idempotent(database_url: str) -> None:
    first = db_setup(database_url)
    assert first.returncode == 0, first.stderr
    made = schema(database_url)
    assert versions(database_url, "memory_agent_migrations") == list(range(len(MIGRATIONS)))
    for _ in range(2):
        again = db_setup(database_url)
        assert again.returncode == 0, again.stderr
    assert schema(database_url) == made
    assert versions(database_url, "memory_agent_migrations") == list(range(len(MIGRATIONS)))


async def test_setup_upgrades_a_database_made_by_an_earlier_version(database_url: str) -> None:
    # What the first release did: LangGraph's tables only, no migrations of our own, and a
    # plain AsyncPostgresSaver; it wrote a thread and memories.
    emb, dims = resolve_embeddings("offline")
    index = index_config(emb, dims)
    async with open_pool(database_url) as pool:
        await AsyncPostgresSaver(pool).setup()
        await ExactSearchStore(pool, index=index).setup()
        old = build_graph(
            checkpointer=AsyncPostgresSaver(pool), store=ExactSearchStore(pool, index=index)
        )
        await old.ainvoke({"messages": [("user", "My name is Uma.")], "user_id": "uma"}, cfg("u1"))
    # ...and LangGraph's later migrations, as if made by an older langgraph-checkpoint-postgres.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM checkpoint_migrations WHERE v >= 6")
        conn.execute("DELETE FROM store_migrations WHERE v >= 2")
        assert conn.execute("SELECT to_regclass('memory_agent_migrations')").fetchone() == (None,)

    async with open_agent(database_url) as agent:  # setup=True: upgrades
        assert versions(database_url, "memory_agent_migrations") == list(range(len(MIGRATIONS)))
        state = (await agent.aget_state(cfg("u1"))).values
        assert [m.content for m in state["messages"]][0] == "My name is Uma."
        out = await agent.ainvoke(
            {"messages": [("user", "What is my name?")], "user_id": "uma"}, cfg("u1")
        )
        assert out["messages"][-1].content == "Your name is Uma."
        receipt = await forget_user(agent, "uma")  # uses the owner index of migration 1
        assert receipt["threads"] == ["u1"] and receipt["deleted"]["facts"] == 1
    assert max(versions(database_url, "checkpoint_migrations")) >= 9


async def test_concurrent_setups_of_a_fresh_database_all_succeed(database_url: str) -> None:
    async def start() -> None:
        async with open_agent(database_url):
            pass

    await asyncio.gather(*(start() for _ in range(4)))
    assert versions(database_url, "memory_agent_migrations") == list(range(len(MIGRATIONS)))


async def test_a_database_from_a_newer_version_is_refused(database_url: str) -> None:
    async with open_agent(database_url):
        pass
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO memory_agent_migrations (v) VALUES (%s)", (len(MIGRATIONS) + 5,))
    with pytest.raises(ConfigurationError, match="newer"):
        async with open_agent(database_url):
            pass
    refused = db_setup(database_url)
    assert refused.returncode == 1 and "upgrade memory_agent" in refused.stderr
