"""What a stored memory looks like, and how one is made.

Four kinds live under a user's namespaces (see `namespaces`):
- `episode`: what the user said, word for word (relative dates resolved), one record per
  sentence of a message (a short sentence joins the next), with who said it, when, in which
  thread, and the message id: nothing the user told is unreachable, even when no fact was
  extracted from it. A sentence is what a question usually needs: on LoCoMo, sentence episodes
  halved the words recall returns and found more than whole messages. Keyed by the message's
  source (thread, day, words; see `message_source`) and sentence, and never rewritten: a
  retried write, or a message re-sent after its turn failed, leaves them as they are.
- `fact`, `preference`, `entity`: knowledge distilled from what was said, one current record
  per subject (keyed by the subject). A newer statement about the same subject supersedes the
  current record, which moves to the `history` namespace with `valid_to` and `superseded_by`.

Every record carries its provenance (`thread_id`, `message_ids`, `said_at`), the `text` the
store's vector index embeds, and the lexical `terms` (see `lexical`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal, NotRequired, TypedDict

from memory_agent.memory.dates import find_dates
from memory_agent.memory.lexical import (
    CONTEXT_AFTER,
    CONTEXT_BEFORE,
    CONTEXT_MESSAGE,
    analyze,
    term_weights,
)
from memory_agent.persistence.namespaces import Kind

KnowledgeKind = Literal["fact", "preference", "entity"]
"""What extraction draws from a turn: one current statement per subject, superseded versions
kept in history."""
MemoryKind = Literal[KnowledgeKind, "episode"]
"""The kinds of memory kept for a user: knowledge, and episodes (sentences kept word for word)."""
KNOWLEDGE: tuple[KnowledgeKind, ...] = ("fact", "preference", "entity")
MEMORY_KINDS: tuple[MemoryKind, ...] = (*KNOWLEDGE, "episode")
KIND_NAMESPACE: dict[MemoryKind, Kind] = {
    "fact": "facts",
    "preference": "preferences",
    "entity": "entities",
    "episode": "episodes",
}
"""The store namespace (see `namespaces`) each kind lives in."""
RecalledKind = Literal["conversation", MemoryKind]
"""What a turn loads: memories, and the records of the user's other conversations."""
Scope = Literal["memory", "history"]
MEMORY_SCOPE: Scope = "memory"
"""Current memories: what recall searches."""
HISTORY_SCOPE: Scope = "history"
"""Superseded versions of facts, preferences and entities: read by `history`, never recalled."""
CONTEXT_CHARS = 400
"""How much of each neighbouring message (and of the rest of its own) an episode keeps."""
MIN_SENTENCE_WORDS = 6
"""A sentence shorter than this ("Hey Mel!") joins the next one in an episode."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
INTERNAL_FIELDS = frozenset({"scope", "terms", "length", "context", "sources"})
"""Fields of a stored value that are for search only (not shown by the management API)."""


class MemoryRecord(TypedDict, total=False):
    """One long-term memory as loaded for a turn."""

    kind: RecalledKind
    """Which namespace it came from."""
    key: str
    """Its key in the store (the thread id for a conversation)."""
    text: str
    """The text shown to the model."""
    score: float | None
    """Relevance to the message (None for recency-only loads)."""
    updated_at: str
    """ISO-8601 time of the last update."""
    said_at: str
    """ISO-8601 time it was said (the turn's time; an imported conversation's own date)."""
    thread_id: str | None
    """The thread it came from (provenance)."""
    message_ids: list[str]
    """The messages it was made from (provenance)."""


class MemoryBudget(TypedDict):
    """How many memories of each kind a turn may load, chosen from the intent."""

    conversations: int
    """Recent conversation summaries of the user (other threads)."""
    memories: int
    """Memories (facts, preferences, entities, episodes) relevant to the message."""


class Memory(TypedDict):
    """One memory as the management API shows it."""

    key: str
    """Its key in the store (stable for a fact's subject, or for an episode's message)."""
    kind: MemoryKind
    text: str
    subject: NotRequired[str]
    """What a fact, preference or entity is about ("location", "preference:pizza")."""
    speaker: NotRequired[str | None]
    """Who said it (None: the user)."""
    thread_id: str | None
    message_ids: list[str]
    """The messages it was made from."""
    said_at: str
    """When it was said (ISO-8601): the turn's time, which an import may set in the past."""
    valid_to: NotRequired[str | None]
    """When a newer fact about the same subject replaced it (history only)."""
    superseded_by: NotRequired[str | None]
    """The version id that replaced it (history only)."""
    supersedes: NotRequired[str | None]
    """The version id it replaced."""
    version: NotRequired[int]
    id: NotRequired[str]
    """Version id: "<key>-v<version>"."""
    mentions: NotRequired[int]
    """How many times it was told (restating a fact does not add a record)."""
    importance: float
    created_at: str
    updated_at: str


