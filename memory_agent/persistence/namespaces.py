"""Store namespaces of a user, with user ids encoded reversibly into labels.

A store namespace label may not contain '.', and user ids are any string (e-mail addresses
included), so the user id is percent-encoded: every byte outside [A-Za-z0-9_-] becomes %XX.
The encoding is injective, so two user ids never share a namespace.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote, unquote

from memory_agent.utils import validate_identifier

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
    return validate_identifier(user_id, "user_id", max_chars=MAX_USER_ID_CHARS)


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
