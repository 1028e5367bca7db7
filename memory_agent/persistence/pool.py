"""Connections to PostgreSQL: the pool every part shares and how a database is named.

A database that cannot be reached raises `DatabaseUnavailableError`; nothing ever falls back to
an in-memory store.
"""

from __future__ import annotations

import logging
import re
import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from psycopg_pool.pool_async import AddConnection, MaintenanceTask

from memory_agent.errors import database_errors
from memory_agent.persistence.vectors import register_vector_dumper

logger = logging.getLogger(__name__)

Pool = AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]

MAX_RECONNECT_DELAY = 1.0
"""Seconds between the pool's attempts to reconnect while PostgreSQL is down."""


class RecoveringPool(AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]):
    """A pool that retries a lost database every `MAX_RECONNECT_DELAY` seconds.

    psycopg_pool doubles the delay between reconnection attempts without bound (until its
    5-minute `reconnect_timeout`): after a one-minute outage it would wait up to another minute
    once PostgreSQL is back, failing every turn meanwhile. Capping the delay makes the pool
    recover within a second of the database.
    """

    async def schedule_task(self, task: MaintenanceTask, delay: float) -> None:
        if isinstance(task, AddConnection):
            delay = min(delay, MAX_RECONNECT_DELAY)
        await super().schedule_task(task, delay)


CONNECTION_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
}
"""The one place the connection settings are made: autocommit (the checkpointer and store
manage their own transactions); `prepare_threshold=0`, psycopg prepares each statement on its
first use, so the checkpointer's and store's repeated queries skip re-planning (behind a
PgBouncer in transaction mode, set it to None, which disables prepared statements); dict rows
(what langgraph-checkpoint-postgres expects)."""

_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]*@")


def redact(url: str) -> str:
    """`url` without its password, for messages and logs."""
    return _PASSWORD.sub(r"\1***@", url)


def describe(url: str) -> str:
    """How a database is named in messages: its name, host and port (never the password)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        return f"PostgreSQL at {redact(url)}"
    name, host, port = params.get("dbname"), params.get("host"), params.get("port")
    return f"PostgreSQL database {name or '?'!r} at {host or 'localhost'}:{port or 5432}"


async def check_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's check before it hands out a connection: a round trip only when needed.

    An idle connection that is healthy has nothing to read; one the server closed (a restart,
    `pg_terminate_backend`, an idle timeout) has its error message or end-of-file waiting on the
    socket. So the socket is polled (no round trip) and only a connection with something waiting
    gets psycopg's full check, which raises for a dead one (the pool then discards it and tries
    another). The full check on every hand-out would cost a round trip per checkpoint write and
    per store call, a large share of a turn's database time (`benchmarks/turn_latency.py`).
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        await AsyncConnectionPool.check_connection(conn)


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    register_vector_dumper(conn)


@asynccontextmanager
async def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 30.0
) -> AsyncIterator[Pool]:
    """A connection pool to `url`, checked on open; closed on exit.

    Connections are checked before they are handed out (`check_connection`), so the pool
    recovers by itself after PostgreSQL restarts.
    """
    with database_errors("connecting", database=describe(url)):
        probe = await psycopg.AsyncConnection.connect(url, connect_timeout=10)
        await probe.close()
    pool: Pool = RecoveringPool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        kwargs=CONNECTION_KWARGS,
        check=check_connection,
        configure=_configure,
        open=False,
    )
    with database_errors("opening a connection pool", database=describe(url)):
        await pool.open(wait=True, timeout=timeout)
    try:
        yield pool
    finally:
        await pool.close()
