"""The memory service: a user's long-term memory over LangGraph's `BaseStore`.

It works with any store (`AsyncPostgresStore` in production, `InMemoryStore` in unit tests, the
LangGraph server's own). Layout, per user (see `namespaces` and `records`):
- `conversations`: one record per thread (title, summary, last message, message count,
  timestamps), keyed by thread id: the user's conversation history.
- `episodes`: every message the user said, with its provenance and its date.
- `facts`, `preferences`, `entities`: one current record per subject. Saying the same thing
  again updates it (provenance and mention count); saying something new about the same subject
  supersedes it, and the old version moves to `history` with `valid_to` and `superseded_by`.

Recall ranks the user's current memories by BM25, the store's vector index, recency and
importance (see `ranking`); both searches are exact scans of one user's rows.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, cast

import psycopg
from langgraph.store.base import BaseStore, GetOp, Item, Op, PutOp, Result, SearchItem, SearchOp
from langgraph.store.postgres import AsyncPostgresStore

from memory_agent.errors import InvalidInputError
from memory_agent.events import now_iso
from memory_agent.memory.dates import day, parse_when, query_dates, resolve_dates
from memory_agent.memory.extraction import DraftKind, MemoryDraft
from memory_agent.memory.lexical import (
    K1,
    B,
    analyze,
    bm25_scores,
    jaccard,
    query_terms,
    similar_pairs,
)
from memory_agent.memory.ranking import Candidate, RecallWeights, default_weights, fuse
from memory_agent.memory.records import (
    HISTORY_SCOPE,
    MEMORY_SCOPE,
    Memory,
    MemoryBudget,
    MemoryKind,
    MemoryRecord,
    episode_key,
    episode_value,
    message_source,
    public,
    sentences,
    subject_key,
    version_id,
    with_terms,
)
from memory_agent.persistence import store_sql as pg
from memory_agent.persistence.namespaces import (
    KINDS,
    Kind,
    decode_label,
    user_namespace,
    user_prefix,
)
from memory_agent.persistence.retention import ForgetReceipt

logger = logging.getLogger(__name__)

_KIND_NAMESPACE: dict[MemoryKind, Kind] = {
    "fact": "facts",
    "preference": "preferences",
    "entity": "entities",
    "episode": "episodes",
}
KNOWLEDGE: tuple[DraftKind, ...] = ("fact", "preference", "entity")
_ALL_KINDS: tuple[MemoryKind, ...] = ("episode", "fact", "preference", "entity")
_CONVERSATION_SCOPE = "conversation"
_PAGE = 500
SAME_MEANING = 0.8
"""Term overlap (Jaccard) from which two statements about one subject say the same thing."""
NEAR_DUPLICATE = 0.8
"""Term overlap from which the audit reports two memories as near-duplicates."""
_MAX_PROVENANCE = 50
_NEGATION = re.compile(r"\b(?:not|no|never|don'?t|doesn'?t|didn'?t|dislikes?|hates?)\b", re.I)


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


class _TurnPlan:
    """What `save_turn` was asked to write, with what follows from it before any I/O."""

    def __init__(
        self,
        user_id: str,
        thread_id: str | None,
        conversation: ConversationFields | None,
        drafts: Sequence[MemoryDraft],
        message_ids: Sequence[str],
        episodes: Sequence[EpisodeDraft],
        when: str | datetime | None,
    ) -> None:
        self.user_id = user_id
        self.thread_id = thread_id
        self.conversation = conversation
        self.drafts = list(drafts)
        self.message_ids = list(message_ids)
        self.episodes = list(episodes)
        self.said = parse_when(when)
        self.targets: list[tuple[tuple[str, ...], str]] = [
            (user_namespace(user_id, _KIND_NAMESPACE[d["kind"]]), memory_key(d["subject"]))
            for d in self.drafts
        ]
        """Where each draft's subject is stored."""
        self.sources = {
            ep["message_id"]: message_source(thread_id, day(self.said), ep["text"])
            for ep in self.episodes
        }
        """The source (see `records.message_source`) of each message of the turn, by id."""


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


