"""A turn's write plan: from what a turn said and what is stored, every write, without I/O.

`MemoryService.save_turn` builds a `Turn`, reads `Turn.reads()` (then `Turn.twin_searches()`
for the subjects not stored yet), and applies the `TurnWrites` that `plan_turn` decides:
- Each episode (a sentence of what was said) is written under its own key, derived from the
  message's source (thread, day, words; `records.message_source`), once: a message re-sent
  after its turn failed finds its episodes there and changes nothing.
- A draft about a subject not seen before is created, unless a current memory of the same
  kind already says the same thing under another subject (then that one is updated); a draft
  that says what its subject's memory says adds its provenance and a mention (once per
  source: a retry or a re-send writes nothing); a draft that says something else supersedes
  it: the old version moves to `history` with `valid_to` and `superseded_by` (two drafts about
  one subject in one turn: the last one stands, with no history between them).
- The thread's record is written unless it would change only in its `updated_at`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypedDict

from langgraph.store.base import Item, PutOp, SearchOp

from memory_agent.errors import InvalidInputError
from memory_agent.memory.conversation import Conversation, ConversationFields, conversation_write
from memory_agent.memory.dates import day, resolve_dates
from memory_agent.memory.extraction import MemoryDraft
from memory_agent.memory.lexical import analyze, jaccard
from memory_agent.memory.records import (
    HISTORY_SCOPE,
    KIND_NAMESPACE,
    MEMORY_SCOPE,
    episode_key,
    episode_value,
    message_source,
    sentences,
    subject_key,
    version_id,
    with_terms,
)
from memory_agent.persistence.namespaces import user_namespace

SAME_MEANING = 0.8
"""Term overlap (Jaccard) from which two statements about one subject say the same thing."""
TWIN_CANDIDATES = 3
"""How many of a kind's current memories closest to a draft on a new subject are compared
with it (see `Turn.twin_searches`)."""
MAX_PROVENANCE = 50
_NEGATION = re.compile(r"\b(?:not|no|never|don'?t|doesn'?t|didn'?t|dislikes?|hates?)\b", re.I)

Address = tuple[tuple[str, ...], str]
"""Where a record is stored: (namespace, key)."""


class EpisodeDraft(TypedDict):
    """One message to keep word for word, with what surrounds it."""

    message_id: str
    text: str
    speaker: str | None
    """Who said it when the message names its speaker (None: the user)."""
    before: str
    """The message it answered (empty if none)."""
    after: str
    """The message that answered it (empty if none)."""


class _Sentence(NamedTuple):
    """One episode of a turn: a sentence of a message, under its key."""

    key: str
    text: str
    rest: str
    part: int
    episode: EpisodeDraft


@dataclass(frozen=True)
class TurnWrites:
    """What a turn writes, and what `save_turn` returns."""

    puts: list[PutOp]
    """In (namespace, key) order whoever writes: two transactions of one user then take the
    rows (and the BM25 statistics rows their trigger updates) in the same order."""
    record: Conversation | None
    """The thread's record as it stands after the turn (None: no record asked for)."""
    written: list[str]
    """Keys written: memories first, then episodes."""


def memory_key(subject: str) -> str:
    """The store key of a memory: stable for its subject, short, and label-safe."""
    return subject_key(subject)


