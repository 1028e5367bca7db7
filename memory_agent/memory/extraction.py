"""Turning what the user said into memory records.

Two extractors produce the same `MemoryDraft` records: `extract_with_rules` (deterministic,
offline, used with the offline model and in tests) and `extract_with_model` (structured output
of the configured chat model). A draft's `subject` names what it is about; two drafts with the
same subject are about the same thing, so the newer supersedes the older (see the service).

A message may name its speaker (`HumanMessage(name=...)`, as when a conversation between two
people is imported): the memories are then about that speaker ("Caroline lives in Boston.")
and their subjects are the speaker's ("caroline/location"), so one person's move never
supersedes another's.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import NotRequired, TypedDict

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, Field

from memory_agent.context import StructuredOutputMethod
from memory_agent.memory.dates import day
from memory_agent.memory.records import KnowledgeKind
from memory_agent.models import structured_call
from memory_agent.prompts import EXTRACTION_PROMPT

logger = logging.getLogger(__name__)


class MemoryDraft(TypedDict):
    """A memory to persist, before provenance is attached."""

    kind: KnowledgeKind
    subject: str
    """Normalised subject ("name", "location", "preference:pizza", "entity:dog"): the identity
    of the memory; a newer draft with the same subject replaces the older one."""
    text: str
    """A self-contained sentence about the user, in the third person."""
    message_ids: NotRequired[list[str]]
    """The messages it was drawn from (set by `ingest.extract`)."""


_CLAUSE_END = re.compile(
    r"\s*(?:[,;.!?]|\b(?:and|but|because|so|since|until|yesterday|today|recently|now"
    r"|anymore|any ?more|too|either|these days|nowadays|at the moment|right now)\b"
    r"|\b(?:last|this|next) (?:week|month|year|weekend)\b|\b(?:for|about) \d)\s*",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
# "I live in Lisbon and I love hiking": a conjunction followed by a new subject starts a clause.
_CLAUSE = re.compile(
    r"\s*(?:[,;]\s*)?\b(?:and|but|while|whereas|also)\s+(?=(?:i|i'm|i've|i'd)\b|my\s+\w+(?:'s|\s+is)\b)"
    r"|\s*;\s*",
    re.IGNORECASE,
)
# The end of a list of liked things: a clause end other than "and" and commas.
_LIST_END = re.compile(
    r"\s*(?:[;.!?]|\b(?:but|because|so|since|until|yesterday|today|recently|now|anymore"
    r"|any ?more|too|either|these days|nowadays|at the moment|right now)\b)",
    re.IGNORECASE,
)
_LIST_SEP = re.compile(r"\s*(?:,\s*(?:and\s+|or\s+)?|\band\b|&|\bas well as\b)\s*", re.I)


def _value(rest: str) -> str:
    """The value at the start of `rest`, up to the end of its clause."""
    return _CLAUSE_END.split(rest.strip(), maxsplit=1)[0].strip(" \"'")


def _values(rest: str) -> list[str]:
    """The things listed at the start of `rest` ("hiking, cycling and strong coffee")."""
    listed = _LIST_END.split(rest.strip(), maxsplit=1)[0]
    return [v for v in (p.strip(" \"'") for p in _LIST_SEP.split(listed)) if v]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "x"


def _name(value: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in value.split()[:3])


_NEGATED_LIKE = re.compile(
    r"\bi (?:really )?(?:don'?t|do not|no longer) (?:like|love|enjoy)\s+(.+)"
    r"|\bi (?:hate|dislike)\s+(.+)",
    re.IGNORECASE,
)
_LIKE = re.compile(r"\bi (?:really |also )?(like|love|enjoy|adore)\s+(.+)", re.IGNORECASE)
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bmy name is\s+(.+)|\bcall me\s+(.+)|\bi(?:'m| am) called\s+(.+)", re.I), "name"),
    (
        re.compile(
            r"\bi(?:'m| am|'ve been| have been)? (?:live|living|stay|staying|reside|residing|based)"
            r" in\s+(.+)"
            r"|\bi(?:'ve| have| just)? (?:moved|relocated) to\s+(.+)"
            r"|\bmy (?:home|house|place) is in\s+(.+)"
            r"|\bhome (?:for me )?is\s+(?!where\b)(.+)"
            r"|^\s*(?:now )?([A-Z][\w -]{1,40}?) is (?:where i live|home(?: now)?|my home)\b",
            re.I,
        ),
        "location",
    ),
    (re.compile(r"\bi(?:'m| am) from\s+(.+)|\bi come from\s+(.+)", re.I), "origin"),
    (
        re.compile(
            r"\bi work (?:as|at|for)\s+(.+)"
            r"|\bi(?:'m| am) an? ([a-z ]*(?:er|or|ist|ian|ant|ent|eer))\b",
            re.I,
        ),
        "occupation",
    ),
    (re.compile(r"\bi(?:'m| am) (\d{1,3}) years? old", re.I), "age"),
    (re.compile(r"\bmy fav(?:ou?rite)? ([a-z ]+?) is\s+(.+)", re.I), "favorite"),
    (re.compile(r"\bmy ([a-z]+)(?:'s| is) (?:name is |called |named )(.+)", re.I), "entity"),
    (re.compile(r"\bmy ([a-z][a-z ]{1,30}?) is\s+(.+)", re.I), "attribute"),
]
_TEMPLATES = {
    "name": "{whose} name is {v}.",
    "location": "{who} lives in {v}.",
    "origin": "{who} is from {v}.",
    "occupation": "{who} works as {v}.",
    "age": "{who} is {v} years old.",
}
_USER = "The user"


def _whose(who: str) -> str:
    return f"{who}'" if who.endswith("s") and who != _USER else f"{who}'s"


def _draft_for(rule: str, groups: tuple[str | None, ...], who: str) -> MemoryDraft | None:
    found = [g for g in groups if g]
    if not found:
        return None
    if rule in _TEMPLATES:
        value = _value(found[0])
        if not value:
            return None
        if rule == "name":
            value = _name(value)
        text = _TEMPLATES[rule].format(v=value, who=who, whose=_whose(who))
        return {"kind": "fact", "subject": rule, "text": text}
    if len(found) < 2:
        return None
    what, value = found[0].strip().lower(), _value(found[1])
    if not value:
        return None
    if rule == "favorite":
        return {
            "kind": "preference",
            "subject": f"favorite:{slug(what)}",
            "text": f"{_whose(who)} favorite {what} is {value}.",
        }
    if rule == "entity":
        return {
            "kind": "entity",
            "subject": f"entity:{slug(what)}",
            "text": f"{_whose(who)} {what} is named {_name(value)}.",
        }
    if what in {"name", "favorite", "fav"} or what.startswith(("name ", "fav")):
        return None
    return {
        "kind": "fact",
        "subject": f"attr:{slug(what)}",
        "text": f"{_whose(who)} {what} is {value}.",
    }


def _speaker_subject(speaker: str | None, subject: str) -> str:
    return f"{slug(speaker)}/{subject}" if speaker else subject


def extract_with_rules(text: str, speaker: str | None = None) -> list[MemoryDraft]:
    """Memories stated in one message, by deterministic patterns.

    Args:
        text: what was said.
        speaker: who said it, when the message names its speaker (None: the user).
    """
    who = speaker or _USER
    drafts: dict[str, MemoryDraft] = {}
    clauses = [
        clause.strip()
        for sentence in _SENTENCE.split(text)
        if not sentence.strip().endswith("?")
        for clause in _CLAUSE.split(sentence)
    ]
    for sentence in clauses:
        if not sentence:
            continue
        if m := _NEGATED_LIKE.search(sentence):
            for value in _values(m.group(1) or m.group(2)):
                drafts[f"preference:{slug(value)}"] = {
                    "kind": "preference",
                    "subject": f"preference:{slug(value)}",
                    "text": f"{who} does not like {value}.",
                }
        elif m := _LIKE.search(sentence):
            verb = m.group(1).lower()
            for value in _values(m.group(2)):
                drafts[f"preference:{slug(value)}"] = {
                    "kind": "preference",
                    "subject": f"preference:{slug(value)}",
                    "text": f"{who} {verb}s {value}.",
                }
        found_specific = False
        for pattern, rule in _RULES:
            # The generic "my X is Y" only counts when no specific rule matched the sentence.
            if rule == "attribute" and found_specific:
                continue
            for m in pattern.finditer(sentence):
                draft = _draft_for(rule, m.groups(), who)
                if draft:
                    drafts[draft["subject"]] = draft
                    found_specific = found_specific or rule != "attribute"
    return [{**d, "subject": _speaker_subject(speaker, d["subject"])} for d in drafts.values()]


class _ExtractedMemory(BaseModel):
    kind: KnowledgeKind = Field(description="fact, preference or entity")
    subject: str = Field(
        description="short stable identifier of what it is about, e.g. 'name', 'location', "
        "'preference:pizza', 'entity:dog'"
    )
    text: str = Field(description="one self-contained sentence about the user")


class _Extraction(BaseModel):
    memories: list[_ExtractedMemory] = Field(default_factory=list)


async def extract_with_model(
    model: BaseChatModel,
    text: str,
    *,
    speaker: str | None = None,
    when: datetime | None = None,
    method: StructuredOutputMethod = "auto",
) -> list[MemoryDraft]:
    """Memories stated in one message, by the chat model's structured output.

    Args:
        model: a chat model with structured output.
        text: what was said.
        speaker: who said it, when the message names its speaker (None: the user).
        when: when it was said, so that the model can make relative dates absolute.
        method: how the structured answer is asked for (see `AgentContext.structured_output`).

    Raises:
        ValueError: the model's answer is unusable; other errors of the provider as raised.
    """
    system = EXTRACTION_PROMPT.format(
        who=speaker or "the user",
        today=day(when) if when else "unknown",
    )
    messages = [("system", system), ("human", text)]
    result = await structured_call(
        model, _Extraction, messages, method=method, purpose="extraction"
    )
    return [
        {
            "kind": m.kind,
            "subject": _speaker_subject(speaker, m.subject.strip().lower()[:80]),
            "text": m.text.strip(),
        }
        for m in result.memories
        if m.subject.strip() and m.text.strip()
    ]
