"""The benchmark scripts run (toy sizes, `--quick`) and print the keys the README documents.

Figures are not checked here: timing on shared machines is the scripts' business (see
README, Benchmarks). What is checked is that each script works from a fresh clone and reports
what it promises, and the two properties that do not depend on timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

KEYS = {
    "turn_latency": {"agent_p50_ms", "agent_p95_ms", "bare_p50_ms", "bare_p95_ms"},
    "throughput": {"runs"},
    "checkpoint_growth": {"agent_bytes", "bare_bytes"},
    "memory_scale": {"runs"},
    "cold_start": {"warm_s", "first_s"},
    "load": {"turns", "errors", "turns_per_s", "latency_ms", "peak_connections", "rss_mb"},
    "teams_parallel": {"turn_ms_p50", "two_vs_one", "four_vs_one", "team_overhead_ms"},
    "server_overhead": {"dev_server_startup_s", "turn_latency", "config"},
    "locomo": {"overall", "by_category", "ingest_ms_per_turn", "recall_p50_ms", "memories"},
}


def scripts() -> set[str]:
    """The runnable scripts of benchmarks/ (its helper modules have no `__main__` block)."""
    folder = ROOT / "benchmarks"
    return {
        p.stem
        for p in folder.glob("*.py")
        if 'if __name__ == "__main__":' in p.read_text() and p.stem != "run_all"
    }


def test_run_all_runs_every_script() -> None:
    from benchmarks.run_all import BENCHMARKS

    assert sorted(BENCHMARKS) == sorted(scripts())
    assert set(KEYS) == scripts()


def test_every_benchmark_runs_and_reports_its_keys(pg_server: str) -> None:
    env = {**os.environ, "DATABASE_URL": pg_server}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])["results"]
    assert set(results) == scripts()
    for name, keys in KEYS.items():
        assert keys <= results[name].keys(), (name, sorted(results[name]))
    for run in results["throughput"]["runs"]:
        assert {"users", "agent_tps", "bare_tps", "errors"} <= run.keys()
        assert run["errors"] == 0
    for run in results["memory_scale"]["runs"]:
        keys = {"user_memories", "total_memories", "p50_ms", "p95_ms", "embed_p50_ms"}
        assert keys | {"complete_ratio"} <= run.keys()
        assert run["complete_ratio"] == 1.0
    load = results["load"]
    assert load["errors"] == load["wrong_answers"] == load["leaked_answers"] == 0
    assert load["met"] == {"no_errors": True, "bounded_connections": True}
    growth = results["checkpoint_growth"]
    assert set(growth["agent_bytes"]) == set(growth["bare_bytes"]) == {"2", "5", "10"}
    assert growth["agent_state_last"]["window_messages"] <= 12
    assert growth["agent_state_last"]["last_message_is_latest_turn"]
