"""Secrets of the run context never reach checkpoints (metadata included) or memories."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from memory_agent import AgentContext, ConfigurationError, GuardedAgent, build_graph
from memory_agent.secrets import secret_fields
from tests.helpers import cfg

pytestmark = pytest.mark.integration

SECRET = "sk-live-7f3a9c1e5b2d4f60-SECRET"


def places_holding(url: str, needle: str) -> list[str]:
    """Every table/column of the database whose rows contain `needle`, as text or bytes."""
    found: list[str] = []
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        ).fetchall()
        for table, column, kind in columns:
            if kind == "bytea":
                condition = f"position(convert_to(%s, 'UTF8') in \"{column}\") > 0"
            else:
                condition = f"\"{column}\"::text LIKE '%%' || %s || '%%'"
            row = conn.execute(f'SELECT count(*) FROM "{table}" WHERE {condition}', (needle,))
            if (row.fetchone() or (0,))[0]:
                found.append(f"{table}.{column}")
    return found


async def test_a_secret_context_field_is_never_stored(
    agent: GuardedAgent, database_url: str
) -> None:
    assert secret_fields(AgentContext) == {"api_key"}
    ctx = AgentContext(api_key=SECRET)
    assert SECRET not in repr(ctx)
    for text in ("My name is Kai. I love jazz.", "What is my name?", "What do I love?"):
        await agent.ainvoke(
            {"messages": [("user", text)], "user_id": "kai"}, cfg("k1", note="hello"), context=ctx
        )
    # The search is real: checkpoint metadata and the conversation are found by it; a caller's
    # own configurable key ("note") is not let into metadata at all.
    assert "checkpoints.metadata" in places_holding(database_url, "input")
    assert "checkpoints.metadata" not in places_holding(database_url, "hello")
    assert places_holding(database_url, "Kai")
    assert places_holding(database_url, SECRET) == []


@pytest.mark.parametrize(
    "config",
    [
        cfg("k2", api_key=SECRET),
        cfg("k2", openaiApiKey=SECRET),
        cfg("k2", access_token=SECRET),
        {**cfg("k2"), "metadata": {"password": SECRET}},
    ],
)
async def test_secret_looking_config_keys_are_refused_before_anything_is_stored(
    agent: GuardedAgent, database_url: str, config: Any
) -> None:
    with pytest.raises(ConfigurationError, match="look like secrets"):
        await agent.ainvoke({"messages": [("user", "hi")], "user_id": "kai"}, config)
    assert places_holding(database_url, SECRET) == []
    assert (await agent.aget_state(cfg("k2"))).values == {}


async def test_the_checkpointer_scrubs_them_for_graphs_without_the_boundary(
    agent: GuardedAgent, database_url: str
) -> None:
    # The LangGraph server runs the plain graph on our checkpointer: no boundary there.
    bare = build_graph(checkpointer=agent.checkpointer, store=agent.store)
    await bare.ainvoke(
        {"messages": [("user", "My name is Lin.")], "user_id": "lin"},
        {**cfg("l1", api_key=SECRET, max_tokens=64), "metadata": {"auth_token": SECRET}},
    )
    assert places_holding(database_url, SECRET) == []
    with psycopg.connect(database_url) as conn:
        metadata = [r[0] for r in conn.execute("SELECT metadata FROM checkpoints")]
    assert metadata and all(m.get("source") for m in metadata)
    # Only LangGraph's own keys enter metadata: no guessing which of the caller's are secret.
    assert not any("api_key" in m or "auth_token" in m or "max_tokens" in m for m in metadata)


UNGUESSABLE = [
    "openai_key",
    "OPENAI_KEY",
    "anthropic_key",
    "llm_key",
    "jwt",
    "bearer",
    "pw",
    "signing_key",
    "dsn",
    "db_url",
]


async def test_no_caller_key_reaches_checkpoint_metadata_whatever_its_name(
    agent: GuardedAgent, database_url: str
) -> None:
    """Issue 10, scenario 8 (program API): keys no pattern list would call secret."""
    values = {name: f"{SECRET}-{i}" for i, name in enumerate(UNGUESSABLE)}
    await agent.ainvoke(
        {"messages": [("user", "My name is Ode.")], "user_id": "ode"},
        {"configurable": {"thread_id": "o1", **values}, "metadata": dict(values)},
    )
    assert places_holding(database_url, SECRET) == []
    with psycopg.connect(database_url) as conn:
        metadata = [r[0] for r in conn.execute("SELECT metadata FROM checkpoints")]
    assert metadata and not any(set(m) & set(UNGUESSABLE) for m in metadata)
