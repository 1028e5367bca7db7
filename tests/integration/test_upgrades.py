"""`memory-agent db setup`: idempotent, safe on a database made by an earlier version."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from memory_agent import ConfigurationError, forget_user, memories, open_agent
from memory_agent.persistence.migrations import MIGRATIONS
from tests.helpers import cfg

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


# What each earlier version had of our schema, newest first: dropping it from a current
# database (its data stays) gives a database as that version left it.
DOWNGRADES = {
    "before the owner index (v2)": [
        "DROP INDEX memory_agent_checkpoints_owner_idx",
        "DELETE FROM memory_agent_migrations WHERE v >= 2",
    ],
    "the first release (no schema of our own)": [
        "DROP INDEX memory_agent_checkpoints_owner_idx",
        "DROP TRIGGER memory_agent_terms ON store",
        "DROP FUNCTION memory_agent_index_terms",
        "DROP TABLE memory_terms, memory_term_stats, memory_agent_settings",
        "DROP TABLE memory_agent_migrations",
        # ...and LangGraph's later migrations, as an older langgraph-checkpoint-postgres left it
        "DELETE FROM checkpoint_migrations WHERE v >= 6",
        "DELETE FROM store_migrations WHERE v >= 2",
    ],
}


@pytest.mark.parametrize("earlier", sorted(DOWNGRADES))
async def test_setup_upgrades_a_database_made_by_an_earlier_version(
    database_url: str, earlier: str
) -> None:
    async with open_agent(database_url) as agent:
        for text in ("My name is Uma.", "I love tea."):
            await agent.ainvoke({"messages": [("user", text)], "user_id": "uma"}, cfg("u1"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        for statement in DOWNGRADES[earlier]:
            conn.execute(statement)  # type: ignore[arg-type]

    async with open_agent(database_url) as agent:  # setup=True: upgrades
        assert versions(database_url, "memory_agent_migrations") == list(range(len(MIGRATIONS)))
        state = (await agent.aget_state(cfg("u1"))).values
        assert [m.content for m in state["messages"]][0] == "My name is Uma."
        out = await agent.ainvoke(
            {"messages": [("user", "What is my name?")], "user_id": "uma"}, cfg("u1")
        )
        assert out["messages"][-1].content == "Your name is Uma."
        # The lexical index was rebuilt from the stored memories.
        found = await memories(agent).search("uma", "tea")
        assert any("tea" in str(m.get("text", "")) for m in found)
        receipt = await forget_user(agent, "uma")  # uses the owner index of migration 2
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
