"""benchmarks/locomo.py on a tiny LoCoMo-shaped file (sanity only: the figures come from the
script on the real data, not from a test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def conversation(sample: str, a: str, b: str) -> dict[str, Any]:
    return {
        "sample_id": sample,
        "conversation": {
            "speaker_a": a,
            "speaker_b": b,
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": a, "dia_id": "D1:1", "text": "Hey! I adopted a puppy yesterday."},
                {"speaker": b, "dia_id": "D1:2", "text": "Wow! What is its name?"},
                {"speaker": a, "dia_id": "D1:3", "text": "Her name is Biscuit."},
                {
                    "speaker": b,
                    "dia_id": "D1:4",
                    "text": "Look at what I painted.",
                    "img_url": ["http://example.com/x.jpg"],
                    "blip_caption": "a painting of a sunset over a lake",
                },
            ],
            "session_2_date_time": "10:37 am on 27 June, 2023",
            "session_2": [
                {"speaker": b, "dia_id": "D2:1", "text": "I ran a charity race last Sunday."},
                {"speaker": a, "dia_id": "D2:2", "text": "Amazing, how far did you run?"},
                {"speaker": b, "dia_id": "D2:3", "text": "Ten kilometers, for a shelter."},
            ],
        },
        "qa": [
            {"question": f"When did {a} adopt a puppy?", "answer": "7 May 2023",
             "evidence": ["D1:1"], "category": 2},
            {"question": f"What is the name of {a}'s puppy?", "answer": "Biscuit",
             "evidence": ["D1:3; D1:1"], "category": 1},
            {"question": f"What did {b} paint?", "answer": "a sunset",
             "evidence": ["D:1:04"], "category": 4},
            {"question": f"How far did {b} run?", "answer": "10 km",
             "evidence": ["D2:3", "D9:9", "D"], "category": 4},
            {"question": "Which race did they skip?", "adversarial_answer": "none",
             "evidence": ["D2:1"], "category": 5},
            {"question": "Unscorable", "answer": "x", "evidence": ["D7:1"], "category": 3},
        ],
    }  # fmt: skip


def test_benchmark_runs_through_the_product_paths(tmp_path: Path, pg_server: str) -> None:
    data = tmp_path / "locomo-tiny.json"
    data.write_text(json.dumps([conversation("c-1", "Ann", "Bo"), conversation("c-2", "Cy", "Di")]))
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "locomo.py"), "--data", str(data)]
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
    assert result["baseline_bm25_per_turn"]["recall@10"] == 1.0
