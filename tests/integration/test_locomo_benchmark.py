"""benchmarks/locomo.py on its tiny LoCoMo-shaped sample (`--quick`: two conversations of two
sessions, 7 turns and 6 questions each; sanity only: the figures come from the script on the real
data, not from a test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_runs_through_the_product_paths(pg_server: str) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "locomo.py"), "--quick"]
        + ["--database", pg_server, "--k", "1,10", "--baseline"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "MEMORY_AGENT_EMBEDDINGS": "offline"},
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert set(result) >= {
        "overall",
        "by_category",
        "ingest_ms_per_turn",
        "recall_p50_ms",
        "embed_p50_ms",
        "recall_p95_ms",
        "memories",
    }
    assert set(result["overall"]) >= {"recall@1", "recall@10", "hit@1", "hit@10", "words@10"}
    assert set(result["by_category"]) == {"1", "2", "4", "5"}  # category 3 had no evidence left
    assert result["questions"] == 10 and result["turns"] == 14
    # Every turn became an episode; "I adopted a puppy" and "I ran" left nothing to extract.
    assert result["memories"] >= result["turns"]
    # Seven turns per user: the top 10 covers every evidence turn.
    assert result["overall"]["recall@10"] == result["overall"]["hit@10"] == 1.0
    assert 0 < result["overall"]["recall@1"] <= 1
    assert 0 < result["overall"]["words@10"] <= 7 * 20
    assert result["recall_p50_ms"] > 0 and result["ingest_ms_per_turn"] > 0
    assert 0 < result["embed_p50_ms"] <= result["embed_p95_ms"]
    assert result["baseline_bm25_per_turn"]["recall@10"] == 1.0
