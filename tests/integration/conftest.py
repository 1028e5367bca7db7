from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from memory_agent import Agent, open_agent
from tests.pg import fresh_database, server_url


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with server_url(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture
def database_url(pg_server: str) -> Iterator[str]:
    with fresh_database(pg_server) as url:
        yield url


@pytest.fixture
async def agent(database_url: str) -> AsyncIterator[Agent]:
    async with open_agent(database_url) as compiled:
        yield compiled
