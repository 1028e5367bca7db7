"""A model that cannot be used refuses the turn with nothing stored; a provider failing mid-turn
is a `ModelError` naming provider and cause, the REPL goes on and says how the thread stands
(issue 15, items 7 and 8). Through the real CLI and on real PostgreSQL; the provider is the
scripted OpenAI-compatible server of `tests.openai_server`, or a closed port."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from memory_agent import Agent, AgentContext, ConfigurationError, ModelError, open_agent
from memory_agent.agent.manage import memories
from tests.helpers import cli, run_turn, say
from tests.openai_server import Reply, serve

pytestmark = pytest.mark.integration
pytest.importorskip("langchain_openai")

# The CLI with no model configured by the environment: each test names its own.
run = partial(cli, unset=("OPENAI_API_KEY", "OPENAI_BASE_URL", "MEMORY_AGENT_MODEL"))


def threads_of(database_url: str, user: str) -> list[dict[str, Any]]:
    listed = run(database_url, "threads", "--user", user, "--json")
    assert listed.returncode == 0, listed.stderr
    found: list[dict[str, Any]] = json.loads(listed.stdout)
    return found


@pytest.mark.parametrize(
    ("model", "env", "says"),
    [
        ("openai:gpt-4o-mini", {}, "api_key"),  # no credentials
        ("anthropic:claude-3-5-haiku-latest", {}, "pip install"),  # package not installed
        ("nosuchprovider:some-model", {}, "could not be initialised"),
    ],
)
def test_a_model_that_cannot_be_used_refuses_the_turn_with_nothing_stored(
    database_url: str, model: str, env: dict[str, str], says: str
) -> None:
    failed = run(
        database_url, "--model", model, "ask", "--user", "ada", "--thread", "t1", "I live in Oslo."
    )
    assert failed.returncode == 1
    assert says in failed.stderr and "Traceback" not in failed.stderr
    assert threads_of(database_url, "ada") == []
    # The next turn does not find a cut-off turn to finish: the failed statement is gone.
    told = run(database_url, "ask", "--user", "ada", "--thread", "t1", "My name is Ada.")
    assert told.returncode == 0, told.stderr
    assert "cut off" not in told.stderr
    mems = run(database_url, "memories", "--user", "ada", "--json")
    assert [m["text"] for m in json.loads(mems.stdout)] == ["The user's name is Ada."]


async def test_the_library_refuses_an_unusable_model_before_storing(agent: Agent) -> None:
    config: Any = {"configurable": {"thread_id": "lib1"}}
    turn: Any = {"messages": [HumanMessage("I live in Oslo.")], "user_id": "ada"}
    with pytest.raises(ConfigurationError, match="anthropic"):
        await agent.ainvoke(turn, config, context=AgentContext(model="anthropic:claude-x"))
    state = await agent.aget_state(config)
    assert state.values.get("messages", []) == [] and not state.next


def test_a_provider_failing_mid_turn_is_reported_and_the_repl_goes_on(database_url: str) -> None:
    with serve() as gone:
        closed = gone.url  # nothing listens there any more: connection refused
    down = {
        "OPENAI_BASE_URL": closed,
        "OPENAI_API_KEY": "sk-test",
        "MEMORY_AGENT_MODEL_MAX_RETRIES": "0",
    }
    args = ("--model", "openai:scripted")
    asked = run(
        database_url, *args, "ask", "--user", "bo", "--thread", "b1", "I live in Oslo.", **down
    )
    assert asked.returncode == 1
    assert "openai model failed (intent call): cannot be reached" in asked.stderr
    assert "the turn was cut off" in asked.stderr and "Traceback" not in asked.stderr
    chat = run(
        database_url,
        *args,
        "chat",
        "--user",
        "bo",
        "--thread",
        "b2",
        stdin="hello there\n/threads\nsecond try\n/quit\n",
        **down,
    )
    assert chat.returncode == 0, chat.stderr
    assert chat.stderr.count("error: the openai model failed") == 2
    assert "the turn was cut off: your message is kept on thread b2" in chat.stderr
    assert "Traceback" not in chat.stderr
    # Once the provider answers, the cut-off turn is finished first, then the new one.
    with serve() as up:
        up.set("answer", Reply("Noted."))
        back = run(
            database_url,
            *args,
            "ask",
            "--user",
            "bo",
            "--thread",
            "b1",
            "Thanks.",
            OPENAI_BASE_URL=up.url,
            OPENAI_API_KEY="sk-test",
        )
    assert back.returncode == 0, back.stderr
    assert "finished the turn that was cut off" in back.stderr
    assert back.stdout.strip() == "Noted."
    assert up.purposes().count("answer") == 2


def test_an_unknown_model_name_rolls_the_turn_back(database_url: str) -> None:
    with serve() as server:
        server.set("intent", Reply(status=404))
        asked = run(
            database_url,
            "--model",
            "openai:no-such-model",
            "ask",
            "--user",
            "cy",
            "--thread",
            "c1",
            "I live in Oslo.",
            OPENAI_BASE_URL=server.url,
            OPENAI_API_KEY="sk-test",
        )
    assert asked.returncode == 1
    assert "model not found: check the model name" in asked.stderr
    assert "nothing of this turn was stored on thread c1" in asked.stderr
    assert threads_of(database_url, "cy") == []
    again = run(database_url, "ask", "--user", "cy", "--thread", "c1", "My name is Cy.")
    assert again.returncode == 0 and "cut off" not in again.stderr


async def test_an_embedding_model_failing_is_a_model_error_and_the_thread_recovers(
    database_url: str,
) -> None:
    """An embedder reached over the OpenAI protocol goes down mid-conversation: the turn is a
    `ModelError` naming the embedder and the cause (not a raw transport error, not a silent
    recall without memories), and the thread's next turn works once the embedder is back."""
    from langchain_openai import OpenAIEmbeddings

    with serve() as server:
        embeddings = OpenAIEmbeddings(
            model="text-embedding-3-small",
            base_url=server.url,
            api_key="test-key",  # type: ignore[arg-type]
            check_embedding_ctx_length=False,  # no tokenizer download
            max_retries=0,
        )
        async with open_agent(database_url, embeddings=embeddings) as agent:
            await say(agent, "ada", "e1", "I live in Oslo.")
            server.embeddings_status = 503
            for question in ("Where do I live?", "I also love jazz."):  # recall; then a write
                with pytest.raises(ModelError) as failed:
                    await run_turn(agent, "ada", "e2", question)
                assert failed.value.provider == "openai" and failed.value.purpose == "embedding"
                assert "text-embedding-3-small" in str(failed.value)
                assert "503" in str(failed.value) or "InternalServerError" in str(failed.value)
            server.embeddings_status = 200
            assert "Oslo" in await say(agent, "ada", "e2", "Where do I live?")
            known = [m["text"] for m in await memories(agent).list_memories("ada")]
            assert "The user lives in Oslo." in known
