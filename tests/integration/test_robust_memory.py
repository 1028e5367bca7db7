"""Issue 15, the memory half: no input breaks the memory write, and no write is lost or doubled.

- one long word (a hash, a DNA sequence) is stored and found; it never reaches an index row
  PostgreSQL cannot hold;
- a write PostgreSQL refuses (bad data, not an outage) is a clear `StorageRefusedError`, the
  turn is rolled back with nothing stored, and the thread goes on;
- a write of tens of thousands of sentences stays under PostgreSQL's 65,535 bind parameters;
- two turns superseding one subject at the same moment both keep their version, in order;
- a message re-sent after its turn failed (memories written, checkpoint lost) changes nothing
  its failed attempt wrote.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import psycopg
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata

from memory_agent import (
    AgentContext,
    DatabaseUnavailableError,
    MemoryService,
    OfflineChatModel,
    StorageRefusedError,
    open_agent,
    resume_turn,
)
from memory_agent.agent import open as persistence_module
from memory_agent.agent.boundary import cut_off
from memory_agent.memory.extraction import MemoryDraft
from memory_agent.memory.lexical import MAX_TERM_CHARS
from memory_agent.persistence.checkpointer import BoundedPostgresSaver
from tests.helpers import ask, cfg, episodes

pytestmark = pytest.mark.integration

USER = "robust-user"


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql, params).fetchall())


def long_words() -> dict[str, str]:
    rng = random.Random(15)
    return {
        "word": "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3_000)),
        "hex": "".join(rng.choice("0123456789abcdef") for _ in range(6_000)),
        "dna": "".join(rng.choice("ACGT") for _ in range(12_000)),
    }


# --- item 1: one long word ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["word", "hex", "dna"])
async def test_a_long_word_is_stored_and_found(kind: str, database_url: str) -> None:
    word = long_words()[kind]
    ctx = AgentContext(model=OfflineChatModel())
    async with open_agent(database_url) as agent:
        out = await agent.ainvoke(
            ask(f"Please keep this sample for me: {word} It came from the lab today.", USER),
            cfg(f"long-{kind}"),
            context=ctx,
        )
        assert out["status"] == "completed"
        # The thread is not wedged: the next turn is a plain new one.
        assert not await cut_off(agent, cfg(f"long-{kind}"))
        again = await agent.ainvoke(ask("I live in Busan.", USER), cfg(f"long-{kind}"), context=ctx)
        assert again["status"] == "completed"
        found = await MemoryService(agent.store).search(USER, word, limit=3)
    assert any(word in m["text"] for m in found), [m["text"][:80] for m in found]
    longest = rows(database_url, "SELECT max(octet_length(term)) FROM memory_terms")[0][0]
    assert longest <= MAX_TERM_CHARS * 4


async def test_the_index_refuses_no_memory_with_an_overlong_term(database_url: str) -> None:
    """Whoever writes a memory (the server's routes, an older version), the trigger that keeps
    the BM25 index skips a term no analyzer of ours makes, instead of failing the write."""
    rng = random.Random(7)
    overlong = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(5_000))
    value = {"scope": "memory", "kind": "fact", "text": "x", "terms": {overlong: 1.0, "x": 1.0}}
    async with open_agent(database_url) as agent:
        await agent.store.aput(("users", "other", "facts"), "k1", {**value, "length": 2.0})
        found = await agent.store.aget(("users", "other", "facts"), "k1")
    assert found is not None
    assert rows(database_url, "SELECT term FROM memory_terms WHERE key = 'k1'") == [("x",)]


# --- item 1: a write PostgreSQL refuses ------------------------------------------------------

REFUSE = """
CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.value->>'text' LIKE '%REFUSE-ME%' THEN
        RAISE EXCEPTION 'value out of range for this test' USING ERRCODE = '22003';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_marked BEFORE INSERT OR UPDATE ON store
    FOR EACH ROW EXECUTE FUNCTION refuse_marked();
"""


async def test_a_refused_write_is_a_clear_error_and_the_thread_goes_on(database_url: str) -> None:
    ctx = AgentContext(model=OfflineChatModel())
    thread = "refused"
    async with open_agent(database_url) as agent:
        await agent.ainvoke(ask("I live in Busan.", USER), cfg(thread), context=ctx)
        everything = "SELECT prefix, key, value FROM store ORDER BY prefix, key"
        before = rows(database_url, everything)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(REFUSE)
        with pytest.raises(StorageRefusedError) as refused:
            await agent.ainvoke(
                ask("I moved to Seoul. Note REFUSE-ME please.", USER), cfg(thread), context=ctx
            )
        assert not isinstance(refused.value, DatabaseUnavailableError)
        assert "out of range" in str(refused.value) and "nothing" in str(refused.value)
        # Nothing of the refused turn was stored, in memory or in the thread.
        assert rows(database_url, everything) == before
        state = (await agent.aget_state(cfg(thread))).values
        assert [m.content for m in state["messages"] if m.type == "human"] == ["I live in Busan."]
        assert not await cut_off(agent, cfg(thread))
        assert await resume_turn(agent, cfg(thread), context=ctx) is None
        # The next turn works, on the same thread.
        out = await agent.ainvoke(ask("My name is Ann.", USER), cfg(thread), context=ctx)
        assert out["status"] == "completed"
        state = (await agent.aget_state(cfg(thread))).values
    assert [m.content for m in state["messages"] if m.type == "human"] == [
        "I live in Busan.",
        "My name is Ann.",
    ]
    facts = rows(
        database_url,
        "SELECT value->>'text' FROM store WHERE prefix = %s ORDER BY 1",
        f"users.{USER}.facts",
    )
    assert facts == [("The user lives in Busan.",), ("The user's name is Ann.",)]


# --- item 2: PostgreSQL's 65,535 bind parameters ----------------------------------------------


def big_message(rng: random.Random, n: int) -> str:
    colours = ["red", "blue", "green", "amber", "violet", "grey"]
    out: list[str] = []
    while sum(len(s) + 1 for s in out) < 15_850:
        out.append(f"Note {n}-{len(out)} says {rng.choice(colours)} box {rng.randrange(999)} here.")
    return " ".join(out)


async def test_a_huge_write_stays_under_the_bind_parameter_limit(database_url: str) -> None:
    """The issue's input (40 messages of ~15,900 characters, ~480 sentences each) is now over a
    turn's input limits, but an import (`save_episodes`) takes any number of messages: its one
    write of ~19,000 episodes binds more parameters than one statement may."""
    rng = random.Random(2)
    texts = [big_message(rng, i) for i in range(40)]
    assert all(len(text) < 16_000 for text in texts)
    ctx = AgentContext(model=OfflineChatModel())
    async with open_agent(database_url) as agent:
        service = MemoryService(agent.store)
        written = await service.save_episodes(USER, episodes(texts), thread_id="import")
        assert len(written) * 4 > 65_535  # more than one statement could have bound
        episodes_ns = f"users.{USER}.episodes"
        stored = "SELECT count(*) FROM store WHERE prefix = %s"
        assert rows(database_url, stored, episodes_ns)[0][0] == len(written)
        # Later turns of the user work.
        out = await agent.ainvoke(ask("I live in Busan.", USER), cfg("after-import"), context=ctx)
        assert out["status"] == "completed"
        receipt = await service.forget_user(USER)
    assert receipt["deleted"]["episodes"] == len(written) + 1
    assert rows(database_url, "SELECT count(*) FROM store")[0][0] == 0


# --- item 5: concurrent supersession ----------------------------------------------------------


def location(city: str) -> MemoryDraft:
    return {"kind": "fact", "subject": "location", "text": f"The user lives in {city}."}


async def test_concurrent_supersession_keeps_every_version(database_url: str) -> None:
    async with open_agent(database_url) as agent:
        service = MemoryService(agent.store)
        for r in range(6):
            user = f"race-{r}"
            await service.save_turn(user, "t0", None, [location("Paris")])
            await asyncio.gather(
                service.save_turn(user, "t1", None, [location("Berlin")]),
                service.save_turn(user, "t2", None, [location("Rome")]),
            )
            key = (await service.list_memories(user))[0]["key"]
            versions = await service.history(user, key)
            texts = [v["text"] for v in versions]
            assert len(versions) == 3, (r, texts)
            assert texts[0] == "The user lives in Paris."
            assert sorted(texts[1:]) == ["The user lives in Berlin.", "The user lives in Rome."]
            assert [v.get("version") for v in versions] == [1, 2, 3]
            # Each old version names the one that replaced it.
            for old, new in zip(versions, versions[1:], strict=False):
                assert old.get("superseded_by") == new.get("id")
                assert new.get("supersedes") == old.get("id")


# --- item 7a: a re-sent turn ------------------------------------------------------------------


class FailCheckpointAfterWrites(BoundedPostgresSaver):
    """The checkpointer, which fails its next save once armed (as PostgreSQL dying right after
    the turn's memory write committed would)."""

    armed = False

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        if type(self).armed:
            type(self).armed = False
            raise psycopg.OperationalError("the server closed the connection (test)")
        return await super().aput(config, checkpoint, metadata, new_versions)


class ArmAfterTurnWrites:
    """Arms the checkpoint failure once a turn's write transaction committed."""

    arm = False
    save_turn = MemoryService.save_turn

    @staticmethod
    async def save_turn_then_arm(service: MemoryService, *args: Any, **kwargs: Any) -> Any:
        saved = await ArmAfterTurnWrites.save_turn(service, *args, **kwargs)
        if ArmAfterTurnWrites.arm and saved[0] is not None:
            ArmAfterTurnWrites.arm = False
            FailCheckpointAfterWrites.armed = True
        return saved


MEMORY_ROWS = """
SELECT prefix, key, value FROM store
WHERE prefix <> %s AND value->>'text' LIKE '%%Busan%%' ORDER BY prefix, key
"""


async def test_a_resent_turn_changes_nothing_its_failed_attempt_wrote(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MemoryService, "save_turn", ArmAfterTurnWrites.save_turn_then_arm)
    monkeypatch.setattr(persistence_module, "BoundedPostgresSaver", FailCheckpointAfterWrites)
    ctx = AgentContext(model=OfflineChatModel())
    thread = "resent"
    said = "I live in Busan. The harbour there is lovely in the evening light."
    conversations = f"users.{USER}.conversations"
    async with open_agent(database_url) as agent:
        await agent.ainvoke(ask("My name is Ann.", USER), cfg(thread), context=ctx)
        ArmAfterTurnWrites.arm = True
        with pytest.raises(DatabaseUnavailableError):
            await agent.ainvoke(ask(said, USER), cfg(thread), context=ctx)
        assert not FailCheckpointAfterWrites.armed, "the failure never happened"
        written = rows(database_url, MEMORY_ROWS, conversations)
        kinds = sorted(r[0].rsplit(".", 1)[1] for r in written)
        assert kinds == ["episodes", "facts"], written
        # The client re-sends the same message (a new message id), as the README says to.
        out = await agent.ainvoke(ask(said, USER), cfg(thread), context=ctx)
        assert out["status"] == "completed"
        # And once more, as a client retrying a time-out would.
        await agent.ainvoke(ask(said, USER), cfg(thread), context=ctx)
    assert rows(database_url, MEMORY_ROWS, conversations) == written


async def test_a_resent_message_changes_nothing_in_the_service(database_url: str) -> None:
    """The same property below the graph: the same message under a new id, same thread."""
    async with open_agent(database_url) as agent:
        service = MemoryService(agent.store)
        drafts: list[MemoryDraft] = [location("Busan")]

        async def save(message_id: str) -> list[tuple[Any, ...]]:
            await service.save_turn(
                USER,
                "t",
                None,
                [{**d, "message_ids": [message_id]} for d in drafts],
                episodes=[
                    {
                        "message_id": message_id,
                        "text": "I live in Busan. It is a big port city by the sea.",
                        "speaker": None,
                        "before": "",
                        "after": "",
                    }
                ],
            )
            return rows(database_url, "SELECT prefix, key, value FROM store ORDER BY 1, 2")

        first = await save("m-1")
        assert await save("m-2") == first
        # A new statement in another thread is a new mention.
        await service.save_turn(USER, "t2", None, drafts, message_ids=["m-3"])
        mentions = (await service.list_memories(USER))[0].get("mentions")
    assert mentions == 2
