"""The memory service: a user's long-term memory over LangGraph's `BaseStore`.

It works with any store (`AsyncPostgresStore` in production, `InMemoryStore` in unit tests, the
LangGraph server's own). Layout, per user (see `namespaces`):
- `conversations`: one record per thread (title, summary, last message, message count,
  timestamps), keyed by thread id: the user's conversation history.
- `facts`, `preferences`, `entities`: one record per subject, keyed by the subject's slug, so
  that a newer statement about the same subject updates the record instead of piling up.

Every record has a `text` field, the one the store's vector index embeds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, cast

from langgraph.store.base import BaseStore, GetOp, Item, PutOp, SearchItem, SearchOp

from memory_agent.errors import InvalidInputError
from memory_agent.events import now_iso
from memory_agent.memory.extraction import DraftKind, MemoryDraft
from memory_agent.memory.namespaces import (
    KINDS,
    Kind,
    decode_label,
    user_namespace,
    user_prefix,
)
from memory_agent.state import MemoryBudget, MemoryRecord

logger = logging.getLogger(__name__)

_KIND_NAMESPACE: dict[DraftKind, Kind] = {
    "fact": "facts",
    "preference": "preferences",
    "entity": "entities",
}
_MEMORY_SCOPE = "memory"
_CONVERSATION_SCOPE = "conversation"
_PAGE = 500


class Conversation(TypedDict):
    """One thread of a user, as listed in their conversation history."""

    thread_id: str
    title: str
    summary: str
    last_message: str
    message_count: int
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class ConversationFields:
    """What a turn says about its thread's record (the store adds the timestamps)."""

    title: str
    summary: str
    last_message: str
    message_count: int
    created_at: str | None = None
    """ISO-8601 time of the thread's first turn (None: keep the stored one, else now)."""


class ForgetReceipt(TypedDict):
    """What `forget_user` deleted, by kind."""

    user_id: str
    deleted: dict[str, int]
    threads: list[str]


def memory_key(subject: str) -> str:
    """The store key of a memory: stable for its subject, short, and label-safe."""
    return hashlib.sha256(subject.encode("utf-8")).hexdigest()[:24]


def _conversation_text(title: str, summary: str, last_message: str) -> str:
    return " | ".join(p for p in (title, summary, last_message) if p)