class Turn:
    """What `save_turn` was asked to write, with what follows from it before any I/O.

    Args:
        user_id: whose memory.
        thread_id: the thread of the turn (provenance; the record's key).
        conversation: the thread's record, or None to leave it alone.
        drafts: facts, preferences and entities extracted from the turn (empty ones dropped).
        message_ids: their provenance when a draft names none.
        episodes: the messages said in the turn, with their neighbours.
        said: the turn's time (resolves "yesterday").

    Raises:
        InvalidInputError: a conversation without a thread id.
    """

    def __init__(
        self,
        user_id: str,
        thread_id: str | None,
        conversation: ConversationFields | None,
        drafts: Sequence[MemoryDraft],
        message_ids: Sequence[str],
        episodes: Sequence[EpisodeDraft],
        said: datetime,
    ) -> None:
        if conversation is not None and not thread_id:
            raise InvalidInputError("a conversation needs a thread id")
        self.user_id = user_id
        self.thread_id = thread_id
        self.conversation = conversation
        self.drafts = [d for d in drafts if d["text"].strip() and d["subject"].strip()]
        self.message_ids = list(message_ids)
        self.said = said
        self.targets: list[Address] = [
            (user_namespace(user_id, KIND_NAMESPACE[d["kind"]]), memory_key(d["subject"]))
            for d in self.drafts
        ]
        """Where each draft's subject is stored."""
        self.episode_ns = user_namespace(user_id, "episodes")
        self.record_at: Address = (user_namespace(user_id, "conversations"), str(thread_id))
        self.sources: dict[str, str] = {}
        """The source (see `records.message_source`) of each message of the turn, by id."""
        self.sentences: dict[str, _Sentence] = {}
        for ep in episodes:
            source = message_source(thread_id, day(said), ep["text"])
            self.sources[ep["message_id"]] = source
            parts = sentences(resolve_dates(ep["text"], said))
            for i, part in enumerate(parts):
                key = episode_key(source, i)
                rest = " ".join(parts[:i] + parts[i + 1 :])
                self.sentences[key] = _Sentence(key, part, rest, i, ep)

    def reads(self) -> list[Address]:
        """The records the turn may change: its subjects, its episodes, and the thread's
        record when its `created_at` is unknown or there are drafts."""
        read = [*self.targets, *((self.episode_ns, key) for key in self.sentences)]
        c = self.conversation
        if c is not None and (self.drafts or c.get("created_at") is None):
            read.append(self.record_at)
        return read

    def twin_searches(self, stored: Mapping[Address, Any]) -> list[SearchOp]:
        """The searches for memories that may say what a draft on a new subject says, one per
        (namespace, text): their results are `plan_turn`'s `twins`, in this order."""
        ops: dict[tuple[tuple[str, ...], str], SearchOp] = {}
        for draft, (ns, key) in zip(self.drafts, self.targets, strict=True):
            if (ns, key) not in stored:
                ops.setdefault(
                    (ns, draft["text"]),
                    SearchOp(ns, query=draft["text"], limit=TWIN_CANDIDATES),
                )
        return list(ops.values())


def plan_turn(
    turn: Turn,
    stored: Mapping[Address, dict[str, Any]],
    twins: Mapping[tuple[tuple[str, ...], str], Sequence[Item]],
    now: str,
) -> TurnWrites:
    """Every write of `turn` (see the module's docstring for the rules).

    Args:
        turn: what the turn said.
        stored: the values found at `turn.reads()` (a missing address: nothing stored).
        twins: what each of `turn.twin_searches()` found, by (namespace, query).
        now: ISO-8601 time of the write.
    """
    said_at = turn.said.isoformat()
    puts: dict[Address, PutOp] = {}
    fresh: set[Address] = set()
    written: list[str] = []
    for draft, target in zip(turn.drafts, turn.targets, strict=True):
        ids = list(draft.get("message_ids") or turn.message_ids)
        sources = [turn.sources.get(i, i) for i in ids]
        pending = puts.get(target)
        current = dict(pending.value or {}) if pending is not None else stored.get(target)
        if current is None:
            twin = _same_memory_elsewhere(twins.get((target[0], draft["text"]), ()), draft)
            if twin is not None:
                target, current = (twin.namespace, twin.key), twin.value
        if current is None or target in fresh:
            value = _version(draft, target[1], 1, turn.thread_id, ids, sources, said_at, None, now)
            fresh.add(target)
        elif same_meaning(str(current.get("text", "")), draft["text"]):
            merged = _merge_provenance(current, draft, ids, sources, now)
            if merged is None:
                continue
            value = merged
        else:
            old, value = supersede(
                turn.user_id, target[1], current, draft, turn.thread_id, ids, sources, said_at, now
            )
            puts[(old.namespace, old.key)] = old
        puts[target] = PutOp(target[0], target[1], value)
        written.append(target[1])
    for key, s in turn.sentences.items():
        # Never rewritten: a re-sent message leaves what its failed attempt wrote.
        if (turn.episode_ns, key) not in stored:
            value = episode_value(
                text=s.text,
                speaker=s.episode["speaker"],
                said_at=said_at,
                thread_id=turn.thread_id,
                message_id=s.episode["message_id"],
                rest=s.rest,
                before=s.episode["before"],
                after=s.episode["after"],
                part=s.part,
                now=now,
            )
            puts[(turn.episode_ns, key)] = PutOp(turn.episode_ns, key, value)
            written.append(key)
    record: Conversation | None = None
    if turn.conversation is not None:
        record, put = conversation_write(
            turn.record_at, turn.conversation, stored.get(turn.record_at), now
        )
        if put is not None:
            puts[turn.record_at] = put
    return TurnWrites([puts[k] for k in sorted(puts)], record, list(dict.fromkeys(written)))


