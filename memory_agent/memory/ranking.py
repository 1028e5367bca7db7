"""Ranking recalled memories: one score from several measured signals.

Recall gathers candidates from two exact per-user searches (lexical BM25 and the store's
vector index) and scores each candidate by a weighted sum of
- lexical: BM25 over the memory's terms, divided by the best BM25 among the candidates;
- semantic: cosine similarity from the store's vector index, divided by the best one;
- recency: 0.5 ** (age / half-life), the age counted back from the newest candidate (so a
  conversation imported from 2023 is not "old" as a whole);
- importance: stored with each memory (1.0 for facts; for an episode, how much it tells);
- dates: 1.0 when the query names a day (or month, season, year) that the memory was said on
  or mentions. Dates are not lexical terms (see `records.with_terms`), so a greeting dated
  that day cannot outrank what was said about the query's subject, and a date alone never
  makes a candidate: it only reorders those the searches found;
- speaker: 1.0 when the query names the person who said the memory (an episode's `speaker`):
  "What has Ann painted?" is answered by what Ann said more than by what was said to her.
An episode that only asks a question ("Where do I live?") has its score scaled by `question`:
its words are the query's own and would outrank the statement that answers it.

The weights are what benchmarks/locomo.py measured on LoCoMo's development conversations (its
`--ablations` and `--weights` options; chosen on three conversations, kept only when they also
helped on the other two; the README has the figures). The offline embedder is a
hash of the same words BM25 already sees, so its semantic weight is zero; a neural embedder
(the `local-embeddings` extra, or any `provider:model`) brings meaning the words miss, and gets
an equal share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from langchain_core.embeddings import Embeddings
from langgraph.store.base import BaseStore

from memory_agent.embeddings import HashingEmbeddings, unwrap
from memory_agent.errors import ConfigurationError
from memory_agent.memory.dates import DayRange, memory_days, overlaps, parse_when
from memory_agent.memory.lexical import analyze, jaccard
from memory_agent.memory.records import is_question


@dataclass(frozen=True)
class RecallWeights:
    """How much each signal counts in recall's ranking."""

    lexical: float = 1.0
    semantic: float = 1.0
    recency: float = 0.0
    importance: float = 0.1
    dates: float = 0.3
    """Added when the memory was said on, or mentions, a day the query names."""
    speaker: float = 0.3
    """Added when the query names the memory's speaker."""
    question: float = 0.5
    """Factor on the score of an episode that only asks (1.0: treated like any other)."""
    half_life_days: float = 90.0
    """Age at which the recency signal halves."""
    candidates: int = 50
    """How many candidates each search contributes before fusion (at least the limit)."""

    def __post_init__(self) -> None:
        for name in (
            "lexical",
            "semantic",
            "recency",
            "importance",
            "dates",
            "question",
            "speaker",
        ):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"RecallWeights.{name} must not be negative")
        if self.half_life_days <= 0 or self.candidates < 1:
            raise ConfigurationError("RecallWeights.half_life_days and candidates must be positive")

    @classmethod
    def parse(cls, spec: str, base: RecallWeights | None = None) -> RecallWeights:
        """Weights from "lexical=1,semantic=0.2,..." over `base` (the defaults)."""
        values: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, raw = part.partition("=")
            if name not in cls.__dataclass_fields__:
                raise ConfigurationError(f"unknown recall weight {name!r}")
            try:
                values[name] = int(raw) if name == "candidates" else float(raw)
            except ValueError as exc:
                raise ConfigurationError(f"recall weight {name!r}: not a number") from exc
        return replace(base or cls(), **values)


OFFLINE_WEIGHTS = RecallWeights(semantic=0.0)
"""The offline (feature-hashing) embedder repeats BM25's evidence: on LoCoMo its vectors added
nothing to recall and made it slower (README, "Measured on LoCoMo"), so recall does not scan them.
Give `semantic` a weight to use them anyway (they still find near-duplicates on write)."""
NEURAL_WEIGHTS = RecallWeights()


def default_weights(store: BaseStore) -> RecallWeights:
    """The measured weights for the store's embedder."""
    index: Mapping[str, Any] | None = getattr(store, "index_config", None)
    embed = (index or {}).get("embed")
    embeddings = getattr(store, "embeddings", None) or embed
    if not isinstance(embeddings, Embeddings) or isinstance(unwrap(embeddings), HashingEmbeddings):
        return OFFLINE_WEIGHTS
    return NEURAL_WEIGHTS