def version_id(key: str, version: int) -> str:
    return f"{key}-v{version}"


def subject_key(subject: str) -> str:
    """The store key of a fact, preference or entity: stable for its subject."""
    return hashlib.sha256(subject.encode("utf-8")).hexdigest()[:24]


def message_source(thread_id: str | None, day: str, text: str) -> str:
    """What identifies a message to memory: its thread, the day it was said and its words.

    Not its id: a client that re-sends a message after its turn failed sends a new id, and
    the re-sent message must find what its failed attempt already wrote (the same words said
    again on another day are a new message).
    """
    raw = f"{thread_id or ''}\x00{day}\x00{text}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:24]


def episode_key(source: str, part: int = 0) -> str:
    """The store key of an episode: stable for its message's source and its sentence."""
    return f"ep-{source}" if part == 0 else f"ep-{source}-{part}"


def is_episode_key(key: str) -> bool:
    """Whether a store key is an episode's (subjects' keys are hex digests)."""
    return key.startswith("ep-")


def sentences(text: str) -> list[str]:
    """The parts of a message that become episodes: its sentences, a short one joined to the
    next."""
    parts: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        if not sentence.strip():
            continue
        if parts and len(parts[-1].split()) < MIN_SENTENCE_WORDS:
            parts[-1] = f"{parts[-1]} {sentence.strip()}"
        else:
            parts.append(sentence.strip())
    return parts


QUESTION_FILLER_TERMS = 2
"""A sentence before a question with fewer content words than this ("Wow!", "Hi Ann,") does not
make the episode a statement."""


def is_question(text: str) -> bool:
    """Whether an utterance only asks ("Where do I live?", "Wow! Did you go?"): it tells
    nothing, and its words would outrank the statement that answers it."""
    if "?" not in text:
        return False
    parts = [p.strip() for p in _SENTENCE_END.split(text.strip()) if p.strip()]
    if not parts or not parts[-1].endswith("?"):
        return False
    return all(p.endswith("?") or len(set(analyze(p))) < QUESTION_FILLER_TERMS for p in parts[:-1])


def episode_importance(text: str) -> float:
    """How much an utterance tells: content words, less for a bare question."""
    content = len(set(analyze(text)))
    score = min(1.0, content / 8)
    if text.rstrip().endswith("?") and content < 6:
        score *= 0.5
    return round(score, 3)


def episode_value(
    *,
    text: str,
    speaker: str | None,
    said_at: str,
    thread_id: str | None,
    message_id: str,
    rest: str = "",
    before: str = "",
    after: str = "",
    part: int = 0,
    now: str,
) -> dict[str, Any]:
    """The stored value of one episode: `text` is one sentence (dates already resolved) of a
    message whose other sentences are `rest`."""
    who = speaker or "User"
    value = {
        "scope": MEMORY_SCOPE,
        "kind": "episode",
        "text": f"{who}: {text}",
        "speaker": speaker,
        "thread_id": thread_id,
        "message_ids": [message_id],
        "part": part,
        "said_at": said_at,
        "importance": episode_importance(text),
        "context": {
            "message": rest[:CONTEXT_CHARS],
            "before": before[:CONTEXT_CHARS],
            "after": after[:CONTEXT_CHARS],
        },
        "created_at": now,
        "updated_at": now,
    }
    return with_terms(value)


def with_terms(value: dict[str, Any]) -> dict[str, Any]:
    """`value` with its lexical terms (re)computed from its text and context.

    Dates are left out of the terms (recall matches them on their own, see `dates.find_dates`):
    as words, a resolved "today (2023-05-07)" would tie every greeting of that day to a query
    that names the day.
    """
    context = value.get("context") or {}
    parts = [
        (str(value.get("text", "")), 1.0),
        (str(context.get("message", "")), CONTEXT_MESSAGE),
        (str(context.get("before", "")), CONTEXT_BEFORE),
        (str(context.get("after", "")), CONTEXT_AFTER),
    ]
    terms = term_weights((find_dates(text)[1], weight) for text, weight in parts)
    return {**value, "terms": terms, "length": round(sum(terms.values()), 3)}


def public(key: str, value: dict[str, Any]) -> Memory:
    """The management view of a stored value (search-only fields dropped)."""
    shown = {k: v for k, v in value.items() if k not in INTERNAL_FIELDS}
    shown.setdefault("said_at", value.get("created_at", ""))
    shown.setdefault("importance", 1.0)
    return {"key": key, **shown}  # type: ignore[typeddict-item]
