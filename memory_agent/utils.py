"""Leaf helpers every layer may use: reading a message's text, words, identifiers, LIKE patterns,
the agent's home directory.

Nothing here imports another module of the package except `errors`.
"""

from __future__ import annotations

import asyncio
import os
import re
import unicodedata
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage
from platformdirs import user_data_dir

from memory_agent.errors import InvalidInputError

WORD = re.compile(r"[^\W_]+", re.UNICODE)
"""A word: letters and digits of any script, split at punctuation, spaces and underscores."""

GREETING = re.compile(
    r"^\s*(hi|hello|hey|yo|hiya|good (morning|afternoon|evening)|greetings)\b", re.IGNORECASE
)
"""A message that opens with a greeting."""

_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Unicode categories an identifier may not contain: controls (U+0085 included), format
characters (bidirectional overrides such as U+202E, zero-width joiners), surrogates, private
use, unassigned code points, and line/paragraph separators (U+2028, U+2029). Each of them can
make two ids look alike, or make an id print as something else."""


def message_text(message: BaseMessage) -> str:
    """The text of a message, whatever the shape of its content."""
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return " ".join(parts)


def words(text: str) -> list[str]:
    """The lower-cased words of `text` (see `WORD`)."""
    return WORD.findall(text.lower())


def identifier_problem(value: str) -> str | None:
    """What makes `value` unfit as an identifier (user, thread or memory id), if anything."""
    for c in value:
        category = unicodedata.category(c)
        if category in _INVISIBLE:
            if category == "Cs":
                return "is not valid Unicode (lone surrogate)"
            return f"must not contain control or invisible characters (found U+{ord(c):04X})"
    return None


def validate_identifier(value: object, what: str, *, max_chars: int) -> str:
    """`value` if it is a usable identifier (a non-blank string of at most `max_chars` printable
    characters), else InvalidInputError saying what is wrong with `what`."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError(f"{what} must not be empty or blank")
    if len(value) > max_chars:
        raise InvalidInputError(f"{what} is {len(value)} characters long; the limit is {max_chars}")
    if problem := identifier_problem(value):
        raise InvalidInputError(f"{what} {problem}")
    return value


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern written with `ESCAPE '\\'`."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def agent_home() -> Path:
    """The agent's own files (the embedded database, built models): $MEMORY_AGENT_HOME, else
    the user's data directory."""
    home = os.environ.get("MEMORY_AGENT_HOME")
    return Path(home).expanduser() if home else Path(user_data_dir("memory-agent"))


async def concurrently(*awaitables: Awaitable[Any]) -> list[Any]:
    """The results of `awaitables` run concurrently, in order; if one fails, the others are
    cancelled and awaited before its error is raised (`asyncio.gather` would leave them running,
    a query on a pooled connection among them, with nobody to await them)."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
