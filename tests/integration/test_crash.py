"""The agent process killed (SIGKILL) during a turn: a new process resumes the thread."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from memory_agent import open_agent, resume_turn
from tests.helpers import cfg, cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ACK = "Got it, thank you for telling me."


def env(url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url}


def crash_at(url: str, tmp: Path, point: str, thread: str, user: str, text: str) -> None:
    """Run a turn in a new process and SIGKILL it once it reaches `point`."""
    marker = tmp / f"{point}.reached"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.killable_turn"]
        + [url, thread, user, text, str(marker), point],
        env=env(url),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the turn ended before {point}: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"{point} never reached"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert proc.stderr is not None
    proc.stderr.close()


def memory_rows(url: str, user: str) -> list[tuple[Any, ...]]:
    """Every memory of the user, as stored: facts, preferences and entities whole; episodes by
    key only (an episode is rewritten, under its key, with the time of the step that wrote it)."""
    with psycopg.connect(url) as conn:
        return list(
            conn.execute(
                "SELECT prefix, key, CASE WHEN prefix LIKE '%%.episodes' THEN NULL "
                "ELSE (value::text, updated_at)::text END FROM store "
                "WHERE prefix LIKE %s AND value->>'scope' = 'memory' ORDER BY 1, 2",
                (f"users.{user}.%",),
            ).fetchall()
        )


def facts(url: str, user: str) -> list[tuple[str, str]]:
    """The user's facts and preferences: (subject, text), by subject."""
    with psycopg.connect(url) as conn:
        return list(
            conn.execute(
                "SELECT value->>'subject', value->>'text' FROM store WHERE prefix LIKE %s "
                "AND value->>'scope' = 'memory' AND value->>'subject' IS NOT NULL ORDER BY 1",
                (f"users.{user}.%",),
            ).fetchall()
        )


def test_killed_in_the_response_node_then_the_cli_resumes(
    database_url: str, tmp_path: Path
) -> None:
    assert (
        cli(database_url, "ask", "--user", "kim", "--thread", "k", "I live in Oslo.").returncode
        == 0
    )
    crash_at(database_url, tmp_path, "model", "k", "kim", "My name is Kim.")
    # A new process: the CLI finishes the cut-off turn, then answers from it.
    asked = cli(database_url, "ask", "--user", "kim", "--thread", "k", "What is my name?")
    assert asked.returncode == 0, asked.stderr
    assert "finished the turn that was cut off" in asked.stderr
    assert asked.stdout.strip() == "Your name is Kim."
    checked = cli(database_url, "threads", "--user", "kim", "--json")
    assert '"message_count": 6' in checked.stdout
    assert facts(database_url, "kim") == [
        ("location", "The user lives in Oslo."),
        ("name", "The user's name is Kim."),
    ]


async def test_killed_after_the_turns_writes_before_its_checkpoint(
    database_url: str, tmp_path: Path
) -> None:
    crash_at(database_url, tmp_path, "persist", "p", "pat", "My name is Pat. I love tea.")
    written = memory_rows(database_url, "pat")
    assert [f[0] for f in facts(database_url, "pat")] == ["name", "preference:tea"]  # committed
    record = conversation_row(database_url, "pat", "p")
    async with open_agent(database_url) as agent:
        resumed = await resume_turn(agent, cfg("p"))
        assert resumed is not None and resumed["status"] == "completed"
        state = (await agent.aget_state(cfg("p"))).values
    assert [(m.type, m.content) for m in state["messages"]] == [
        ("human", "My name is Pat. I love tea."),
        ("ai", ACK),
    ]
    # The resumed step wrote no memory twice: the same rows, the facts untouched.
    assert memory_rows(database_url, "pat") == written
    assert conversation_row(database_url, "pat", "p") == record
    convs = cli(database_url, "threads", "--user", "pat", "--json")
    assert '"message_count": 2' in convs.stdout


def conversation_row(url: str, user: str, thread: str) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT value, updated_at FROM store WHERE prefix = %s AND key = %s",
            (f"users.{user}.conversations", thread),
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_chat_killed_at_an_arbitrary_point_loses_nothing(database_url: str) -> None:
    lines = [f"I like topic{i}." for i in range(6)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "memory_agent.cli", "chat", "--user", "cy", "--thread", "c"],
        env=env(database_url),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("".join(f"{line}\n" for line in lines))
    proc.stdin.flush()
    answered = 0
    while answered < 3:
        out = proc.stdout.readline()
        assert out, "chat ended early"
        answered += ACK in out
    time.sleep(random.uniform(0, 0.3))
    proc.send_signal(signal.SIGKILL)  # somewhere in the turns after the third
    proc.wait(timeout=30)
    proc.stdin.close()
    proc.stdout.close()

    # A new process finishes whatever turn was cut off; what it shows is what was committed.
    committed = human_messages(database_url, "c", resume=True)
    assert committed == lines[: len(committed)] and len(committed) >= 3
    rest = [line for line in lines if line not in committed]
    chat = cli(database_url, "chat", "--user", "cy", "--thread", "c", stdin="\n".join(rest))
    assert chat.returncode == 0, chat.stderr
    messages = all_messages(database_url, "c")
    assert [m[1] for m in messages if m[0] == "human"] == lines
    assert [m[0] for m in messages] == ["human", "ai"] * 6
    assert [f[0] for f in facts(database_url, "cy")] == sorted(
        f"preference:topic{i}" for i in range(6)
    )


def all_messages(url: str, thread: str, *, resume: bool = False) -> list[tuple[str, str]]:
    async def read() -> list[tuple[str, str]]:
        async with open_agent(url, setup=False) as agent:
            if resume:
                await resume_turn(agent, cfg(thread))
            state = await agent.aget_state(cfg(thread))
        return [(m.type, str(m.content)) for m in state.values.get("messages", [])]

    return asyncio.run(read())


def human_messages(url: str, thread: str, *, resume: bool = False) -> list[str]:
    return [text for kind, text in all_messages(url, thread, resume=resume) if kind == "human"]
