"""One real `langgraph dev` server with auth on, shared by the e2e module, on its own database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from benchmarks.devserver import DevServer
from memory_agent.server.tokens import hash_token
from tests.pg import fresh_database, server_url

NAMES = ("alice", "bob", "carol", "dave", "erin")
TOKENS = {name: f"{name}-token-{i:02d}-0123456789abcdef" for i, name in enumerate(NAMES)}
USERS = {name: f"{name}@example.com" if name == "alice" else name for name in NAMES}
"""Each test works with users of its own. Alice's id has a '.' (percent-encoded in store
labels); Bob's token is configured only as its hash."""


@dataclass
class Running:
    server: DevServer
    database_url: str


@pytest.fixture(scope="session")
def e2e_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with server_url(tmp_path_factory.mktemp("e2e-pg")) as url:
        yield url


@contextmanager
def dev_server(
    e2e_pg: str, tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str]
) -> Iterator[Running]:
    """A started `langgraph dev` on a fresh database of the e2e PostgreSQL, with `env` on top
    (`MEMORY_AGENT_AUTH_TOKENS=""` for an open server); stopped on exit."""
    with fresh_database(e2e_pg) as url:
        server = DevServer(
            tmp_path_factory.mktemp(f"{name}-devserver"),
            {
                "DATABASE_URL": url,
                "MEMORY_AGENT_HOME": str(tmp_path_factory.mktemp(f"{name}-home")),
                **env,
            },
        )
        server.start()
        try:
            yield Running(server, url)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def running(e2e_pg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tokens = {TOKENS[n]: USERS[n] for n in NAMES if n != "bob"}
    tokens[hash_token(TOKENS["bob"])] = USERS["bob"]
    env = {"MEMORY_AGENT_AUTH_TOKENS": json.dumps(tokens)}
    with dev_server(e2e_pg, tmp_path_factory, "auth", env) as started:
        yield started


def client_for(running: Running, who: str) -> LangGraphClient:
    """An SDK client holding `who`'s bearer token."""
    headers = {"Authorization": f"Bearer {TOKENS[who]}"}
    return get_client(url=running.server.url, api_key=None, headers=headers)


@pytest.fixture
async def clients(running: Running) -> AsyncIterator[dict[str, LangGraphClient]]:
    """An SDK client per user, by name."""
    opened = {name: client_for(running, name) for name in NAMES}
    try:
        yield opened
    finally:
        for client in opened.values():
            await client.aclose()


@pytest.fixture
async def http(running: Running) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client on the server (no credentials) for the memory routes and raw calls."""
    async with httpx.AsyncClient(base_url=running.server.url, timeout=60) as client:
        yield client


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}
