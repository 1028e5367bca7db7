"""Adversarial recall cases from the misses recall made on conversations it was not tuned on:
a user's own questions, dated small talk, category questions. Made-up conversations, no
benchmark data."""

from __future__ import annotations

from datetime import date, datetime
from functools import partial

import pytest

from memory_agent.memory.dates import find_dates, query_dates
from memory_agent.memory.records import is_question
from memory_agent.memory.service import MemoryService
from tests import helpers
from tests.helpers import memory_store

# The assistant's answer in every turn told here.
tell = partial(helpers.tell, answer="I see.")


def service() -> MemoryService:
    return MemoryService(memory_store())


# --- a user's own questions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("Where do I live?", True),
        ("Wow! Did you see that band?", True),
        ("Hi Ann, how was the trip?", True),
        ("Love that purple scarf! Where did you buy it?", False),
        ("I live in Porto.", False),
        ("I moved to Porto, remember?", True),
    ],
)
def test_an_episode_that_only_asks_is_a_question(text: str, asks: bool) -> None:
    assert is_question(text) is asks


async def test_the_users_question_does_not_outrank_the_fact_that_answers_it() -> None:
    memory = service()
    await tell(memory, "u", "t1", "I live in Porto.")
    await tell(memory, "u", "t2", "Where do I live?")
    await tell(memory, "u", "t3", "Do you remember where I live?")
    found = await memory.search("u", "where do I live", limit=3)
    assert "Porto" in found[0]["text"], [r["text"] for r in found]
    # The questions are still kept (nothing said is lost), only ranked below what answers them.
    assert any(r["text"].endswith("Where do I live?") for r in found[1:])


async def test_audit_does_not_pair_a_fact_with_the_sentence_it_came_from() -> None:
    memory = service()
    await tell(memory, "u", "t1", "I live in Porto.")
    await tell(memory, "u", "t2", "I love jazz.")
    await tell(memory, "u", "t3", "I love jazz!")  # a real repeat: two episodes alike
    report = await memory.audit("u")
    assert report["counts"]["fact"] + report["counts"]["preference"] == 2
    pairs = [sorted((p["a"]["kind"], p["b"]["kind"])) for p in report["near_duplicates"]]
    assert pairs == [["episode", "episode"]]


# --- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days", "rest"),
    [
        ("What did she bake on 7 May, 2023?", [(date(2023, 5, 7),) * 2], "What did she bake on?"),
        ("on May 7th 2023", [(date(2023, 5, 7),) * 2], "on"),
        ("in December 2023", [(date(2023, 12, 1), date(2023, 12, 31))], "in"),
        ("the week of 2023-07-31", [(date(2023, 7, 31), date(2023, 8, 6))], ""),
        ("winter 2023-2024", [(date(2023, 12, 1), date(2024, 2, 29))], ""),
        ("May I ask?", [], "May I ask?"),
        # No such day: the month it names is what is left.
        ("on 31 February 2023", [(date(2023, 2, 1), date(2023, 2, 28))], "on 31"),
    ],
)
def test_find_dates_names_the_days_and_leaves_the_words(
    text: str, days: list[tuple[date, date]], rest: str
) -> None:
    assert find_dates(text) == (days, rest)


def test_a_relative_date_in_a_query_is_resolved_as_of_now() -> None:
    days, rest = query_dates("What did I cook yesterday?", datetime(2024, 1, 22, 9))
    assert days == [(date(2024, 1, 21), date(2024, 1, 21))]
    assert "2024" not in rest and "cook" in rest


SMALL_TALK = [
    "Hi! How are you doing today?",
    "Good morning, lovely weather today.",
    "Hey there, busy day today!",
]
DISHES = ["lentil soup", "fish curry", "pancakes", "banana bread", "pad thai", "goulash"]


