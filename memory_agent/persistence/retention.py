"""Retention: forgetting a user, pruning inactive threads, sweeping expired memories.

Both deletions work directly on the PostgreSQL tables of the checkpointer and the store, each
in one transaction, so a failure leaves everything as it was:
- `forget_user_data` deletes every thread the user owns (all its checkpoints, blobs and
  writes) and every store item under the user's namespace, and returns a receipt with counts.
  It first takes the user's advisory lock exclusively, which waits for the user's turns in
  flight (they hold it shared, see `locks`) and holds new ones back until it commits.
- `prune_threads` deletes threads whose last checkpoint is older than a cutoff, skipping any
  thread a turn holds right now, and optionally the threads' conversation records; it also
  deletes expired store items (memories with a TTL).

A user's threads are those whose checkpoints name them as `thread_owner` (kept inline in the
checkpoint document and indexed, see `migrations`), plus the threads of their conversation records.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

import psycopg
from psycopg import AsyncConnection

from memory_agent.errors import InvalidInputError, ThreadBusyError, database_error
from memory_agent.persistence.locks import thread_key, user_key
from memory_agent.persistence.namespaces import KINDS, ROOT, encode_label
from memory_agent.persistence.pool import Pool, describe
from memory_agent.utils import escape_like

logger = logging.getLogger(__name__)

# A turn's locks cover at most this many of a user's threads in one forget; past it, the user
# lock alone (which every turn of the user holds) keeps the user's own turns out.
MAX_THREAD_LOCKS = 1000
PRUNE_BATCH = 200

SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', %s, true)"
LOCK = "SELECT pg_advisory_xact_lock(%s)"
TRY_LOCK = "SELECT pg_try_advisory_xact_lock(%s) AS ok"

OWNED_THREADS = """
SELECT DISTINCT thread_id FROM checkpoints
WHERE checkpoint_ns = '' AND (checkpoint -> 'channel_values' ->> 'thread_owner') = %s
"""
CONVERSATION_KEYS = "SELECT key FROM store WHERE prefix = %s"
OWNED_BY_OTHERS = """
SELECT DISTINCT thread_id FROM checkpoints
WHERE thread_id = ANY(%s) AND checkpoint_ns = ''
  AND (checkpoint -> 'channel_values' ->> 'thread_owner') <> %s
"""
DELETE_WRITES = "DELETE FROM checkpoint_writes WHERE thread_id = ANY(%s)"
DELETE_BLOBS = "DELETE FROM checkpoint_blobs WHERE thread_id = ANY(%s)"
DELETE_CHECKPOINTS = "DELETE FROM checkpoints WHERE thread_id = ANY(%s) RETURNING thread_id"
DELETE_USER_ITEMS = r"DELETE FROM store WHERE prefix LIKE %s ESCAPE '\' RETURNING prefix"

INACTIVE_THREADS = """
SELECT thread_id FROM checkpoints
WHERE checkpoint_ns = ''
GROUP BY thread_id
HAVING max((checkpoint ->> 'ts')::timestamptz) < %s
ORDER BY thread_id
"""
STILL_INACTIVE = """
SELECT thread_id FROM checkpoints
WHERE checkpoint_ns = '' AND thread_id = ANY(%s)
GROUP BY thread_id
HAVING max((checkpoint ->> 'ts')::timestamptz) < %s
ORDER BY thread_id
"""
CONVERSATION_PREFIX = rf"^{ROOT}\.[^.]+\.conversations$"
DELETE_CONVERSATIONS = "DELETE FROM store WHERE key = ANY(%s) AND prefix ~ %s"
DELETE_EXPIRED = "DELETE FROM store WHERE expires_at IS NOT NULL AND expires_at < now()"

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_AGE = timedelta(days=36_500)
"""The longest duration `parse_age` accepts (100 years): a prune cutoff or a memory TTL beyond
it means "never", and far beyond it overflows Python's dates."""


class ForgetReceipt(TypedDict):
    """What `forget_user` deleted, by kind."""

    user_id: str
    deleted: dict[str, int]
    threads: list[str]


