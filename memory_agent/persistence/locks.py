"""Per-thread serialisation of turns with PostgreSQL advisory locks.

Two turns on one thread must not run at once: each would load the same checkpoint, and the
later write would drop the other's messages. A turn therefore holds a session-level advisory
lock on its user (shared) and then on its thread (exclusive) from before LangGraph loads the
checkpoint until the run ends. The user lock lets `forget_user` take that user exclusively and
wait for the user's turns in flight instead of racing them.

All the locks of one process live on one dedicated connection, polled with
`pg_try_advisory_lock*`, so a thousand concurrent turns cost one connection, not a thousand. A
session lock dies with its session: a process that crashes or is killed frees its threads at
once. Within the process an `asyncio.Lock` per thread queues turns fairly before they ask
PostgreSQL (a session may re-take its own advisory lock, so PostgreSQL alone would not exclude
two coroutines of one process).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import psycopg

from memory_agent.errors import (
    DatabaseUnavailableError,
    ThreadBusyError,
    database_error,
    database_errors,
)
from memory_agent.persistence.pool import CONNECTION_KWARGS, describe

logger = logging.getLogger(__name__)

Connect = Callable[[], Awaitable[psycopg.AsyncConnection[Any]]]

TRY_LOCK = "SELECT pg_try_advisory_lock(%s) AS ok"
TRY_LOCK_SHARED = "SELECT pg_try_advisory_lock_shared(%s) AS ok"
UNLOCK = "SELECT pg_advisory_unlock(%s)"
UNLOCK_SHARED = "SELECT pg_advisory_unlock_shared(%s)"

_POLL_FIRST = 0.01
_POLL_MAX = 0.25

# The locks the current task (and the tasks it spawns) already holds: a nested run on the same
# thread (the agent used as a subgraph) must not wait for itself.
_held: ContextVar[frozenset[int]] = ContextVar("memory_agent_held_locks", default=frozenset())


def lock_key(kind: str, name: str) -> int:
    """The 64-bit advisory-lock key of a thread or user (a stable hash of kind and name).

    Two names may share a key; that only serialises two unrelated turns, never mixes them.
    """
    digest = hashlib.blake2b(f"memory_agent:{kind}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def thread_key(thread_id: str) -> int:
    return lock_key("thread", thread_id)


def user_key(user_id: str) -> int:
    return lock_key("user", user_id)


@dataclass
class _Local:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class ThreadLocks:
    """Advisory locks of one process on one dedicated connection. Constructing it does no I/O.

    Args:
        connect: opens a new autocommit connection to the database (called again after the
            connection broke, e.g. when PostgreSQL restarted).
        timeout: how long a turn waits for its thread before `ThreadBusyError`.
        describe: how the database is named in error messages.
    """

    def __init__(self, connect: Connect, *, timeout: float = 60.0, describe: str = "") -> None:
        self._connect = connect
        self.timeout = timeout
        self._describe = describe or "PostgreSQL"
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._opening = asyncio.Lock()
        self._generation = 0
        self._local: dict[str, _Local] = {}
        self._background: set[asyncio.Future[Any]] = set()

    async def close(self) -> None:
        """Close the lock connection (which frees every lock it still holds)."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @asynccontextmanager
    async def hold(
        self, thread_id: str, user_id: str | None = None, *, timeout: float | None = None
    ) -> AsyncIterator[None]:
        """Hold `thread_id` exclusively (and `user_id` shared) for the block.

        Raises:
            ThreadBusyError: still held elsewhere after `timeout` seconds (default: the
                instance's). Nothing was done on the thread.
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        # One global order, user before thread, everywhere (`retention.forget_user_data` takes
        # the user, then the threads): a turn never holds its thread while it waits for its
        # user, so a deletion waiting for the user can never wait on that turn's thread.
        keys = [(thread_key(thread_id), False)]
        if user_id is not None:
            keys.insert(0, (user_key(user_id), True))
        held = _held.get()
        if thread_key(thread_id) in held:
            yield
            return
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        async with self._local_lock(thread_id, deadline):
            taken: list[tuple[int, bool]] = []
            generations: set[int] = set()
            try:
                for key, shared in keys:
                    generations.add(await self._acquire(key, shared, deadline, thread_id))
                    taken.append((key, shared))
                if len(generations) > 1:
                    raise DatabaseUnavailableError(
                        f"the connection to {self._describe} broke while locking thread "
                        f"{thread_id!r}"
                    )
                _held.set(held | {k for k, _ in taken})
                try:
                    yield
                finally:
                    # Not `reset(token)`: a caller may resume this block (an async generator's
                    # steps) from another context than the one that entered it (the server does).
                    _held.set(held)
            finally:
                await asyncio.shield(self._release(taken, max(generations, default=-1)))

    @asynccontextmanager
    async def _local_lock(self, thread_id: str, deadline: float) -> AsyncIterator[None]:
        local = self._local.setdefault(thread_id, _Local())
        local.users += 1
        try:
            try:
                await asyncio.wait_for(local.lock.acquire(), max(0.0, deadline - time.monotonic()))
            except TimeoutError as exc:
                raise _busy(thread_id) from exc
            try:
                yield
            finally:
                local.lock.release()
        finally:
            local.users -= 1
            if local.users == 0:
                del self._local[thread_id]

    async def _acquire(self, key: int, shared: bool, deadline: float, thread_id: str) -> int:
        delay = _POLL_FIRST
        while True:
            conn, generation = await self._connection()
            attempt = asyncio.ensure_future(self._try(conn, key, shared))
            try:
                ok = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                # The query may still take the lock after we stopped waiting: give it back.
                attempt.add_done_callback(
                    functools.partial(self._undo, conn=conn, key=key, shared=shared)
                )
                raise
            except psycopg.Error as exc:
                await self._drop(conn)
                raise database_error(
                    exc, f"locking thread {thread_id!r}", database=self._describe
                ) from exc
            if ok:
                return generation
            if time.monotonic() + delay > deadline:
                raise _busy(thread_id)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    @staticmethod
    async def _try(conn: psycopg.AsyncConnection[Any], key: int, shared: bool) -> bool:
        cur = await conn.execute(TRY_LOCK_SHARED if shared else TRY_LOCK, (key,))
        row = await cur.fetchone()
        return row is not None and bool(row["ok"])

    def _undo(
        self,
        attempt: asyncio.Future[bool],
        conn: psycopg.AsyncConnection[Any],
        key: int,
        shared: bool,
    ) -> None:
        if attempt.cancelled() or attempt.exception() is not None or not attempt.result():
            return
        task = asyncio.ensure_future(conn.execute(UNLOCK_SHARED if shared else UNLOCK, (key,)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _release(self, taken: list[tuple[int, bool]], generation: int) -> None:
        conn = self._conn
        if not taken or conn is None or generation != self._generation:
            return  # the session that held them is gone, and its locks with it
        try:
            for key, shared in reversed(taken):
                await conn.execute(UNLOCK_SHARED if shared else UNLOCK, (key,))
        except psycopg.Error as exc:
            # The turn's own outcome matters more than this: a broken session frees its locks.
            logger.warning("could not release advisory locks (%s); dropping the session", exc)
            await self._drop(conn)

    async def _connection(self) -> tuple[psycopg.AsyncConnection[Any], int]:
        async with self._opening:
            if self._conn is None or self._conn.closed or self._conn.broken:
                with database_errors("connecting for the thread locks", database=self._describe):
                    self._conn = await self._connect()
                self._generation += 1
            return self._conn, self._generation

    async def _drop(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if self._conn is conn:
            self._conn = None
            self._generation += 1
        try:
            await conn.close()
        except psycopg.Error:  # pragma: no cover - closing a broken connection
            pass


def _busy(thread_id: str) -> ThreadBusyError:
    return ThreadBusyError(
        f"thread {thread_id!r} is busy: another turn on it (or a deletion of its user's data) "
        "is still running; nothing of this turn was stored, send it again later"
    )


def thread_locks(url: str, *, timeout: float = 60.0) -> ThreadLocks:
    """The advisory locks of one process on `url` (no I/O until the first lock is taken)."""
    connect = functools.partial(
        psycopg.AsyncConnection.connect,
        url,
        **CONNECTION_KWARGS,
        connect_timeout=10,
        application_name="memory_agent.locks",
    )
    return ThreadLocks(connect, timeout=timeout, describe=describe(url))
