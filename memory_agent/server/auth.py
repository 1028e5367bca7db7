"""LangGraph server auth: bearer tokens, and who may touch which thread and memory.

Configure with `MEMORY_AGENT_AUTH_TOKENS` (see `server.tokens`).

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

import logging
from typing import Any

from langgraph_sdk import Auth

from memory_agent.persistence.namespaces import KINDS, user_prefix
from memory_agent.server.deployment import thread_taken
from memory_agent.server.tokens import TokenTable, bearer_token

logger = logging.getLogger(__name__)

OWNER_KEY = "owner"
"""Thread metadata key holding the owner's user id."""
_READ_ONLY_KINDS = frozenset({"conversations"})


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
