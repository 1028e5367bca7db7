"""Issue 10, server side: every way of starting, resuming or editing a run through the real
`langgraph dev` server (auth on, PostgreSQL) acts only for the authenticated user.

Each test is one reproduced scenario of the issue, named after it. "Alice's data unchanged" is
read from PostgreSQL directly (store rows under her prefix, checkpoints she owns).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk.client import LangGraphClient

from memory_agent import open_agent
from memory_agent.persistence.namespaces import user_prefix
from tests.e2e.conftest import USERS, Running, bearer
from tests.e2e.sdk import GRAPH, MODES, checkpoint_metadata, new_thread, status_of, stream_turn

pytestmark = pytest.mark.e2e

MARK = "zqalicezq"


def alice_data(url: str) -> tuple[list[Any], list[Any]]:
    """Alice's store rows and owned checkpoints, as stored (compared before/after)."""
    prefix = ".".join(user_prefix(USERS["alice"])) + ".%"
    with psycopg.connect(url) as conn:
        items = conn.execute(
            "SELECT prefix, key, value::text FROM store WHERE prefix LIKE %s ORDER BY 1, 2",
            (prefix,),
        ).fetchall()
        checkpoints = conn.execute(
            "SELECT thread_id, checkpoint_id FROM checkpoints "
            "WHERE checkpoint -> 'channel_values' ->> 'thread_owner' = %s ORDER BY 1, 2",
            (USERS["alice"],),
        ).fetchall()
    return items, checkpoints


async def alice_says_her_secret(clients: dict[str, LangGraphClient]) -> str:
    alice = clients["alice"]
    thread_id = await new_thread(alice)
    run = await stream_turn(alice, thread_id, f"My secret word is {MARK}.")
    assert not run.errors and run.custom[-1]["memories"]
    return thread_id


async def alice_told_bob_talks(
    clients: dict[str, LangGraphClient], running: Running, text: str
) -> tuple[LangGraphClient, str, tuple[list[Any], list[Any]]]:
    """Alice has told her secret; Bob has said `text` on a thread of his own. Returns Bob's
    client, his thread and Alice's data as it is now."""
    await alice_says_her_secret(clients)
    before = alice_data(running.database_url)
    bob = clients["bob"]
    thread_id = await new_thread(bob)
    assert not (await stream_turn(bob, thread_id, text)).errors
    return bob, thread_id, before


async def errors_of(client: LangGraphClient, thread_id: str, **run: Any) -> list[Any]:
    errors: list[Any] = []
    async for part in client.runs.stream(thread_id, GRAPH, stream_mode=MODES, **run):
        if part.event == "error":
            errors.append(part.data)
        assert MARK not in str(part.data).lower()
    return errors


async def test_scenario_1_a_command_run_cannot_act_as_another_user(
    clients: dict[str, LangGraphClient], running: Running
) -> None:
    bob, thread_id, before = await alice_told_bob_talks(clients, running, "Hello there.")
    forged = {
        "goto": "planning",
        "update": {
            "user_id": USERS["alice"],
            "messages": [{"role": "user", "content": "My secret word is zqbobzq now."}],
        },
    }
    errors = await errors_of(bob, thread_id, command=forged)
    assert errors and "Command" in str(errors[0])
    state = await bob.threads.get_state(thread_id)
    assert MARK not in str(state["values"]).lower()
    assert alice_data(running.database_url) == before


