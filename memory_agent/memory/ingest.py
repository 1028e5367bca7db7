"""Persisting what a turn should leave behind: the thread's record and the user's memories.

The response node calls `remember_turn`; so does the LoCoMo benchmark, so the figures it prints
are those of the product's own write path. Every write is keyed (thread id, subject), so a
retried or resumed step rewrites the same records instead of adding new ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from memory_agent.memory.extraction import MemoryDraft, extract_with_model, extract_with_rules
from memory_agent.memory.service import ConversationFields, MemoryService
from memory_agent.models import is_offline, message_text

logger = logging.getLogger(__name__)


class TurnRecord(TypedDict):
    """The thread-level facts the conversation record is made of."""

    thread_id: str | None
    title: str
    summary: str
    last_message: str
    message_count: int
    created_at: str | None


class Saved(TypedDict):
    conversation: bool
    memories: list[str]


async def extract(
    messages: Sequence[BaseMessage],
    model: BaseChatModel,
    extractor: Literal["auto", "model", "rules"],
) -> list[MemoryDraft]:
    """Drafts from the user's messages, by the model or by rules as `extractor` says."""
    use_model = extractor == "model" or (extractor == "auto" and not is_offline(model))
    drafts: list[MemoryDraft] = []
    for m in messages:
        if m.type != "human":
            continue
        text = message_text(m)
        if use_model:
            drafts.extend(await extract_with_model(model, text))
        else:
            drafts.extend(extract_with_rules(text))
    return drafts


async def remember_turn(
    service: MemoryService,
    user_id: str,
    turn: TurnRecord,
    drafts: Sequence[MemoryDraft],
    message_ids: Sequence[str],
) -> Saved:
    """Write the thread's conversation record and the turn's memories (one batched read, one
    batched write, nothing written that did not change)."""
    fields = (
        ConversationFields(
            title=turn["title"],
            summary=turn["summary"],
            last_message=turn["last_message"],
            message_count=turn["message_count"],
            created_at=turn["created_at"],
        )
        if turn["thread_id"]
        else None
    )
    record, written = await service.save_turn(
        user_id, turn["thread_id"], fields, drafts, message_ids=message_ids
    )
    return {"conversation": record is not None, "memories": written}
