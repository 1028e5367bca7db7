"""The store: LangGraph's `AsyncPostgresStore` with exact per-user vector search, and the one
recipe that opens it (`open_store`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import cast

from langchain_core.embeddings import Embeddings
from langgraph.store.base import Op, PutOp, Result, SearchOp, TTLConfig
from langgraph.store.postgres import AsyncPostgresStore
from langgraph.store.postgres.base import Migration, PostgresIndexConfig

from memory_agent.embeddings import HashingEmbeddings, resolve_embeddings
from memory_agent.errors import ConfigurationError
from memory_agent.persistence import vector_search
from memory_agent.persistence.retention import parse_age
from memory_agent.persistence.vectors import PgVectorEmbeddings, reported
from memory_agent.utils import concurrently


class ExactSearchStore(AsyncPostgresStore):
    """`AsyncPostgresStore` whose vector search is exact per user, or indexed per large user.

    No ANN index over the whole table is created: upstream's `setup()` ignores
    `Migration.condition`, so `ann_index_config={"kind": "flat"}` fails there instead of
    skipping the index; the index migration is replaced by a no-op, keeping the numbering.
    Drop `VECTOR_MIGRATIONS` once upstream's setup honours the condition (a flat index config
    then sets up without error on a fresh database).
    Semantic searches under a namespace go through `vector_search.search` (candidates ranked in
    `store_vectors` alone, a large user's own HNSW index when they have one, always complete);
    everything else is upstream's.
    """

    VECTOR_MIGRATIONS = [*AsyncPostgresStore.VECTOR_MIGRATIONS[:2], Migration("SELECT 1")]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = [self._with_default_ttl(op) for op in ops]
        mine = [i for i, op in enumerate(ops) if self.embeddings and vector_search.handles(op)]
        if not mine:
            return await super().abatch(ops)
        results: list[Result] = [None] * len(ops)
        rest = [i for i in range(len(ops)) if i not in set(mine)]

        async def searches() -> None:
            assert self.embeddings is not None
            queries = [cast(SearchOp, ops[i]).query or "" for i in mine]
            vectors = await self.embeddings.aembed_documents(queries)
            async with self._cursor() as cur:
                for i, vector in zip(mine, vectors, strict=True):
                    op = cast(SearchOp, ops[i])
                    found = await vector_search.search(
                        cur.connection,
                        op,
                        vector,
                        omit_expired=self._omit_expired,
                        refresh_ttl=bool(self.ttl_config) and op.refresh_ttl,
                    )
                    results[i] = (
                        found
                        if found is not None
                        else (await super(ExactSearchStore, self).abatch([op]))[0]
                    )

        async def others() -> None:
            for i, result in zip(
                rest,
                await super(ExactSearchStore, self).abatch([ops[i] for i in rest]),
                strict=True,
            ):
                results[i] = result

        if not rest:
            await searches()
        elif any(isinstance(ops[i], PutOp) for i in rest):
            await searches()  # upstream runs a batch's searches before its writes, too
            await others()
        else:
            await concurrently(searches(), others())
        return results

    def _with_default_ttl(self, op: Op) -> Op:
        # `aput` gives an item the default TTL; a `PutOp` written directly (batched writes)
        # would not get one: every item written without a TTL gets the default here.
        default = (self.ttl_config or {}).get("default_ttl")
        if (
            default is not None
            and isinstance(op, PutOp)
            and op.value is not None
            and op.ttl is None
        ):
            return op._replace(ttl=default)
        return op


def index_config(embeddings: Embeddings, dims: int) -> PostgresIndexConfig:
    """The store's vector index: our embedder on the `text` field, exact (flat) search.

    Flat on purpose: an HNSW index filters by namespace after the approximate scan, and for one
    user among many it returned too few results; an exact scan restricted to one user's prefix
    is both complete and fast at per-user sizes.
    """
    if not isinstance(embeddings, PgVectorEmbeddings):
        # Cheap to dump (see `vectors`); the offline embedder is cheap enough to run inline.
        inline = isinstance(embeddings, HashingEmbeddings)
        embeddings = PgVectorEmbeddings(embeddings, inline=inline)
    return {
        "dims": dims,
        "embed": embeddings,
        "fields": ["text"],
        "distance_type": "cosine",
        "ann_index_config": {"kind": "flat"},
    }


async def resolve(embeddings: str | Embeddings | None) -> tuple[Embeddings, int]:
    if isinstance(embeddings, Embeddings):
        with reported(embeddings, "finding its dimensions"):
            return embeddings, len(await embeddings.aembed_query("dimension probe"))
    return resolve_embeddings(embeddings)


def ttl_config(memory_ttl: timedelta | str | None) -> TTLConfig | None:
    """The store's TTL settings for `memory_ttl` (None: memories never expire).

    Every store item written without its own TTL gets this one; reading an item renews it, and
    expired items are hidden at once and deleted by `prune`.
    """
    if memory_ttl is None:
        return None
    ttl = parse_age(memory_ttl) if isinstance(memory_ttl, str) else memory_ttl
    if ttl <= timedelta(0):
        raise ConfigurationError("memory_ttl must be positive")
    return {
        "default_ttl": ttl.total_seconds() / 60,
        "refresh_on_read": True,
        "omit_expired": True,
    }
