"""The audit of one user's memory, from their stored items: counts, near-duplicate current
memories, and every subject that changed (with its versions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

from langgraph.store.base import Item

from memory_agent.memory.lexical import analyze, similar_pairs
from memory_agent.memory.plan import same_meaning
from memory_agent.memory.records import Memory, MemoryKind, public

NEAR_DUPLICATE = 0.8
"""Term overlap from which the audit reports two memories as near-duplicates."""


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


def audit_report(
    user_id: str, current: Mapping[MemoryKind, Sequence[Item]], history: Sequence[Item]
) -> AuditReport:
    """The report on a user's `current` memories by kind and their `history` namespace."""
    memories: list[Memory] = []
    terms: list[set[str]] = []
    counts: dict[str, int] = {}
    for kind, items in current.items():
        counts[kind] = len(items)
        for i in items:
            memories.append(public(i.key, i.value))
            terms.append(set(analyze(str(i.value.get("text", "")))))
    pairs: list[DuplicatePair] = [
        {"similarity": round(similarity, 3), "a": memories[x], "b": memories[y]}
        for x, y, similarity in similar_pairs(terms, NEAR_DUPLICATE)
        if same_meaning(memories[x]["text"], memories[y]["text"])
        and not _made_from(memories[x], memories[y])
    ]
    counts["history"] = len(history)
    versions: dict[str, list[Memory]] = {}
    for item in history:
        versions.setdefault(str(item.value.get("current_key")), []).append(
            public(item.key, item.value)
        )
    by_key = {m["key"]: m for m in memories}
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


def _made_from(a: Memory, b: Memory) -> bool:
    """Whether one of two memories is knowledge extracted from the other, an episode: a fact
    and the sentence it came from are expected to agree, not a duplicate to clean up."""
    if (a["kind"] == "episode") == (b["kind"] == "episode"):
        return False
    return bool(set(a.get("message_ids") or ()) & set(b.get("message_ids") or ()))
