"""The server surface under hypothesis: fuzzed memory routes and runs, and isolation as a
property of random operation sequences by random (authenticated) users.

Each user only ever says words carrying their own token (`zq<i>zq`); a response to user i that
holds another user's token is a leak. Every answer is a result or a 4xx JSON error, never a 5xx.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph_sdk.client import LangGraphClient

from memory_agent.persistence.namespaces import user_namespace
from tests.e2e.conftest import NAMES, USERS, bearer
from tests.e2e.sdk import GRAPH, new_thread, status_of

pytestmark = pytest.mark.e2e

TOKEN = re.compile(r"zq(\d+)zq", re.IGNORECASE)
OK_STATUSES = {200, 400, 401, 403, 404, 409, 422}
SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
RAN: Counter[str] = Counter()
TYPED_ERRORS = {"InvalidInputError", "ThreadOwnershipError", "ConfigurationError"}

# Strings an HTTP client can send (UTF-8), full of what URLs, SQL and namespaces care about.
NASTY = [
    "",
    " ",
    "\x00",
    "\x07",
    "😀",
    ".",
    "%",
    "%2E",
    "_",
    "a.b",
    "../..",
    "'; DROP TABLE store; --",
    "users.alice@example.com.facts",
    "x" * 5_000,
    *USERS.values(),
]
strings = st.one_of(
    st.sampled_from(NASTY), st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
)


def weighted(*branches: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of `branches`, each drawn with its weight."""
    table = [strategy for weight, strategy in branches for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


callers = weighted((4, st.sampled_from(NAMES)), (1, st.sampled_from([None, "forged"])))
# Mostly well-formed values (reaching the data), often hostile ones.
values = weighted(
    (1, st.sampled_from(["1", "5", "100", "fact", "preference", "entity", "zq0zq name"])),
    (1, st.sampled_from(["k", "kk", "kkk"])),  # one of Alice's real memory keys
    (2, strings),
)
maybe_user_id = weighted((4, st.none()), (1, st.sampled_from(list(USERS.values()))), (1, strings))


def headers_for(caller: str | None) -> dict[str, str]:
    if caller is None:
        return {}
    if caller == "forged":
        return {"Authorization": "Bearer forged-token-0123456789abcdef"}
    return bearer(caller)


def foreign_tokens(caller: str | None, text: str) -> set[int]:
    own = {NAMES.index(caller)} if caller in NAMES else set()
    return {int(m) for m in TOKEN.findall(text)} - own


@pytest.fixture
async def seeded(clients: dict[str, LangGraphClient]) -> AsyncIterator[dict[str, str]]:
    """Every user told the server their name and city, on a thread of their own."""
    threads: dict[str, str] = {}
    for i, name in enumerate(NAMES):
        thread = await new_thread(clients[name])
        await clients[name].runs.wait(
            thread,
            GRAPH,
            input={
                "messages": [
                    {"role": "user", "content": f"My name is Zq{i}zq. I live in Zq{i}zqcity."}
                ]
            },
        )
        threads[name] = thread
    yield threads


async def memories_of(http: httpx.AsyncClient, name: str) -> list[dict[str, Any]]:
    listed = (await http.get("/me/memories", headers=bearer(name))).json()
    return list(listed["memories"])


@settings(SETTINGS, max_examples=120)
@given(
    caller=callers, route=st.integers(0, 3), value=strings, user_id=st.one_of(st.none(), strings)
)
async def test_fuzzed_memory_routes_answer_4xx_or_the_callers_own_data(
    seeded: dict[str, str],
    http: httpx.AsyncClient,
    caller: str | None,
    route: int,
    value: str,
    user_id: str | None,
) -> None:
    alice_before = await memories_of(http, "alice")
    params: dict[str, Any] = {} if user_id is None else {"user_id": user_id}
    headers = headers_for(caller)
    if route == 0:
        answer = await http.get(
            "/me/conversations", params={**params, "limit": value}, headers=headers
        )
    elif route == 1:
        answer = await http.get("/me/memories", params={**params, "kind": value}, headers=headers)
    elif route == 2:
        answer = await http.get(
            "/me/memories/search", params={**params, "q": value}, headers=headers
        )
    else:
        # Sometimes aim at one of Alice's real keys.
        key = value
        if value[:1] == "k" and alice_before:
            key = alice_before[len(value) % len(alice_before)]["key"]
        answer = await http.delete(f"/me/memories/{quote(key, safe='')}", headers=headers)
    RAN[f"route{route}:{answer.status_code}"] += 1
    assert answer.status_code in OK_STATUSES, (answer.status_code, answer.text[:300])
    body = answer.json()
    assert isinstance(body, dict)
    assert not foreign_tokens(caller, answer.text), answer.text[:300]
    if caller != "alice":
        assert await memories_of(http, "alice") == alice_before


@settings(SETTINGS, max_examples=30)
@given(
    caller=st.sampled_from(NAMES),
    content=st.one_of(st.sampled_from(["My name is Mallory.", "What is my name?"]), strings),
    user_id=maybe_user_id,
    shape=st.integers(0, 3),
)
async def test_fuzzed_runs_fail_cleanly_and_touch_nothing_else(
    seeded: dict[str, str],
    clients: dict[str, LangGraphClient],
    http: httpx.AsyncClient,
    caller: str,
    content: str,
    user_id: str | None,
    shape: int,
) -> None:
    client = clients[caller]
    others = {n: await memories_of(http, n) for n in NAMES if n != caller}
    payload: Any = [
        {"messages": [{"role": "user", "content": content}]},
        {"messages": content},
        {"messages": [{"role": "assistant", "content": content}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": content}]}]},
    ][shape]
    if user_id is not None:
        payload["user_id"] = user_id
    thread = await new_thread(client)
    try:
        result = await client.runs.wait(thread, GRAPH, input=payload, raise_error=False)
    except httpx.HTTPStatusError as exc:
        RAN[f"run:http{exc.response.status_code}"] += 1
        assert exc.response.status_code in OK_STATUSES, exc.response.text[:300]
    else:
        error = result.get("__error__") if isinstance(result, dict) else None
        if error is not None:
            RAN[f"run:{error.get('error')}"] += 1
            assert error.get("error") in TYPED_ERRORS, error
        else:
            RAN["run:ok"] += 1
        assert not foreign_tokens(caller, json.dumps(result, default=str))
    for name, before in others.items():
        assert await memories_of(http, name) == before, f"{caller}'s run changed {name}'s data"


operations = st.one_of(
    st.tuples(
        st.just("turn"),
        callers.filter(lambda c: c in NAMES),
        st.sampled_from(["name", "city", "ask"]),
    ),
    st.tuples(st.just("turn_on_other"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(
        st.just("route"),
        st.sampled_from(NAMES),
        st.sampled_from(
            [
                "/me/memories",
                "/me/conversations",
                "/me/memories/search?q=zq0zq+zq1zq+zq2zq+zq3zq+zq4zq+name+city",
            ]
        ),
    ),
    st.tuples(st.just("threads"), st.sampled_from(NAMES), st.just("")),
    st.tuples(st.just("store_other"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("forget"), st.sampled_from(NAMES), st.just("")),
)
SAY = {
    "name": "My name is Zq{i}zq.",
    "city": "I live in Zq{i}zqcity.",
    "ask": "What is my name and where do I live?",
}


@settings(SETTINGS, max_examples=15)
@given(ops=st.lists(operations, min_size=3, max_size=10))
async def test_random_server_operations_never_cross_users(
    seeded: dict[str, str],
    clients: dict[str, LangGraphClient],
    http: httpx.AsyncClient,
    ops: list[tuple[str, str, str]],
) -> None:
    mine: dict[str, list[str]] = {n: [] for n in NAMES}  # threads made in this example
    for kind, who, arg in ops:
        client, i = clients[who], NAMES.index(who)
        RAN[f"op:{kind}"] += 1
        if kind == "turn":
            if not mine[who]:
                mine[who].append(await new_thread(client))
            text = SAY[arg].format(i=i)
            out = await client.runs.wait(
                mine[who][-1], GRAPH, input={"messages": [{"role": "user", "content": text}]}
            )
            output = json.dumps(out, default=str)
        elif kind == "turn_on_other":
            target = arg if arg != who else NAMES[(i + 1) % len(NAMES)]
            if not mine[target]:
                mine[target].append(await new_thread(clients[target]))
            turn = {"messages": [{"role": "user", "content": "Tell me everything."}]}
            assert await status_of(client.runs.wait(mine[target][-1], GRAPH, input=turn)) == 404
            assert await status_of(client.threads.get_state(mine[target][-1])) == 404
            output = ""
        elif kind == "route":
            answer = await http.get(arg, headers=bearer(who))
            assert answer.status_code == 200
            output = answer.text
        elif kind == "threads":
            found = await client.threads.search(limit=100)
            assert all(t["metadata"].get("owner") == USERS[who] for t in found)
            output = json.dumps(found, default=str)
        elif kind == "store_other":
            other = arg if arg != who else NAMES[(i + 1) % len(NAMES)]
            facts = list(user_namespace(USERS[other], "facts"))
            assert await status_of(client.store.search_items(facts)) == 403
            output = json.dumps(await client.store.search_items([], query="zq name city"))
        else:  # forget
            receipt = (await http.delete("/me", headers=bearer(who))).json()
            assert receipt["user_id"] == USERS[who]
            assert set(mine[who]) <= set(receipt["threads"])
            mine[who] = []
            output = json.dumps(receipt)
        assert not foreign_tokens(who, output), (kind, who, output[:300])


def test_zz_the_server_was_fuzzed_through_every_path() -> None:
    print("RAN", dict(sorted(RAN.items())))  # noqa: T201
    assert sum(v for k, v in RAN.items() if k.startswith("route")) >= 100
    assert sum(v for k, v in RAN.items() if k.startswith("run:")) >= 25
    assert sum(v for k, v in RAN.items() if k.startswith("op:")) >= 40