class PruneReceipt(TypedDict):
    """What `prune_threads` deleted (or would delete, on a dry run)."""

    cutoff: str
    """Threads whose last checkpoint is older than this ISO-8601 time were inactive."""
    dry_run: bool
    threads: list[str]
    """The inactive threads deleted (on a dry run: that would be deleted)."""
    busy: list[str]
    """Inactive threads skipped because a turn held them."""
    deleted: dict[str, int]
    """Rows deleted: threads, checkpoints, checkpoint_blobs, checkpoint_writes, conversations
    (records of the pruned threads, when summaries are dropped), expired (store items past
    their TTL)."""


def parse_age(text: str) -> timedelta:
    """A duration such as "30d", "12h", "90m", "45s" or "2w": positive, at most `MAX_AGE`.

    The one parser of durations (`prune --older-than`, `MEMORY_AGENT_MEMORY_TTL`,
    `open_agent(memory_ttl=...)`).

    Raises:
        InvalidInputError: not a duration, zero, or longer than `MAX_AGE`.
    """
    m = _AGE.match(text)
    if not m:
        raise InvalidInputError(f"{text!r} is not a duration: use e.g. 30d, 12h, 90m, 45s or 2w")
    amount, unit = float(m.group(1)), _UNITS[m.group(2).lower()]
    if amount * _SECONDS[unit] > MAX_AGE.total_seconds():
        raise InvalidInputError(f"{text!r} is too long a duration: at most {MAX_AGE.days}d")
    age = timedelta(**{unit: amount})
    if age <= timedelta(0):
        raise InvalidInputError(f"{text!r} is not a positive duration")
    return age


_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86_400, "weeks": 604_800}


def _lock_timeout(seconds: float) -> str:
    return f"{max(1, int(seconds * 1000))}ms"


async def _delete_threads(
    conn: AsyncConnection[Any], threads: list[str], deleted: Counter[str]
) -> list[str]:
    """Delete the checkpoints of `threads`; return the ids that had any."""
    deleted["checkpoint_writes"] += (await conn.execute(DELETE_WRITES, (threads,))).rowcount
    deleted["checkpoint_blobs"] += (await conn.execute(DELETE_BLOBS, (threads,))).rowcount
    cur = await conn.execute(DELETE_CHECKPOINTS, (threads,))
    rows = await cur.fetchall()
    deleted["checkpoints"] += len(rows)
    return sorted({r["thread_id"] for r in rows})


async def forget_user_data(
    pool: Pool, user_id: str, *, lock_timeout: float = 60.0
) -> ForgetReceipt:
    """Delete the user's threads, checkpoints and memories in one transaction.

    Args:
        pool: the agent's pool (autocommit connections).
        user_id: a validated user id.
        lock_timeout: seconds to wait for the user's turns in flight.

    Returns:
        The receipt: `deleted` counts threads, checkpoints, checkpoint_blobs, checkpoint_writes
        and the store items by kind (conversations, facts, ...); `threads` lists the threads.

    Raises:
        ThreadBusyError: the user's turns did not finish within `lock_timeout`.
        DatabaseUnavailableError: PostgreSQL failed; nothing was deleted.
    """
    label_prefix = f"{ROOT}.{encode_label(user_id)}."
    deleted: Counter[str] = Counter()
    try:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(SET_LOCK_TIMEOUT, (_lock_timeout(lock_timeout),))
            await conn.execute(LOCK, (user_key(user_id),))
            owned = {
                r["thread_id"]
                for r in await (await conn.execute(OWNED_THREADS, (user_id,))).fetchall()
            }
            recorded = {
                r["key"]
                for r in await (
                    await conn.execute(CONVERSATION_KEYS, (label_prefix + "conversations",))
                ).fetchall()
            }
            others = {
                r["thread_id"]
                for r in await (
                    await conn.execute(OWNED_BY_OTHERS, (sorted(recorded - owned), user_id))
                ).fetchall()
            }
            threads = sorted(owned | (recorded - others))
            if len(threads) <= MAX_THREAD_LOCKS:
                for thread_id in threads:  # sorted: two deletions never wait on each other
                    await conn.execute(LOCK, (thread_key(thread_id),))
            else:
                logger.warning("forgetting %d threads: only the user lock is taken", len(threads))
            await _delete_threads(conn, threads, deleted)
            cur = await conn.execute(DELETE_USER_ITEMS, (escape_like(label_prefix) + "%",))
            for row in await cur.fetchall():
                deleted[str(row["prefix"]).rsplit(".", 1)[-1]] += 1
    except psycopg.errors.LockNotAvailable as exc:
        raise ThreadBusyError(
            f"the turns of user {user_id!r} did not finish within {lock_timeout:g} s; "
            "nothing was deleted, try again"
        ) from exc
    except psycopg.Error as exc:
        raise database_error(
            exc,
            f"forgetting user {user_id!r}",
            database=describe(str(pool.conninfo)),
            after="nothing was deleted",
        ) from exc
    zero = dict.fromkeys(("checkpoints", "checkpoint_blobs", "checkpoint_writes", *KINDS), 0)
    counts = zero | dict(deleted)
    return {"user_id": user_id, "deleted": {"threads": len(threads)} | counts, "threads": threads}


