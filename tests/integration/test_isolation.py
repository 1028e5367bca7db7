"""Isolation as a property: random sequences of operations by random users, through the program
API and the CLI, never return one user's thread, message or memory to another.

The users are near-collisions on purpose: ids that differ by case, a trailing space, a '.', or
the percent-encoding of a '.' (store labels are percent-encoded), and ids holding the LIKE
wildcards '%' and '_'. Each user only ever says words carrying their own token (`zq<i>zq`); any
output given to user i that holds another user's token is a leak.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
from collections import Counter
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_agent import GuardedAgent, ThreadOwnershipError, cli, forget_user, memories

pytestmark = pytest.mark.integration

USERS = [
    "ann",
    "Ann",
    "ann ",
    "ann.",
    "ann%2E",
    "an_",
    "an%",
    "bob@example.com",
    "bob@example%2Ecom",
]
THREADS = ["th0", "th1", "th2", "th3"]
TOKEN = re.compile(r"zq(\d+)zq", re.IGNORECASE)
SAYINGS = {
    "name": "My name is Zq{i}zq.",
    "love": "I love zq{i}zqfood.",
    "live": "I live in Zq{i}zqcity.",
    "ask_name": "What is my name?",
    "ask_love": "What do I love?",
    "ask_past": "What did we talk about before?",
}

users = st.integers(0, len(USERS) - 1)
threads = st.integers(0, len(THREADS) - 1)
operations = st.one_of(
    st.tuples(st.just("say"), users, threads, st.sampled_from(sorted(SAYINGS))),
    st.tuples(st.just("say"), users, threads, st.sampled_from(sorted(SAYINGS))),
    st.tuples(st.just("say"), users, threads, st.sampled_from(sorted(SAYINGS))),
    st.tuples(st.just("threads"), users),
    st.tuples(st.just("memories"), users),
    st.tuples(st.just("search"), users, users),
    st.tuples(st.just("forget"), users),
    st.tuples(st.just("cli_ask"), users, threads),
    st.tuples(st.just("cli_list"), users, st.sampled_from(["threads", "memories"])),
)

RAN: Counter[str] = Counter()


def leaked(i: int, output: str) -> set[int]:
    """The other users whose token appears in what user i was given."""
    return {int(m) for m in TOKEN.findall(output)} - {i}


def run_cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue() + err.getvalue()


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE checkpoints, checkpoint_blobs, checkpoint_writes, store, memory_terms, "
            "memory_term_stats CASCADE"
        )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operations, min_size=4, max_size=20))
async def test_random_operations_never_cross_users(
    agent: GuardedAgent, database_url: str, ops: list[tuple[Any, ...]]
) -> None:
    reset(database_url)
    owner: dict[str, int] = {}  # thread -> the user who owns it (the model of the truth)
    service = memories(agent)
    for op in ops:
        kind, i = op[0], op[1]
        user = USERS[i]
        RAN[kind] += 1
        if kind == "say":
            thread, text = THREADS[op[2]], SAYINGS[op[3]].format(i=i)
            turn = {"messages": [("user", text)], "user_id": user}
            config = {"configurable": {"thread_id": thread}}
            if owner.get(thread, i) != i:
                with pytest.raises(ThreadOwnershipError):
                    await agent.ainvoke(turn, config)
                RAN["refused"] += 1
                continue
            out = await agent.ainvoke(turn, config)
            owner[thread] = i
            output = json.dumps(out, default=str)
        elif kind == "threads":
            convs = await service.list_conversations(user)
            assert {c["thread_id"] for c in convs} <= {t for t, o in owner.items() if o == i}
            output = json.dumps(convs)
        elif kind == "memories":
            output = json.dumps(await service.list_memories(user))
        elif kind == "search":
            query = f"zq{op[2]}zq food city name"
            budget = {"conversations": 5, "memories": 10}
            output = json.dumps(await service.recall(user, query, budget))  # type: ignore[arg-type]
        elif kind == "forget":
            receipt = await forget_user(agent, user)
            assert set(receipt["threads"]) == {t for t, o in owner.items() if o == i}
            owner = {t: o for t, o in owner.items() if o != i}
            output = json.dumps(receipt)
        elif kind == "cli_ask":
            thread = THREADS[op[2]]
            argv = ["--database", database_url, "ask", f"--user={user}", f"--thread={thread}"]
            code, output = await asyncio.to_thread(run_cli, [*argv, "--", "What is my name?"])
            expected = 0 if owner.get(thread, i) == i else 1
            assert code == expected, output
            if code == 0:
                owner[thread] = i
        else:  # cli_list
            argv = ["--database", database_url, op[2], f"--user={user}", "--json"]
            code, output = await asyncio.to_thread(run_cli, argv)
            assert code == 0, output
        assert not leaked(i, output), (op, output)


def test_zz_the_property_ran_every_operation() -> None:
    print("RAN", dict(RAN))  # noqa: T201
    for kind in ("say", "threads", "memories", "search", "forget", "cli_ask", "cli_list"):
        assert RAN[kind] >= 5, RAN
    assert RAN["refused"] >= 5, RAN