class DuplicatePair(TypedDict):
    """Two current memories of a user that say nearly the same thing."""

    similarity: float
    a: Memory
    b: Memory


class SupersededFact(TypedDict):
    """A subject whose memory changed: every version, oldest first."""

    key: str
    subject: str
    versions: list[Memory]


class AuditReport(TypedDict):
    """The state of one user's memory (see `MemoryService.audit`)."""

    user_id: str
    counts: dict[str, int]
    """Current memories by kind, plus "history" (superseded versions)."""
    near_duplicates: list[DuplicatePair]
    superseded: list[SupersededFact]


def memory_key(subject: str) -> str:
    """The store key of a memory: stable for its subject, short, and label-safe."""
    return subject_key(subject)


def _conversation_text(title: str, summary: str, last_message: str) -> str:
    return " | ".join(p for p in (title, summary, last_message) if p)


def _same_meaning(old: str, new: str) -> bool:
    if bool(_NEGATION.search(old)) != bool(_NEGATION.search(new)):
        return False
    a, b = set(analyze(old)), set(analyze(new))
    return jaccard(a, b) >= SAME_MEANING or (bool(a) and bool(b) and (a <= b or b <= a))


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

    async def list_conversations(
        self, user_id: str, *, limit: int = 20, offset: int = 0
    ) -> list[Conversation]:
        """The user's threads, most recently updated first (`offset` skips the newest)."""
        ns = user_namespace(user_id, "conversations")
        items = await self.store.asearch(ns, limit=limit, offset=offset)
        convs = [_as_conversation(i) for i in items]
        return sorted(convs, key=lambda c: c["updated_at"], reverse=True)

    async def get_conversation(self, user_id: str, thread_id: str) -> Conversation | None:
        item = await self.store.aget(user_namespace(user_id, "conversations"), thread_id)
        return _as_conversation(item) if item else None

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

    async def save_memories(
        self,
        user_id: str,
        drafts: Iterable[MemoryDraft],
        *,
        thread_id: str | None,
        message_ids: Sequence[str] = (),
        when: str | datetime | None = None,
    ) -> list[str]:
        """Write facts, preferences and entities with their provenance; return the keys written.

        See `save_turn` for how a draft updates, supersedes or repeats what is stored.
        """
        _, written = await self.save_turn(
            user_id, thread_id, None, list(drafts), message_ids=message_ids, when=when
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
        """Write what one turn leaves behind: one read, one write, one transaction.

        - Each episode (a sentence of what was said) is written under its own key, derived
          from the message's source (thread, day, words; `records.message_source`), once: a
          message re-sent after its turn failed finds its episodes there and changes nothing.
        - A draft about a subject not seen before is created, unless a current memory of the
          same kind already says the same thing (then that one is updated); a draft that says
          what its subject's memory says adds its provenance and a mention (once per source:
          a retry or a re-send writes nothing); a draft that says something else supersedes
          it: the old version moves to `history` with `valid_to` and `superseded_by` (two
          drafts about one subject in one turn: the last one stands, with no history between
          them).
        - The thread's record is written unless it would change only in its `updated_at`.

        The records the turn may change (its subjects, its episodes, the thread's record when
        its `created_at` is unknown or there are drafts) are read in one round trip and
        everything is written in one more, in batches of `pg.MAX_BATCH_OPS`. On PostgreSQL
        this all runs in one transaction that first takes an advisory lock per subject, so two
        turns writing one subject serialise (each version is kept, in order), and the turn's
        writes commit together or not at all.

        Raises:
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
        if conversation is not None and not thread_id:
            raise InvalidInputError("a conversation needs a thread id")
        drafts = [d for d in drafts if d["text"].strip() and d["subject"].strip()]
        plan = _TurnPlan(user_id, thread_id, conversation, drafts, message_ids, episodes, when)
        if not isinstance(self.store, AsyncPostgresStore):
            return await self._write_turn(self.store, plan)
        try:
            async with pg.transaction(self.store) as bound:
                await pg.lock_subjects(bound, (pg.subject_lock(*t) for t in plan.targets))
                return await self._write_turn(bound, plan)
        except psycopg.Error as exc:
            if pg.is_outage(exc):
                raise
            raise pg.refused(exc, "this turn's memories") from exc

    async def _write_turn(
        self, store: BaseStore, plan: _TurnPlan
    ) -> tuple[Conversation | None, list[str]]:
        """`save_turn` on `store` (on PostgreSQL, bound to the turn's transaction)."""
        user_id, thread_id, conversation = plan.user_id, plan.thread_id, plan.conversation
        said, now = plan.said, now_iso()
        said_at = said.isoformat()
        record_at = (user_namespace(user_id, "conversations"), str(thread_id))
        with_record = conversation is not None
        episode_ns = user_namespace(user_id, "episodes")
        new_episodes = _episode_values(thread_id, plan.episodes, said, now)
        read = [*plan.targets, *((episode_ns, key) for key in new_episodes)]
        if with_record and (plan.drafts or conversation is None or conversation.created_at is None):
            read.append(record_at)
        found = await pg.batched(store, [GetOp(ns, key) for ns, key in read]) if read else []
        stored = {
            (ns, key): item.value
            for (ns, key), item in zip(read, found, strict=True)
            if isinstance(item, Item)
        }
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        fresh: set[tuple[tuple[str, ...], str]] = set()
        written: list[str] = []
        for draft, (ns, key) in zip(plan.drafts, plan.targets, strict=True):
            ids = list(draft.get("message_ids") or plan.message_ids)
            sources = [plan.sources.get(i, i) for i in ids]
            target = (ns, key)
            pending = puts.get(target)
            current = dict(pending.value or {}) if pending is not None else stored.get(target)
            if current is None:
                twin = await _same_memory_elsewhere(store, ns, draft)
                if twin is not None:
                    target, current = (twin.namespace, twin.key), twin.value
            if current is None or target in fresh:
                value = _version(draft, target[1], 1, thread_id, ids, sources, said_at, None)
                fresh.add(target)
            elif _same_meaning(str(current.get("text", "")), draft["text"]):
                merged = _merge_provenance(current, draft, ids, sources)
                if merged is None:
                    continue
                value = merged
            else:
                old, value = _supersede(
                    user_id, target[1], current, draft, thread_id, ids, sources, said_at
                )
                puts[(old.namespace, old.key)] = old
            puts[target] = PutOp(target[0], target[1], value)
            written.append(target[1])
        for key, value in new_episodes.items():
            # Never rewritten: a re-sent message leaves what its failed attempt wrote.
            if (episode_ns, key) not in stored:
                puts[(episode_ns, key)] = PutOp(episode_ns, key, value)
                written.append(key)
        record: Conversation | None = None
        if with_record and conversation is not None:
            old_record = stored.get(record_at)
            record = {
                "thread_id": str(thread_id),
                "title": conversation.title,
                "summary": conversation.summary,
                "last_message": conversation.last_message,
                "message_count": conversation.message_count,
                "created_at": conversation.created_at
                or (str(old_record.get("created_at")) if old_record else now),
                "updated_at": now,
            }
            if old_record is not None and _same_record(old_record, record):
                record = {**record, "updated_at": str(old_record.get("updated_at", now))}
            else:
                value = {
                    **record,
                    "scope": _CONVERSATION_SCOPE,
                    "text": _conversation_text(
                        conversation.title, conversation.summary, conversation.last_message
                    ),
                }
                # Not embedded: conversations are loaded by recency, and the summary grows
                # every turn.
                puts[record_at] = PutOp(record_at[0], record_at[1], value, index=False)
        if puts:
            # In one order whoever writes: two transactions of one user then take the rows
            # (and the BM25 statistics rows their trigger updates) in the same order.
            await pg.batched(store, [puts[k] for k in sorted(puts)])
        return record, list(dict.fromkeys(written))

    # --- reading and managing memories ---------------------------------------------------

    async def list_memories(
        self, user_id: str, *, kinds: Sequence[MemoryKind] = KNOWLEDGE
    ) -> list[Memory]:
        """The user's current memories of these kinds (default: facts, preferences, entities),
        most recently updated first."""
        out: list[Memory] = []
        for kind in kinds:
            ns = user_namespace(user_id, _KIND_NAMESPACE[kind])
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
        old, new = _supersede(
            user_id,
            key,
            value,
            draft,
            value.get("thread_id"),
            [],
            [],
            parse_when(None).isoformat(),
        )
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
        current: list[Memory] = []
        terms: list[set[str]] = []
        counts: dict[str, int] = {}
        kinds: tuple[MemoryKind, ...] = (*KNOWLEDGE, "episode")
        for kind in kinds:
            items = await self._all(user_namespace(user_id, _KIND_NAMESPACE[kind]))
            counts[kind] = len(items)
            for i in items:
                current.append(public(i.key, i.value))
                terms.append(set(analyze(str(i.value.get("text", "")))))
        pairs: list[DuplicatePair] = [
            {"similarity": round(similarity, 3), "a": current[x], "b": current[y]}
            for x, y, similarity in similar_pairs(terms, NEAR_DUPLICATE)
            if _same_meaning(current[x]["text"], current[y]["text"])
            and not _made_from(current[x], current[y])
        ]
        history = await self._all(user_namespace(user_id, "history"))
        counts["history"] = len(history)
        versions: dict[str, list[Memory]] = {}
        for item in history:
            versions.setdefault(str(item.value.get("current_key")), []).append(
                public(item.key, item.value)
            )
        by_key = {m["key"]: m for m in current}
        superseded: list[SupersededFact] = []
        for key in sorted(versions):
            chain = versions[key] + ([by_key[key]] if key in by_key else [])
            chain.sort(key=lambda m: (m.get("version", 1), m["said_at"]))
            superseded.append(
                {"key": key, "subject": str(chain[-1].get("subject", "")), "versions": chain}
            )
        pairs.sort(key=lambda p: -p["similarity"])
        return {
            "user_id": user_id,
            "counts": counts,
            "near_duplicates": pairs,
            "superseded": superseded,
        }

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
        wanted = budget["conversations"]
        recent = SearchOp(user_namespace(user_id, "conversations"), limit=wanted + 1)
        memories, extra = await self._search(
            user_id, query, budget["memories"], None, [recent] if wanted > 0 else []
        )
        convs = [i for i in (extra[0] if extra else []) if i.key != exclude_thread]
        convs.sort(key=lambda i: str(i.value.get("updated_at", "")), reverse=True)
        return [*(_conversation_record(i) for i in convs[:wanted]), *memories]

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
        found, _ = await self._search(user_id, query, limit, kinds, [])
        return found

    async def _search(
        self,
        user_id: str,
        query: str,
        limit: int,
        kinds: Sequence[MemoryKind] | None,
        extra: list[SearchOp],
    ) -> tuple[list[MemoryRecord], list[list[SearchItem]]]:
        """The memories for `query`, and the results of `extra` searches run in the same batch.

        BM25 (on PostgreSQL, one SQL statement over the inverted index) runs concurrently with
        one batch to the store holding the vector search and `extra`.
        """
        prefix = user_prefix(user_id)
        wanted = tuple(kinds or _ALL_KINDS)
        ops = list(extra)
        if limit < 1:
            results = await self.store.abatch(ops) if ops else []
            return [], [cast(list[SearchItem], r) for r in results]
        if not query.strip():
            ops.append(SearchOp(prefix, filter={"scope": MEMORY_SCOPE}, limit=limit))
            results = await self.store.abatch(ops)
            recent = [
                i for i in cast(list[SearchItem], results[-1]) if i.value.get("kind") in wanted
            ]
            return (
                [_memory_record(i.key, i.value, None) for i in recent],
                [cast(list[SearchItem], r) for r in results[:-1]],
            )
        n = max(self.weights.candidates, limit)
        semantic = self.weights.semantic > 0
        if semantic:
            ops.append(SearchOp(prefix, filter={"scope": MEMORY_SCOPE}, limit=n, query=query))
        days, words = query_dates(query)
        terms = query_terms(words)
        (lexical, complete), results = await asyncio.gather(
            self._lexical(user_id, terms, n, wanted), self._batch(ops)
        )
        pool: dict[tuple[tuple[str, ...], str], Candidate] = {}
        for item in lexical:
            pool[(item.namespace, item.key)] = Candidate(
                item.namespace, item.key, item.value, lexical=item.score
            )
        for item in cast(list[SearchItem], results[-1]) if semantic else []:
            # A store without a vector index answers with no scores: nothing to rank by.
            if item.score is None or item.value.get("kind") not in wanted:
                continue
            c = pool.setdefault(
                (item.namespace, item.key), Candidate(item.namespace, item.key, item.value)
            )
            c.semantic = item.score
        ranked = fuse(
            pool.values(),
            self.weights,
            limit,
            lexical_complete=complete,
            days=days,
            query_terms=terms,
        )
        return (
            [_memory_record(c.key, c.value, c.score) for c in ranked],
            [cast(list[SearchItem], r) for r in results[: len(extra)]],
        )

    async def _batch(self, ops: list[SearchOp]) -> list[Result]:
        return await self.store.abatch(ops) if ops else []

    async def _lexical(
        self, user_id: str, terms: list[str], n: int, kinds: tuple[MemoryKind, ...]
    ) -> tuple[list[SearchItem], bool]:
        """BM25 candidates, and whether they are every match (not cut by `n`)."""
        if not terms:
            return [], True
        namespaces = [user_namespace(user_id, _KIND_NAMESPACE[k]) for k in kinds]
        if isinstance(self.store, AsyncPostgresStore):
            found = await pg.lexical_search(self.store, namespaces, terms, limit=n, k1=K1, b=B)
            return found, len(found) < n
        items = [i for ns in namespaces for i in await self._all(ns, {"scope": MEMORY_SCOPE})]
        docs = [(i.value.get("terms") or {}, float(i.value.get("length") or 0)) for i in items]
        scored = [(s, i) for s, i in zip(bm25_scores(terms, docs), items, strict=True) if s > 0]
        scored.sort(key=lambda p: (-p[0], p[1].key))
        for score, item in scored:
            item.score = score
        return [item for _, item in scored[:n]], len(scored) <= n

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
        if isinstance(self.store, AsyncPostgresStore):
            return await pg.namespace_items(self.store, ns, filter)
        items: list[SearchItem] = []
        while True:
            page = await self.store.asearch(ns, filter=filter, limit=_PAGE, offset=len(items))
            items.extend(page)
            if len(page) < _PAGE:
                return items


async def _same_memory_elsewhere(
    store: BaseStore, ns: tuple[str, ...], draft: MemoryDraft
) -> SearchItem | None:
    """A current memory of the draft's kind, under another subject, saying the same."""
    (result,) = await store.abatch([SearchOp(ns, query=draft["text"], limit=3)])
    found = cast(list[SearchItem], result)
    new = set(analyze(draft["text"]))
    for item in found:
        old = str(item.value.get("text", ""))
        # Across subjects only a near-identical statement counts as the same memory.
        if _same_meaning(old, draft["text"]) and jaccard(analyze(old), new) >= SAME_MEANING:
            return item
    return None


def _episode_values(
    thread_id: str | None, episodes: Sequence[EpisodeDraft], said: datetime, now: str
) -> dict[str, dict[str, Any]]:
    """The stored episodes of some messages: one per sentence, keyed (source, part)."""
    values: dict[str, dict[str, Any]] = {}
    for ep in episodes:
        source = message_source(thread_id, day(said), ep["text"])
        parts = sentences(resolve_dates(ep["text"], said))
        for i, part in enumerate(parts):
            values[episode_key(source, i)] = episode_value(
                text=part,
                speaker=ep["speaker"],
                said_at=said.isoformat(),
                thread_id=thread_id,
                message_id=ep["message_id"],
                rest=" ".join(parts[:i] + parts[i + 1 :]),
                before=ep["before"],
                after=ep["after"],
                part=i,
                now=now,
            )
    return values


def _made_from(a: Memory, b: Memory) -> bool:
    """Whether one of two memories is knowledge extracted from the other, an episode: a fact
    and the sentence it came from are expected to agree, not a duplicate to clean up."""
    if (a["kind"] == "episode") == (b["kind"] == "episode"):
        return False
    return bool(set(a.get("message_ids") or ()) & set(b.get("message_ids") or ()))


def _same_record(stored: dict[str, Any], record: Conversation) -> bool:
    """True when writing `record` would change nothing but its `updated_at`."""
    return all(stored.get(k) == v for k, v in record.items() if k != "updated_at")


def _version(
    draft: MemoryDraft,
    key: str,
    version: int,
    thread_id: str | None,
    message_ids: list[str],
    sources: list[str],
    said_at: str,
    supersedes: str | None,
) -> dict[str, Any]:
    now = now_iso()
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
            "message_ids": message_ids[-_MAX_PROVENANCE:],
            "sources": sources[-_MAX_PROVENANCE:],
            "said_at": said_at,
            "mentions": 1,
            "importance": 1.0,
            "created_at": now,
            "updated_at": now,
        }
    )


