"""langgraph.json as the LangGraph CLI sees it: valid, and turned into a Dockerfile."""

from __future__ import annotations

import inspect
import json
import subprocess
from pathlib import Path

import pytest
from starlette.applications import Starlette

from benchmarks.devserver import LANGGRAPH, QUIET_ENV, REPO
from memory_agent.server import auth, routes
from memory_agent.server import deployment as server

pytestmark = pytest.mark.e2e

CONFIG = json.loads((REPO / "langgraph.json").read_text())


def langgraph(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LANGGRAPH), *args],
        cwd=REPO,
        env={"PATH": str(LANGGRAPH.parent), **QUIET_ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_langgraph_validate_passes_without_warnings() -> None:
    done = langgraph("validate", "--config", "langgraph.json")
    assert done.returncode == 0, done.stderr
    assert "is valid" in done.stdout
    assert "warning" not in (done.stdout + done.stderr).lower()


def test_langgraph_dockerfile_wires_every_component(tmp_path: Path) -> None:
    target = tmp_path / "Dockerfile"
    done = langgraph("dockerfile", "--config", "langgraph.json", str(target))
    assert done.returncode == 0, done.stderr
    env = {
        line.split("=", 1)[0].removeprefix("ENV "): json.loads(line.split("=", 1)[1].strip("'"))
        for line in target.read_text().splitlines()
        if line.startswith("ENV ")
    }
    assert env["LANGSERVE_GRAPHS"] == {"supervisor": "memory_agent.server.deployment:graph"}
    assert env["LANGGRAPH_CHECKPOINTER"]["path"] == "memory_agent.server.deployment.checkpointer"
    assert env["LANGGRAPH_STORE"]["path"] == "memory_agent.server.deployment.store"
    assert env["LANGGRAPH_AUTH"] == CONFIG["auth"]
    assert env["LANGGRAPH_HTTP"] == CONFIG["http"]


def test_the_config_names_what_exists() -> None:
    """Each path in langgraph.json resolves to the kind of object the server expects."""
    assert CONFIG["graphs"] == {"supervisor": "memory_agent.server.deployment:graph"}
    assert isinstance(server.graph, server.ServerAgent) and server.graph.checkpointer is None
    for key, factory in (("checkpointer", server.checkpointer), ("store", server.store)):
        # A dotted path: the server imports `memory_agent.server.deployment` once, so the graph, the
        # checkpointer and the auth handlers share one module (a file path loads a copy).
        module, name = CONFIG[key]["path"].rsplit(".", 1)
        assert module == server.__name__
        assert getattr(server, name) is factory
        assert inspect.isasyncgenfunction(inspect.unwrap(factory)), "an async context manager"
    assert CONFIG["auth"] == {"path": "memory_agent.server.auth:auth", "disable_studio_auth": True}
    assert auth.auth._authenticate_handler is not None
    assert CONFIG["http"]["app"] == "memory_agent.server.routes:app"
    assert isinstance(routes.app, Starlette)
    # The memory routes authenticate for themselves (their 401 has their JSON shape).
    assert CONFIG["http"]["enable_custom_route_auth"] is False
