"""The offline default model answers what a new user first asks (issue 12, last section),
through the whole agent with InMemoryStore and InMemorySaver."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from memory_agent import MemoryService
from memory_agent.memory.extraction import extract_with_rules
from tests import helpers
from tests.helpers import offline_graph as make

# Every turn here: the offline model, and the turn must complete.
say = partial(helpers.say, model="offline", status="completed")


@pytest.fixture
async def told() -> Any:
    agent = make()
    await say(
        agent,
        "bruno",
        "intro",
        "My name is Bruno. I live in Porto and I enjoy chess and green tea.",
    )
    await say(agent, "bruno", "intro", "I work as a carpenter.")
    return agent


@pytest.mark.parametrize(
    "question",
    ["What do you remember about me?", "What do you know about me?", "Tell me about me."],
)
async def test_a_question_about_the_user_lists_what_is_known(told: Any, question: str) -> None:
    answer = await say(told, "bruno", "later", question)
    assert answer.startswith("Here is what I know about you:")
    for known in ("Bruno", "Porto", "chess", "green tea", "carpenter"):
        assert known in answer
    assert "Earlier conversation" not in answer and len(answer) < 300


async def test_a_user_nobody_knows_is_told_so() -> None:
    answer = await say(make(), "nobody", "t", "What do you know about me?")
    assert "don't know anything about you yet" in answer


@pytest.mark.parametrize(
    ("question", "wanted", "unwanted"),
    [
        ("What do I like?", ["chess", "green tea"], ["Porto", "carpenter"]),
        ("What is my job?", ["carpenter"], ["Porto", "chess"]),
        ("Do I like tea?", ["green tea"], ["chess"]),
        ("What is my name and where do I live?", ["Bruno", "Porto"], ["chess", "Earlier"]),
        ("Do I like opera?", ["don't know"], ["chess", "tea", "Earlier"]),
    ],
)
async def test_questions_about_the_user_are_answered_from_the_facts(
    told: Any, question: str, wanted: list[str], unwanted: list[str]
) -> None:
    answer = await say(told, "bruno", "later", question)
    for word in wanted:
        assert word in answer, answer
    for word in unwanted:
        assert word not in answer, answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "I live in Lisbon and I love hiking and strong coffee.",
            {
                "The user lives in Lisbon.",
                "The user loves hiking.",
                "The user loves strong coffee.",
            },
        ),
        (
            "I enjoy tennis, sailing and jazz.",
            {"The user enjoys tennis.", "The user enjoys sailing.", "The user enjoys jazz."},
        ),
        (
            "My name is Ada and I work as a nurse, but I hate night shifts.",
            {
                "The user's name is Ada.",
                "The user works as a nurse.",
                "The user does not like night shifts.",
            },
        ),
    ],
)
def test_conjunctions_become_separate_memories(text: str, expected: set[str]) -> None:
    assert {d["text"] for d in extract_with_rules(text)} == expected


async def test_conjunctions_are_stored_separately_through_the_agent() -> None:
    agent = make()
    await say(agent, "ana", "t", "I live in Lisbon and I love hiking and strong coffee.")
    texts = {m["text"] for m in await MemoryService(agent.store).list_memories("ana")}
    assert texts == {
        "The user lives in Lisbon.",
        "The user loves hiking.",
        "The user loves strong coffee.",
    }


async def test_a_greeting_that_states_a_name_uses_it_and_thanks_get_a_reply() -> None:
    agent = make()
    hello = await say(agent, "ada", "t", "Hi! My name is Ada.")
    assert "Ada" in hello and hello.startswith("Hello")
    assert (await say(agent, "ada", "t", "thanks!")) == "You're welcome, Ada!"
    stranger = await say(make(), "zed", "t", "Thank you so much.")
    assert stranger == "You're welcome!"
    other = await say(make(), "tom", "t", "Hello, call me Tom.")
    assert "Tom" in other


async def test_what_the_user_said_is_quoted_and_other_findings_stand_as_they_are() -> None:
    from langchain_core.messages import HumanMessage, SystemMessage

    from memory_agent import OfflineChatModel

    system = SystemMessage(
        "What you remember about the user:\n"
        '- Earlier conversation "Trip": Planning a trip to Kyoto; booked the ryokan.\n'
        "- [2024-05-01] User: My sister visits in June.\n"
        "- [2024-05-02] Caroline: I adopted a puppy.\n"
        "\nWhat your teams found this turn:\n- weather: Sunny in Kyoto tomorrow."
    )
    model = OfflineChatModel()

    async def answer(question: str) -> str:
        return str((await model.ainvoke([system, HumanMessage(question)])).content)

    assert await answer("When does my sister visit?") == (
        'Earlier you told me: "My sister visits in June."'
    )
    assert await answer("Did I book the ryokan?") == 'Earlier you told me: "booked the ryokan."'
    assert await answer("Is it sunny tomorrow?") == "weather: Sunny in Kyoto tomorrow."
    assert "puppy" in await answer("Who adopted a puppy?")
    assert "Earlier you told me" not in await answer("Who adopted a puppy?")
