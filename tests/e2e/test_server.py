"""The real `langgraph dev` server with our langgraph.json, driven through langgraph_sdk and HTTP.

One server (auth on, PostgreSQL) serves the whole module; the last test restarts it.
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from benchmarks.devserver import REPO
from memory_agent.persistence.namespaces import user_namespace, user_prefix
from tests.e2e.conftest import TOKENS, USERS, Running, bearer, client_for
from tests.e2e.sdk import (
    GRAPH,
    checkpoint_count,
    checkpoint_metadata,
    new_thread,
    status_of,
    stream_turn,
)

pytestmark = pytest.mark.e2e


async def test_a_run_streams_progress_events_and_tokens(
    clients: dict[str, LangGraphClient], running: Running
) -> None:
    alice = clients["alice"]
    thread_id = await new_thread(alice)

    run = await stream_turn(alice, thread_id, "My favourite colour is teal.")

    assert not run.errors
    assert run.events[:2] == ["memory_loaded", "plan_ready"]
    assert run.events[-1] == "memory_saved"
    saved = run.custom[-1]
    assert saved["user_id"] == USERS["alice"] and saved["thread_id"] == thread_id
    assert saved["conversation"] is True and saved["memories"]
    assert len([t for t in run.tokens if t]) > 1, "the answer arrives token by token"
    assert "".join(run.tokens) == run.answer()
    # The checkpoints are in PostgreSQL, and the bearer token is nowhere in their metadata.
    metadata = checkpoint_metadata(running.database_url, thread_id)
    assert USERS["alice"] in metadata and TOKENS["alice"] not in metadata
    assert "authorization" not in metadata.lower()


async def test_a_fact_told_in_one_thread_is_recalled_in_another(
    clients: dict[str, LangGraphClient],
) -> None:
    carol = clients["carol"]
    told = await stream_turn(carol, await new_thread(carol), "I live in Reykjavik.")
    assert told.custom[-1]["memories"], "the fact was saved"

    asked = await stream_turn(carol, await new_thread(carol), "Where do I live?")

    loaded = asked.custom[0]
    assert loaded["event"] == "memory_loaded" and loaded["memory_count"] >= 1
    assert "Reykjavik" in asked.answer()


def test_the_readme_example_runs(running: Running) -> None:
    readme = (REPO / "README.md").read_text()
    code = readme.split("<!-- server-example -->\n```python\n", 1)[1].split("```", 1)[0]
    assert "http://127.0.0.1:8123" in code and "dev-token-ada" in code
    code = code.replace("http://127.0.0.1:8123", running.server.url)
    code = code.replace("dev-token-ada", TOKENS["alice"])

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    for shown in ("[memory_loaded]", "[plan_ready]", "[memory_saved]", "<response done>"):
        assert shown in done.stdout
    answer = [line for line in done.stdout.splitlines() if line and line[0] not in "[<"]
    assert answer, f"no answer tokens printed: {done.stdout}"


async def test_missing_or_wrong_token_gets_401(http: httpx.AsyncClient, running: Running) -> None:
    wrong = {"Authorization": "Bearer not-a-token"}
    studio = {"x-auth-scheme": "langsmith"}  # the dev server's Studio bypass is switched off
    for headers in ({}, wrong, studio, {"Authorization": "Basic YWxpY2U6eA=="}):
        assert (await http.post("/threads/search", json={}, headers=headers)).status_code == 401
        assert (await http.post("/threads", json={}, headers=headers)).status_code == 401
        for answer in (
            await http.get("/me/memories", headers=headers),
            await http.delete("/me", headers=headers),
        ):
            assert answer.status_code == 401
            assert answer.json()["error"] == "unauthenticated" and answer.json()["detail"]
    assert (await http.get("/ok")).status_code == 200  # health stays open


async def test_another_user_cannot_reach_a_thread(
    clients: dict[str, LangGraphClient], running: Running
) -> None:
    alice, bob = clients["alice"], clients["bob"]
    thread_id = await new_thread(alice)
    told = await stream_turn(alice, thread_id, "My passport number is X1234.")
    assert not told.errors
    run_id = (await alice.runs.list(thread_id))[0]["run_id"]

    assert await status_of(bob.threads.get(thread_id)) == 404
    assert await status_of(bob.threads.get_state(thread_id)) == 404
    assert await status_of(bob.threads.get_history(thread_id)) == 404
    assert await status_of(bob.threads.update(thread_id, metadata={"x": 1})) == 404
    assert await status_of(bob.threads.delete(thread_id)) == 404
    assert await status_of(bob.runs.get(thread_id, run_id)) == 404
    assert thread_id not in {t["thread_id"] for t in await bob.threads.search(limit=100)}
    with pytest.raises(httpx.HTTPStatusError) as info:
        async for _ in bob.runs.stream(thread_id, GRAPH, input={"messages": "hi"}):
            pass
    assert info.value.response.status_code == 404
    assert await status_of(bob.runs.join(thread_id, run_id)) == 404
    assert await status_of(bob.runs.list(thread_id)) == 404
    # Joining a run's stream answers 200 before the check, then an error event and nothing else.
    joined = [part async for part in bob.runs.join_stream(thread_id, run_id)]
    assert [p.event for p in joined] == ["error"] and "404" in str(joined[0].data)
    assert await status_of(bob.threads.copy(thread_id)) in (404, 409)
    # Bob cannot give himself the thread, nor hand his own to Alice.
    own = await new_thread(bob)
    assert await status_of(bob.threads.update(own, metadata={"owner": USERS["alice"]})) == 403

    state = await alice.threads.get_state(thread_id)
    assert [m["content"] for m in state["values"]["messages"]][0] == (
        "My passport number is X1234."
    )
    assert len(state["values"]["messages"]) == 2, "nothing was added by Bob"
    assert (await alice.threads.get(thread_id))["metadata"]["owner"] == USERS["alice"]
    assert checkpoint_count(running.database_url, thread_id) > 0


async def test_another_user_cannot_reach_memories(
    clients: dict[str, LangGraphClient], http: httpx.AsyncClient
) -> None:
    alice, bob = clients["alice"], clients["bob"]
    await stream_turn(alice, await new_thread(alice), "My dentist is Dr Molar.")
    mine = (await http.get("/me/memories", headers=bearer("alice"))).json()["memories"]
    assert mine, "Alice has memories"
    key = mine[0]["key"]
    facts = list(user_namespace(USERS["alice"], "facts"))

    # The store API: Alice's namespaces are out of Bob's reach.
    assert await status_of(bob.store.search_items(facts)) == 403
    assert await status_of(bob.store.search_items(list(user_prefix(USERS["alice"])))) == 403
    assert await status_of(bob.store.get_item(facts, key)) == 403
    assert await status_of(bob.store.delete_item(facts, key)) == 403
    assert await status_of(bob.store.put_item(facts, "planted", {"text": "x"})) == 403
    listed = (await bob.store.list_namespaces())["namespaces"]
    assert all(tuple(ns[:2]) == user_prefix(USERS["bob"]) for ns in listed)
    found = (await bob.store.search_items([], query="dentist"))["items"]
    assert all(tuple(i["namespace"][:2]) == user_prefix(USERS["bob"]) for i in found)
    conversations = list(user_namespace(USERS["bob"], "conversations"))
    assert await status_of(bob.store.put_item(conversations, "t", {"text": "x"})) == 403

    # The memory routes: Bob sees and deletes only his own.
    as_bob = bearer("bob")
    assert key not in {
        m["key"] for m in (await http.get("/me/memories", headers=as_bob)).json()["memories"]
    }
    search = await http.get("/me/memories/search", params={"q": "dentist"}, headers=as_bob)
    assert search.status_code == 200 and search.json()["memories"] == []
    deleted = await http.delete(f"/me/memories/{key}", headers=as_bob)
    assert deleted.status_code == 404 and deleted.json()["error"] == "not_found"
    spoofed = await http.get("/me/memories", params={"user_id": USERS["alice"]}, headers=as_bob)
    assert spoofed.status_code == 403 and spoofed.json()["error"] == "forbidden"

    # Alice still has it, and can read and search it herself.
    as_alice = bearer("alice")
    assert key in {
        m["key"] for m in (await http.get("/me/memories", headers=as_alice)).json()["memories"]
    }
    search = await http.get("/me/memories/search", params={"q": "dentist"}, headers=as_alice)
    assert any("Molar" in m["text"] for m in search.json()["memories"])
    assert (await alice.store.get_item(facts, key))["key"] == key


async def test_user_id_in_the_input_cannot_name_another_user(
    clients: dict[str, LangGraphClient], http: httpx.AsyncClient
) -> None:
    bob = clients["bob"]
    before = (await http.get("/me/memories", headers=bearer("alice"))).json()["memories"]
    thread_id = await new_thread(bob)

    run = await stream_turn(bob, thread_id, "I am allergic to peanuts.", user_id=USERS["alice"])

    assert run.errors and "ThreadOwnershipError" in str(run.errors[0])
    # The reason reaches the client (issue 15 item 11), not "An internal error occurred".
    assert "differs from the authenticated user" in str(run.errors[0])
    assert "memory_saved" not in run.events
    after = (await http.get("/me/memories", headers=bearer("alice"))).json()["memories"]
    assert after == before
    state = await bob.threads.get_state(thread_id)
    assert not (state["values"] or {}).get("messages"), "the refused message was not kept"
    # With his own id (or none) Bob's turn goes through as Bob.
    ok = await stream_turn(bob, thread_id, "I am allergic to peanuts.", user_id=USERS["bob"])
    assert not ok.errors and ok.custom[-1]["user_id"] == USERS["bob"]


async def test_forget_me_removes_exactly_the_callers_data(
    clients: dict[str, LangGraphClient], http: httpx.AsyncClient, running: Running
) -> None:
    dave, erin = clients["dave"], clients["erin"]
    dave_threads = [await new_thread(dave) for _ in range(2)]
    await stream_turn(dave, dave_threads[0], "My name is Dave and I live in Lima.")
    await stream_turn(dave, dave_threads[1], "I work at Acme.")
    erin_thread = await new_thread(erin)
    await stream_turn(erin, erin_thread, "My name is Erin and I live in Oslo.")
    erin_before = (await http.get("/me/memories", headers=bearer("erin"))).json()["memories"]
    dave_memories = (await http.get("/me/memories", headers=bearer("dave"))).json()["memories"]
    listed = (await http.get("/me/conversations", headers=bearer("dave"))).json()
    assert {c["thread_id"] for c in listed["conversations"]} == set(dave_threads)
    assert all(c["message_count"] == 2 and c["title"] for c in listed["conversations"])

    answer = await http.delete("/me", headers=bearer("dave"))

    assert answer.status_code == 200
    receipt = answer.json()
    assert receipt["user_id"] == USERS["dave"]
    assert sorted(receipt["threads"]) == sorted(dave_threads)
    assert receipt["deleted"]["threads"] == 2
    assert receipt["deleted"]["conversations"] == 2
    assert receipt["deleted"]["facts"] + receipt["deleted"]["entities"] + receipt["deleted"][
        "preferences"
    ] == len(dave_memories)
    for thread_id in dave_threads:
        assert await status_of(dave.threads.get(thread_id)) == 404
        assert checkpoint_count(running.database_url, thread_id) == 0
    assert (await http.get("/me/memories", headers=bearer("dave"))).json()["memories"] == []
    assert (await http.get("/me/conversations", headers=bearer("dave"))).json() == {
        "conversations": []
    }
    # Erin is untouched.
    assert (await http.get("/me/memories", headers=bearer("erin"))).json()["memories"] == (
        erin_before
    )
    assert (await erin.threads.get(erin_thread))["thread_id"] == erin_thread
    assert checkpoint_count(running.database_url, erin_thread) > 0
    # Forgetting twice is harmless.
    again = (await http.delete("/me", headers=bearer("dave"))).json()
    assert again["threads"] == [] and sum(again["deleted"].values()) == 0


async def test_routes_answer_json_errors(http: httpx.AsyncClient) -> None:
    as_erin = bearer("erin")
    bad_limit = await http.get("/me/conversations", params={"limit": "0"}, headers=as_erin)
    assert bad_limit.status_code == 422 and bad_limit.json()["error"] == "invalid_input"
    no_query = await http.get("/me/memories/search", headers=as_erin)
    assert no_query.status_code == 422
    bad_kind = await http.get("/me/memories", params={"kind": "secrets"}, headers=as_erin)
    assert bad_kind.status_code == 422 and "secrets" in bad_kind.json()["detail"]
    missing = await http.delete("/me/memories/does-not-exist", headers=as_erin)
    assert missing.status_code == 404 and missing.json() == {
        "error": "not_found",
        "detail": "no memory 'does-not-exist'",
    }


async def test_threads_and_memories_survive_a_restart(
    running: Running, http: httpx.AsyncClient
) -> None:
    async with client_for(running, "alice") as alice:
        thread_id = await new_thread(alice)
        await stream_turn(alice, thread_id, "My cat is called Miso.")
        memories = (await http.get("/me/memories", headers=bearer("alice"))).json()["memories"]
        assert any("Miso" in m["text"] for m in memories)

    running.server.stop()
    running.server.start()

    async with client_for(running, "alice") as alice:
        assert (await alice.threads.get(thread_id))["metadata"]["owner"] == USERS["alice"]
        state = await alice.threads.get_state(thread_id)
        assert state["values"]["messages"][0]["content"] == "My cat is called Miso."
        after = (await http.get("/me/memories", headers=bearer("alice"))).json()["memories"]
        assert after == memories
        asked = await stream_turn(alice, await new_thread(alice), "What is my cat called?")
        assert "Miso" in asked.answer()
    async with client_for(running, "bob") as bob:
        assert await status_of(bob.threads.get(thread_id)) == 404
