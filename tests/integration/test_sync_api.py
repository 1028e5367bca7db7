"""The synchronous API (`open_agent_sync`): the async tests that matter, from sync code."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from memory_agent import (
    ConfigurationError,
    DatabaseUnavailableError,
    InvalidInputError,
    ThreadOwnershipError,
    open_agent_sync,
)
from tests.helpers import ask, cfg
from tests.pg import StoppableServer, fresh_database

pytestmark = pytest.mark.integration


def test_recall_across_threads_ownership_and_bad_input(database_url: str) -> None:
    with open_agent_sync(database_url) as agent:
        told = agent.invoke(ask("My name is Ada and I live in Lisbon.", "ada"), cfg("s1"))
        assert told["status"] == "completed"
        out = agent.invoke(ask("Where do I live?", "ada"), cfg("s2"))
        assert "Lisbon" in out["messages"][-1].content
        with pytest.raises(ThreadOwnershipError):
            agent.invoke(ask("Hello.", "bob"), cfg("s1"))
        with pytest.raises(InvalidInputError, match="empty"):
            agent.invoke(ask("   ", "ada"), cfg("s1"))
        state = agent.get_state(cfg("s1"))
        assert state.values["thread_owner"] == "ada"
        assert all("Hello." not in str(m.content) for m in state.values["messages"])
        facts = agent.memories().list_memories("ada")
        assert any("Lisbon" in m["text"] for m in facts)
        receipt = agent.forget_user("ada")
        assert receipt["deleted"]["checkpoints"] > 0
        assert agent.memories().list_memories("ada") == []


def test_stream_yields_progress_events_and_tokens_as_they_come(database_url: str) -> None:
    with open_agent_sync(database_url) as agent:
        parts = list(
            agent.stream(ask("I love jazz.", "cy"), cfg("s3"), stream_mode=["custom", "messages"])
        )
    events = [data["event"] for mode, data in parts if mode == "custom"]
    tokens = [data for mode, data in parts if mode == "messages"]
    assert events[0] == "memory_loaded" and events[-1] == "memory_saved"
    assert len(tokens) > 1


def test_a_sync_call_from_a_running_event_loop_is_refused(database_url: str) -> None:
    with open_agent_sync(database_url) as agent:

        async def misuse() -> None:
            agent.invoke(ask("Hi.", "dee"), cfg("s4"))

        with pytest.raises(ConfigurationError, match="running event loop"):
            asyncio.run(misuse())
        # The agent is still usable afterwards.
        assert agent.invoke(ask("Hi.", "dee"), cfg("s4"))["status"] == "completed"


def test_a_database_failure_is_reported_and_the_turn_resumes(tmp_path: Any) -> None:
    server = StoppableServer(tmp_path)
    try:
        with fresh_database(server.url) as url, open_agent_sync(url, pool_timeout=10) as agent:
            agent.invoke(ask("My name is Eli.", "eli"), cfg("s5"))
            server.stop()
            with pytest.raises(DatabaseUnavailableError):
                agent.invoke(ask("I live in Oslo.", "eli"), cfg("s5"))
            server.start()
            agent.resume_turn(cfg("s5"))
            out = agent.invoke(ask("What is my name?", "eli"), cfg("s5"))
            assert "Eli" in out["messages"][-1].content
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT count(*) FROM checkpoints").fetchone()
            assert row is not None and row[0] > 0
    finally:
        server.close()
