"""Embeddings on their way to pgvector, dumped as pgvector's own text literal.

The store passes each embedding to psycopg as a Python list, which psycopg dumps as a
PostgreSQL float array element by element (a regular-expression test per float): slow for a
512-dimension vector, and a turn dumps several (the query vector twice per search, one per
record written). Wrapped by `PgVectorEmbeddings`, embeddings come out as `PgVector`, still a
`list[float]` to everyone else, which the dumper registered by `register_vector_dumper` writes
as one `'[x,y,...]'` string. Its type is left for the server to infer from
the statement (`%s::vector`, or the `vector` column it fills). On a connection without the
dumper a `PgVector` is dumped like any list, so nothing breaks, it is only slower.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from langchain_core.embeddings import Embeddings
from psycopg.adapt import Dumper

from memory_agent.errors import MemoryAgentError
from memory_agent.models import embedding_error


class PgVector(list[float]):
    """An embedding bound for a pgvector column or parameter."""


def vector_text(vector: Sequence[float]) -> str:
    """pgvector's text form of a vector: '[x,y,...]'."""
    return "[" + ",".join([repr(float(x)) for x in vector]) + "]"


class PgVectorDumper(Dumper):
    """Dumps a `PgVector` as pgvector's text literal, with an unknown type oid."""

    def dump(self, obj: Any) -> bytes:
        return vector_text(obj).encode()


def register_vector_dumper(conn: psycopg.AsyncConnection[Any]) -> None:
    """Make `conn` dump `PgVector`s with `PgVectorDumper`."""
    conn.adapters.register_dumper(PgVector, PgVectorDumper)


class PgVectorEmbeddings(Embeddings):
    """`inner`'s embeddings, returned as `PgVector`s (and computed inline when cheap).

    A failure of `inner` (a provider unreachable, a wrong key) is raised as a `ModelError`
    naming the embedder and the cause, as a chat model's is: every embedding the store makes
    (writes, searches) goes through here.

    Args:
        inner: the embeddings to wrap.
        inline: compute the async variants on the event loop instead of a worker thread;
            right for an embedder that costs well under a millisecond (the offline one), where
            the hop to a thread costs more than the work.
    """

    def __init__(self, inner: Embeddings, *, inline: bool = False) -> None:
        self.inner = inner
        self.inline = inline

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with reported(self.inner, f"embedding {len(texts)} text(s)"):
            return [PgVector(v) for v in self.inner.embed_documents(texts)]

    def embed_query(self, text: str) -> list[float]:
        with reported(self.inner, "embedding the query"):
            return PgVector(self.inner.embed_query(text))

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.inline:
            return self.embed_documents(texts)
        with reported(self.inner, f"embedding {len(texts)} text(s)"):
            return [PgVector(v) for v in await self.inner.aembed_documents(texts)]

    async def aembed_query(self, text: str) -> list[float]:
        if self.inline:
            return self.embed_query(text)
        with reported(self.inner, "embedding the query"):
            return PgVector(await self.inner.aembed_query(text))


@contextmanager
def reported(embeddings: Embeddings, doing: str) -> Iterator[None]:
    """A failure of `embeddings` while `doing` ("embedding the query"), raised as a `ModelError`
    naming the embedder and the cause (the package's own errors pass as they are)."""
    try:
        yield
    except MemoryAgentError:
        raise
    except Exception as exc:
        raise embedding_error(exc, embeddings, doing) from exc
