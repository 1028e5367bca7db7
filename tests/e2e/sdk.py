"""Small helpers over langgraph_sdk for the e2e tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk.client import LangGraphClient

GRAPH = "supervisor"
MODES = ["updates", "custom", "messages-tuple"]


@dataclass
class Streamed:
    """What one streamed run produced."""

    custom: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)

    @property
    def events(self) -> list[str]:
        return [e["event"] for e in self.custom]

    def answer(self) -> str:
        for update in reversed(self.updates):
            if "response" in update:
                return str(update["response"]["messages"][-1]["content"])
        raise AssertionError(f"no response update in {self.updates}")


async def stream_turn(client: LangGraphClient, thread_id: str, text: str, **extra: Any) -> Streamed:
    out = Streamed()
    turn = {"messages": [{"role": "user", "content": text}], **extra}
    async for part in client.runs.stream(thread_id, GRAPH, input=turn, stream_mode=MODES):
        if part.event == "custom":
            out.custom.append(part.data)
        elif part.event == "messages":
            chunk, _meta = part.data
            out.tokens.append(str(chunk.get("content", "")))
        elif part.event == "updates":
            out.updates.append(part.data)
        elif part.event == "error":
            out.errors.append(part.data)
    return out


async def new_thread(client: LangGraphClient) -> str:
    return str((await client.threads.create())["thread_id"])


async def status_of(call: Any) -> int:
    """The HTTP status an SDK call failed with (the test fails if it succeeded)."""
    with pytest.raises(httpx.HTTPStatusError) as info:
        await call
    return info.value.response.status_code


def checkpoint_count(database_url: str, thread_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = %s", (thread_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def checkpoint_metadata(database_url: str, thread_id: str) -> str:
    """Every checkpoint's metadata of the thread, as one JSON text."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT metadata::text FROM checkpoints WHERE thread_id = %s", (thread_id,)
        ).fetchall()
    return "\n".join(str(row[0]) for row in rows)