async def test_scenario_2_a_state_edit_then_resume_cannot_act_as_another_user(
    clients: dict[str, LangGraphClient], running: Running
) -> None:
    bob, thread_id, before = await alice_told_bob_talks(clients, running, "What is my word?")
    edit = bob.threads.update_state(thread_id, {"user_id": USERS["alice"]}, as_node="planning")
    assert await status_of(edit) == 422
    edit = bob.threads.update_state(thread_id, {"thread_owner": USERS["alice"]})
    assert await status_of(edit) == 422
    # Thread creation with supersteps is held to the same rule.
    steps = [{"updates": [{"values": {"user_id": USERS["alice"]}, "as_node": "initialize"}]}]
    # (the server answers 201 "created, but there were problems updating the state")
    stepped = str(uuid.uuid4())
    await bob.threads.create(thread_id=stepped, graph_id=GRAPH, supersteps=steps)
    with psycopg.connect(running.database_url) as conn:
        rows = conn.execute(
            "SELECT checkpoint::text FROM checkpoints WHERE thread_id = %s", (stepped,)
        ).fetchall()
    assert not any(USERS["alice"] in row[0] for row in rows)
    # An edit of what may be edited, then a resume: there is nothing to resume.
    await bob.threads.update_state(thread_id, None, as_node="planning")
    errors = await errors_of(bob, thread_id, input=None)
    assert errors and "nothing to resume" in str(errors[0])
    assert alice_data(running.database_url) == before


async def test_scenario_3_a_programs_thread_id_is_never_adopted(
    clients: dict[str, LangGraphClient], running: Running, http: httpx.AsyncClient
) -> None:
    thread_id = str(uuid.uuid4())
    config = {"configurable": {"thread_id": thread_id}}
    turn = {"messages": [("user", f"My secret word is {MARK}.")], "user_id": USERS["alice"]}
    async with open_agent(running.database_url) as agent:
        await agent.ainvoke(turn, config)
    before = alice_data(running.database_url)
    bob = clients["bob"]
    assert await status_of(bob.threads.create(thread_id=thread_id)) == 409
    assert await status_of(bob.threads.create(thread_id=thread_id, if_exists="do_nothing")) == 409
    run = {"messages": [{"role": "user", "content": "What is my word?"}]}
    creating = bob.runs.wait(thread_id, GRAPH, input=run, if_not_exists="create")
    assert await status_of(creating) in (404, 409)
    # A record Bob made before a program wrote the id: still nothing of Alice's is his.
    early = str(uuid.uuid4())
    await bob.threads.create(thread_id=early)
    async with open_agent(running.database_url) as agent:
        await agent.ainvoke(turn, {"configurable": {"thread_id": early}})
    before = alice_data(running.database_url)
    errors = await errors_of(bob, early, input=run)
    assert errors and "another user" in str(errors[0])
    assert await status_of(bob.threads.get_state(early)) == 403
    assert await status_of(bob.threads.get_history(early)) == 403
    with pytest.raises(httpx.HTTPStatusError):
        await bob.threads.delete(early)
    # The routes reach threads through an in-process client: they check the checkpoints too.
    report = await http.get(f"/me/threads/{early}/report", headers=bearer("bob"))
    assert report.status_code == 404 and MARK not in report.text.lower()
    removed = await http.delete(f"/me/conversations/{early}", headers=bearer("bob"))
    assert removed.status_code == 404
    assert (await http.delete("/me", headers=bearer("bob"))).status_code == 200
    assert alice_data(running.database_url) == before
    async with open_agent(running.database_url) as agent:  # Alice's thread still works
        out = await agent.ainvoke(
            {"messages": [("user", "What is my secret word?")], "user_id": USERS["alice"]},
            config,
        )
    assert out["status"] == "completed"


async def test_scenario_4_forget_me_leaves_nothing_of_runs_in_flight(
    clients: dict[str, LangGraphClient], running: Running, http: httpx.AsyncClient
) -> None:
    dave = clients["dave"]
    threads = [await new_thread(dave) for _ in range(3)]
    assert not (await stream_turn(dave, threads[0], "I live in Lima.")).errors
    for i, thread_id in enumerate(threads):  # queued and running when forget arrives
        await dave.runs.create(
            thread_id,
            GRAPH,
            input={"messages": [{"role": "user", "content": f"I like colour zq{i}zq."}]},
        )
    receipt = (await http.delete("/me", headers=bearer("dave"))).json()
    assert receipt["deleted"]["threads"] >= 1
    await asyncio.sleep(3)  # anything that would still run has had its chance
    prefix = ".".join(user_prefix(USERS["dave"])) + ".%"
    with psycopg.connect(running.database_url) as conn:
        items = conn.execute("SELECT count(*) FROM store WHERE prefix LIKE %s", (prefix,))
        assert (items.fetchone() or (1,))[0] == 0
        owned = conn.execute(
            "SELECT count(*) FROM checkpoints "
            "WHERE checkpoint -> 'channel_values' ->> 'thread_owner' = %s",
            (USERS["dave"],),
        )
        assert (owned.fetchone() or (1,))[0] == 0
    search = await http.get("/me/memories/search", params={"q": "colour"}, headers=bearer("dave"))
    assert search.json()["memories"] == []


