"""The embedded PostgreSQL (the `pgserver` package) and which database a process uses.

One URL (`DATABASE_URL`) names the database. Without one, an embedded PostgreSQL 16 with
pgvector is started under `$MEMORY_AGENT_HOME`, else the user's data directory, so a first run
needs nothing installed; the last process using it stops it.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import multiprocessing.util
import os
import warnings
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from memory_agent.errors import DatabaseUnavailableError
from memory_agent.utils import agent_home

_EMBEDDED_DB = "memory_agent"


# Per process, by pgdata: whether `_release` is registered for exit, and how many open
# `held_database` blocks use the embedded server (the last one to close releases it).
_RELEASE_AT_EXIT: set[Path] = set()
_HELD: Counter[Path] = Counter()


def _pgserver() -> Any:
    """The `pgserver.postgres_server` module, imported without platformdirs' runtime warning.

    pgserver keeps its inter-process lock under the user's runtime directory; without
    XDG_RUNTIME_DIR (containers, CI, ssh sessions) platformdirs warns on every import and falls
    back to a private `/tmp/runtime-<uid>` it checks itself: nothing a user did, nothing to fix.
    """
    from platformdirs import RuntimeDirWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeDirWarning)
        import pgserver.postgres_server as module
    return module


def _live_users(pgdata: Path) -> list[int]:
    """Drop dead processes from pgserver's list of the server's users.

    pgserver stops the server when the last process in `.handle_pids.json` exits, but a process
    that dies without running its exit handlers (killed, or a multiprocessing child such as the
    dev server's reloaded worker) stays listed forever, and the server is then never stopped.
    Call with pgserver's lock held.
    """
    handles = _pgserver().DiskList(pgdata / ".handle_pids.json")
    listed = handles.get()
    alive = [pid for pid in listed if _running(pid)]
    if alive != listed:
        handles.put(alive)
    return alive


def _running(pid: int) -> bool:
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _start_embedded(home: Path) -> str:
    module = _pgserver()
    home.mkdir(parents=True, exist_ok=True)
    pgdata = (home / "pgdata").resolve()
    try:
        with module.PostgresServer._lock:
            _live_users(pgdata)
        server = module.get_server(pgdata, cleanup_mode="stop")
        with module.PostgresServer._lock:
            # Listed again if an earlier `_release` of this process took it off the list.
            server.global_process_id_list.get_and_add(os.getpid())
        if pgdata not in _RELEASE_AT_EXIT:
            _RELEASE_AT_EXIT.add(pgdata)
            # atexit runs handlers last-in first-out: this one before pgserver's own (then a
            # no-op). A multiprocessing child (uvicorn's reloaded worker under `langgraph dev`)
            # ends with os._exit, where only multiprocessing's finalizers run.
            atexit.register(_release, pgdata)
            if multiprocessing.parent_process() is not None:
                multiprocessing.util.Finalize(None, _release, (pgdata,), exitpriority=0)
        server.psql(
            f"SELECT 'CREATE DATABASE {_EMBEDDED_DB}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{_EMBEDDED_DB}')\\gexec"
        )
    except Exception as exc:
        raise DatabaseUnavailableError(
            f"could not start the embedded PostgreSQL under {home}: {exc}. "
            "Set DATABASE_URL to use another PostgreSQL."
        ) from exc
    return str(server.get_uri(_EMBEDDED_DB))


def _release(pgdata: Path) -> None:
    """This process stops using the embedded server; the last live user stops it."""
    module = _pgserver()
    server = module.PostgresServer._instances.get(pgdata)
    if server is None:
        return
    with module.PostgresServer._lock:
        # pgserver's own exit handler stops the server only if this process is the only one
        # listed; listed dead processes would keep it running for good.
        _live_users(pgdata)
        if os.getpid() not in server.global_process_id_list.get():
            return  # already released
    server._cleanup()


@asynccontextmanager
async def held_database(url: str | None = None) -> AsyncIterator[str]:
    """`database_url(url)` for the life of the block, released when the process's last block ends.

    For processes that may end by a signal, where exit handlers never run: the LangGraph dev
    server re-raises the SIGTERM it shut down on. An embedded server is released (stopped when no
    other live process uses it) once every block of this process that holds it has exited.
    """
    url = url or os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    home = agent_home()
    started = await asyncio.to_thread(_start_embedded, home)
    pgdata = (home / "pgdata").resolve()
    _HELD[pgdata] += 1
    try:
        yield started
    finally:
        _HELD[pgdata] -= 1
        if not _HELD[pgdata]:
            await asyncio.to_thread(_release, pgdata)


async def database_url(url: str | None = None) -> str:
    """The database to use: `url`, else $DATABASE_URL, else the embedded one (started now)."""
    url = url or os.environ.get("DATABASE_URL")
    if url:
        return url
    return await asyncio.to_thread(_start_embedded, agent_home())
