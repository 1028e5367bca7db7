"""`open_store`: the one recipe that turns a pool into a ready store.

The embedder (`MEMORY_AGENT_EMBEDDINGS` unless given) decides the vector index; the schema is
created or upgraded before the store is used, and the stored vectors are checked to be the
embedder's. The agent, the server, the benchmarks and the tests all open their store here.
"""

from __future__ import annotations

import os
from datetime import timedelta

from langchain_core.embeddings import Embeddings

from memory_agent.persistence.pool import Pool
from memory_agent.persistence.schema import setup_database
from memory_agent.persistence.store import ExactSearchStore, index_config, resolve, ttl_config

TTL_ENV = "MEMORY_AGENT_MEMORY_TTL"


async def open_store(
    pool: Pool,
    *,
    embeddings: str | Embeddings | None = None,
    setup: bool = True,
    memory_ttl: timedelta | str | None = None,
) -> ExactSearchStore:
    """The store over `pool`, its tables created or upgraded first when `setup` (idempotent).

    Args:
        embeddings: "offline", "local", "provider:model" or an `Embeddings`; default
            $MEMORY_AGENT_EMBEDDINGS, else "offline".
        memory_ttl: items not read or written for this long expire; default
            $MEMORY_AGENT_MEMORY_TTL, else never.

    Raises:
        DatabaseUnavailableError: PostgreSQL failed.
        ConfigurationError: a setting is wrong, or the stored vectors are another embedder's.
    """
    emb, dims = await resolve(embeddings)
    index = index_config(emb, dims)
    ttl = ttl_config(memory_ttl or os.environ.get(TTL_ENV) or None)
    if setup:
        await setup_database(pool, index)
    return ExactSearchStore(pool, index=index, ttl=ttl)
