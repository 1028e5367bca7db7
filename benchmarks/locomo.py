"""LoCoMo retrieval benchmark: the product's own memory write path and recall, on PostgreSQL.

Each LoCoMo conversation is one user and each session one thread. Every turn (both speakers,
image captions appended) goes through `memory_agent.memory.ingest` exactly as the response
node persists a turn: rule extraction, then `remember_turn` with the message before it and the
one answering it, dated by the session's date. Each question then goes through
`MemoryService.recall`, the call the planning node makes. A memory covers the LoCoMo turns
(`dia_id`s) it was made from (its `message_ids`).

    python benchmarks/locomo.py --data ../shared/data/locomo/locomo-dev.json [--embedder NAME]
        [--k 5,10] [--database URL] [--weights lexical=1,semantic=0.1] [--ablations]
        [--baseline] [--context BEFORE,AFTER,MESSAGE] [--whole-messages]
        [--conversations conv-26,conv-30] [--dump misses.json]
    python benchmarks/locomo.py --quick [...]   # a tiny LoCoMo-shaped sample instead of --data

Prints one JSON object: `overall` (categories 1-4) and `by_category` ("1".."5") with
recall@k, hit@k and words@k, `ingest_ms_per_turn`, `recall_p50_ms`, `recall_p95_ms` (query
embedding included), `embed_p50_ms` / `embed_p95_ms` (the query embedding alone), `memories`
(current memories stored), and what the run was.
Evidence ids are normalised as the data's README says: split on ';', ',' and white space,
"D:11:26" read as "D11:26", leading zeros dropped, ids of no turn dropped; a question left with
no evidence is not scored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from common import database, emit
from langchain_core.messages import HumanMessage
from langgraph.store.base import BaseStore

from memory_agent.embeddings import unwrap
from memory_agent.memory import records as memory_records
from memory_agent.memory.ingest import TurnRecord, extract, remember_turn
from memory_agent.memory.lexical import analyze, bm25_scores
from memory_agent.memory.ranking import RecallWeights, default_weights
from memory_agent.memory.records import MEMORY_KINDS, MemoryRecord
from memory_agent.memory.service import MemoryService
from memory_agent.memory.summaries import extractive_summary, title_for
from memory_agent.offline import OfflineChatModel
from memory_agent.persistence.opening import open_store
from memory_agent.persistence.pool import open_pool

CATEGORIES = ("1", "2", "3", "4", "5")
SCORED = ("1", "2", "3", "4")
_ID_SPLIT = re.compile(r"[;,\s]+")
_ID = re.compile(r"D(\d+):(\d+)")


@dataclass
class Turn:
    dia_id: str
    speaker: str
    text: str


@dataclass
class Session:
    number: int
    when: datetime
    turns: list[Turn]


@dataclass
class Question:
    text: str
    category: str
    evidence: list[str]


@dataclass
class Conversation:
    sample_id: str
    sessions: list[Session]
    questions: list[Question] = field(default_factory=list)


def normalise_evidence(evidence: list[str], valid: set[str]) -> list[str]:
    """The evidence ids of a question, normalised as the data's README prescribes."""
    out: list[str] = []
    for raw in evidence:
        for part in _ID_SPLIT.split(str(raw)):
            m = _ID.fullmatch(part.replace("D:", "D"))
            if not m:
                continue
            dia_id = f"D{int(m.group(1))}:{int(m.group(2))}"
            if dia_id in valid and dia_id not in out:
                out.append(dia_id)
    return out


def session_time(text: str) -> datetime:
    """ "1:56 pm on 8 May, 2023" as a datetime."""
    return datetime.strptime(" ".join(text.split()), "%I:%M %p on %d %B, %Y")


def load(path: Path | None) -> list[Conversation]:
    """The conversations of a LoCoMo file (None: the tiny `sample_data()`), with their scorable
    questions."""
    conversations: list[Conversation] = []
    for sample in json.loads(path.read_text()) if path else sample_data():
        conv = sample["conversation"]
        sessions: list[Session] = []
        n = 1
        while f"session_{n}" in conv:
            turns = []
            for t in conv[f"session_{n}"]:
                text = t["text"]
                if t.get("blip_caption"):
                    text = f"{text} [shares a photo: {t['blip_caption']}]"
                turns.append(Turn(t["dia_id"], t["speaker"], text))
            sessions.append(Session(n, session_time(conv[f"session_{n}_date_time"]), turns))
            n += 1
        valid = {t.dia_id for s in sessions for t in s.turns}
        c = Conversation(sample["sample_id"], sessions)
        for qa in sample.get("qa", []):
            evidence = normalise_evidence(qa.get("evidence", []), valid)
            if evidence:
                c.questions.append(Question(qa["question"], str(qa["category"]), evidence))
        conversations.append(c)
    return conversations