@dataclass
class Candidate:
    """A memory found by at least one search, with its raw signals."""

    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    lexical: float | None = None
    semantic: float | None = None
    score: float = 0.0
    signals: dict[str, float] = field(default_factory=dict)


def _time(value: Mapping[str, Any]) -> datetime | None:
    raw = value.get("said_at") or value.get("updated_at")
    try:
        return parse_when(str(raw)) if raw else None
    except ValueError:
        return None


@lru_cache(maxsize=4_096)
def _name_terms(name: str) -> frozenset[str]:
    return frozenset(analyze(name))


def _spoken(value: Mapping[str, Any]) -> str:
    """What an episode's speaker said (its text starts with "Name: ")."""
    text = str(value.get("text", ""))
    speaker = value.get("speaker") or "User"
    prefix = f"{speaker}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def fuse(
    candidates: Iterable[Candidate],
    weights: RecallWeights,
    limit: int,
    *,
    lexical_complete: bool,
    days: Sequence[DayRange] = (),
    query_terms: Sequence[str] = (),
) -> list[Candidate]:
    """The `limit` best candidates by the weighted signals, repeats collapsed.

    `days` are the dates the query names (see `dates.query_dates`), `query_terms` its terms.

    `lexical_complete` says whether the lexical list holds every match (then a candidate missing
    from it scores 0 there); otherwise a missing score is taken as the lowest one seen, as is a
    missing semantic score (the vector search always returns its full list).
    """
    pool = list(candidates)
    if not pool:
        return []
    lex = [c.lexical for c in pool if c.lexical is not None]
    sem = [c.semantic for c in pool if c.semantic is not None]
    lex_max, lex_floor = (max(lex), 0.0 if lexical_complete else min(lex)) if lex else (0.0, 0.0)
    sem_max, sem_floor = (max(sem), min(sem)) if sem else (0.0, 0.0)
    times = {id(c): _time(c.value) for c in pool}
    newest = max((t for t in times.values() if t is not None), default=None)
    for c in pool:
        lexical = c.lexical if c.lexical is not None else lex_floor
        semantic = c.semantic if c.semantic is not None else sem_floor
        signals = {
            "lexical": lexical / lex_max if lex_max > 0 else 0.0,
            "semantic": max(semantic, 0.0) / sem_max if sem_max > 0 else 0.0,
            "importance": float(c.value.get("importance", 1.0)),
            "recency": 0.0,
            "dates": 0.0,
            "speaker": 0.0,
        }
        speaker = c.value.get("speaker")
        if speaker and query_terms and _name_terms(str(speaker)) & set(query_terms):
            signals["speaker"] = 1.0
        if days and weights.dates > 0:
            text = str(c.value.get("text", ""))
            said = c.value.get("said_at") or c.value.get("updated_at")
            signals["dates"] = 1.0 if overlaps(memory_days(text, said), list(days)) else 0.0
        t = times[id(c)]
        if newest is not None and t is not None:
            age_days = max((newest - t).total_seconds(), 0.0) / 86_400
            signals["recency"] = 0.5 ** (age_days / weights.half_life_days)
        c.signals = signals
        c.score = (
            weights.lexical * signals["lexical"]
            + weights.semantic * signals["semantic"]
            + weights.recency * signals["recency"]
            + weights.importance * signals["importance"]
            + weights.dates * signals["dates"]
            + weights.speaker * signals["speaker"]
        )
        if c.value.get("kind") == "episode" and is_question(_spoken(c.value)):
            c.score *= weights.question
    pool.sort(key=lambda c: (-c.score, c.key))
    chosen: list[Candidate] = []
    seen: list[set[str]] = []
    messages: set[tuple[str, ...]] = set()
    for c in pool:
        terms = set(analyze(str(c.value.get("text", ""))))
        # A memory that says what a better-ranked one already said (same words) adds nothing,
        # nor does another sentence of a message already represented by its best one.
        if terms and any(jaccard(terms, s) >= 0.9 for s in seen):
            continue
        if c.value.get("kind") == "episode":
            message = tuple(c.value.get("message_ids") or (c.key,))
            if message in messages:
                continue
            messages.add(message)
        chosen.append(c)
        seen.append(terms)
        if len(chosen) == limit:
            break
    return chosen