async def prune_threads(
    pool: Pool,
    older_than: timedelta,
    *,
    keep_summaries: bool = True,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneReceipt:
    """Delete threads inactive for longer than `older_than`, and expired store items.

    Args:
        pool: the agent's pool.
        older_than: a thread whose last checkpoint is older than this is inactive.
        keep_summaries: keep the conversation records of the pruned threads (the user's
            history of what was discussed); False deletes them too.
        dry_run: delete nothing; report what would be deleted.
        now: the current time (tests).

    Raises:
        InvalidInputError: `older_than` is not positive.
        DatabaseUnavailableError: PostgreSQL failed (batches already committed stay deleted).
    """
    if older_than <= timedelta(0):
        raise InvalidInputError("older_than must be positive")
    cutoff = (now or datetime.now(UTC)) - older_than
    deleted: Counter[str] = Counter()
    pruned: list[str] = []
    busy: list[str] = []
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(INACTIVE_THREADS, (cutoff,))
            candidates = [r["thread_id"] for r in await cur.fetchall()]
            if dry_run:
                return _prune_receipt(cutoff, True, candidates, [], deleted)
            for start in range(0, len(candidates), PRUNE_BATCH):
                batch = candidates[start : start + PRUNE_BATCH]
                async with conn.transaction():
                    free: list[str] = []
                    for thread_id in batch:
                        row = await (
                            await conn.execute(TRY_LOCK, (thread_key(thread_id),))
                        ).fetchone()
                        (free if row is not None and row["ok"] else busy).append(thread_id)
                    # A turn may have finished between the scan and the lock: check again.
                    cur = await conn.execute(STILL_INACTIVE, (free, cutoff))
                    still = [r["thread_id"] for r in await cur.fetchall()]
                    if still:
                        gone = await _delete_threads(conn, still, deleted)
                        deleted["threads"] += len(gone)
                        pruned += gone
                        if not keep_summaries:
                            cur = await conn.execute(
                                DELETE_CONVERSATIONS, (still, CONVERSATION_PREFIX)
                            )
                            deleted["conversations"] += cur.rowcount
            deleted["expired"] += (await conn.execute(DELETE_EXPIRED)).rowcount
    except psycopg.Error as exc:
        raise database_error(
            exc,
            "pruning",
            database=describe(str(pool.conninfo)),
            after="what was pruned before stays pruned",
        ) from exc
    return _prune_receipt(cutoff, False, pruned, busy, deleted)


def _prune_receipt(
    cutoff: datetime, dry_run: bool, threads: list[str], busy: list[str], deleted: Counter[str]
) -> PruneReceipt:
    keys = ("threads", "checkpoints", "checkpoint_blobs", "checkpoint_writes")
    counts = {k: 0 for k in (*keys, "conversations", "expired")} | dict(deleted)
    return {
        "cutoff": cutoff.isoformat(),
        "dry_run": dry_run,
        "threads": threads,
        "busy": busy,
        "deleted": counts,
    }
