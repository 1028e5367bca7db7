"""The README's program example runs as printed, pasted into a file of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_program_example_runs_as_printed(database_url: str, tmp_path: Path) -> None:
    text = README.read_text()
    code = text.split("<!-- program-example -->\n```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "example.py"
    script.write_text(code)

    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    for shown in ("[memory_loaded]", "[plan_ready]", "[memory_saved]"):
        assert shown in done.stdout
    answer = [line for line in done.stdout.splitlines() if line and not line.startswith("[")]
    assert answer, f"no answer printed: {done.stdout}"