# A tiny LoCoMo-shaped sample (`--quick`): two conversations of two sessions, with evidence ids
# in the data's odd spellings, an image caption, and a question left without evidence.


def sample_conversation(sample: str, a: str, b: str) -> dict[str, Any]:
    return {
        "sample_id": sample,
        "conversation": {
            "speaker_a": a,
            "speaker_b": b,
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": a, "dia_id": "D1:1", "text": "Hey! I adopted a puppy yesterday."},
                {"speaker": b, "dia_id": "D1:2", "text": "Wow! What is its name?"},
                {"speaker": a, "dia_id": "D1:3", "text": "Her name is Biscuit."},
                {
                    "speaker": b,
                    "dia_id": "D1:4",
                    "text": "Look at what I painted.",
                    "img_url": ["http://example.com/x.jpg"],
                    "blip_caption": "a painting of a sunset over a lake",
                },
            ],
            "session_2_date_time": "10:37 am on 27 June, 2023",
            "session_2": [
                {"speaker": b, "dia_id": "D2:1", "text": "I ran a charity race last Sunday."},
                {"speaker": a, "dia_id": "D2:2", "text": "Amazing, how far did you run?"},
                {"speaker": b, "dia_id": "D2:3", "text": "Ten kilometers, for a shelter."},
            ],
        },
        "qa": [
            {"question": f"When did {a} adopt a puppy?", "answer": "7 May 2023",
             "evidence": ["D1:1"], "category": 2},
            {"question": f"What is the name of {a}'s puppy?", "answer": "Biscuit",
             "evidence": ["D1:3; D1:1"], "category": 1},
            {"question": f"What did {b} paint?", "answer": "a sunset",
             "evidence": ["D:1:04"], "category": 4},
            {"question": f"How far did {b} run?", "answer": "10 km",
             "evidence": ["D2:3", "D9:9", "D"], "category": 4},
            {"question": "Which race did they skip?", "adversarial_answer": "none",
             "evidence": ["D2:1"], "category": 5},
            {"question": "Unscorable", "answer": "x", "evidence": ["D7:1"], "category": 3},
        ],
    }  # fmt: skip


def sample_data() -> list[dict[str, Any]]:
    return [sample_conversation("c-1", "Ann", "Bo"), sample_conversation("c-2", "Cy", "Di")]


async def ingest(service: MemoryService, conv: Conversation) -> int:
    """Persist every turn through the response node's write path; returns the turn count."""
    model = OfflineChatModel()
    count = 0
    for session in conv.sessions:
        thread = f"{conv.sample_id}-session-{session.number}"
        messages = [HumanMessage(t.text, name=t.speaker, id=t.dia_id) for t in session.turns]
        when = session.when.isoformat()
        summary = ""
        for i, message in enumerate(messages):
            # As in the response node: the message, the one before it and the one answering it.
            window = messages[max(0, i - 1) : i + 2]
            drafts = await extract([message], model, "rules", when=when)
            summary = extractive_summary(summary, [message], 1_200)
            turn: TurnRecord = {
                "thread_id": thread,
                "title": title_for(session.turns[0].text),
                "summary": summary,
                "last_message": session.turns[i].text,
                "message_count": i + 1,
                "created_at": when,
                "when": when,
            }
            await remember_turn(service, conv.sample_id, turn, window, {message.id or ""}, drafts)
            count += 1
    return count


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _covered(records: list[MemoryRecord]) -> set[str]:
    return {i for r in records for i in r.get("message_ids", [])}


