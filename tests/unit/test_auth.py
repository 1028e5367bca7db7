"""The server's auth rules, called directly (the e2e suite checks them through the server)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from langgraph_sdk import Auth

from memory_agent.errors import ConfigurationError
from memory_agent.persistence.namespaces import user_prefix
from memory_agent.server.auth import (
    ANONYMOUS,
    OWNER_KEY,
    build_auth,
    own_namespaces,
    own_threads,
    read_only_assistants,
)
from memory_agent.server.tokens import TOKENS_ENV, TokenTable, bearer_token, hash_token


@dataclass
class User:
    identity: str
    is_authenticated: bool = True
    display_name: str = ""
    permissions: list[str] = field(default_factory=list)


def ctx(resource: str, action: str, who: str = "ada@example.com") -> Auth.types.AuthContext:
    return Auth.types.AuthContext(
        user=User(who),
        permissions=[],
        resource=resource,  # type: ignore[arg-type]
        action=action,  # type: ignore[arg-type]
    )


# --- tokens ------------------------------------------------------------------------------


def test_plain_and_hashed_tokens_identify_their_users() -> None:
    table = TokenTable.parse(json.dumps({"tok-ada": "ada", hash_token("tok-bo"): "bo"}))
    assert table.identify("tok-ada") == "ada"
    assert table.identify("tok-bo") == "bo"
    assert table.identify("tok-ad") is None
    assert table.identify("") is None
    assert table.identify(hash_token("tok-bo")) is None, "the hash is not itself a token"


def test_the_table_keeps_no_plain_token() -> None:
    table = TokenTable.parse(json.dumps({"secret-token": "ada"}))
    assert "secret-token" not in repr(table)
    assert table.entries == ((hashlib.sha256(b"secret-token").digest(), "ada"),)


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("x") == "sha256:" + hashlib.sha256(b"x").hexdigest()
    upper = "sha256:" + hashlib.sha256(b"x").hexdigest().upper()
    assert TokenTable.parse(json.dumps({upper: "a"})).identify("x") == "a"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "non-empty JSON object"),
        ("{}", "non-empty JSON object"),
        ('{"t": ""}', "bad user id"),
        ('{"t": 5}', "bad user id"),
        ('{" ": "ada"}', "empty token"),
        ('{"sha256:abc": "ada"}', "64 hex digits"),
        (json.dumps({"t": "ada", hash_token("t"): "bo"}), "twice"),
    ],
)
def test_bad_token_configuration_fails_at_start(raw: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TokenTable.parse(raw)


def test_no_tokens_means_an_open_server() -> None:
    assert TokenTable.from_env({}) is None
    assert TokenTable.from_env({TOKENS_ENV: "  "}) is None
    table = TokenTable.from_env({TOKENS_ENV: '{"t": "ada"}'})
    assert table is not None and table.identify("t") == "ada"


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic abc", None),
        ("abc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


async def test_authenticate_accepts_valid_tokens_only() -> None:
    handler = build_auth(TokenTable.parse('{"tok": "ada@example.com"}'))._authenticate_handler
    assert handler is not None
    user = await handler(authorization="Bearer tok")  # type: ignore[call-arg]
    assert user["identity"] == "ada@example.com"  # type: ignore[index]
    for header in (None, "Bearer nope", "tok"):
        with pytest.raises(Auth.exceptions.HTTPException) as info:
            await handler(authorization=header)  # type: ignore[call-arg]
        assert info.value.status_code == 401


async def test_an_open_server_authenticates_everyone_as_anonymous_and_filters_nothing() -> None:
    auth = build_auth(None)
    assert auth._authenticate_handler is not None
    assert await auth._authenticate_handler(authorization=None) == ANONYMOUS  # type: ignore[call-arg]
    assert not auth._handlers and not auth._global_handlers


def test_with_tokens_every_resource_has_a_rule_and_the_rest_is_denied() -> None:
    auth = build_auth(TokenTable.parse('{"t": "ada"}'))
    assert {resource for resource, _ in auth._handlers} == {
        "threads",
        "assistants",
        "crons",
        "store",
    }
    assert len(auth._global_handlers) == 1


# --- threads -----------------------------------------------------------------------------


async def test_threads_are_stamped_with_their_owner_and_filtered_by_it() -> None:
    for action in ("create", "create_run"):
        value: dict[str, Any] = {"metadata": {"topic": "x"}}
        metadata = value["metadata"]
        assert await own_threads(ctx("threads", action), value) == {OWNER_KEY: "ada@example.com"}
        assert metadata == {"topic": "x", OWNER_KEY: "ada@example.com"}, "stamped in place"
    for action in ("read", "search", "delete"):
        value = {"thread_id": "t"}
        assert await own_threads(ctx("threads", action), value) == {OWNER_KEY: "ada@example.com"}
        assert "metadata" not in value


async def test_a_thread_cannot_be_handed_to_someone_else() -> None:
    for action in ("create", "update", "create_run"):
        with pytest.raises(Auth.exceptions.HTTPException) as info:
            await own_threads(ctx("threads", action), {"metadata": {OWNER_KEY: "bo"}})
        assert info.value.status_code == 403


async def test_assistants_are_read_only() -> None:
    assert await read_only_assistants(ctx("assistants", "search"), {}) is True
    with pytest.raises(Auth.exceptions.HTTPException):
        await read_only_assistants(ctx("assistants", "create"), {})


# --- store -------------------------------------------------------------------------------

ADA = user_prefix("ada@example.com")
BO = user_prefix("bo")


@pytest.mark.parametrize("start", [(), ("users",), ADA, (*ADA, "facts")])
@pytest.mark.parametrize("action", ["search", "list_namespaces"])
async def test_searches_are_kept_inside_the_callers_prefix(
    start: tuple[str, ...], action: str
) -> None:
    value: dict[str, Any] = {"namespace": start}
    assert await own_namespaces(ctx("store", action), value) is True
    assert tuple(value["namespace"])[: len(ADA)] == ADA


async def test_list_namespaces_without_prefix_is_narrowed() -> None:
    value: dict[str, Any] = {"namespace": None}
    await own_namespaces(ctx("store", "list_namespaces"), value)
    assert value["namespace"] == ADA


@pytest.mark.parametrize(
    ("action", "namespace"),
    [
        ("search", BO),
        ("search", (*BO, "facts")),
        ("list_namespaces", ("other",)),
        ("get", (*BO, "facts")),
        ("put", (*BO, "facts")),
        ("delete", (*BO, "facts")),
        ("get", ADA),
        ("put", (*ADA, "facts", "deeper")),
        ("put", (*ADA, "secrets")),
        ("put", (*ADA, "conversations")),
        ("delete", (*ADA, "conversations")),
        ("put", ("users", "ada@example.com", "facts")),
    ],
)
async def test_other_namespaces_are_refused(action: str, namespace: tuple[str, ...]) -> None:
    with pytest.raises(Auth.exceptions.HTTPException) as info:
        await own_namespaces(ctx("store", action), {"namespace": namespace})
    assert info.value.status_code == 403


@pytest.mark.parametrize("action", ["get", "put", "delete"])
async def test_own_memories_are_reachable(action: str) -> None:
    assert await own_namespaces(ctx("store", action), {"namespace": (*ADA, "facts")}) is True
    assert await own_namespaces(ctx("store", "get"), {"namespace": (*ADA, "conversations")})
