"""Bearer tokens of the LangGraph server: `MEMORY_AGENT_AUTH_TOKENS`, parsed and checked.

A JSON object mapping a token to a user id: `{"<token>": "alice@example.com",
"sha256:<64 hex digits>": "bob"}`. A key written as `sha256:<hex>` is the SHA-256 of the token
(see `hash_token`), so the configuration need not hold the token itself. Every presented token
is hashed and compared with every configured digest in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from memory_agent.errors import ConfigurationError, InvalidInputError
from memory_agent.persistence.namespaces import validate_user_id

TOKENS_ENV = "MEMORY_AGENT_AUTH_TOKENS"
HASH_PREFIX = "sha256:"
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def hash_token(token: str) -> str:
    """The form of `token` to put in `MEMORY_AGENT_AUTH_TOKENS` instead of the token itself."""
    return HASH_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenTable:
    """Configured tokens, kept only as SHA-256 digests, with the user id each one stands for."""

    entries: tuple[tuple[bytes, str], ...]

    @classmethod
    def parse(cls, raw: str) -> TokenTable:
        """Parse the JSON object of `MEMORY_AGENT_AUTH_TOKENS`.

        Raises:
            ConfigurationError: not a JSON object of non-empty token -> valid user id, or one
                token given twice.
        """
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{TOKENS_ENV} is not valid JSON: {exc.msg}") from exc
        if not isinstance(data, Mapping) or not data:
            raise ConfigurationError(
                f'{TOKENS_ENV} must be a non-empty JSON object {{"<token>": "<user id>"}}'
            )
        entries: dict[bytes, str] = {}
        for key, user in data.items():
            if not key.strip():
                raise ConfigurationError(f"{TOKENS_ENV} holds an empty token")
            try:
                user_id = validate_user_id(user)
            except InvalidInputError as exc:
                raise ConfigurationError(f"{TOKENS_ENV}: bad user id for a token: {exc}") from exc
            digest = _digest_of_key(key)
            if digest in entries:
                raise ConfigurationError(f"{TOKENS_ENV} lists one token twice")
            entries[digest] = user_id
        return cls(tuple(entries.items()))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TokenTable | None:
        """The table configured in the environment; None when auth is not configured."""
        raw = (os.environ if environ is None else environ).get(TOKENS_ENV, "")
        return cls.parse(raw) if raw.strip() else None

    def identify(self, token: str) -> str | None:
        """The user id `token` stands for, or None.

        Every entry is compared (no early exit), each in constant time, so the time taken does
        not tell which entry or how much of a digest matched.
        """
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        found: str | None = None
        for digest, user_id in self.entries:
            if hmac.compare_digest(digest, presented):
                found = user_id
        return found


def _digest_of_key(key: str) -> bytes:
    if key.startswith(HASH_PREFIX):
        hexdigest = key[len(HASH_PREFIX) :].lower()
        if not _HEX_DIGEST.fullmatch(hexdigest):
            raise ConfigurationError(
                f"{TOKENS_ENV}: a '{HASH_PREFIX}' key needs 64 hex digits after the prefix"
            )
        return bytes.fromhex(hexdigest)
    return hashlib.sha256(key.encode("utf-8")).digest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, else None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
