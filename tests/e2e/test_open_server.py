"""The dev server without tokens (local development): open, and sharing its rows with programs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from langchain_core.messages import HumanMessage
from langgraph_sdk import get_client

from benchmarks.devserver import DevServer
from memory_agent import open_agent
from tests.e2e.conftest import dev_server
from tests.e2e.sdk import GRAPH, checkpoint_count, stream_turn

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def open_server(e2e_pg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    with dev_server(e2e_pg, tmp_path_factory, "open", {"MEMORY_AGENT_AUTH_TOKENS": ""}) as started:
        yield started.server


async def test_an_open_server_shares_threads_and_memories_with_programs(
    open_server: DevServer,
) -> None:
    url = open_server.env["DATABASE_URL"]
    # A program writes a memory and a thread...
    async with open_agent(url) as agent:
        turn = {"messages": [HumanMessage("I live in Quito.")], "user_id": "zoe"}
        await agent.ainvoke(turn, {"configurable": {"thread_id": "from-a-program"}})

    async with (
        get_client(url=open_server.url, api_key=None) as client,
        httpx.AsyncClient(base_url=open_server.url) as http,
    ):
        # ...which the server recalls: no token needed, the input names the user.
        thread_id = str((await client.threads.create())["thread_id"])
        asked = await stream_turn(client, thread_id, "Where do I live?", user_id="zoe")
        assert not asked.errors and "Quito" in asked.answer()
        other = str((await client.threads.create())["thread_id"])
        await client.runs.wait(
            other, GRAPH, input={"messages": [("user", "I live in Lagos.")], "user_id": "yan"}
        )

        assert (await http.get("/me/memories")).status_code == 400, "whose? say user_id"
        listed = (await http.get("/me/memories", params={"user_id": "zoe"})).json()["memories"]
        assert [m["text"] for m in listed] == ["The user lives in Quito."]

        receipt = (await http.delete("/me", params={"user_id": "zoe"})).json()

        assert sorted(receipt["threads"]) == sorted(["from-a-program", thread_id])
        assert checkpoint_count(url, "from-a-program") == 0
        assert checkpoint_count(url, thread_id) == 0
        assert (await http.get("/me/memories", params={"user_id": "zoe"})).json() == {
            "memories": []
        }
        assert checkpoint_count(url, other) > 0
        kept = (await http.get("/me/memories", params={"user_id": "yan"})).json()["memories"]
        assert [m["text"] for m in kept] == ["The user lives in Lagos."]