def _supersede(
    user_id: str,
    key: str,
    current: dict[str, Any],
    draft: MemoryDraft,
    thread_id: str | None,
    message_ids: list[str],
    sources: list[str],
    said_at: str,
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
        draft, key, version + 1, thread_id, message_ids, sources, said_at, version_id(key, version)
    )
    return PutOp(user_namespace(user_id, "history"), version_id(key, version), old), new


def _merge_provenance(
    current: dict[str, Any], draft: MemoryDraft, ids: list[str], sources: list[str]
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
        "message_ids": (known + new_ids)[-_MAX_PROVENANCE:],
        "sources": (known_sources + new_sources)[-_MAX_PROVENANCE:],
        "mentions": int(current.get("mentions", 1)) + (1 if new_sources else 0),
        "updated_at": now_iso(),
    }
    if fuller:
        merged = with_terms({**merged, "text": draft["text"].strip()})
    return merged


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


def _conversation_record(item: Item) -> MemoryRecord:
    v = item.value
    text = f'Earlier conversation "{v.get("title", "")}": {v.get("summary", "")}'.strip()
    return {
        "kind": "conversation",
        "key": item.key,
        "text": text,
        "score": None,
        "updated_at": str(v.get("updated_at", item.updated_at.isoformat())),
        "thread_id": item.key,
    }


def _memory_record(key: str, v: dict[str, Any], score: float | None) -> MemoryRecord:
    text = str(v.get("text", ""))
    said_at = str(v.get("said_at") or v.get("created_at") or "")
    if v.get("kind") == "episode" and said_at:
        # The model sees when it was said: "yesterday" in it was already made absolute.
        try:
            text = f"[{day(parse_when(said_at))}] {text}"
        except InvalidInputError:
            pass
    return {
        "kind": v.get("kind", "fact"),
        "key": key,
        "text": text,
        "score": score,
        "updated_at": str(v.get("updated_at", "")),
        "said_at": said_at,
        "thread_id": v.get("thread_id"),
        "message_ids": list(v.get("message_ids") or []),
    }
