"""Pure parts: namespaces, extraction, intent, embeddings, summaries, context, offline model."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage, SystemMessage

from memory_agent import AgentContext, ConfigurationError, InvalidInputError, OfflineChatModel
from memory_agent.embeddings import HashingEmbeddings, cosine
from memory_agent.intent import budget_for, classify_by_rules
from memory_agent.memory.extraction import extract_with_rules
from memory_agent.memory.summaries import extractive_summary, title_for
from memory_agent.persistence.namespaces import decode_label, encode_label, validate_user_id
from memory_agent.utils import concurrently
from memory_agent.validation import validate_thread_id

INVISIBLE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
valid_ids = st.text(
    alphabet=st.characters(exclude_categories=INVISIBLE), min_size=1, max_size=64
).filter(lambda s: bool(s.strip()))


@pytest.mark.parametrize(
    "char",
    [
        "\x00",
        "\x1f",
        "\x7f",
        "\x85",
        "\u2028",
        "\u2029",
        "\u202e",
        "\u200b",
        "\ufeff",
        "\ue000",
        "\ud800",
    ],
)
def test_ids_with_control_or_invisible_characters_are_refused(char: str) -> None:
    with pytest.raises(InvalidInputError, match="user_id"):
        validate_user_id(f"alice{char}")
    with pytest.raises(InvalidInputError, match="thread_id"):
        validate_thread_id(f"thread{char}")


@given(valid_ids)
def test_labels_round_trip_and_never_contain_a_dot(user_id: str) -> None:
    label = encode_label(user_id)
    assert "." not in label and label
    assert decode_label(label) == user_id


@given(valid_ids, valid_ids)
def test_distinct_users_get_distinct_labels(a: str, b: str) -> None:
    assert (encode_label(a) == encode_label(b)) == (a == b)


@pytest.mark.parametrize("bad", ["", "   ", "a\x00b", "tab\there", "x" * 257, 42, None])
def test_bad_user_ids_are_refused_with_a_reason(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="user_id"):
        validate_user_id(bad)


def test_rules_extract_facts_preferences_entities() -> None:
    drafts = extract_with_rules(
        "Hi! My name is alice and I live in Seoul. I love spicy ramen. "
        "My dog's name is Rex. My favorite color is teal. I'm 34 years old."
    )
    texts = {d["subject"]: d["text"] for d in drafts}
    assert texts["name"] == "The user's name is Alice."
    assert texts["location"] == "The user lives in Seoul."
    assert texts["preference:spicy-ramen"] == "The user loves spicy ramen."
    assert texts["entity:dog"] == "The user's dog is named Rex."
    assert texts["favorite:color"] == "The user's favorite color is teal."
    assert texts["age"] == "The user is 34 years old."


def test_rules_ignore_questions_and_keep_subjects_stable() -> None:
    assert extract_with_rules("What is my name?") == []
    moved = extract_with_rules("I moved to Busan last month.")
    assert [(d["subject"], d["text"]) for d in moved] == [("location", "The user lives in Busan.")]
    dislike = extract_with_rules("I don't like pizza anymore.")
    assert dislike[0]["subject"] == extract_with_rules("I like pizza.")[0]["subject"]


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("hello!", "greeting"),
        ("thanks a lot", "small_talk"),
        ("What did we talk about last time?", "recall"),
        ("What is my name?", "recall"),
        ("How do I cook rice?", "question"),
        ("My name is Alice.", "statement"),
    ],
)
def test_intent_rules(text: str, intent: str) -> None:
    assert classify_by_rules(text)[0] == intent


def test_budget_follows_intent() -> None:
    ctx = AgentContext(recent_conversations=3, max_memories=4)
    assert budget_for("greeting", ctx) == {"conversations": 0, "memories": 0}
    assert budget_for("question", ctx) == {"conversations": 3, "memories": 4}
    assert budget_for("recall", ctx) == {"conversations": 5, "memories": 8}


def test_hashing_embeddings_are_deterministic_normalised_and_lexical() -> None:
    emb = HashingEmbeddings()
    a, b = emb.embed_query("I love hiking in the mountains"), emb.embed_query("hikes in mountains")
    c = emb.embed_query("quarterly tax filing deadline")
    assert a == HashingEmbeddings().embed_query("I love hiking in the mountains")
    assert abs(cosine(a, a) - 1.0) < 1e-9
    assert cosine(a, b) > cosine(a, c) + 0.2


def test_extractive_summary_is_bounded_and_keeps_the_topic() -> None:
    msgs = [HumanMessage(f"Topic number {i} is interesting. More words here.") for i in range(50)]
    summary = extractive_summary("", msgs, 300)
    assert len(summary) <= 300
    assert summary.startswith("Topic number 0")
    assert "Topic number 49" in summary
    assert title_for("x" * 100).endswith("…") and len(title_for("x" * 100)) == 60


def test_context_validation() -> None:
    with pytest.raises(ConfigurationError, match="message_window"):
        AgentContext(message_window=1)
    with pytest.raises(ConfigurationError, match="extractor"):
        AgentContext(extractor="magic")  # type: ignore[arg-type]


async def test_offline_model_answers_from_memories_and_streams() -> None:
    model = OfflineChatModel()
    prompt = [
        SystemMessage(
            "What you remember about the user:\n- The user's name is Alice.\n"
            "- The user lives in Seoul."
        ),
        HumanMessage("Where do I live?"),
    ]
    assert (await model.ainvoke(prompt)).content == "You live in Seoul."
    tokens = [c.content async for c in model.astream(prompt)]
    assert len(tokens) > 1 and "".join(map(str, tokens)) == "You live in Seoul."
    hello = await model.ainvoke([prompt[0], HumanMessage("hi")])
    assert hello.content == "Hello, Alice! How can I help you today?"
    unknown = await model.ainvoke([HumanMessage("What is my favorite film?")])
    assert "don't know" in str(unknown.content)


async def test_concurrently_cancels_the_others_when_one_fails() -> None:
    finished: list[str] = []
    cancelled: list[str] = []

    async def slow() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise
        finished.append("slow")
        return "slow"

    async def failing() -> str:
        await asyncio.sleep(0.01)
        raise ConnectionError("down")

    async def quick(value: int) -> int:
        return value

    assert await concurrently(quick(1), quick(2)) == [1, 2]
    with pytest.raises(ConnectionError, match="down"):
        await concurrently(slow(), failing())
    # The slow one was cancelled and awaited before the error came out, not left running.
    assert cancelled == ["slow"] and finished == []
