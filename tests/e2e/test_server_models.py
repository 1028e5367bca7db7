"""A chat model that fails under the LangGraph server: the client is told which model failed and
why (the typed error and its reason, not "An internal error occurred"), and the thread is left
as documented (cut off and resumable: the message is kept, nothing of the turn remembered)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import psycopg
import pytest
from langgraph_sdk import get_client

from tests.e2e.conftest import Running, dev_server
from tests.e2e.sdk import GRAPH, MODES

pytestmark = pytest.mark.e2e


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def unreachable_model(e2e_pg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    env = {
        "MEMORY_AGENT_AUTH_TOKENS": "",
        "MEMORY_AGENT_MODEL": "openai:gpt-4o-mini",
        "OPENAI_API_KEY": "sk-test-not-a-real-key",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port()}/v1",
        "MEMORY_AGENT_MODEL_MAX_RETRIES": "0",
        "MEMORY_AGENT_MODEL_TIMEOUT": "5",
    }
    with dev_server(e2e_pg, tmp_path_factory, "model", env) as started:
        yield started


async def test_a_model_failure_reaches_the_client_named_and_explained(
    unreachable_model: Running,
) -> None:
    server, url = unreachable_model.server, unreachable_model.database_url
    client = get_client(url=server.url, api_key=None)
    try:
        thread_id = str((await client.threads.create())["thread_id"])
        errors = []
        turn = {"messages": [{"role": "user", "content": "I live in Lima."}], "user_id": "mo"}
        async for part in client.runs.stream(thread_id, GRAPH, input=turn, stream_mode=MODES):
            if part.event == "error":
                errors.append(part.data)
        assert errors, "the run must fail"
        error = errors[0]
        assert error["error"] == "ModelError", error
        assert "openai" in error["message"] and "internal error" not in error["message"]
        with psycopg.connect(url) as conn:
            stored = conn.execute(
                "SELECT count(*) FROM store WHERE prefix LIKE 'users.mo.%%'"
            ).fetchone()
        assert stored is not None and stored[0] == 0, "nothing of the turn is remembered"
        state = await client.threads.get_state(thread_id)
        texts = [m["content"] for m in state["values"].get("messages", [])]
        assert texts == ["I live in Lima."], "cut off: the message is kept for the resume"
    finally:
        await client.aclose()
