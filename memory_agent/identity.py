"""Who a step acts for: the one rule every node that touches memory or a thread applies.

A run can reach any node without passing through `initialize`: under the LangGraph server a
run may start from a command (`goto`/`update`) or after `threads.update_state(...,
as_node=...)`, and the state it starts from may have been edited. So the identity is not taken
from the state once and trusted afterwards; every node that reads or writes memory asks
`acting_user` with the state it was given and the run's config:

- under the server with auth on, the authenticated identity
  (`configurable["langgraph_auth_user_id"]`) is the user, whatever the state says; a state
  naming someone else (`user_id` or the thread's recorded owner) is refused;
- otherwise the state's `user_id` is the user, and it must be the thread's owner once the
  thread has a turn (an anonymous thread stays anonymous).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memory_agent.errors import ThreadOwnershipError
from memory_agent.persistence.namespaces import validate_user_id

AUTH_USER_KEY = "langgraph_auth_user_id"
"""Where the LangGraph server puts the authenticated user id in `config["configurable"]`."""


def authenticated_user(config: Mapping[str, Any] | None) -> str | None:
    """The user the server authenticated for this run, or None (no auth, or a program)."""
    configurable = (config or {}).get("configurable") or {}
    value = configurable.get(AUTH_USER_KEY) if isinstance(configurable, Mapping) else None
    return validate_user_id(value) if value else None


def owner_problem(owner: str | None, turns: int, user_id: str | None) -> str | None:
    """Why `user_id` may not act on a thread with `owner` and `turns` turns, if it may not."""
    if turns <= 0 or owner == user_id:
        return None
    if owner is None:
        return "this thread is anonymous: a named user cannot continue it (start a new thread)"
    if user_id is None:
        return "this thread belongs to a user: an anonymous turn cannot continue it"
    return "this thread belongs to another user"


def claimed_user(claimed: object, config: Mapping[str, Any] | None) -> str | None:
    """The user of a turn that names `claimed` (an input's or state's `user_id`).

    Raises:
        ThreadOwnershipError: the server authenticated someone else.
        InvalidInputError: `claimed` is not a valid user id.
    """
    auth = authenticated_user(config)
    user = validate_user_id(claimed) if claimed is not None else None
    if auth is not None:
        if user is not None and user != auth:
            raise ThreadOwnershipError("user_id differs from the authenticated user")
        return auth
    return user


def acting_user(state: Mapping[str, Any], config: Mapping[str, Any] | None) -> str | None:
    """The user a node acts for, from the state it was handed and the run's config.

    Raises:
        ThreadOwnershipError: the state names another user than the authenticated one, or the
            user is not the thread's owner.
    """
    user = claimed_user(state.get("user_id"), config)
    problem = owner_problem(state.get("thread_owner"), int(state.get("turn_count") or 0), user)
    if problem:
        raise ThreadOwnershipError(problem)
    return user


def not_theirs(values: Mapping[str, Any], user_id: str | None) -> str | None:
    """Why a thread whose latest channel values are `values` is not `user_id`'s, if it is not.

    Stricter than `owner_problem`, for what happens before a node runs (reading a thread,
    finishing its cut-off turn): before a first turn has completed, the owner recorded by
    `initialize` or the user the turn's input named counts too, so nobody else can read or
    finish a first turn still in progress.
    """
    owner = values.get("thread_owner")
    turns = int(values.get("turn_count") or 0)
    if turns > 0:
        return owner_problem(owner, turns, user_id)
    claimed = owner if owner is not None else values.get("user_id")
    if claimed is not None and claimed != user_id:
        return "this thread belongs to another user"
    return None
