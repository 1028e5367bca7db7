"""Store namespaces of a user, with user ids encoded reversibly into labels.

A store namespace label may not contain '.', and user ids are any string (e-mail addresses
included), so the user id is percent-encoded: every byte outside [A-Za-z0-9_-] becomes %XX.
The encoding is injective, so two user ids never share a namespace.
"""

from __future__ import annotations

import unicodedata
from typing import Literal
from urllib.parse import quote, unquote

from memory_agent.errors import InvalidInputError

ROOT = "users"
MAX_USER_ID_CHARS = 256
Kind = Literal["conversations", "facts", "preferences", "entities", "episodes", "history"]
KINDS: tuple[Kind, ...] = (
    "conversations",
    "facts",
    "preferences",
    "entities",
    "episodes",
    "history",
)


def validate_user_id(user_id: object) -> str:
    """The canonical user id (a non-empty string), or InvalidInputError saying what is wrong."""
    if not isinstance(user_id, str):
        raise InvalidInputError(f"user_id must be a string, not {type(user_id).__name__}")
    if not user_id.strip():
        raise InvalidInputError("user_id must not be empty or blank")
    if len(user_id) > MAX_USER_ID_CHARS:
        raise InvalidInputError(
            f"user_id is {len(user_id)} characters long; the limit is {MAX_USER_ID_CHARS}"
        )
    if problem := identifier_problem(user_id):
        raise InvalidInputError(f"user_id {problem}")
    return user_id


_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Unicode categories an identifier may not contain: controls (U+0085 included), format
characters (bidirectional overrides such as U+202E, zero-width joiners), surrogates, private
use, unassigned code points, and line/paragraph separators (U+2028, U+2029). Each of them can
make two ids look alike, or make an id print as something else."""


def identifier_problem(value: str) -> str | None:
    """What makes `value` unfit as an identifier (user, thread or memory id), if anything."""
    for c in value:
        category = unicodedata.category(c)
        if category in _INVISIBLE:
            if category == "Cs":
                return "is not valid Unicode (lone surrogate)"
            return f"must not contain control or invisible characters (found U+{ord(c):04X})"
    return None


def encode_label(user_id: str) -> str:
    """A namespace label for `user_id` (no '.', reversible with `decode_label`)."""
    return quote(validate_user_id(user_id), safe="-_").replace(".", "%2E").replace("~", "%7E")


def decode_label(label: str) -> str:
    return unquote(label)


def user_namespace(user_id: str, kind: Kind) -> tuple[str, str, str]:
    """The namespace holding one kind of memory of one user."""
    return (ROOT, encode_label(user_id), kind)


def user_prefix(user_id: str) -> tuple[str, str]:
    """The prefix under which all of a user's memories live."""
    return (ROOT, encode_label(user_id))
