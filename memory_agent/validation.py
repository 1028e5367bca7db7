"""Checks on what a caller hands a run, made before anything is stored.

LangGraph writes a turn's input to the checkpoint before the first node runs, and some inputs
never reach a node at all (a lone surrogate fails in the serializer, a malformed message in the
reducer). So the agent's boundary (`guard.GuardedAgent`) validates the input here first, and a
rejected input changes nothing stored. The initialize node still checks what only the state can
tell (thread ownership), and covers graphs run without the boundary (the LangGraph server).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_messages
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Command

from memory_agent.context import AgentContext
from memory_agent.errors import InvalidInputError
from memory_agent.persistence.namespaces import validate_user_id
from memory_agent.utils import message_text, validate_identifier

MAX_THREAD_ID_CHARS = 256
MAX_CONTENT_BLOCKS = 32
"""Most content blocks (text, image, ...) one message may hold."""
INPUT_KEYS = frozenset({"messages", "user_id"})


def storage_problem(text: str) -> str | None:
    """What keeps PostgreSQL from storing `text` (in text or jsonb), if anything."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (lone surrogate)"
    return None


def validate_thread_id(value: object) -> str:
    """The canonical thread id (a short printable string), or InvalidInputError."""
    if isinstance(value, uuid.UUID) or (isinstance(value, int) and not isinstance(value, bool)):
        value = str(value)
    return validate_key(value, "thread_id")


def validate_key(value: object, what: str = "key") -> str:
    """A key a caller names (thread id, memory key): a short printable string PostgreSQL can
    hold, or InvalidInputError saying what is wrong with it."""
    return validate_identifier(value, what, max_chars=MAX_THREAD_ID_CHARS)


def thread_id_from(config: object) -> str:
    """The validated `config["configurable"]["thread_id"]` of a run."""
    configurable = config.get("configurable") if isinstance(config, Mapping) else None
    if not isinstance(configurable, Mapping) or configurable.get("thread_id") is None:
        raise InvalidInputError(
            "a turn needs a thread: pass config={'configurable': {'thread_id': ...}}"
        )
    return validate_thread_id(configurable["thread_id"])


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _messages(value: object) -> list[BaseMessage]:
    items: Any = value if isinstance(value, list | tuple) else [value]
    try:
        return convert_to_messages(items)
    except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"the messages could not be read: {reason[:200]}") from exc


_SERDE = JsonPlusSerializer()


def _serialized_size(value: object, what: str) -> int:
    """The bytes `value` takes in a checkpoint; InvalidInputError if it cannot be stored there.

    The checkpointer serialises with this same serializer after the run has started, when the
    turn's memory writes may already be committed: finding out here keeps a turn whose input
    cannot be checkpointed from storing anything.
    """
    try:
        _, data = _SERDE.dumps_typed(value)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"{what} cannot be stored: {reason[:200]}") from exc
    return len(data)


def validate_messages(value: object, ctx: AgentContext | None = None) -> list[BaseMessage]:
    """Messages a caller hands in (a turn's input, a state edit), checked as a whole.

    Raises:
        InvalidInputError: a message cannot be read, holds text PostgreSQL cannot store, is
            too long, has too many content blocks, or the messages together exceed the
            turn's limits (`AgentContext.max_input_messages` / `max_input_bytes`) or cannot
            be serialised into a checkpoint.
    """
    ctx = ctx or AgentContext()
    if isinstance(value, list | tuple) and len(value) > ctx.max_input_messages:
        raise InvalidInputError(
            f"the input holds {len(value)} messages; the limit is {ctx.max_input_messages}"
        )
    messages = _messages(value)
    for m in messages:
        if isinstance(m.content, list) and len(m.content) > MAX_CONTENT_BLOCKS:
            raise InvalidInputError(
                f"a message holds {len(m.content)} content blocks; the limit is "
                f"{MAX_CONTENT_BLOCKS}"
            )
        for text in _strings([m.content, m.additional_kwargs, m.name]):
            if problem := storage_problem(text):
                raise InvalidInputError(f"the message {problem}")
        text = message_text(m)
        if len(text) > ctx.max_input_chars:
            raise InvalidInputError(
                f"the message is {len(text)} characters long; the limit is {ctx.max_input_chars}"
            )
    size = _serialized_size(messages, "the messages")
    if size > ctx.max_input_bytes:
        raise InvalidInputError(
            f"the input takes {size} bytes (text, content blocks and extra fields together); "
            f"the limit is {ctx.max_input_bytes}"
        )
    return messages


def validate_turn(value: object, ctx: AgentContext) -> dict[str, Any] | None:
    """The input of one turn, checked and normalised; None (resume a cut-off turn) passes.

    Normalised: the messages are the user's (`HumanMessage`) with fresh ids, so an input can
    never replace or remove a message already in the thread; `user_id` is explicit (absent means
    anonymous, never "whoever owned the thread").

    Raises:
        InvalidInputError: what is wrong, before anything is stored.
    """
    if value is None:
        return None
    if isinstance(value, Command):
        raise InvalidInputError(
            "Command input is not accepted: send {'messages': [...], 'user_id': ...}, "
            "or None to resume a turn that was cut off"
        )
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            "a turn's input is a dict {'messages': [...], 'user_id': ...}, "
            f"not {type(value).__name__}"
        )
    unknown = sorted(str(k) for k in value if k not in INPUT_KEYS)
    if unknown:
        raise InvalidInputError(
            f"unknown input key(s) {unknown}; a turn takes {sorted(INPUT_KEYS)}"
        )
    if "messages" not in value or value["messages"] in (None, [], ()):
        raise InvalidInputError("a turn needs a user message")
    user_id = value.get("user_id")
    if user_id is not None:
        user_id = validate_user_id(user_id)
    messages = validate_messages(value["messages"], ctx)
    for m in messages:
        if m.type != "human":
            raise InvalidInputError(
                f"a turn's input holds the user's messages only, not a {m.type!r} message"
            )
    if not message_text(messages[-1]).strip():
        raise InvalidInputError("the message is empty")
    fresh = [m.model_copy(update={"id": str(uuid.uuid4())}) for m in messages]
    return {"messages": fresh, "user_id": user_id}
