"""The thread checkpointer: `AsyncPostgresSaver` whose storage per thread stays bounded.

What a turn stores. LangGraph saves a checkpoint after every superstep: the input, `__start__`,
initialize, planning and response make five per turn, each a row in `checkpoints` (the JSONB
carries every primitive channel value inline: title, summary, status, ids, and the versions of
all channels), plus a `checkpoint_blobs` row per changed non-primitive channel (the message
window, the plan, the loaded memories, ...), plus the `checkpoint_writes` of each task. Kept
whole, a thread's storage would grow with every turn even though the state itself is bounded (a
window of recent messages plus a running summary): `benchmarks/checkpoint_growth.py` measures it.

What is kept. Resuming a thread needs only its latest checkpoint and that checkpoint's pending
writes, so superseded checkpoints are pruned with upstream's `aprune(strategy="keep_latest")`:
when a turn starts (its "input" checkpoint is saved), the thread is pruned down to that
checkpoint, at the first turn this process sees of the thread and then every `prune_every`
turns. A turn's own checkpoints are never touched while it runs, so a turn interrupted between
planning and response resumes from its post-planning checkpoint. The price: the thread's history
(`get_state_history`, time travel) reaches back only to the last pruning.

Why then, and there. At the start of a turn every write of earlier runs is committed (a run
does not return before its background writes are), and the run's own later checkpoints wait for
this one to be saved, so the prune's snapshot holds nothing in flight. Pruning from inside a node
instead could delete a checkpoint whose task writes are still being saved, leaving orphans.

Concurrency. Upstream serialises every operation of a saver through one `asyncio.Lock`, which
a single shared connection needs but a pool does not (each operation takes a connection of its
own; the store already skips its lock for a pool). On a pool the lock is dropped here: with it,
all the turns of a process queue behind each other's checkpoint writes
(`benchmarks/load.py --upstream-lock` measures the difference).

Secrets. LangGraph merges the string and number values of the run config's `configurable` and
`metadata` into every checkpoint's metadata; only the keys of `CONFIG_METADATA_KEYS` (and those
a program names) get in, and secret-looking keys of the metadata itself are dropped (see
`memory_agent.secrets`).

Durability. Turns run with LangGraph's default `durability="async"`, deliberately: each step's
checkpoint is written while the next step runs, and the run returns only once all are committed.
"sync" would add a database round trip per step to every turn. "exit" would write one
checkpoint per turn but none between planning and response, so a crash there would redo the
whole turn. A crash under "async" loses at most the checkpoints still being written (the last
step or two), whose steps are redone on resume; memory writes are keyed, so redoing them changes
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.types import Durability
from psycopg_pool import AsyncConnectionPool

from memory_agent.errors import ConfigurationError
from memory_agent.secrets import scrub_metadata

logger = logging.getLogger(__name__)

DURABILITY: Durability = "async"
"""The durability turns run with (LangGraph's default); see the module docstring for why."""

PRUNE_EVERY = 10
"""Turns between two prunings of a thread: storage is bounded by about this many turns."""

_REMEMBERED_THREADS = 10_000

# The run-scoped operations the LangGraph server calls (`adelete_for_runs` on a rollback,
# `acopy_thread` for POST /threads/{id}/copy). Blob versions follow upstream's prune: a blob is
# deleted only when a deleted checkpoint used it and no kept checkpoint of its namespace does.
RUN_CHECKPOINTS_SQL = """
SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id FROM checkpoints
WHERE metadata ->> 'run_id' = ANY(%s)
"""
DELETE_RUN_WRITES_SQL = """
DELETE FROM checkpoint_writes
WHERE thread_id = %s AND checkpoint_ns = %s AND checkpoint_id = ANY(%s)
"""
DELETE_RUN_CHECKPOINTS_SQL = """
WITH deleted AS (
    DELETE FROM checkpoints
    WHERE thread_id = %s AND checkpoint_ns = %s AND checkpoint_id = ANY(%s)
    RETURNING checkpoint -> 'channel_versions' AS versions
)
SELECT DISTINCT v.key AS channel, v.value AS version
FROM deleted CROSS JOIN LATERAL jsonb_each_text(deleted.versions) AS v
"""
RELINK_CHILDREN_SQL = """
UPDATE checkpoints SET parent_checkpoint_id = %s
WHERE thread_id = %s AND checkpoint_ns = %s AND parent_checkpoint_id = %s
"""
REFERENCED_BLOBS_SQL = """
SELECT DISTINCT v.key AS channel, v.value AS version
FROM checkpoints c CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
WHERE c.thread_id = %s AND c.checkpoint_ns = %s
"""
DELETE_BLOBS_SQL = """
DELETE FROM checkpoint_blobs
WHERE thread_id = %s AND checkpoint_ns = %s AND channel = %s AND version = ANY(%s)
"""
COPY_CHECKPOINTS_SQL = """
INSERT INTO checkpoints
    (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata)
SELECT %(target)s, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata
FROM checkpoints WHERE thread_id = %(source)s
ON CONFLICT DO NOTHING
"""
COPY_BLOBS_SQL = """
INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
SELECT %(target)s, checkpoint_ns, channel, version, type, blob
FROM checkpoint_blobs WHERE thread_id = %(source)s
ON CONFLICT DO NOTHING
"""
COPY_WRITES_SQL = """
INSERT INTO checkpoint_writes
    (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob)
SELECT %(target)s, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob
FROM checkpoint_writes WHERE thread_id = %(source)s
ON CONFLICT DO NOTHING
"""

CONFIG_METADATA_KEYS = frozenset(
    {
        "run_id",
        "run_attempt",
        "graph_id",
        "assistant_id",
        "langgraph_auth_user_id",
        "langgraph_version",
        "langgraph_api_version",
        "langgraph_plan",
        "langgraph_host",
    }
)
"""The keys of a run's `configurable` and `metadata` that may enter checkpoint metadata
(besides LangGraph's own `source`, `step`, `parents`).

LangGraph copies every string and number of both into each checkpoint's metadata, for the life
of the thread; a caller's own keys are unknowable, and any of them may hold a secret ("dsn",
"jwt", "openai_key"). So what enters is decided here, by name (LangGraph's and the server's
own keys); a program adds its own with `BoundedPostgresSaver(metadata_keys=...)`. Metadata
passed to `put` directly is kept, less secret-looking keys."""
_ADDRESS_KEYS = frozenset({"thread_id", "checkpoint_ns", "checkpoint_id"})


class BoundedPostgresSaver(AsyncPostgresSaver):
    """`AsyncPostgresSaver` that prunes each thread's superseded checkpoints as turns start,
    works the pool in parallel and keeps secret-looking keys out of checkpoint metadata.

    Args:
        conn: a connection pool (or connection), as for `AsyncPostgresSaver`.
        prune_every: prune a thread every this many turns (1: at every turn); the first turn
            this process sees of a thread always prunes, so short-lived processes (the CLI)
            keep threads bounded too. None: never prune (keep the full history).
        **kwargs: passed to `AsyncPostgresSaver`.
    """

    def __init__(
        self,
        conn: Any,
        *,
        prune_every: int | None = PRUNE_EVERY,
        metadata_keys: Iterable[str] = (),
        **kwargs: Any,
    ):
        super().__init__(conn, **kwargs)
        self.metadata_keys = CONFIG_METADATA_KEYS | frozenset(metadata_keys)
        if prune_every is not None and prune_every < 1:
            raise ConfigurationError("prune_every must be at least 1 (or None to keep all history)")
        self.prune_every = prune_every
        if isinstance(conn, AsyncConnectionPool):
            self.lock = contextlib.nullcontext()  # type: ignore[assignment]
        # Turns seen per thread since its last pruning. Process-local on purpose: losing it
        # (a restart, another process) only makes the next turn of a thread prune it.
        self._since_prune: OrderedDict[str, int] = OrderedDict()

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config.get("configurable") or {}
        clean: RunnableConfig = {
            **config,
            "configurable": {
                k: v
                for k, v in configurable.items()
                if k in _ADDRESS_KEYS or k in self.metadata_keys
            },
            "metadata": {
                k: v for k, v in (config.get("metadata") or {}).items() if k in self.metadata_keys
            },
        }
        # Values copied from the run's config into the metadata before it reaches us (the
        # LangGraph server's checkpointer adapter does that) are held to the same allowlist.
        copied = {
            k
            for section in (configurable, config.get("metadata") or {})
            for k, v in section.items()
            if k in metadata and metadata.get(k) == v and k not in self.metadata_keys
        }
        own = {k: v for k, v in metadata.items() if k not in copied}
        scrubbed: Any = scrub_metadata(own)
        saved = await super().aput(clean, checkpoint, scrubbed, new_versions)
        configurable = config.get("configurable", {})
        if (
            metadata.get("source") == "input"
            and not configurable.get("checkpoint_ns")
            and self._due(str(configurable["thread_id"]))
        ):
            await self._prune(str(configurable["thread_id"]))
        return saved

    def _due(self, thread_id: str) -> bool:
        if self.prune_every is None:
            return False
        seen = self._since_prune.pop(thread_id, None)
        if seen is None or seen + 1 >= self.prune_every:
            self._since_prune[thread_id] = 0
            due = True
        else:
            self._since_prune[thread_id] = seen + 1
            due = False
        if len(self._since_prune) > _REMEMBERED_THREADS:
            self._since_prune.popitem(last=False)
        return due

    async def _prune(self, thread_id: str) -> None:
        try:
            await self.aprune([thread_id], strategy="keep_latest")
        except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected) as exc:
            # Another process pruned or wrote this thread at the same moment; the next turn
            # prunes again. Nothing is lost: pruning only ever deletes superseded rows.
            logger.info("pruning thread %s deferred: %s", thread_id, exc)
            self._since_prune.pop(thread_id, None)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints the given runs wrote (every namespace), with their writes.

        The LangGraph server calls it to roll back a run (`multitask_strategy="rollback"`). A
        kept checkpoint whose parent is deleted is re-linked to its nearest kept ancestor, and
        blobs only the deleted checkpoints used are deleted; all in one transaction.
        """
        if isinstance(run_ids, str):
            raise TypeError("run_ids must be a sequence of run ids, not a str")
        run_ids = [str(r) for r in run_ids]
        if not run_ids:
            return
        async with self._cursor() as cur, cur.connection.transaction():
            await cur.execute(RUN_CHECKPOINTS_SQL, (run_ids,))
            doomed: dict[tuple[str, str], dict[str, str | None]] = {}
            for row in await cur.fetchall():
                namespace = (row["thread_id"], row["checkpoint_ns"])
                doomed.setdefault(namespace, {})[row["checkpoint_id"]] = row["parent_checkpoint_id"]
            for (thread_id, ns), parents in sorted(doomed.items()):
                ids = sorted(parents)
                await cur.execute(DELETE_RUN_WRITES_SQL, (thread_id, ns, ids))
                await cur.execute(DELETE_RUN_CHECKPOINTS_SQL, (thread_id, ns, ids))
                freed = {(r["channel"], r["version"]) for r in await cur.fetchall()}
                for checkpoint_id in ids:
                    await cur.execute(
                        RELINK_CHILDREN_SQL,
                        (_kept_ancestor(checkpoint_id, parents), thread_id, ns, checkpoint_id),
                    )
                await cur.execute(REFERENCED_BLOBS_SQL, (thread_id, ns))
                kept = {(r["channel"], r["version"]) for r in await cur.fetchall()}
                garbage: dict[str, list[str]] = {}
                for channel, version in sorted(freed - kept):
                    garbage.setdefault(channel, []).append(version)
                for channel, versions in garbage.items():
                    await cur.execute(DELETE_BLOBS_SQL, (thread_id, ns, channel, versions))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of one thread to another, in one transaction.

        The LangGraph server calls it for POST /threads/{id}/copy. Rows the target already has
        are kept. (Checkpoint metadata never holds the thread id: LangGraph leaves it out.)
        """
        ids = {"source": str(source_thread_id), "target": str(target_thread_id)}
        async with self._cursor() as cur, cur.connection.transaction():
            for sql in (COPY_CHECKPOINTS_SQL, COPY_BLOBS_SQL, COPY_WRITES_SQL):
                await cur.execute(sql, ids)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Sync bridge to `adelete_for_runs`, from a thread other than the saver's loop."""
        self._from_another_thread()
        asyncio.run_coroutine_threadsafe(self.adelete_for_runs(run_ids), self.loop).result()

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Sync bridge to `acopy_thread`, from a thread other than the saver's loop."""
        self._from_another_thread()
        asyncio.run_coroutine_threadsafe(
            self.acopy_thread(source_thread_id, target_thread_id), self.loop
        ).result()

    def _from_another_thread(self) -> None:
        # Waiting on the loop from the loop's own thread would never return.
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is self.loop:
                raise asyncio.InvalidStateError(
                    "sync calls to BoundedPostgresSaver must come from another thread; "
                    "on the event loop use the async methods (adelete_for_runs, acopy_thread)"
                )


def _kept_ancestor(checkpoint_id: str, deleted: dict[str, str | None]) -> str | None:
    """The nearest ancestor of a deleted checkpoint that is not deleted too (or None)."""
    parent = deleted.get(checkpoint_id)
    seen = {checkpoint_id}
    while parent is not None and parent in deleted and parent not in seen:
        seen.add(parent)
        parent = deleted[parent]
    return parent if parent not in deleted else None
