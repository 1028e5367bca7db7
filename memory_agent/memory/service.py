"""The memory service: a user's long-term memory over LangGraph's `BaseStore`.

It works with any store (`AsyncPostgresStore` in production, `InMemoryStore` in unit tests, the
LangGraph server's own). Layout, per user (see `namespaces` and `records`):
- `conversations`: one record per thread (title, summary, last message, message count,
  timestamps), keyed by thread id: the user's conversation history.
- `episodes`: every message the user said, with its provenance and its date.
- `facts`, `preferences`, `entities`: one current record per subject. Saying the same thing
  again updates it (provenance and mention count); saying something new about the same subject
  supersedes it, and the old version moves to `history` with `valid_to` and `superseded_by`.

`MemoryService` is the facade; the decisions live in pure modules it reads for and writes
from: `plan` (what a turn writes), `recall` (ranking a user's memories for a query), `audit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import psycopg
from langgraph.store.base import BaseStore, GetOp, Item, Op, PutOp, SearchItem

from memory_agent.errors import InvalidInputError, database_error, is_outage
from memory_agent.events import now_iso
from memory_agent.memory import recall as recall_
from memory_agent.memory.audit import AuditReport, audit_report
from memory_agent.memory.conversation import Conversation, ConversationFields, as_conversation
from memory_agent.memory.dates import parse_when
from memory_agent.memory.extraction import MemoryDraft
from memory_agent.memory.plan import (
    EpisodeDraft,
    Turn,
    memory_key,
    plan_turn,
    supersede,
)
from memory_agent.memory.ranking import RecallWeights, default_weights
from memory_agent.memory.records import (
    KIND_NAMESPACE,
    KNOWLEDGE,
    Memory,
    MemoryBudget,
    MemoryKind,
    MemoryRecord,
    public,
    with_terms,
)
from memory_agent.persistence import store_sql as pg
from memory_agent.persistence.namespaces import KINDS, Kind, decode_label, user_namespace
from memory_agent.persistence.retention import ForgetReceipt

__all__ = [
    "AuditReport",
    "Conversation",
    "ConversationFields",
    "EpisodeDraft",
    "MemoryService",
    "memory_key",
]

_PAGE = 500


class MemoryService:
    """Reads and writes one store's user memories. Constructing it does no I/O.

    Args:
        store: any LangGraph `BaseStore`; with a vector index for semantic recall.
        weights: how recall ranks (default: the measured weights for the store's embedder).
    """

    def __init__(self, store: BaseStore, *, weights: RecallWeights | None = None) -> None:
        self.store = store
        self.weights = weights or default_weights(store)

    # --- conversations -------------------------------------------------------------------

    async def list_conversations(
        self, user_id: str, *, limit: int = 20, offset: int = 0
    ) -> list[Conversation]:
        """The user's threads, most recently updated first (`offset` skips the newest)."""
        ns = user_namespace(user_id, "conversations")
        items = await self.store.asearch(ns, limit=limit, offset=offset)
        convs = [as_conversation(i) for i in items]
        return sorted(convs, key=lambda c: c["updated_at"], reverse=True)

    async def get_conversation(self, user_id: str, thread_id: str) -> Conversation | None:
        item = await self.store.aget(user_namespace(user_id, "conversations"), thread_id)
        return as_conversation(item) if item else None

    # --- writing memories ----------------------------------------------------------------

    async def save_episodes(
        self,
        user_id: str,
        episodes: Sequence[EpisodeDraft],
        *,
        thread_id: str | None,
        when: str | datetime | None = None,
    ) -> list[str]:
        """Keep messages word for word, one episode per sentence, relative dates resolved as
        of `when` (default: now). Returns the keys written.

        Keyed by (thread, day, the message's words, sentence) and never rewritten: writing the
        same message again (a retry, or a re-send under a new id) changes nothing.
        """
        _, written = await self.save_turn(
            user_id, thread_id, None, [], episodes=episodes, when=when
        )
        return written

    async def save_turn(
        self,
        user_id: str,
        thread_id: str | None,
        conversation: ConversationFields | None,
        drafts: Sequence[MemoryDraft],
        *,
        message_ids: Sequence[str] = (),
        episodes: Sequence[EpisodeDraft] = (),
        when: str | datetime | None = None,
    ) -> tuple[Conversation | None, list[str]]:
        """Write a turn's episodes, facts, preferences and entities and the thread's record
        (what updates, supersedes or repeats what is stored: see `memory.plan`).

        One batch reads what the turn may change (one more, the memories closest to a draft
        on a subject not stored yet), `plan.plan_turn` decides every write without I/O, and
        one batch writes (in batches of `pg.MAX_BATCH_OPS`). On PostgreSQL all of it runs in
        one transaction that first takes an advisory lock per subject: two turns writing one
        subject serialise (each version is kept, in order), and a turn commits whole or not.

        Raises:
            InvalidInputError: a conversation without a thread id.
            StorageRefusedError: PostgreSQL refused the write (bad data, a limit; not an
                outage); nothing was stored. An outage propagates as psycopg's error.

        Args:
            user_id: whose memory.
            thread_id: the thread of the turn (provenance; the record's key).
            conversation: the thread's record, or None to leave it alone.
            drafts: facts, preferences and entities extracted from the turn.
            message_ids: their provenance when a draft names none.
            episodes: the messages said in the turn, with their neighbours.
            when: the turn's time (default: now); also resolves "yesterday".

        Returns:
            The thread's record (None without `conversation` and a thread id) and the keys
            written: memories first, then episodes (whose keys start with "ep-").
        """
        turn = Turn(
            user_id, thread_id, conversation, drafts, message_ids, episodes, parse_when(when)
        )
        try:
            async with pg.transaction(self.store) as bound:
                await pg.lock_subjects(bound, (pg.subject_lock(*t) for t in turn.targets))
                read = turn.reads()
                found = await pg.batched(bound, [GetOp(ns, key) for ns, key in read])
                stored = {
                    address: item.value
                    for address, item in zip(read, found, strict=True)
                    if isinstance(item, Item)
                }
                searches = turn.twin_searches(stored)
                results = await pg.batched(bound, searches)
                twins = {
                    (op.namespace_prefix, op.query or ""): cast(list[SearchItem], result)
                    for op, result in zip(searches, results, strict=True)
                }
                writes = plan_turn(turn, stored, twins, now_iso())
                await pg.batched(bound, writes.puts)
        except psycopg.Error as exc:
            if is_outage(exc):
                raise  # the run boundary reports it, naming the thread it cut off
            raise database_error(
                exc,
                "to store this turn's memories",
                refusals=True,
                after="nothing of this turn was stored and the thread is unchanged",
            ) from exc
        return writes.record, writes.written

    # --- reading and managing memories ---------------------------------------------------

    async def list_memories(
        self, user_id: str, *, kinds: Sequence[MemoryKind] = KNOWLEDGE
    ) -> list[Memory]:
        """The user's current memories of these kinds (default: facts, preferences, entities),
        most recently updated first."""
        out: list[Memory] = []
        for kind in kinds:
            ns = user_namespace(user_id, KIND_NAMESPACE[kind])
            out.extend(public(i.key, i.value) for i in await self._all(ns))
        return sorted(out, key=lambda m: str(m.get("updated_at", "")), reverse=True)

    async def get_memory(self, user_id: str, key: str) -> Memory | None:
        """One memory by key: a current one of any kind, or a superseded version."""
        found = await self._find(user_id, key)
        return public(found.key, found.value) if found else None

    async def history(self, user_id: str, key: str) -> list[Memory]:
        """Every version of a memory, oldest first (the current one last).

        Raises:
            InvalidInputError: the user has no memory with this key.
        """
        found = await self._find(user_id, key)
        if found is None:
            raise InvalidInputError(f"no memory {key!r} for this user")
        current_key = str(found.value.get("current_key", found.key))
        current = await self._find(user_id, current_key)
        old = await self._all(user_namespace(user_id, "history"), {"current_key": current_key})
        versions = [public(i.key, i.value) for i in old]
        if current is not None and current.namespace[-1] != "history":
            versions.append(public(current.key, current.value))
        return sorted(versions, key=lambda m: (m.get("version", 1), m["said_at"]))

    async def edit_memory(self, user_id: str, key: str, text: str) -> Memory:
        """Correct a memory's text.

        A fact, preference or entity gets a new version (the old one stays in its history);
        an episode is corrected in place (it records what was said; `edited_at` says when it
        was changed).

        Raises:
            InvalidInputError: empty text, or no current memory with this key.
        """
        text = text.strip()
        if not text:
            raise InvalidInputError("a memory's text must not be empty")
        found = await self._find(user_id, key)
        if found is None or found.namespace[-1] == "history":
            raise InvalidInputError(f"no current memory {key!r} for this user")
        value = found.value
        if value.get("kind") == "episode":
            edited = with_terms({**value, "text": text, "edited_at": now_iso()})
            await self.store.aput(found.namespace, key, edited)
            return public(key, edited)
        if text == value.get("text"):
            return public(key, value)
        draft: MemoryDraft = {"kind": value["kind"], "subject": str(value["subject"]), "text": text}
        said_at, thread_id = parse_when(None).isoformat(), value.get("thread_id")
        old, new = supersede(user_id, key, value, draft, thread_id, [], [], said_at, now_iso())
        new["source"] = "edit"
        await self.store.abatch([old, PutOp(found.namespace, key, new)])
        return public(key, new)

    async def delete_memory(self, user_id: str, key: str) -> bool:
        """Delete one memory by key (any kind), with its superseded versions.

        Returns:
            True when something was deleted.
        """
        found = await self._find(user_id, key)
        if found is None:
            return False
        current_key = str(found.value.get("current_key", found.key))
        history = user_namespace(user_id, "history")
        ops: list[Op] = [
            PutOp(history, i.key, None)
            for i in await self._all(history, {"current_key": current_key})
        ]
        current = await self._find(user_id, current_key)
        if current is not None:
            ops.append(PutOp(current.namespace, current.key, None))
        if found.namespace[-1] == "history":
            ops.append(PutOp(found.namespace, found.key, None))
        await pg.batched(self.store, ops)
        return True

    async def audit(self, user_id: str) -> AuditReport:
        """Near-duplicate current memories and every superseded subject of one user."""
        kinds: tuple[MemoryKind, ...] = (*KNOWLEDGE, "episode")
        current = {k: await self._all(user_namespace(user_id, KIND_NAMESPACE[k])) for k in kinds}
        history = await self._all(user_namespace(user_id, "history"))
        return audit_report(user_id, current, history)

    # --- recall --------------------------------------------------------------------------

    async def recall(
        self,
        user_id: str,
        query: str,
        budget: MemoryBudget,
        *,
        exclude_thread: str | None = None,
    ) -> list[MemoryRecord]:
        """Recent conversation summaries plus the memories most relevant to `query`.

        Args:
            user_id: whose memory.
            query: the user's message.
            budget: how many conversation summaries and memories to load.
            exclude_thread: the current thread (its own summary is not loaded).
        """
        return await recall_.recall(
            self.store, self.weights, user_id, query, budget, exclude_thread
        )

    async def search(
        self,
        user_id: str,
        query: str,
        *,
        limit: int = 10,
        kinds: Sequence[MemoryKind] | None = None,
    ) -> list[MemoryRecord]:
        """The user's current memories most relevant to `query`, best first.

        Ranks by BM25, the store's vector index, recency and importance (see `ranking`).
        An empty query gives the most recent memories.
        """
        found, _ = await recall_.search(self.store, self.weights, user_id, query, limit, kinds, [])
        return found

    # --- deletion ------------------------------------------------------------------------

    async def forget_user(self, user_id: str) -> ForgetReceipt:
        """Delete every memory of the user (all kinds). Threads are the checkpointer's."""
        deleted: dict[str, int] = {}
        threads: list[str] = []
        for kind in KINDS:
            ns = user_namespace(user_id, kind)
            items = await self._all(ns)
            if kind == "conversations":
                threads = [i.key for i in items]
            if items:
                await pg.batched(self.store, [PutOp(ns, i.key, None) for i in items])
            deleted[kind] = len(items)
        return {"user_id": user_id, "deleted": deleted, "threads": threads}

    async def list_users(self) -> list[str]:
        """User ids that have any memory in this store."""
        users: set[str] = set()
        offset = 0
        while True:  # the store answers a page at a time (100 by default)
            page = await self.store.alist_namespaces(
                prefix=("users",), max_depth=2, limit=_PAGE, offset=offset
            )
            users.update(decode_label(ns[1]) for ns in page if len(ns) > 1)
            if len(page) < _PAGE:
                return sorted(users)
            offset += _PAGE

    async def _find(self, user_id: str, key: str) -> Item | None:
        kinds: tuple[Kind, ...] = ("facts", "preferences", "entities", "episodes", "history")
        found = await self.store.abatch([GetOp(user_namespace(user_id, k), key) for k in kinds])
        return next((i for i in found if isinstance(i, Item)), None)

    async def _all(
        self, ns: tuple[str, ...], filter: dict[str, Any] | None = None
    ) -> list[SearchItem]:
        return await pg.namespace_items(self.store, ns, filter)