def same_meaning(old: str, new: str) -> bool:
    """Whether two statements about one subject say the same thing."""
    if bool(_NEGATION.search(old)) != bool(_NEGATION.search(new)):
        return False
    a, b = set(analyze(old)), set(analyze(new))
    return jaccard(a, b) >= SAME_MEANING or (bool(a) and bool(b) and (a <= b or b <= a))


def _same_memory_elsewhere(found: Sequence[Item], draft: MemoryDraft) -> Item | None:
    """Among memories of the draft's kind under other subjects, one saying the same."""
    new = set(analyze(draft["text"]))
    for item in found:
        old = str(item.value.get("text", ""))
        # Across subjects only a near-identical statement counts as the same memory.
        if same_meaning(old, draft["text"]) and jaccard(analyze(old), new) >= SAME_MEANING:
            return item
    return None


def _version(
    draft: MemoryDraft,
    key: str,
    version: int,
    thread_id: str | None,
    message_ids: list[str],
    sources: list[str],
    said_at: str,
    supersedes: str | None,
    now: str,
) -> dict[str, Any]:
    return with_terms(
        {
            "scope": MEMORY_SCOPE,
            "kind": draft["kind"],
            "subject": draft["subject"],
            "text": draft["text"].strip(),
            "id": version_id(key, version),
            "version": version,
            "supersedes": supersedes,
            "thread_id": thread_id,
            "message_ids": message_ids[-MAX_PROVENANCE:],
            "sources": sources[-MAX_PROVENANCE:],
            "said_at": said_at,
            "mentions": 1,
            "importance": 1.0,
            "created_at": now,
            "updated_at": now,
        }
    )


def supersede(
    user_id: str,
    key: str,
    current: dict[str, Any],
    draft: MemoryDraft,
    thread_id: str | None,
    message_ids: list[str],
    sources: list[str],
    said_at: str,
    now: str,
) -> tuple[PutOp, dict[str, Any]]:
    """The write that moves `current` to history, and the new current version."""
    version = int(current.get("version", 1))
    old = {
        **current,
        "scope": HISTORY_SCOPE,
        "current_key": key,
        "valid_to": said_at,
        "superseded_by": version_id(key, version + 1),
    }
    new = _version(
        draft,
        key,
        version + 1,
        thread_id,
        message_ids,
        sources,
        said_at,
        version_id(key, version),
        now,
    )
    return PutOp(user_namespace(user_id, "history"), version_id(key, version), old), new


def _merge_provenance(
    current: dict[str, Any], draft: MemoryDraft, ids: list[str], sources: list[str], now: str
) -> dict[str, Any] | None:
    """`current` restated by `draft`: more provenance, the fuller text; None if nothing new.

    A mention counts once per source (thread, day, words): a message re-sent after its turn
    failed, with a new id, is not a new mention.
    """
    known = list(current.get("message_ids") or [])
    known_sources = list(current.get("sources") or known)
    new_sources = [s for s in dict.fromkeys(sources) if s not in known_sources]
    new_ids = [i for i in ids if i not in known] if new_sources else []
    old_terms, new_terms = set(analyze(str(current["text"]))), set(analyze(draft["text"]))
    fuller = new_terms > old_terms
    if not new_sources and not fuller:
        return None
    merged = {
        **current,
        "message_ids": (known + new_ids)[-MAX_PROVENANCE:],
        "sources": (known_sources + new_sources)[-MAX_PROVENANCE:],
        "mentions": int(current.get("mentions", 1)) + (1 if new_sources else 0),
        "updated_at": now,
    }
    if fuller:
        merged = with_terms({**merged, "text": draft["text"].strip()})
    return merged
