"""`make server` as a user runs it: start-up failures, the open-server warning, no reloader,
and the embedded PostgreSQL stopping with the server.

The command is the one `make -n server PORT=...` prints, run in a directory of its own (see
`devserver.prepare_project`).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from langgraph_sdk import get_client

from benchmarks.devserver import LANGGRAPH, QUIET_ENV, REPO, DevServer, free_port, prepare_project
from memory_agent.server.deployment import OPEN_SERVER_WARNING
from tests.e2e.conftest import Running
from tests.e2e.sdk import GRAPH
from tests.helpers import postmaster

pytestmark = pytest.mark.e2e

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nothing"
OPEN_WARNING = OPEN_SERVER_WARNING.split(":")[1].strip()  # "THIS SERVER IS OPEN. ..."


def make_server(port: int) -> list[str]:
    """The command `make server PORT=<port>` runs (the program made absolute)."""
    printed = subprocess.run(
        ["make", "-s", "-n", "-C", str(REPO), "server", f"PORT={port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(ln for ln in printed.splitlines() if "langgraph dev" in ln)
    argv = shlex.split(line)
    assert argv[0].endswith("bin/langgraph"), argv
    return [str(LANGGRAPH), *argv[1:]]


def run_until_exit(command: list[str], workdir: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run a server command that should stop by itself; its status and output."""
    try:
        done = subprocess.run(
            command,
            cwd=prepare_project(workdir),
            env={**os.environ, **QUIET_ENV, **env},
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        pytest.fail(f"still running after 90 s:\n{out[-3000:]}")
    return done.returncode, done.stdout + done.stderr


def test_make_server_exits_nonzero_when_the_database_is_unreachable(tmp_path: Path) -> None:
    env = {"DATABASE_URL": UNREACHABLE, "MEMORY_AGENT_HOME": str(tmp_path / "home")}
    code, out = run_until_exit(make_server(free_port()), tmp_path / "work", env)
    assert code != 0
    assert "memory_agent cannot start the server" in out
    assert "PostgreSQL database 'nothing' at 127.0.0.1:1 failed while connecting" in out


def test_langgraph_dev_with_its_reloader_stops_too(tmp_path: Path) -> None:
    # Plain `langgraph dev` runs the app in a child of uvicorn's reloader, which used to keep
    # running (not listening) after the child's start-up failed.
    env = {"DATABASE_URL": UNREACHABLE, "MEMORY_AGENT_HOME": str(tmp_path / "home")}
    command = [str(LANGGRAPH), "dev", "--port", str(free_port()), "--no-browser"]
    _code, out = run_until_exit(command, tmp_path / "work", env)
    assert "stopping the dev server's reloader" in out


def test_a_server_with_tokens_does_not_warn(running: Running) -> None:
    assert OPEN_WARNING not in running.server.log_path.read_text()


@pytest.fixture
def embedded_server(tmp_path: Path) -> Iterator[tuple[DevServer, Path]]:
    home = tmp_path / "home"
    port = free_port()
    server = DevServer(
        tmp_path / "work",
        {"DATABASE_URL": "", "MEMORY_AGENT_HOME": str(home), "MEMORY_AGENT_AUTH_TOKENS": ""},
        port=port,
        command=make_server(port),
    )
    server.env.pop("DATABASE_URL")
    try:
        yield server, home / "pgdata"
    finally:
        server.stop()
        if (pid := postmaster(home / "pgdata")) is not None:
            psutil.Process(pid).terminate()  # a failed test leaves no server behind


async def test_make_server_on_the_embedded_database(
    embedded_server: tuple[DevServer, Path],
) -> None:
    server, pgdata = embedded_server
    server.start()
    up = time.monotonic()
    assert postmaster(pgdata) is not None
    async with get_client(url=server.url, api_key=None) as client:
        thread = await client.threads.create()
        turn = {"messages": [{"role": "user", "content": "I live in Lima."}], "user_id": "lu"}
        await client.runs.wait(thread["thread_id"], GRAPH, input=turn)
        # POST /threads/{id}/copy goes through the checkpointer's acopy_thread.
        copy = await client.threads.copy(thread["thread_id"])
        original = await client.threads.get_state(thread["thread_id"])
        copied = await client.threads.get_state(copy["thread_id"])
        assert copied["values"]["messages"] == original["values"]["messages"]
        assert len(copied["values"]["messages"]) == 2
    time.sleep(max(0.0, 11 - (time.monotonic() - up)))  # the reloader logged every 10 s
    log = server.log_path.read_text()
    assert OPEN_WARNING in log, "an open server says so at start-up"
    assert "change detected" not in log and "changes detected" not in log
    assert "Custom checkpointer missing" not in log  # adelete_for_runs, acopy_thread, ...

    server.stop()

    deadline = time.monotonic() + 15
    while postmaster(pgdata) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert postmaster(pgdata) is None, "the embedded PostgreSQL stops with its last user"
