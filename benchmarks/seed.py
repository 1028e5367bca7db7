"""Seeding users with memories through the product's own store (embeddings included)."""

from __future__ import annotations

import random
from typing import Any

from langgraph.store.base import BaseStore, PutOp

from memory_agent.events import now_iso
from memory_agent.memory.records import with_terms
from memory_agent.memory.service import memory_key
from memory_agent.persistence.namespaces import user_namespace

TOPICS = (
    "favourite food",
    "home city",
    "sister's name",
    "employer",
    "favourite book",
    "dog's name",
    "weekend hobby",
    "travel plan",
    "allergy",
    "favourite band",
    "car",
    "coffee order",
    "gym routine",
    "birthday",
    "language course",
)
KINDS = (("fact", "facts"), ("preference", "preferences"), ("entity", "entities"))


def memory_text(rng: random.Random, i: int) -> tuple[str, str]:
    """A (subject, text) pair that reads like an extracted memory."""
    topic = rng.choice(TOPICS)
    words = " ".join(rng.sample(WORDS_POOL, 4))
    subject = f"{topic} {i}"
    return subject, f"The user's {topic} ({i}) involves {words}."


WORDS_POOL = (
    "river garden violin morning coffee mountain tennis paper window orange lantern harbor "
    "winter museum bicycle forest pepper silver theatre rocket meadow castle island thunder "
    "marble velvet compass canyon glacier falcon ember willow saffron cobalt juniper"
).split()


def memory_ops(user_id: str, count: int, seed: int = 7) -> list[PutOp]:
    """`count` facts, preferences and entities of one user, as store puts."""
    rng = random.Random(seed)
    ops: list[PutOp] = []
    now = now_iso()
    for i in range(count):
        kind, ns_kind = KINDS[i % len(KINDS)]
        subject, text = memory_text(rng, i)
        value: dict[str, Any] = {
            "scope": "memory",
            "kind": kind,
            "subject": subject,
            "text": text,
            "thread_id": f"seed-{i % 20}",
            "message_ids": [],
            "created_at": now,
            "updated_at": now,
        }
        # With its lexical terms, as the service writes it (recall's BM25 reads them).
        ops.append(
            PutOp(user_namespace(user_id, ns_kind), memory_key(subject), with_terms(value))  # type: ignore[arg-type]
        )
    return ops


async def seed_memories(store: BaseStore, user_id: str, count: int, batch: int = 500) -> None:
    """Give `user_id` `count` memories (embedded by the store, like the product's writes)."""
    ops = memory_ops(user_id, count)
    for i in range(0, len(ops), batch):
        await store.abatch(ops[i : i + batch])
