"""The embedded PostgreSQL's lifetime: it stops when the last process using it exits.

Each test runs its own embedded server under a temporary `MEMORY_AGENT_HOME`, driven by real
processes (the CLI, and a program that is killed), never the shared test server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import postmaster

pytestmark = pytest.mark.integration

HOLD = """
import asyncio, sys
from memory_agent.persistence.embedded import database_url
print(asyncio.run(database_url()), flush=True)
sys.stdin.readline()
"""
"""A program that uses the embedded database until its standard input gets a line."""


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    if (pid := postmaster(tmp_path / "pgdata")) is not None:
        os.kill(pid, signal.SIGQUIT)  # a failed test leaves no server behind (immediate stop)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "XDG_RUNTIME_DIR")}
    return {**env, "MEMORY_AGENT_HOME": str(home)}


def _stopped(pgdata: Path, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while postmaster(pgdata) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _holder(home: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(home),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("postgresql://")
    return proc


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memory_agent.cli", *args],
        capture_output=True,
        text=True,
        env=_env(home),
        timeout=120,
        check=False,
    )


def test_a_killed_user_does_not_keep_the_server_running_for_good(home: Path) -> None:
    # A process that dies without its exit handlers (SIGKILL; or a multiprocessing child such
    # as the dev server's reloaded worker) stays listed as a user of the server.
    with _holder(home) as killed:
        killed.kill()
    assert postmaster(home / "pgdata") is not None

    setup = _cli(home, "db", "setup")

    assert setup.returncode == 0, setup.stderr
    assert _stopped(home / "pgdata"), "the last live user stops it"
    # No warning the user did not cause: without XDG_RUNTIME_DIR (containers, CI, ssh)
    # platformdirs used to warn on every command that started the embedded database.
    assert "Warning" not in setup.stderr, setup.stderr


def test_the_last_user_stops_it_whoever_started_it(home: Path) -> None:
    with _holder(home) as first:
        try:
            during = _cli(home, "threads", "--user", "ana")
            assert during.returncode == 0, during.stderr
            assert postmaster(home / "pgdata") is not None, "the first user still needs it"
        finally:
            first.communicate("done\n", timeout=60)
    assert first.returncode == 0
    assert _stopped(home / "pgdata")
