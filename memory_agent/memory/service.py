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
from typing import Any, TypedDict

from langgraph.store.base import BaseStore, Item, SearchItem

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
        if not thread_id:
            raise InvalidInputError("a conversation needs a thread id")
        now = now_iso()
        record: Conversation = {
            "thread_id": thread_id,
            "title": title,
            "summary": summary,
            "last_message": last_message,
            "message_count": message_count,
            "created_at": created_at or now,
            "updated_at": now,
        }
        value: dict[str, Any] = {
            **record,
            "scope": _CONVERSATION_SCOPE,
            "text": _conversation_text(title, summary, last_message),
        }
        await self.store.aput(user_namespace(user_id, "conversations"), thread_id, value)
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
        written: list[str] = []
        for draft in drafts:
            ns = user_namespace(user_id, _KIND_NAMESPACE[draft["kind"]])
            key = memory_key(draft["subject"])
            existing = await self.store.aget(ns, key)
            if existing and existing.value.get("text") == draft["text"]:
                continue
            now = now_iso()
            value: dict[str, Any] = {
                "scope": _MEMORY_SCOPE,
                "kind": draft["kind"],
                "subject": draft["subject"],
                "text": draft["text"],
                "thread_id": thread_id,
                "message_ids": list(message_ids),
                "created_at": existing.value.get("created_at", now) if existing else now,
                "updated_at": now,
            }
            await self.store.aput(ns, key, value)
            written.append(key)
        return written

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
        records: list[MemoryRecord] = []
        if budget["conversations"] > 0:
            convs = await self.store.asearch(
                user_namespace(user_id, "conversations"), limit=budget["conversations"] + 1
            )
            for item in convs:
                if item.key == exclude_thread:
                    continue
                records.append(_as_record(item, "conversation"))
            records = records[: budget["conversations"]]
        if budget["memories"] > 0:
            found = await self.store.asearch(
                user_prefix(user_id),
                query=query or None,
                filter={"scope": _MEMORY_SCOPE},
                limit=budget["memories"],
            )
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
