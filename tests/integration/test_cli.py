"""The `memory-agent` command, run as a process against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def run(
    database_url: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "memory_agent.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_ask_threads_memories_forget(database_url: str) -> None:
    told = run(database_url, "ask", "--user", "hana", "--thread", "h1", "My name is Hana.")
    assert told.returncode == 0, told.stderr
    asked = run(database_url, "ask", "--user", "hana", "--thread", "h2", "What is my name?")
    assert asked.returncode == 0, asked.stderr
    assert "Hana" in asked.stdout
    threads = run(database_url, "threads", "--user", "hana", "--json")
    assert {t["thread_id"] for t in json.loads(threads.stdout)} == {"h1", "h2"}
    mems = run(database_url, "memories", "--user", "hana", "--json")
    assert [m["text"] for m in json.loads(mems.stdout)] == ["The user's name is Hana."]
    refused = run(database_url, "forget", "--user", "hana")
    assert refused.returncode == 2
    forgot = run(database_url, "forget", "--user", "hana", "--yes")
    assert json.loads(forgot.stdout)["deleted"]["threads"] == 2
    assert json.loads(run(database_url, "memories", "--user", "hana", "--json").stdout) == []


def test_chat_reads_stdin_and_switches_threads(database_url: str) -> None:
    script = "My name is Ivo.\n/new\nWhat is my name?\n/threads\n/memories\n/quit\n"
    chat = run(database_url, "chat", "--user", "ivo", "--thread", "first", stdin=script)
    assert chat.returncode == 0, chat.stderr
    assert "Your name is Ivo." in chat.stdout
    assert "memory: loaded" in chat.stderr and "plan:" in chat.stderr
    assert "team memory: started" in chat.stderr and "team memory: done in" in chat.stderr
    assert "first" in chat.stdout and "[fact] The user's name is Ivo." in chat.stdout


def test_refused_turn_and_bad_database_exit_nonzero(database_url: str) -> None:
    assert run(database_url, "ask", "--user", "a", "--thread", "t", "hi").returncode == 0
    refused = run(database_url, "ask", "--user", "b", "--thread", "t", "hi")
    assert refused.returncode == 1
    assert "another user" in refused.stderr
    bad = run("postgresql://x@127.0.0.1:1/x", "db", "setup")
    assert bad.returncode == 1
    assert "cannot connect to PostgreSQL" in bad.stderr


def test_memories_subcommands_search_history_edit_delete_audit(database_url: str) -> None:
    for thread, text in [("c1", "I live in Seoul. I love tea."), ("c2", "I moved to Busan.")]:
        assert run(database_url, "ask", "--user", "cho", "--thread", thread, text).returncode == 0
    listed = json.loads(run(database_url, "memories", "list", "--user", "cho", "--json").stdout)
    assert sorted(m["text"] for m in listed) == ["The user lives in Busan.", "The user loves tea."]
    episodes = run(database_url, "memories", "list", "--user", "cho", "--kind", "episode")
    assert "User: I moved to Busan." in episodes.stdout
    found = json.loads(
        run(database_url, "memories", "search", "--user", "cho", "tea", "--json").stdout
    )
    assert found[0]["text"] == "The user loves tea."
    key = next(m["key"] for m in listed if "Busan" in m["text"])
    history = run(database_url, "memories", "history", "--user", "cho", key)
    assert history.stdout.index("Seoul") < history.stdout.index("Busan")
    audit = json.loads(run(database_url, "memories", "audit", "--user", "cho", "--json").stdout)
    assert [s["key"] for s in audit["superseded"]] == [key]
    edited = run(database_url, "memories", "edit", "--user", "cho", key, "The user lives in Jeju.")
    assert edited.returncode == 0 and "Jeju" in edited.stdout
    assert run(database_url, "memories", "delete", "--user", "cho", key).returncode == 0
    assert run(database_url, "memories", "delete", "--user", "cho", key).returncode == 1
    left = json.loads(run(database_url, "memories", "--user", "cho", "--json").stdout)
    assert [m["text"] for m in left] == ["The user loves tea."]
    reindexed = run(database_url, "memories", "reindex")
    assert reindexed.returncode == 0 and json.loads(reindexed.stdout)["items"] >= 4


def test_threads_show_tells_what_happened_in_each_turn(database_url: str) -> None:
    assert (
        run(database_url, "ask", "--user", "kai", "--thread", "k1", "I live in Oslo.").returncode
        == 0
    )
    asked = run(database_url, "ask", "--user", "kai", "--thread", "k2", "Where do I live?")
    assert asked.returncode == 0, asked.stderr

    shown = run(database_url, "threads", "show", "k2")
    as_json = run(database_url, "threads", "show", "k2", "--user", "kai", "--json")

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
        refused = run(database_url, "threads", "show", *args)
        assert refused.returncode == 1 and "no thread" in refused.stderr
    assert run(database_url, "threads").returncode == 2  # listing needs --user