class Scores:
    """recall@k, hit@k and words@k per category."""

    def __init__(self, ks: list[int]) -> None:
        self.ks = ks
        self.rows: dict[str, list[dict[str, float]]] = {c: [] for c in CATEGORIES}

    def add(self, question: Question, ranked: list[tuple[set[str], int]]) -> None:
        row: dict[str, float] = {}
        wanted = set(question.evidence)
        for k in self.ks:
            top = ranked[:k]
            covered = set().union(*(ids for ids, _ in top)) if top else set()
            share = len(covered & wanted) / len(wanted)
            row[f"recall@{k}"] = share
            row[f"hit@{k}"] = 1.0 if share > 0 else 0.0
            row[f"words@{k}"] = float(sum(words for _, words in top))
        self.rows.setdefault(question.category, []).append(row)

    @staticmethod
    def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
        if not rows:
            return {}
        return {key: round(statistics.fmean(r[key] for r in rows), 4) for key in rows[0]}

    def overall(self) -> dict[str, float]:
        return self._mean([r for c in SCORED for r in self.rows.get(c, [])])

    def by_category(self) -> dict[str, dict[str, float]]:
        return {c: self._mean(self.rows[c]) for c in CATEGORIES if self.rows.get(c)}


async def ask_all(
    service: MemoryService,
    conversations: list[Conversation],
    ks: list[int],
    dump: list[dict[str, Any]] | None = None,
) -> tuple[Scores, list[float]]:
    """Every question through `MemoryService.recall`; the scores and each call's latency.

    With `dump`, each question's evidence and ranked memories are appended to it.
    """
    scores = Scores(ks)
    budget = {"conversations": 0, "memories": max(ks)}
    latencies: list[float] = []
    for conv in conversations:
        for q in conv.questions[:3]:  # warm-up: connections, caches; not timed
            await service.recall(conv.sample_id, q.text, budget)  # type: ignore[arg-type]
    for conv in conversations:
        for q in conv.questions:
            started = time.perf_counter()
            records = await service.recall(conv.sample_id, q.text, budget)  # type: ignore[arg-type]
            latencies.append((time.perf_counter() - started) * 1000)
            scores.add(q, [(_covered([r]), len(r["text"].split())) for r in records])
            if dump is not None:
                turns = {t.dia_id: t.text for s in conv.sessions for t in s.turns}
                dump.append(
                    {
                        "conversation": conv.sample_id,
                        "question": q.text,
                        "category": q.category,
                        "evidence": {e: turns.get(e, "") for e in q.evidence},
                        "found": sorted(_covered(records) & set(q.evidence)),
                        "ranked": [
                            {"ids": r.get("message_ids", []), "text": r["text"]} for r in records
                        ],
                    }
                )
    return scores, latencies


def embed_latencies(store: BaseStore, conversations: list[Conversation]) -> list[float]:
    """Each question's query embedding alone, by the store's embedder (part of the recall time)."""
    index = getattr(store, "index_config", None) or {}
    embedder = unwrap(index["embed"])
    latencies: list[float] = []
    for conv in conversations:
        for q in conv.questions:
            started = time.perf_counter()
            embedder.embed_query(q.text)
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def baseline_bm25(conversations: list[Conversation], ks: list[int]) -> dict[str, float]:
    """The per-turn BM25 baseline of the data's README (raw turn text), for comparison."""
    scores = Scores(ks)
    for conv in conversations:
        turns = [t for s in conv.sessions for t in s.turns]
        docs = []
        for t in turns:
            tf = Counter(analyze(t.text))
            docs.append((dict(tf), float(sum(tf.values()))))
        for q in conv.questions:
            s = bm25_scores(list(dict.fromkeys(analyze(q.text))), docs)
            order = sorted(range(len(turns)), key=lambda i: (-s[i], i))[: max(ks)]
            scores.add(q, [({turns[i].dia_id}, len(turns[i].text.split())) for i in order])
    return scores.overall()