class MemoryService:
    """Reads and writes one store's user memories. Constructing it does no I/O."""

    def __init__(self, store: BaseStore) -> None:
        self.store = store

    # --- conversations -------------------------------------------------------------------

    async def save_conversation(
        self,
        user_id: str,
        thread_id: str,
        *,
        title: str,
        summary: str,
        last_message: str,
        message_count: int,
        created_at: str | None = None,
    ) -> Conversation:
        """Create or update (in place) the record of one thread."""
        fields = ConversationFields(
            title=title,
            summary=summary,
            last_message=last_message,
            message_count=message_count,
            created_at=created_at,
        )
        record, _ = await self.save_turn(user_id, thread_id, fields, [])
        assert record is not None
        return record

    async def list_conversations(self, user_id: str, *, limit: int = 20) -> list[Conversation]:
        """The user's threads, most recently updated first."""
        items = await self.store.asearch(user_namespace(user_id, "conversations"), limit=limit)
        convs = [_as_conversation(i) for i in items]
        return sorted(convs, key=lambda c: c["updated_at"], reverse=True)

    async def get_conversation(self, user_id: str, thread_id: str) -> Conversation | None:
        item = await self.store.aget(user_namespace(user_id, "conversations"), thread_id)
        return _as_conversation(item) if item else None

    # --- facts, preferences, entities ----------------------------------------------------

    async def save_memories(
        self,
        user_id: str,
        drafts: Iterable[MemoryDraft],
        *,
        thread_id: str | None,
        message_ids: Sequence[str] = (),
    ) -> list[str]:
        """Write drafts with their provenance; return the keys actually written.

        A draft whose subject already holds the same text is not written again (retries and
        repeats cost nothing); one with a new text about the same subject updates the record.
        """
        _, written = await self.save_turn(
            user_id, thread_id, None, list(drafts), message_ids=message_ids
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
    ) -> tuple[Conversation | None, list[str]]:
        """Write what one turn leaves behind in two batches: one read, one write.

        The records the turn may change (its memories, the thread's record) are read in one
        round trip; only those that change are written, all in one more. A memory whose subject
        already holds the same text, or a thread record that would differ only in its
        `updated_at`, is not written: a retried or resumed step writes nothing new. A turn that
        writes only the thread's record (with its `created_at` known) skips the read.

        Returns:
            The thread's record (None without `conversation` and a thread id) and the keys of
            the memories written.
        """
        targets: list[tuple[tuple[str, ...], str]] = [
            (user_namespace(user_id, _KIND_NAMESPACE[d["kind"]]), memory_key(d["subject"]))
            for d in drafts
        ]
        with_record = conversation is not None and bool(thread_id)
        if conversation is not None and not thread_id:
            raise InvalidInputError("a conversation needs a thread id")
        if with_record:
            targets.append((user_namespace(user_id, "conversations"), str(thread_id)))
        if not targets:
            return None, []
        if drafts or conversation is None or conversation.created_at is None:
            found = await self.store.abatch([GetOp(ns, key) for ns, key in targets])
            existing = [r if isinstance(r, Item) else None for r in found]
        else:
            # Only the thread's record, which every turn changes (its message count): reading
            # it first would cost a round trip per turn to spare a write only on a retry.
            existing = [None]
        now = now_iso()
        changed: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for draft, (ns, key), old in zip(drafts, targets, existing, strict=False):
            # Two drafts about one subject in one turn: the last one stands.
            if old is not None and old.value.get("text") == draft["text"]:
                changed.pop((ns, key), None)
                continue
            value: dict[str, Any] = {
                "scope": _MEMORY_SCOPE,
                "kind": draft["kind"],
                "subject": draft["subject"],
                "text": draft["text"],
                "thread_id": thread_id,
                "message_ids": list(message_ids),
                "created_at": old.value.get("created_at", now) if old else now,
                "updated_at": now,
            }
            changed[(ns, key)] = PutOp(ns, key, value)
        written = [key for _, key in changed]
        puts = list(changed.values())
        record: Conversation | None = None
        if with_record and conversation is not None:
            ns, key = targets[-1]
            old = existing[-1]
            record = {
                "thread_id": key,
                "title": conversation.title,
                "summary": conversation.summary,
                "last_message": conversation.last_message,
                "message_count": conversation.message_count,
                "created_at": conversation.created_at
                or (str(old.value.get("created_at")) if old else now),
                "updated_at": now,
            }
            if old is not None and _same_record(old.value, record):
                record = _as_conversation(old)
            else:
                value = {
                    **record,
                    "scope": _CONVERSATION_SCOPE,
                    "text": _conversation_text(
                        conversation.title, conversation.summary, conversation.last_message
                    ),
                }
                puts.append(PutOp(ns, key, value))
        if puts:
            await self.store.abatch(puts)
        return record, written

    async def list_memories(
        self, user_id: str, *, kinds: Sequence[DraftKind] = ("fact", "preference", "entity")
    ) -> list[dict[str, Any]]:
        """All facts, preferences and entities of the user, newest first, with their keys."""
        out: list[dict[str, Any]] = []
        for kind in kinds:
            ns = user_namespace(user_id, _KIND_NAMESPACE[kind])
            for item in await self._all(ns):
                out.append({"key": item.key, **item.value})
        return sorted(out, key=lambda v: str(v.get("updated_at", "")), reverse=True)

    # --- recall --------------------------------------------------------------------------

    async def recall(
        self,
        user_id: str,
        query: str,
        budget: MemoryBudget,
        *,
        exclude_thread: str | None = None,
    ) -> list[MemoryRecord]:
        """Recent conversation summaries plus the memories most relevant to `query`."""
        # Both searches go in one batch: one round trip to the store.
        ops: list[SearchOp] = []
        if budget["conversations"] > 0:
            ops.append(
                SearchOp(
                    user_namespace(user_id, "conversations"), limit=budget["conversations"] + 1
                )
            )
        if budget["memories"] > 0:
            ops.append(
                SearchOp(
                    user_prefix(user_id),
                    filter={"scope": _MEMORY_SCOPE},
                    limit=budget["memories"],
                    query=query or None,
                )
            )
        results = iter(await self.store.abatch(ops) if ops else [])
        records: list[MemoryRecord] = []
        if budget["conversations"] > 0:
            for item in cast(list[SearchItem], next(results)):
                if item.key == exclude_thread:
                    continue
                records.append(_as_record(item, "conversation"))
            records = records[: budget["conversations"]]
        if budget["memories"] > 0:
            found = cast(list[SearchItem], next(results))
            records.extend(_as_record(i, i.value.get("kind", "fact")) for i in found)
        return records

    # --- deletion ------------------------------------------------------------------------

    async def delete_memory(self, user_id: str, key: str) -> bool:
        """Delete one memory by key (any kind); True when something was deleted."""
        for kind in KINDS:
            ns = user_namespace(user_id, kind)
            if await self.store.aget(ns, key):
                await self.store.adelete(ns, key)
                return True
        return False

    async def forget_user(self, user_id: str) -> ForgetReceipt:
        """Delete every memory of the user (all kinds). Threads are the checkpointer's."""
        deleted: dict[str, int] = {}
        threads: list[str] = []
        for kind in KINDS:
            ns = user_namespace(user_id, kind)
            items = await self._all(ns)
            if kind == "conversations":
                threads = [i.key for i in items]
            for item in items:
                await self.store.adelete(ns, item.key)
            deleted[kind] = len(items)
        return {"user_id": user_id, "deleted": deleted, "threads": threads}

    async def list_users(self) -> list[str]:
        """User ids that have any memory in this store."""
        namespaces = await self.store.alist_namespaces(prefix=("users",), max_depth=2)
        return sorted({decode_label(ns[1]) for ns in namespaces if len(ns) > 1})

    async def _all(self, ns: tuple[str, ...]) -> list[SearchItem]:
        items: list[SearchItem] = []
        while True:
            page = await self.store.asearch(ns, limit=_PAGE, offset=len(items))
            items.extend(page)
            if len(page) < _PAGE:
                return items


def _as_conversation(item: Item) -> Conversation:
    v = item.value
    return {
        "thread_id": str(v.get("thread_id", item.key)),
        "title": str(v.get("title", "")),
        "summary": str(v.get("summary", "")),
        "last_message": str(v.get("last_message", "")),
        "message_count": int(v.get("message_count", 0)),
        "created_at": str(v.get("created_at", item.created_at.isoformat())),
        "updated_at": str(v.get("updated_at", item.updated_at.isoformat())),
    }


def _same_record(stored: dict[str, Any], record: Conversation) -> bool:
    """True when writing `record` would change nothing but its `updated_at`."""
    return all(stored.get(k) == v for k, v in record.items() if k != "updated_at")


def _as_record(item: SearchItem, kind: Any) -> MemoryRecord:
    v = item.value
    if kind == "conversation":
        text = f'Earlier conversation "{v.get("title", "")}": {v.get("summary", "")}'.strip()
    else:
        text = str(v.get("text", ""))
    return {
        "kind": kind,
        "key": item.key,
        "text": text,
        "score": item.score,
        "updated_at": str(v.get("updated_at", item.updated_at.isoformat())),
    }
