"""LangGraph server auth: bearer tokens, and who may touch which thread and memory.

Configure with `MEMORY_AGENT_AUTH_TOKENS`, a JSON object mapping a token to a user id:
`{"<token>": "alice@example.com", "sha256:<64 hex digits>": "bob"}`. A key written as
`sha256:<hex>` is the SHA-256 of the token (see `hash_token`), so the configuration need not
hold the token itself. Every presented token is hashed and compared with every configured
digest in constant time.

With tokens configured:
- a request without `Authorization: Bearer <valid token>` gets 401 (LangSmith Studio's bypass
  is switched off in langgraph.json: `auth.disable_studio_auth`);
- threads are stamped with their owner (metadata `owner`) on create and on runs that create
  them, and every read, search, update, delete and run is filtered by it, so another user's
  thread is simply not found (404);
- store access is limited to the caller's namespaces `("users", <encoded user id>, <kind>)`;
  searches and namespace listings that start above that prefix are narrowed to it, anything
  else is refused (403); conversation records are read-only through the store API (the graph
  writes them);
- assistants can be read and searched, not created, changed or deleted; crons are refused;
- the graph receives the identity as `configurable["langgraph_auth_user_id"]`, which the
  `initialize` node uses as the user id (refusing a different `user_id` in the input).

Without tokens the server is open, for local development: every request is accepted, nothing
is filtered, and the input's `user_id` says who is talking.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langgraph_sdk import Auth

from memory_agent.errors import ConfigurationError, InvalidInputError
from memory_agent.memory.namespaces import KINDS, user_prefix, validate_user_id

logger = logging.getLogger(__name__)

TOKENS_ENV = "MEMORY_AGENT_AUTH_TOKENS"
OWNER_KEY = "owner"
"""Thread metadata key holding the owner's user id."""
HASH_PREFIX = "sha256:"
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_READ_ONLY_KINDS = frozenset({"conversations"})


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


def _unauthorized(detail: str) -> Auth.exceptions.HTTPException:
    return Auth.exceptions.HTTPException(
        status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def _forbidden(detail: str) -> Auth.exceptions.HTTPException:
    return Auth.exceptions.HTTPException(status_code=403, detail=detail)


ANONYMOUS: Auth.types.MinimalUserDict = {
    "identity": "",
    "is_authenticated": False,
    "display_name": "anonymous",
    "permissions": [],
}
"""The user of every request to an open server (no tokens configured)."""


async def deny_by_default(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Refuse whatever no rule below allows (resources added by newer servers included)."""
    logger.warning("refused %s.%s: no rule allows it", ctx.resource, ctx.action)
    return False


async def own_threads(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType:
    """Stamp the caller as owner of threads they create; show them only threads they own.

    A thread id whose checkpoints are another user's (written by a program, or a server thread
    whose record was lost) is never adopted: creating it answers 409.
    """
    owner = ctx.user.identity
    creates = ctx.action == "create" or (
        ctx.action == "create_run"
        and isinstance(value, dict)
        and value.get("if_not_exists") == "create"
    )
    if creates and isinstance(value, dict):
        thread_id = value.get("thread_id")
        if thread_id is not None:
            from memory_agent.server import thread_taken

            if problem := await thread_taken(str(thread_id), owner):
                raise Auth.exceptions.HTTPException(
                    status_code=409,
                    detail=f"thread {thread_id} cannot be created: {problem} (use a new id)",
                )
    if ctx.action in ("create", "create_run", "update") and isinstance(value, dict):
        metadata = value.get("metadata")
        if metadata is None:
            metadata = value["metadata"] = {}
        if metadata.get(OWNER_KEY, owner) != owner:
            raise _forbidden("a thread's owner cannot be changed")
        # In place: the server goes on using this very dict.
        metadata[OWNER_KEY] = owner
    return {OWNER_KEY: owner}


async def read_only_assistants(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Assistants (the deployed graph) can be read and searched, not changed."""
    if ctx.action in ("read", "search"):
        return True
    raise _forbidden("assistants are part of the deployment and cannot be changed")


async def no_crons(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Crons are not offered (a cron would run as its creator with nobody watching)."""
    raise _forbidden("crons are not offered by this server")


async def own_namespaces(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Limit store access to `("users", <caller>, <kind>)`.

    A search or listing that starts above the caller's prefix (`()`, `("users",)`) is narrowed
    to it; any other namespace is refused. Conversation records are read-only here.
    """
    mine = user_prefix(ctx.user.identity)
    namespace = tuple(value.get("namespace") or ())
    if ctx.action in ("search", "list_namespaces"):
        if namespace == mine[: len(namespace)]:
            value["namespace"] = mine
        elif namespace[: len(mine)] != mine:
            raise _forbidden("this namespace belongs to another user")
        return True
    if namespace[: len(mine)] != mine:
        raise _forbidden("this namespace belongs to another user")
    if len(namespace) != len(mine) + 1 or namespace[-1] not in KINDS:
        raise _forbidden(f"memories live in ('users', <you>, <kind>), kind one of {KINDS}")
    if ctx.action in ("put", "delete") and namespace[-1] in _READ_ONLY_KINDS:
        raise _forbidden("conversation records are written by the agent only")
    return True


def build_auth(tokens: TokenTable | None) -> Auth:
    """The server's `Auth` object for `tokens` (None: an open server that filters nothing)."""
    auth = Auth()

    @auth.authenticate
    async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
        if tokens is None:
            return ANONYMOUS
        token = bearer_token(authorization)
        if token is None:
            raise _unauthorized("missing bearer token (Authorization: Bearer <token>)")
        user_id = tokens.identify(token)
        if user_id is None:
            raise _unauthorized("invalid token")
        return {"identity": user_id, "is_authenticated": True, "permissions": []}

    if tokens is not None:
        auth.on(deny_by_default)
        auth.on.threads(own_threads)
        auth.on.assistants(read_only_assistants)
        auth.on.crons(no_crons)
        auth.on.store(own_namespaces)
    return auth


auth = build_auth(TokenTable.from_env())
"""The object `auth.path` in langgraph.json names (tokens read from the environment at start)."""
