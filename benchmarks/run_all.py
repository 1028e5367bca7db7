"""Run every benchmark, one process each, and print their results as one JSON object.

    python benchmarks/run_all.py [--quick] [--only NAME ...] [--out FILE]

Each script prints one JSON object; this collects them under their names, with the seconds each
took and whether its targets were met. A script that fails is reported with its error (and the
exit status is 1), the others still run. `make bench` runs this at full sizes; `--quick` checks
that every script runs (tests/integration/test_benchmarks.py runs it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "turn_latency",
    "throughput",
    "checkpoint_growth",
    "memory_scale",
    "cold_start",
    "load",
    "teams_parallel",
    "server_overhead",
    "locomo",
)
"""Every script of this folder (tests/integration/test_benchmarks.py checks none is missing)."""
QUICK_ONLY = {"locomo"}
"""Scripts that run only with `--quick` here: LoCoMo's data is not in the repository (run
`locomo.py --data FILE` on it), so the full set runs its built-in sample too."""


def run_one(name: str, quick: bool) -> dict[str, Any]:
    quick = quick or name in QUICK_ONLY
    command = [sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if quick else [])]
    print(f"== {name}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, timeout=1800)
    seconds = round(time.perf_counter() - started, 1)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        return {"error": f"exit status {done.returncode}", "seconds": seconds}
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        return {"error": f"output is not JSON: {exc}", "seconds": seconds}
    result["seconds"] = seconds
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="toy sizes: checks the scripts run")
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    p.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = p.parse_args()
    started = time.perf_counter()
    results = {name: run_one(name, args.quick) for name in args.only or BENCHMARKS}
    summary = {
        "quick": args.quick,
        "seconds": round(time.perf_counter() - started, 1),
        "met": {name: r.get("met") for name, r in results.items()},
        "results": results,
    }
    text = json.dumps(summary)
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(text)
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