async def cooking_diary(memory: MemoryService, target_day: str) -> None:
    """A user who talks about recipes often (so "recipe" is a common word), greets on 21
    January 2024 and tries a risotto recipe on `target_day`."""
    for i, dish in enumerate(DISHES):
        when = f"2024-01-{i + 2:02d}"
        await tell(memory, "u", f"cook-{i}", f"I tried a recipe for {dish}.", when=when)
    for i, text in enumerate(SMALL_TALK):
        await tell(memory, "u", f"greet-{i}", text, when="2024-01-21T10:00:00")
    text = "I've been trying out a new recipe for mushroom risotto."
    await tell(memory, "u", "target", text, when=target_day)


async def test_dated_small_talk_does_not_crowd_out_what_was_said_that_day() -> None:
    memory = service()
    await cooking_diary(memory, "2024-01-21T18:00:00")
    found = await memory.search("u", "Which recipe did I try on 21 January 2024?", limit=3)
    assert "risotto" in found[0]["text"], [r["text"] for r in found]


async def test_a_date_only_match_never_outranks_a_content_match() -> None:
    memory = service()
    await cooking_diary(memory, "2024-01-14")
    found = await memory.search("u", "Which recipe did I try on 21 January 2024?", limit=5)
    ranked = [r["text"] for r in found]
    assert all("recipe" in text for text in ranked[:3]), ranked


async def test_the_day_a_query_names_picks_among_content_matches() -> None:
    memory = service()
    await tell(memory, "u", "a", "I cooked a new recipe for lentil soup.", when="2024-01-10")
    await tell(memory, "u", "b", "I cooked a new recipe for fish curry.", when="2024-01-21")
    await tell(memory, "u", "c", "Yesterday I cooked a recipe for pancakes.", when="2024-03-03")
    for query, dish in [
        ("What recipe did I cook on January 21, 2024?", "curry"),
        ("What recipe did I cook on 10 January 2024?", "lentil"),
        ("What recipe did I cook on 2 March 2024?", "pancakes"),  # "yesterday (2024-03-02)"
    ]:
        found = await memory.search("u", query, limit=3)
        assert dish in found[0]["text"], (query, [r["text"] for r in found])


# --- who said it ---------------------------------------------------------------------------


async def test_what_a_named_person_said_outranks_what_was_said_to_them() -> None:
    memory = service()
    await tell(memory, "u", "t", "Ann, your painting looked great at the fair!", speaker="Bob")
    await tell(memory, "u", "t", "Ann, I loved that painting of yours so much!", speaker="Bob")
    await tell(memory, "u", "t", "I finished painting a lighthouse at dawn.", speaker="Ann")
    found = await memory.search("u", "What has Ann been painting?", limit=3)
    assert "lighthouse" in found[0]["text"], [r["text"] for r in found]


# --- category questions --------------------------------------------------------------------


async def test_a_category_question_prefers_statements_about_the_subject() -> None:
    memory = service()
    await tell(memory, "u", "a", "My cat Fluffy sleeps all day on the sofa.")
    await tell(memory, "u", "b", "My dog's name is Max and he loves the park.")
    await tell(memory, "u", "c", "At the zoo we saw exotic animals like monkeys.")
    found = await memory.search("u", "Which pets do I have, my cat or my dog?", limit=3)
    assert {"Fluffy", "Max"} <= {w.strip(".,'s") for r in found[:2] for w in r["text"].split()}


@pytest.mark.xfail(
    strict=True,
    reason="offline recall only matches words: nothing tells it that a cat is an animal (nor "
    "does the `local` MiniLM: it puts the monkeys first too, README); weighting the question's "
    "answer-type word down measured worse on the held-out conversations, so it is not done",
)
async def test_a_category_word_finds_its_instances() -> None:
    memory = service()
    await tell(memory, "u", "a", "My cat Fluffy sleeps all day on the sofa.")
    await tell(memory, "u", "b", "My dog's name is Max and he loves the park.")
    await tell(memory, "u", "c", "At the zoo we saw exotic animals like monkeys.")
    found = await memory.search("u", "What animals do I have?", limit=3)
    assert "monkeys" not in found[0]["text"]
