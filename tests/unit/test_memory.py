"""Memory on any store (InMemoryStore here): kinds, supersession, dedup, recall, management."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage

from memory_agent import InvalidInputError
from memory_agent.memory.dates import resolve_dates
from memory_agent.memory.extraction import extract_with_rules
from memory_agent.memory.ingest import episodes_of, extract
from memory_agent.memory.lexical import (
    analyze,
    bm25_scores,
    jaccard,
    similar_pairs,
    term_weights,
)
from memory_agent.memory.ranking import Candidate, RecallWeights, fuse
from memory_agent.memory.service import MemoryService
from tests.helpers import memory_store, tell

MAY_8 = datetime(2023, 5, 8, 13, 56)  # a Monday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I went yesterday.", "I went yesterday (2023-05-07)."),
        ("Last Friday was fun", "Last Friday (2023-05-05) was fun"),
        ("next month", "next month (June 2023)"),
        ("two days ago", "two days ago (2023-05-06)"),
        ("last week", "last week (week of 2023-05-01)"),
        ("last year", "last year (2022)"),
        ("last summer", "last summer (summer 2022)"),
        ("this weekend", "this weekend (weekend of 2023-05-13)"),
        ("a few weeks ago", "a few weeks ago"),
        ("tomorrow (already dated)", "tomorrow (already dated)"),
    ],
)
def test_relative_dates_are_resolved_against_the_turns_date(text: str, expected: str) -> None:
    assert resolve_dates(text, MAY_8) == expected


FIVE_WAYS = [
    "I live in Seoul.",
    "I'm living in Seoul these days.",
    "My home is in Seoul.",
    "Seoul is where I live now.",
    "I'm based in Seoul.",
]


@pytest.mark.parametrize("text", FIVE_WAYS)
def test_five_wordings_of_one_fact_have_one_subject_and_text(text: str) -> None:
    assert [(d["subject"], d["text"]) for d in extract_with_rules(text)] == [
        ("location", "The user lives in Seoul.")
    ]


def test_a_named_speaker_owns_the_subject() -> None:
    drafts = extract_with_rules("I live in Boston and I love jazz.", speaker="Caroline")
    assert {d["subject"]: d["text"] for d in drafts} == {
        "caroline/location": "Caroline lives in Boston.",
        "caroline/preference:jazz": "Caroline loves jazz.",
    }


def test_bm25_prefers_rare_terms_and_context_counts_less() -> None:
    assert analyze("Hiking and hikes, I hiked!") == ["hike", "hike", "hike"]
    docs = [
        term_weights([("Caroline: I adopted a dog", 1.0)]),
        term_weights([("Caroline: I went out", 1.0), ("did you adopt a dog?", 0.5)]),
        term_weights([("Caroline: thanks", 1.0)]),
    ]
    scores = bm25_scores(["dog", "adopt"], [(d, sum(d.values())) for d in docs])
    assert scores[0] > scores[1] > scores[2] == 0.0


def test_fusion_weights_signals_and_drops_repeats() -> None:
    def cand(key: str, text: str, lexical: float | None, semantic: float | None) -> Candidate:
        return Candidate(("u",), key, {"text": text, "importance": 1.0}, lexical, semantic)

    pool = [
        cand("a", "likes tea", 4.0, 0.1),
        cand("b", "likes green tea a lot", 1.0, 0.9),
        cand("c", "likes tea", 3.9, 0.1),  # says what "a" says
    ]
    lexical = fuse(pool, RecallWeights(semantic=0, importance=0), 3, lexical_complete=True)
    assert [c.key for c in lexical] == ["a", "b"]
    semantic = fuse(pool, RecallWeights(lexical=0, importance=0), 3, lexical_complete=True)
    assert semantic[0].key == "b"


async def test_supersession_keeps_history_and_only_touches_the_same_subject() -> None:
    service = MemoryService(memory_store())
    await tell(service, "ada", "t1", "I live in Seoul and I love pizza.", when="2023-05-01")
    await tell(service, "ada", "t2", "I moved to Busan last week.", when="2023-06-01")
    facts = {m["subject"]: m for m in await service.list_memories("ada")}
    assert facts["location"]["text"] == "The user lives in Busan."
    assert facts["preference:pizza"]["text"] == "The user loves pizza."
    assert facts["preference:pizza"]["version"] == 1
    history = await service.history("ada", facts["location"]["key"])
    assert [v["text"] for v in history] == ["The user lives in Seoul.", "The user lives in Busan."]
    old, new = history
    assert old["valid_to"] == new["said_at"] == "2023-06-01T00:00:00+00:00"
    assert old["superseded_by"] == new["id"] and new["supersedes"] == old["id"]
    recalled = await service.search("ada", "where do I live", limit=3, kinds=["fact"])
    assert [r["text"] for r in recalled] == ["The user lives in Busan."]


async def test_the_same_fact_five_ways_is_one_memory_with_five_mentions() -> None:
    service = MemoryService(memory_store())
    for i, text in enumerate(FIVE_WAYS):
        await tell(service, "ada", f"t{i}", text)
    await tell(service, "ada", "t4", FIVE_WAYS[4])  # a retried turn adds nothing
    facts = await service.list_memories("ada")
    assert [(f["text"], f.get("mentions"), len(f["message_ids"])) for f in facts] == [
        ("The user lives in Seoul.", 5, 5)
    ]
    assert (await service.audit("ada"))["superseded"] == []
    assert len(await service.list_memories("ada", kinds=["episode"])) == 5


async def test_episodes_keep_what_was_said_with_provenance_and_dates() -> None:
    service = MemoryService(memory_store())
    saved = await tell(
        service, "u", "t1", "We adopted a puppy yesterday!", when="2023-05-08T13:56:00"
    )
    assert saved["memories"] == [] and len(saved["episodes"]) == 1
    [episode] = await service.list_memories("u", kinds=["episode"])
    assert episode["text"] == "User: We adopted a puppy yesterday (2023-05-07)!"
    assert episode["thread_id"] == "t1" and episode["message_ids"]
    assert episode["said_at"].startswith("2023-05-08T13:56")
    [found] = await service.search("u", "when did we get the puppy?", limit=1)
    assert found["kind"] == "episode" and found["text"].startswith("[2023-05-08] User:")
    assert found["message_ids"] == episode["message_ids"]


def test_episodes_carry_the_message_they_answered_and_the_reply() -> None:
    window = [
        AIMessage("Where did you go?", id="a0"),
        HumanMessage("To the lake.", id="h1"),
        AIMessage("Lovely!", id="a1"),
    ]
    [ep] = episodes_of(window, {"h1"})
    assert (ep["before"], ep["text"], ep["after"]) == (
        "Where did you go?",
        "To the lake.",
        "Lovely!",
    )


async def test_edit_delete_and_audit() -> None:
    service = MemoryService(memory_store())
    await tell(service, "u", "t1", "My favorite color is teal.")
    await tell(service, "u", "t2", "I adopted a grey cat named Miso today.")
    await tell(service, "u", "t3", "I adopted a grey cat named Miso today!")
    [fact] = await service.list_memories("u")
    edited = await service.edit_memory("u", fact["key"], "The user's favorite color is navy.")
    assert edited["version"] == 2 and edited["text"].endswith("navy.")
    assert [v["text"][-5:] for v in await service.history("u", fact["key"])] == ["teal.", "navy."]
    report = await service.audit("u")
    assert report["counts"]["history"] == 1 and len(report["superseded"]) == 1
    assert [sorted((p["a"]["kind"], p["b"]["kind"])) for p in report["near_duplicates"]] == [
        ["episode", "episode"]
    ]
    assert await service.delete_memory("u", fact["key"])
    assert await service.list_memories("u") == []
    assert (await service.audit("u"))["counts"]["history"] == 0
    assert not await service.delete_memory("u", fact["key"])
    with pytest.raises(InvalidInputError):
        await service.history("u", fact["key"])
    with pytest.raises(InvalidInputError):
        await service.edit_memory("u", "nope", "text")


async def test_model_extraction_is_told_the_speaker_and_the_date() -> None:
    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.runnables import RunnableLambda

    prompts: list[Any] = []

    class Structured(GenericFakeChatModel):
        def with_structured_output(self, schema: Any, **kwargs: Any) -> Any:
            def answer(messages: Any) -> Any:
                prompts.append(messages)
                return {"memories": [{"kind": "fact", "subject": "Pet", "text": "Jo has a cat."}]}

            return RunnableLambda(answer)

    model = Structured(messages=iter([]))
    said = HumanMessage("We got a cat yesterday.", name="Jo", id="m1")
    drafts = await extract([said], model, "model", when="2023-05-08")
    assert drafts == [
        {"kind": "fact", "subject": "jo/pet", "text": "Jo has a cat.", "message_ids": ["m1"]}
    ]
    system = prompts[0][0][1]
    assert "about Jo" in system and "2023-05-08" in system


@given(
    st.lists(
        st.sets(st.sampled_from("abcdefghij"), min_size=0, max_size=7), min_size=0, max_size=25
    ),
    st.sampled_from([0.5, 0.8, 0.9]),
)
def test_similar_pairs_finds_exactly_what_comparing_all_pairs_finds(
    sets: list[set[str]], threshold: float
) -> None:
    brute = {
        (i, j)
        for i in range(len(sets))
        for j in range(i + 1, len(sets))
        if len(sets[i]) >= 3 and len(sets[j]) >= 3 and jaccard(sets[i], sets[j]) >= threshold
    }
    assert {(i, j) for i, j, _ in similar_pairs(sets, threshold)} == brute
