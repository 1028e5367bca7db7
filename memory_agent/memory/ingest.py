"""Persisting what a turn should leave behind: the thread's record and the user's memories.

The response node calls `extract` and `remember_turn`; so does the LoCoMo benchmark, so the
figures it prints are those of the product's own write path. Every write is keyed (a message's
source: thread, day and words; or a subject), so a retried or resumed step, or a message
re-sent after its turn failed, finds the same records instead of adding new ones.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from functools import partial
from typing import Literal, NotRequired, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from memory_agent.context import StructuredOutputMethod
from memory_agent.memory.dates import parse_when
from memory_agent.memory.extraction import MemoryDraft, extract_with_model, extract_with_rules
from memory_agent.memory.records import is_episode_key
from memory_agent.memory.service import ConversationFields, EpisodeDraft, MemoryService
from memory_agent.models import ModelFallback, decide, is_offline
from memory_agent.utils import message_text

logger = logging.getLogger(__name__)


class TurnRecord(ConversationFields):
    """What a turn says of its thread: its conversation record's fields, and where and when."""

    thread_id: str | None
    when: NotRequired[str | None]
    """ISO-8601 time of the turn (None: now): the date of its memories."""


class Saved(TypedDict):
    conversation: bool
    memories: list[str]
    """Keys of the facts, preferences and entities written or updated."""
    episodes: list[str]
    """Keys of the episodes written."""


async def extract(
    messages: Sequence[BaseMessage],
    model: BaseChatModel,
    extractor: Literal["auto", "model", "rules"],
    *,
    when: str | datetime | None = None,
    method: StructuredOutputMethod = "auto",
    fallbacks: list[ModelFallback] | None = None,
) -> list[MemoryDraft]:
    """Drafts from the user's messages, by the model or by rules as `extractor` says.

    Each draft names the message it came from (`message_ids`); a message's `name`, when set,
    is its speaker. When the model's extraction of a message fails (an unusable answer, or
    the model unreachable: the answer is already given), that message's drafts come from the
    rules and the failure is appended to `fallbacks`.
    """
    use_model = extractor == "model" or (extractor == "auto" and not is_offline(model))
    moment = parse_when(when)
    drafts: list[MemoryDraft] = []
    for m in messages:
        if m.type != "human":
            continue
        text = message_text(m)
        if use_model:
            found = await decide(
                "extraction",
                model,
                partial(
                    extract_with_model, model, text, speaker=m.name, when=moment, method=method
                ),
                partial(extract_with_rules, text, speaker=m.name),
                fallbacks,
                absorb_all=True,
            )
        else:
            found = extract_with_rules(text, speaker=m.name)
        drafts.extend({**d, "message_ids": [m.id] if m.id else []} for d in found)
    return drafts


def episodes_of(window: Sequence[BaseMessage], said: Collection[str]) -> list[EpisodeDraft]:
    """The episodes of the user's messages among `window` whose ids are in `said`, each with
    the message before it (what it answered) and after it (what answered it)."""
    out: list[EpisodeDraft] = []
    for i, m in enumerate(window):
        if m.type != "human" or not m.id or m.id not in said:
            continue
        out.append(
            {
                "message_id": m.id,
                "text": message_text(m),
                "speaker": m.name,
                "before": message_text(window[i - 1]) if i > 0 else "",
                "after": message_text(window[i + 1]) if i + 1 < len(window) else "",
            }
        )
    return out


async def remember_turn(
    service: MemoryService,
    user_id: str,
    turn: TurnRecord,
    window: Sequence[BaseMessage],
    said: Collection[str],
    drafts: Sequence[MemoryDraft],
) -> Saved:
    """Write the turn's episodes, its facts/preferences/entities and the thread's record (one
    batched read, one batched write; see `MemoryService.save_turn`).

    Args:
        service: the memory service of the store.
        user_id: whose memory.
        turn: the thread's record and the turn's time.
        window: the thread's recent messages, the turn's answer included.
        said: ids of the messages of this turn that the user said.
        drafts: what was extracted from them (see `extract`).
    """
    thread_id = turn["thread_id"]
    fields: ConversationFields | None = turn if thread_id else None
    record, written = await service.save_turn(
        user_id,
        thread_id,
        fields,
        drafts,
        message_ids=list(said),
        episodes=episodes_of(window, said),
        when=turn.get("when"),
    )
    return {
        "conversation": record is not None,
        "memories": [k for k in written if not is_episode_key(k)],
        "episodes": [k for k in written if is_episode_key(k)],
    }
