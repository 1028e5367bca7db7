"""The `memory-agent` command, run as a process against the test database."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import subprocess
import sys
import termios
import time

import pytest
from langchain_core.messages import HumanMessage

from memory_agent import forget_user, memories, open_agent, resolve_memory_key
from memory_agent.errors import InvalidInputError
from tests.helpers import cli

pytestmark = pytest.mark.integration


def test_ask_threads_memories_forget(database_url: str) -> None:
    told = cli(database_url, "ask", "--user", "hana", "--thread", "h1", "My name is Hana.")
    assert told.returncode == 0, told.stderr
    asked = cli(database_url, "ask", "--user", "hana", "--thread", "h2", "What is my name?")
    assert asked.returncode == 0, asked.stderr
    assert "Hana" in asked.stdout
    threads = cli(database_url, "threads", "--user", "hana", "--json")
    assert {t["thread_id"] for t in json.loads(threads.stdout)} == {"h1", "h2"}
    mems = cli(database_url, "memories", "--user", "hana", "--json")
    assert [m["text"] for m in json.loads(mems.stdout)] == ["The user's name is Hana."]
    refused = cli(database_url, "forget", "--user", "hana")
    assert refused.returncode == 2
    forgot = cli(database_url, "forget", "--user", "hana", "--yes")
    assert json.loads(forgot.stdout)["deleted"]["threads"] == 2
    assert json.loads(cli(database_url, "memories", "--user", "hana", "--json").stdout) == []


def test_chat_reads_stdin_and_switches_threads(database_url: str) -> None:
    script = "My name is Ivo.\n/new\nWhat is my name?\n/threads\n/memories\n/quit\n"
    chat = cli(database_url, "chat", "--user", "ivo", "--thread", "first", stdin=script)
    assert chat.returncode == 0, chat.stderr
    assert "Your name is Ivo." in chat.stdout
    assert "memory: loaded" in chat.stderr and "plan:" in chat.stderr
    assert "team memory: started" in chat.stderr and "team memory: done in" in chat.stderr
    assert "first" in chat.stdout and "[fact] The user's name is Ivo." in chat.stdout


def test_refused_turn_and_bad_database_exit_nonzero(database_url: str) -> None:
    assert cli(database_url, "ask", "--user", "a", "--thread", "t", "hi").returncode == 0
    refused = cli(database_url, "ask", "--user", "b", "--thread", "t", "hi")
    assert refused.returncode == 1
    assert "another user" in refused.stderr
    bad = cli("postgresql://x@127.0.0.1:1/x", "db", "setup")
    assert bad.returncode == 1
    assert "PostgreSQL database 'x' at 127.0.0.1:1 failed while connecting" in bad.stderr


def test_memories_subcommands_search_history_edit_delete_audit(database_url: str) -> None:
    for thread, text in [("c1", "I live in Seoul. I love tea."), ("c2", "I moved to Busan.")]:
        assert cli(database_url, "ask", "--user", "cho", "--thread", thread, text).returncode == 0
    listed = json.loads(cli(database_url, "memories", "list", "--user", "cho", "--json").stdout)
    assert sorted(m["text"] for m in listed) == ["The user lives in Busan.", "The user loves tea."]
    episodes = cli(database_url, "memories", "list", "--user", "cho", "--kind", "episode")
    assert "User: I moved to Busan." in episodes.stdout
    found = json.loads(
        cli(database_url, "memories", "search", "--user", "cho", "tea", "--json").stdout
    )
    assert found[0]["text"] == "The user loves tea."
    key = next(m["key"] for m in listed if "Busan" in m["text"])
    history = cli(database_url, "memories", "history", "--user", "cho", key)
    assert history.stdout.index("Seoul") < history.stdout.index("Busan")
    audit = json.loads(cli(database_url, "memories", "audit", "--user", "cho", "--json").stdout)
    assert [s["key"] for s in audit["superseded"]] == [key]
    edited = cli(database_url, "memories", "edit", "--user", "cho", key, "The user lives in Jeju.")
    assert edited.returncode == 0 and "Jeju" in edited.stdout
    assert cli(database_url, "memories", "delete", "--user", "cho", key).returncode == 0
    assert cli(database_url, "memories", "delete", "--user", "cho", key).returncode == 1
    left = json.loads(cli(database_url, "memories", "--user", "cho", "--json").stdout)
    assert [m["text"] for m in left] == ["The user loves tea."]
    reindexed = cli(database_url, "memories", "reindex")
    assert reindexed.returncode == 0 and json.loads(reindexed.stdout)["items"] >= 4


async def seed(database_url: str, *turns: tuple[str | None, str, str]) -> None:
    """Turns `(user, thread, text)` told in this process (faster than one CLI run each)."""
    async with open_agent(database_url) as agent:
        for user, thread, text in turns:
            turn = {"messages": [HumanMessage(text)], "user_id": user}
            await agent.ainvoke(turn, {"configurable": {"thread_id": thread}})


async def test_a_named_user_on_an_anonymous_thread_is_told_so(database_url: str) -> None:
    await seed(database_url, (None, "anon", "hello"), ("bo", "bo-1", "hi"))
    refused = cli(database_url, "ask", "--user", "bo", "--thread", "anon", "hi")
    assert refused.returncode == 1
    assert "this thread is anonymous" in refused.stderr
    assert "another user" not in refused.stderr
    anonymous = cli(database_url, "ask", "--thread", "bo-1", "hi")
    assert "an anonymous turn cannot continue it" in anonymous.stderr


async def test_switch_takes_an_id_or_an_unambiguous_prefix(database_url: str) -> None:
    await seed(database_url, *[("cy", t, "Hi.") for t in ("trip-rome", "trip-oslo", "work-1")])
    script = (
        "/switch work\n/threads\n/switch trip\n/switch trip-o\n/threads\n"
        "/switch nowhere\n/threads\n/quit\n"
    )
    chat = cli(database_url, "chat", "--user", "cy", "--thread", "trip-rome", stdin=script)
    assert chat.returncode == 0, chat.stderr
    assert "switched to thread work-1" in chat.stderr
    assert "'trip' starts several of your threads: trip-" in chat.stderr
    assert "switched to thread trip-oslo" in chat.stderr
    assert "no thread of yours is or starts with 'nowhere'" in chat.stderr
    listings = chat.stdout.split("* ")
    current = [part.split()[0] for part in listings[1:]]
    assert current == ["work-1", "trip-oslo", "nowhere"], chat.stdout
    assert "nowhere  (current: no messages yet)" in chat.stdout


async def test_a_fact_is_named_by_its_subject(database_url: str) -> None:
    await seed(
        database_url,
        ("dee", "s1", "I live in Seoul. I love tea. I love green tea."),
        ("dee", "s2", "I moved to Busan. My favorite sport is tennis. I love sport."),
    )
    async with open_agent(database_url) as agent:
        current = {m.get("subject"): m["key"] for m in await memories(agent).list_memories("dee")}
        key = current["location"]
        for name in ("location", " LOCATION ", key):
            assert await resolve_memory_key(agent, "dee", name) == key
        assert await resolve_memory_key(agent, "dee", "tea") == current["preference:tea"]
        with pytest.raises(InvalidInputError, match="could be any of"):
            await resolve_memory_key(agent, "dee", "sport")  # favorite:, preference:
        with pytest.raises(InvalidInputError, match="has no memory 'coffee'"):
            await resolve_memory_key(agent, "dee", "coffee")
    listed = cli(database_url, "memories", "list", "--user", "dee")
    assert "location  " in listed.stdout and "preference:tea  " in listed.stdout
    history = cli(database_url, "memories", "history", "--user", "dee", "location")
    assert history.returncode == 0, history.stderr
    assert history.stdout.index("Seoul") < history.stdout.index("Busan")
    assert cli(database_url, "memories", "delete", "--user", "dee", "tea").returncode == 0
    missing = cli(database_url, "memories", "history", "--user", "dee", "tea")
    assert missing.returncode == 1
    assert "has no memory 'tea': name it by its subject" in missing.stderr
    assert "Traceback" not in missing.stderr


async def test_unknown_and_forgotten_users_are_said_to_be(database_url: str) -> None:
    for args in (("threads", "--user", "ghost"), ("memories", "--user", "ghost")):
        shown = cli(database_url, *args)
        assert shown.returncode == 0
        assert shown.stdout == ""
        assert "no user 'ghost': nothing is stored for them" in shown.stderr
    await seed(database_url, ("eve", "e1", "Hi there."))
    no_facts = cli(database_url, "memories", "--user", "eve")
    assert "user 'eve' has no memories of that kind" in no_facts.stderr
    async with open_agent(database_url) as agent:
        await forget_user(agent, "eve")
    gone = cli(database_url, "threads", "--user", "eve", "--json")
    assert json.loads(gone.stdout) == []
    assert "no user 'eve'" in gone.stderr


def test_ctrl_c_at_the_prompt_quits_at_once(database_url: str) -> None:
    # A real terminal: Ctrl-C is the terminal's interrupt character, turned into SIGINT for
    # the foreground process group, while the REPL waits in its prompt.
    master, slave = pty.openpty()

    def controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    env = {**os.environ, "DATABASE_URL": database_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "memory_agent.cli", "chat", "--user", "fay", "--thread", "f1"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        preexec_fn=controlling_terminal,
    )
    os.close(slave)
    try:
        seen = _read_until(master, b"fay> ")
        os.write(master, b"My name is Fay.\n")
        seen += _read_until(master, b"fay> ")
        assert b"Your name is Fay" in seen or b"Fay" in seen
        os.write(master, b"\x03")  # Ctrl-C, no Enter
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def _read_until(fd: int, marker: bytes, timeout: float = 60.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} in {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            seen += os.read(fd, 4096)
    return seen


def test_threads_show_tells_what_happened_in_each_turn(database_url: str) -> None:
    assert (
        cli(database_url, "ask", "--user", "kai", "--thread", "k1", "I live in Oslo.").returncode
        == 0
    )
    asked = cli(database_url, "ask", "--user", "kai", "--thread", "k2", "Where do I live?")
    assert asked.returncode == 0, asked.stderr

    shown = cli(database_url, "threads", "show", "k2")
    as_json = cli(database_url, "threads", "show", "k2", "--user", "kai", "--json")

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("thread k2  'Where do I live?'  owner kai  1 turn(s)")
    assert lines[1].startswith("turn 1  ") and " ms  intent " in lines[1]
    assert "  asked: Where do I live?" in lines
    assert any(line.startswith("  memory: loaded ") for line in lines)
    assert any("Oslo" in line and line.startswith("    [") for line in lines)
    assert any(line.startswith("  team memory: done in ") for line in lines)
    assert "  saved: conversation, 1 episode(s)" in lines
    report = json.loads(as_json.stdout)
    assert report["thread_id"] == "k2" and report["owner"] == "kai"
    (turn,) = report["turns"]
    assert any("Oslo" in m["text"] for m in turn["memories"]["items"])
    assert turn["teams"][0]["team"] == "memory" and turn["teams"][0]["ok"] is True
    # Someone else's thread, or none, is not shown.
    for args in (("k2", "--user", "eve"), ("no-such-thread",)):
        refused = cli(database_url, "threads", "show", *args)
        assert refused.returncode == 1 and "no thread" in refused.stderr
    assert cli(database_url, "threads").returncode == 2  # listing needs --user
