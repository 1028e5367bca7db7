"""The pure checks of the run boundary, fuzzed: validation, secret keys, durations."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage
from langgraph.types import Command

from memory_agent import AgentContext, InvalidInputError
from memory_agent.persistence.namespaces import validate_user_id
from memory_agent.persistence.retention import parse_age
from memory_agent.secrets import is_secret_key, scrub_metadata
from memory_agent.validation import MAX_THREAD_ID_CHARS, validate_thread_id, validate_turn
from tests import helpers

NASTY = [
    *helpers.NASTY,
    "😀",
    '"quoted"',
    "\u202e",
    "\x1b[31m",
]
texts = st.one_of(st.sampled_from(NASTY), st.text(max_size=40))
scalars = st.one_of(texts, st.none(), st.integers(), st.floats(), st.booleans(), st.uuids())
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
message_like = st.one_of(
    texts,
    st.tuples(st.sampled_from(["user", "human", "assistant", "system", "tool", "x"]), texts),
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "bogus"]), "content": json_like}
    ),
    texts.map(lambda t: HumanMessage(content=t)),
    st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}), max_size=2).map(
        lambda blocks: HumanMessage(content=blocks)  # type: ignore[arg-type]
    ),
    texts.map(lambda t: AIMessage(content=t)),
    texts.map(lambda t: RemoveMessage(id=t)),
    json_like,
)
user_ids = st.one_of(texts, texts, st.none(), scalars, json_like)
turns = st.fixed_dictionaries(
    {"messages": st.one_of(message_like, st.lists(message_like, min_size=1, max_size=3))},
    optional={"user_id": user_ids},
)
odd_inputs = [
    json_like,
    st.fixed_dictionaries({"messages": message_like, "extra": json_like}),
    st.dictionaries(st.text(max_size=5), json_like, max_size=2).map(lambda u: Command(update=u)),
]
# Mostly turn-shaped dicts (the interesting ones), sometimes anything else.
turn_inputs = st.integers(0, 9).flatmap(lambda i: turns if i < 7 else odd_inputs[i - 7])


def storable(text: str) -> bool:
    """Whether PostgreSQL can store `text` (jsonb and text refuse NUL and lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


@settings(max_examples=500, deadline=None)
@given(turn_inputs)
def test_any_input_is_normalised_or_refused_with_a_typed_error(value: Any) -> None:
    ctx = AgentContext(max_input_chars=2_000)
    try:
        turn = validate_turn(value, ctx)
    except InvalidInputError as exc:
        assert str(exc)
        return
    if turn is None:
        assert value is None
        return
    assert set(turn) == {"messages", "user_id"}
    assert turn["user_id"] is None or validate_user_id(turn["user_id"]) == turn["user_id"]
    assert turn["messages"] and all(isinstance(m, HumanMessage) for m in turn["messages"])
    ids = [m.id for m in turn["messages"]]
    assert len(set(ids)) == len(ids) and all(uuid.UUID(i) for i in ids if i)
    for m in turn["messages"]:
        texts_ = [m.content] if isinstance(m.content, str) else [str(b) for b in m.content]
        assert all(storable(t) for t in texts_)


@settings(max_examples=300, deadline=None)
@given(st.one_of(scalars, json_like))
def test_thread_ids_are_canonical_or_refused(value: Any) -> None:
    try:
        thread_id = validate_thread_id(value)
    except InvalidInputError:
        return
    assert isinstance(thread_id, str) and thread_id.strip()
    assert len(thread_id) <= MAX_THREAD_ID_CHARS and storable(thread_id)
    assert not any(ord(c) < 32 for c in thread_id)


@pytest.mark.parametrize(
    "value",
    [None, Command(resume="x"), "hello", ["hi"], {"messages": []}, {"user_id": "a"}],
)
def test_shapes_that_are_not_a_turn(value: Any) -> None:
    if value is None:
        assert validate_turn(value, AgentContext()) is None
    else:
        with pytest.raises(InvalidInputError):
            validate_turn(value, AgentContext())


def test_a_turn_cannot_remove_or_replace_history() -> None:
    with pytest.raises(InvalidInputError, match="'remove'"):
        validate_turn({"messages": [RemoveMessage(id="m1")]}, AgentContext())
    with pytest.raises(InvalidInputError, match="'ai'"):
        validate_turn({"messages": [AIMessage("I said so", id="m1")]}, AgentContext())
    turn = validate_turn({"messages": [HumanMessage("hi", id="m1")]}, AgentContext())
    assert turn is not None and turn["messages"][0].id != "m1"
    assert turn["user_id"] is None  # absent means anonymous, never "the thread's owner"


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "OPENAI_API_KEY",
        "openaiApiKey",
        "apiKey",
        "access_token",
        "token",
        "password",
        "db_passwd",
        "client_secret",
        "Authorization",
        "aws_access_key_id",
        "private_key",
        "credentials",
        "session_cookie",
    ],
)
def test_secret_looking_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "thread_id",
        "max_tokens",
        "tokenizer",
        "user_id",
        "langgraph_auth_user_id",
        "model",
        "secretary",
        "keyboard",
        "checkpoint_ns",
        "passage",
    ],
)
def test_ordinary_keys(key: str) -> None:
    assert not is_secret_key(key)
    assert scrub_metadata({key: 1}) == {key: 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        (" 1.5D ", timedelta(days=1.5)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "-1d", "30 days", "1e3d", "30y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidInputError, match="not a duration"):
        parse_age(text)
