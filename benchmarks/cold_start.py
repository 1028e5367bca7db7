"""Cold start: wall time of `memory-agent ask` on the embedded database.

`first_s`: the very first run, in a fresh `MEMORY_AGENT_HOME` (creates the PostgreSQL cluster,
starts it, creates the database and the tables, answers). `warm_s`: later runs on that
initialised home (each starts the embedded server, checks the tables, answers and stops the
server again, as a user's one-shot command does). Medians of several runs; the process is the
real console script, so interpreter start and imports are included. `DATABASE_URL` is removed
from the environment of the runs.

    python benchmarks/cold_start.py [--quick]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import arguments, emit, log, machine, median, run

COMMAND = [str(Path(sys.executable).with_name("memory-agent")), "ask", "--user", "cold"]


def ask(home: Path, text: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["MEMORY_AGENT_HOME"] = str(home)
    started = time.perf_counter()
    done = subprocess.run(
        [*COMMAND, "--thread", "cold-thread", text],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"memory-agent ask failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed


def imports_s() -> float:
    """Interpreter start and `import memory_agent` alone, for scale."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import memory_agent.cli"], check=True)
    return time.perf_counter() - started


async def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    firsts, warms = (1, 2) if args.quick else (3, 5)
    first: list[float] = []
    warm: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ma-cold-") as tmp:
        for i in range(firsts):
            home = Path(tmp) / f"home-{i}"
            first.append(ask(home, "Hello, my name is Ada."))
            log(f"first run {i + 1}: {first[-1]:.2f} s")
            if i < firsts - 1:
                shutil.rmtree(home, ignore_errors=True)
        for i in range(warms):
            warm.append(ask(home, "What is my name?"))
            log(f"warm run {i + 1}: {warm[-1]:.2f} s")
    imports = median([imports_s() for _ in range(3)])
    result: dict[str, Any] = {
        "benchmark": "cold_start",
        "warm_s": round(median(warm), 2),
        "first_s": round(median(first), 2),
        "imports_s": round(imports, 2),
        "warm_runs": [round(x, 2) for x in warm],
        "first_runs": [round(x, 2) for x in first],
        "machine": machine(),
    }
    emit(result)


if __name__ == "__main__":
    run(main)
