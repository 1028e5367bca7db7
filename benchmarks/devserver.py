"""Run the real `langgraph dev` server in a subprocess (used by the e2e tests and a benchmark).

It lives here, not in tests/, because a benchmark script has only benchmarks/ on its path; the
tests import it as `benchmarks.devserver`.

The server runs in a working directory of its own that holds the project's `langgraph.json` and
`memory_agent/` as symlinks, so the configuration is exercised exactly as written while the dev
server's local files (`.langgraph_api/`) stay out of the repository. It is started in a new
process group on a free port and stopped by that group's id (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
LANGGRAPH = Path(sys.executable).parent / "langgraph"

QUIET_ENV = {
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "MEMORY_AGENT_MODEL": "offline",
    "MEMORY_AGENT_EMBEDDINGS": "offline",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_project(workdir: Path) -> Path:
    """`workdir` holding the project's langgraph.json and package (symlinked); returned."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("langgraph.json", "memory_agent"):
        link = workdir / name
        if not link.exists():
            link.symlink_to(REPO / name)
    return workdir


class DevServer:
    """One `langgraph dev` process; `start` and `stop` may be repeated (a restart)."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        *,
        port: int | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.workdir = prepare_project(workdir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **QUIET_ENV, **env}
        self.log_path = workdir / "server.log"
        self.command = command or [
            *(str(LANGGRAPH), "dev", "--host", "127.0.0.1", "--port", str(self.port)),
            *("--no-browser", "--no-reload"),
        ]
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 120.0) -> float:
        """Start the server and wait until /ok answers; the seconds that took."""
        assert self._proc is None, "already running"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        started = time.perf_counter()
        self._proc = subprocess.Popen(
            self.command,
            cwd=self.workdir,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                raise RuntimeError(f"langgraph dev exited with {code}:\n{self.log_tail()}")
            if self._ok():
                return time.perf_counter() - started
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"langgraph dev not up after {timeout}s:\n{self.log_tail()}")

    def _ok(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ok", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the process group started by `start` (gracefully first, so it saves its files)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])
