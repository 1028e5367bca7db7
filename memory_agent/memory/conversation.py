"""A thread's conversation record: what a turn says of it, what is listed, and the write that
keeps it current.

One record per thread, keyed by thread id under the user's `conversations` namespace: the
user's conversation history, and the summaries of other threads that recall loads.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from langgraph.store.base import Item, PutOp

CONVERSATION_SCOPE = "conversation"


class _ConversationText(TypedDict):
    """What a thread's record says of the thread: the fields a turn writes and a listing
    shows."""

    title: str
    summary: str
    last_message: str
    message_count: int


class ConversationFields(_ConversationText):
    """What a turn says about its thread's record (the store adds the thread id and the
    timestamps)."""

    created_at: NotRequired[str | None]
    """ISO-8601 time of the thread's first turn (None or absent: keep the stored one, else
    now)."""


class Conversation(_ConversationText):
    """One thread of a user, as listed in their conversation history."""

    thread_id: str
    created_at: str
    updated_at: str


def conversation_write(
    at: tuple[tuple[str, ...], str],
    fields: ConversationFields,
    stored: dict[str, Any] | None,
    now: str,
) -> tuple[Conversation, PutOp | None]:
    """The record at `at` (namespace, thread id) after a turn says `fields` of it, and its
    write (None: it would change only in its `updated_at`).

    Args:
        at: where the record is stored.
        fields: what the turn says of the thread.
        stored: the stored record (None: none, or not read).
        now: ISO-8601 time of the write.
    """
    record: Conversation = {
        "thread_id": at[1],
        "title": fields["title"],
        "summary": fields["summary"],
        "last_message": fields["last_message"],
        "message_count": fields["message_count"],
        "created_at": fields.get("created_at")
        or (str(stored.get("created_at")) if stored else now),
        "updated_at": now,
    }
    if stored is not None and all(
        stored.get(k) == v for k, v in record.items() if k != "updated_at"
    ):
        return {**record, "updated_at": str(stored.get("updated_at", now))}, None
    text = " | ".join(p for p in (fields["title"], fields["summary"], fields["last_message"]) if p)
    value = {**record, "scope": CONVERSATION_SCOPE, "text": text}
    # Not embedded: conversations are loaded by recency, and the summary grows every turn.
    return record, PutOp(at[0], at[1], value, index=False)


def as_conversation(item: Item) -> Conversation:
    """A stored record as listed (fields it lacks: empty, or the item's own)."""
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