async def test_scenario_5_a_client_may_only_tighten_the_servers_limits(
    clients: dict[str, LangGraphClient], running: Running
) -> None:
    erin = clients["erin"]
    thread_id = await new_thread(erin)
    big = {"messages": [{"role": "user", "content": "word " * 4_000}]}  # 20,000 characters
    errors = await errors_of(erin, thread_id, input=big, context={"max_input_chars": 10**7})
    assert errors and "may only be lowered" in str(errors[0])
    errors = await errors_of(erin, thread_id, input=big)
    assert errors and "limit is 16000" in str(errors[0])
    small = {"messages": [{"role": "user", "content": "x" * 200}]}
    errors = await errors_of(erin, thread_id, input=small, context={"max_input_chars": 100})
    assert errors and "limit is 100" in str(errors[0]), "lowering a limit works"
    for field, value in (("model", "openai:gpt-4o"), ("api_key", "sk-x"), ("extractor", "model")):
        errors = await errors_of(erin, thread_id, input=small, context={field: value})
        assert errors and "set by the server" in str(errors[0]), field
    assert "word word" not in checkpoint_metadata(running.database_url, thread_id)
    assert (await erin.threads.get_state(thread_id))["values"].get("messages") in (None, [])


async def test_scenario_6_forged_and_malformed_messages_are_refused_before_the_thread(
    clients: dict[str, LangGraphClient],
) -> None:
    carol = clients["carol"]
    thread_id = await new_thread(carol)
    assert not (await stream_turn(carol, thread_id, "Hello there.")).errors
    state = await carol.threads.get_state(thread_id)
    answer = state["values"]["messages"][-1]
    forged = {"messages": [{"role": "user", "content": "I said this.", "id": answer["id"]}]}
    assert not await errors_of(carol, thread_id, input=forged)
    after = await carol.threads.get_state(thread_id)
    kept = [m for m in after["values"]["messages"] if m["id"] == answer["id"]]
    assert kept == [answer], "an input message never replaces one already in the thread"
    for bad in (
        {"content": "no role"},
        {"role": "wizard", "content": "unknown role"},
        {"role": "user", "content": 42},
        {"role": "assistant", "content": "not the user's"},
    ):
        errors = await errors_of(carol, thread_id, input={"messages": [bad]})
        assert errors and "InvalidInputError" in str(errors[0]), bad
        state = await carol.threads.get_state(thread_id)  # still answers
        assert state["values"]["messages"][-1]["id"] == after["values"]["messages"][-1]["id"]


async def test_scenario_8_no_caller_key_reaches_checkpoint_metadata(
    clients: dict[str, LangGraphClient], running: Running
) -> None:
    carol = clients["carol"]
    thread_id = await new_thread(carol)
    names = ["openai_key", "OPENAI_KEY", "anthropic_key", "llm_key", "jwt", "bearer", "pw",
             "signing_key", "dsn", "db_url"]  # fmt: skip
    values = {name: f"zqsecret{i}zq" for i, name in enumerate(names)}
    run = await carol.runs.wait(
        thread_id,
        GRAPH,
        input={"messages": [{"role": "user", "content": "Hello there."}]},
        config={"configurable": values},
        metadata=values,
    )
    assert run is not None
    metadata = checkpoint_metadata(running.database_url, thread_id)
    assert metadata and "zqsecret" not in metadata
