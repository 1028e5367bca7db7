"""Retention: forget-user in one transaction with a receipt, prune of inactive threads, TTLs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from memory_agent import (
    DatabaseUnavailableError,
    GuardedAgent,
    ModelError,
    ThreadBusyError,
    forget_user,
    memories,
    open_agent,
    prune,
)
from memory_agent.persistence.locks import thread_key, user_key
from tests.helpers import run_turn
from tests.models import HookModel

pytestmark = pytest.mark.integration


def one(url: str, sql: str, *params: Any) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params or None).fetchone()
    assert row is not None
    return row[0]


def table_counts(url: str, threads: list[str], prefix: str) -> dict[str, int]:
    """Rows per table for some threads and one store prefix (a user's footprint)."""
    out = {
        t: one(url, f"SELECT count(*) FROM {t} WHERE thread_id = ANY(%s)", threads)
        for t in ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
    }
    out["store"] = one(url, "SELECT count(*) FROM store WHERE prefix LIKE %s", prefix + "%")
    return out


def make_old(url: str, thread: str, days: int) -> None:
    """Pretend the thread's checkpoints were all written `days` ago."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE checkpoints SET checkpoint = jsonb_set(checkpoint, '{ts}', "
            "to_jsonb((now() - make_interval(days => %s))::text)) WHERE thread_id = %s",
            (days, thread),
        )


async def test_forget_user_deletes_everything_of_theirs_in_one_transaction(
    agent: GuardedAgent, database_url: str
) -> None:
    await run_turn(agent, "ann", "a1", "My name is Ann. I love tea.")
    await run_turn(agent, "ann", "a2", "I live in Rome.")

    # A thread whose first turn broke before anything was saved: no conversation record,
    # but its checkpoints name Ann as the owner.
    async def boom() -> None:
        raise RuntimeError("model down")

    with pytest.raises(ModelError, match="model down"):
        await run_turn(agent, "ann", "a3", "My secret plan.", model=HookModel(hook=boom))
    await run_turn(agent, "bob", "b1", "My name is Bob.")
    bob_before = table_counts(database_url, ["b1"], "users.bob.")
    ann_before = table_counts(database_url, ["a1", "a2", "a3"], "users.ann.")
    assert ann_before["checkpoints"] > 0 and ann_before["store"] > 0

    receipt = await forget_user(agent, "ann")

    assert receipt["user_id"] == "ann"
    assert receipt["threads"] == ["a1", "a2", "a3"]
    deleted = receipt["deleted"]
    assert deleted["threads"] == 3
    assert deleted["checkpoints"] == ann_before["checkpoints"]
    assert deleted["checkpoint_blobs"] == ann_before["checkpoint_blobs"]
    assert deleted["checkpoint_writes"] == ann_before["checkpoint_writes"]
    assert (deleted["conversations"], deleted["facts"], deleted["preferences"]) == (2, 2, 1)
    kinds = ("conversations", "facts", "preferences", "entities", "episodes", "history")
    assert sum(deleted[k] for k in kinds) == ann_before["store"]
    assert table_counts(database_url, ["a1", "a2", "a3"], "users.ann.") == dict.fromkeys(
        ann_before, 0
    )
    assert (
        one(database_url, "SELECT count(*) FROM store_vectors WHERE prefix LIKE 'users.ann.%'") == 0
    )
    assert table_counts(database_url, ["b1"], "users.bob.") == bob_before
    assert "Bob" in (await run_turn(agent, "bob", "b2", "What is my name?"))["messages"][-1].content
    # Ann may start afresh, even on a thread id she used before.
    assert (await run_turn(agent, "ann", "a1", "Hello again."))["status"] == "completed"


async def test_forget_user_is_all_or_nothing(agent: GuardedAgent, database_url: str) -> None:
    await run_turn(agent, "cat", "c1", "My name is Cat.")
    before = table_counts(database_url, ["c1"], "users.cat.")
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Make the store deletion, which comes after the checkpoints', fail.
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by test'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE DELETE ON store FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
    with pytest.raises(
        DatabaseUnavailableError, match="failed while forgetting user .*Nothing was deleted"
    ):
        await forget_user(agent, "cat")
    assert table_counts(database_url, ["c1"], "users.cat.") == before


async def test_forget_user_waits_for_the_users_turn_in_flight(
    agent: GuardedAgent, database_url: str
) -> None:
    await run_turn(agent, "dan", "d1", "I live in Porto.")
    release = asyncio.Event()
    entered = asyncio.Event()

    async def hold() -> None:
        entered.set()
        await release.wait()

    turn = asyncio.create_task(
        run_turn(agent, "dan", "d2", "My name is Dan.", model=HookModel(hook=hold))
    )
    await entered.wait()
    forget = asyncio.create_task(forget_user(agent, "dan"))
    await asyncio.sleep(0.3)
    assert not forget.done(), "forget must wait for the turn that holds the user"
    release.set()
    await turn
    receipt = await forget
    # The turn finished first, so what it wrote was forgotten too.
    assert receipt["threads"] == ["d1", "d2"]
    assert table_counts(database_url, ["d1", "d2"], "users.dan.") == {
        "checkpoints": 0,
        "checkpoint_blobs": 0,
        "checkpoint_writes": 0,
        "store": 0,
    }


async def test_forget_user_times_out_cleanly_when_the_user_stays_busy(
    agent: GuardedAgent, database_url: str
) -> None:
    await run_turn(agent, "eve", "e1", "My name is Eve.")
    before = table_counts(database_url, ["e1"], "users.eve.")
    with psycopg.connect(database_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock_shared(%s)", (user_key("eve"),))
        with pytest.raises(ThreadBusyError, match="nothing was deleted"):
            await forget_user(agent, "eve", lock_timeout=0.2)
    assert table_counts(database_url, ["e1"], "users.eve.") == before


async def test_prune_deletes_inactive_threads_and_keeps_summaries(
    agent: GuardedAgent, database_url: str
) -> None:
    for thread in ("old1", "old2", "busy", "new"):
        await run_turn(agent, "fay", thread, f"I like {thread}stuff.")
    for thread in ("old1", "old2", "busy"):
        make_old(database_url, thread, days=40)
    old_checkpoints = one(
        database_url, "SELECT count(*) FROM checkpoints WHERE thread_id IN ('old1', 'old2')"
    )

    dry = await prune(agent, "30d", dry_run=True)
    assert dry["dry_run"] and dry["threads"] == ["busy", "old1", "old2"]
    assert one(database_url, "SELECT count(*) FROM checkpoints WHERE thread_id = 'old1'") > 0

    with psycopg.connect(database_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (thread_key("busy"),))  # a turn holds it
        receipt = await prune(agent, "30d")
    assert receipt["threads"] == ["old1", "old2"] and receipt["busy"] == ["busy"]
    assert receipt["deleted"]["threads"] == 2
    assert receipt["deleted"]["checkpoints"] == old_checkpoints
    assert receipt["deleted"]["conversations"] == 0
    for thread, left in (("old1", 0), ("old2", 0), ("busy", 1), ("new", 1)):
        count = one(database_url, "SELECT count(*) FROM checkpoints WHERE thread_id = %s", thread)
        assert (count > 0) == bool(left), thread
    # Kept: the conversation records (the user's history) and every memory.
    convs = await memories(agent).list_conversations("fay")
    assert {c["thread_id"] for c in convs} == {"old1", "old2", "busy", "new"}
    assert len(await memories(agent).list_memories("fay")) == 4
    # The pruned thread id starts afresh.
    assert (await run_turn(agent, "fay", "old1", "Hello."))["messages"][0].content == "Hello."


def test_prune_command_drops_summaries_when_asked(database_url: str) -> None:
    async def setup() -> None:
        async with open_agent(database_url) as agent:
            await run_turn(agent, "gil", "g-old", "I like chess.")
            await run_turn(agent, "gil", "g-new", "I like go.")

    asyncio.run(setup())
    make_old(database_url, "g-old", days=31)

    def cli(*args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "memory_agent.cli", "prune", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "DATABASE_URL": database_url},
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert cli("--older-than", "45d")["threads"] == []
    receipt = cli("--older-than", "30d", "--drop-summaries")
    assert receipt["threads"] == ["g-old"]
    assert receipt["deleted"]["conversations"] == 1
    keys = one(
        database_url,
        "SELECT array_agg(key ORDER BY key) FROM store WHERE prefix = 'users.gil.conversations'",
    )
    assert keys == ["g-new"]
    bad = subprocess.run(
        [sys.executable, "-m", "memory_agent.cli", "prune", "--older-than", "soon"],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": database_url},
        timeout=120,
        check=False,
    )
    # A usage error, found by argparse before anything runs.
    assert bad.returncode == 2 and "not a duration" in bad.stderr


async def test_memories_carry_a_ttl_and_expired_ones_are_swept(database_url: str) -> None:
    async with open_agent(database_url, memory_ttl="7d") as agent:
        await run_turn(agent, "hal", "h1", "My name is Hal. I love jazz.")
        ttl = one(
            database_url,
            "SELECT array_agg(DISTINCT ttl_minutes) FROM store WHERE prefix LIKE 'users.hal.%'",
        )
        assert ttl == [7 * 24 * 60]
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE store SET expires_at = now() - interval '1 minute' "
                "WHERE prefix = 'users.hal.preferences'"
            )
        # Expired: no longer read, even before the sweep...
        assert [m["kind"] for m in await memories(agent).list_memories("hal")] == ["fact"]
        # ...and deleted by prune.
        receipt = await prune(agent, "30d")
        assert receipt["deleted"]["expired"] == 1
    assert (
        one(database_url, "SELECT count(*) FROM store WHERE prefix = 'users.hal.preferences'") == 0
    )
    assert one(database_url, "SELECT count(*) FROM store WHERE prefix = 'users.hal.facts'") == 1