ABLATIONS = {
    "lexical": "lexical=1,semantic=0,recency=0,importance=0",
    "semantic": "lexical=0,semantic=1,recency=0,importance=0",
    "lexical+semantic 0.1": "lexical=1,semantic=0.1,recency=0,importance=0",
    "lexical+semantic 0.5": "lexical=1,semantic=0.5,recency=0,importance=0",
    "lexical+semantic 1": "lexical=1,semantic=1,recency=0,importance=0",
    "defaults+importance 0.3": "importance=0.3",
    "defaults+recency 0.1": "recency=0.1",
}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    ks = sorted({int(k) for k in args.k.split(",")})
    conversations = load(Path(args.data) if args.data else None)
    if args.conversations:
        wanted = [c.strip() for c in args.conversations.split(",") if c.strip()]
        unknown = sorted(set(wanted) - {c.sample_id for c in conversations})
        if unknown:
            raise SystemExit(f"no such conversation in {args.data}: {', '.join(unknown)}")
        conversations = [c for c in conversations if c.sample_id in wanted]
    if args.limit:
        conversations = conversations[: args.limit]
    # Ablation knobs (module settings, so that the product's write path is still the one run).
    if args.context is not None:
        before, after, message = (float(x) for x in args.context.split(","))
        memory_records.CONTEXT_BEFORE, memory_records.CONTEXT_AFTER = before, after
        memory_records.CONTEXT_MESSAGE = message
    if args.whole_messages:
        memory_records.MIN_SENTENCE_WORDS = sys.maxsize
    with database(args.database) as url:
        async with open_pool(url, max_size=4) as pool:
            store = await open_store(pool, embeddings=args.embedder)
            base = default_weights(store)
            weights = RecallWeights.parse(args.weights, base) if args.weights else base
            service = MemoryService(store, weights=weights)
            started = time.perf_counter()
            turns = 0
            for conv in conversations:
                turns += await ingest(service, conv)
            ingest_ms = (time.perf_counter() - started) * 1000
            memories = 0
            for conv in conversations:
                memories += len(await service.list_memories(conv.sample_id, kinds=MEMORY_KINDS))
            dump: list[dict[str, Any]] | None = [] if args.dump else None
            scores, latencies = await ask_all(service, conversations, ks, dump)
            embedding = embed_latencies(store, conversations)
            if args.dump:
                Path(args.dump).write_text(json.dumps(dump, indent=1))
            result: dict[str, Any] = {
                "overall": scores.overall(),
                "by_category": scores.by_category(),
                "ingest_ms_per_turn": round(ingest_ms / max(turns, 1), 3),
                "recall_p50_ms": round(_percentile(latencies, 0.50), 3),
                "recall_p95_ms": round(_percentile(latencies, 0.95), 3),
                "embed_p50_ms": round(_percentile(embedding, 0.50), 3),
                "embed_p95_ms": round(_percentile(embedding, 0.95), 3),
                "memories": memories,
                "turns": turns,
                "questions": sum(len(c.questions) for c in conversations),
                "conversations": [c.sample_id for c in conversations],
                "embedder": args.embedder or os.environ.get("MEMORY_AGENT_EMBEDDINGS", "offline"),
                "weights": asdict(weights),
                "episode_context": [
                    memory_records.CONTEXT_BEFORE,
                    memory_records.CONTEXT_AFTER,
                    memory_records.CONTEXT_MESSAGE,
                ],
                "episodes_per": "message" if args.whole_messages else "sentence",
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                f"{platform.python_version()}, {platform.system()}",
            }
            if args.ablations:
                ablations: dict[str, Any] = {}
                for name, spec in ABLATIONS.items():
                    service.weights = RecallWeights.parse(spec, weights)
                    s, lat = await ask_all(service, conversations, ks)
                    overall, cats = s.overall(), s.by_category()
                    ablations[name] = {
                        "recall@10": overall.get("recall@10"),
                        "multi-hop recall@10": cats.get("1", {}).get("recall@10"),
                        "words@10": overall.get("words@10"),
                        "recall_p50_ms": round(_percentile(lat, 0.5), 3),
                    }
                result["ablations"] = ablations
    if args.baseline:
        result["baseline_bm25_per_turn"] = baseline_bm25(conversations, ks)
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="a LoCoMo JSON file (required unless --quick)")
    p.add_argument("--quick", action="store_true", help="the tiny built-in sample, not --data")
    p.add_argument("--embedder", help="offline (default), local, or provider:model")
    p.add_argument("--k", default="5,10", help="cut-offs, e.g. 5,10")
    p.add_argument("--database", help="PostgreSQL server URL (default: a temporary embedded one)")
    p.add_argument("--weights", help="recall weights over the defaults, e.g. semantic=0.3")
    p.add_argument(
        "--context", help="ablation: episode context weights 'before,after,rest-of-message'"
    )
    p.add_argument(
        "--whole-messages", action="store_true", help="ablation: one episode per message"
    )
    p.add_argument("--ablations", action="store_true", help="also rank with other weights")
    p.add_argument("--baseline", action="store_true", help="also score per-turn BM25")
    p.add_argument("--limit", type=int, help="only the first N conversations")
    p.add_argument(
        "--conversations",
        help="only these sample ids, e.g. conv-26,conv-30 (a fit or a held-out half)",
    )
    p.add_argument("--dump", help="write every question's ranked memories to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.quick == bool(args.data):
        p.error("give --data FILE, or --quick for the tiny built-in sample")
    result = asyncio.run(run(args))
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
