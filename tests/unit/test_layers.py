"""The package's layers only point down, have no import cycle, and keep modules readable.

`cli / server -> agent -> graph -> nodes -> teams -> core -> memory -> persistence -> foundation`:
a module may import its own layer and the layers below it, never one above. The imports are read
from the source (every `import` and `from ... import`, at any depth), so a function-level import
cannot hide an upward edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "memory_agent"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # The shared vocabulary: errors, leaf helpers, settings, prompts, chat models, embedders.
    (
        "foundation",
        (
            "errors",
            "utils",
            "prompts",
            "secrets",
            "events",
            "context",
            "embeddings",
            "offline",
            "models",
        ),
    ),
    ("persistence", ("persistence",)),
    ("memory", ("memory",)),
    # The graph's own vocabulary: its state and what reads a turn's input.
    ("core", ("state", "intent", "validation", "identity", "analysis")),
    ("teams", ("teams",)),
    ("nodes", ("nodes",)),
    ("graph", ("graph",)),
    ("agent", ("agent",)),
    ("surface", ("cli", "server", "__init__", "__main__")),
]

MAX_LINES = 400
"""A longer module states at its top why it is one module (`Long on purpose:`)."""


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    parts = module.split(".")
    if parts == ["memory_agent"]:
        return len(LAYERS) - 1
    top = parts[1]
    for rank, (_, names) in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports_of(source: str, module: str, package: str) -> set[str]:
    """The memory_agent modules `source` (the text of `module`, in `package`) imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("memory_agent."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != "memory_agent":
                continue
            for alias in node.names:
                # `from memory_agent.persistence import store_sql`: the submodule is the target.
                sub = f"{target}.{alias.name}"
                found.add(sub if _is_module(sub) else target)
    found.discard(module)
    return found


def _imports(path: Path) -> set[str]:
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    return _imports_of(path.read_text(), module, package)


def _upward(module: str, imports: set[str]) -> list[str]:
    rank = _layer(module)
    return sorted(
        f"{target} ({LAYERS[_layer(target)][0]})"
        for target in imports
        if target != "memory_agent" and _layer(target) > rank
    )


SOURCES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {_module(p): _imports(p) for p in SOURCES}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: _module(p))
def test_no_module_imports_a_layer_above_its_own(path: Path) -> None:
    module = _module(path)
    upward = _upward(module, GRAPH[module])
    assert not upward, f"{module} ({LAYERS[_layer(module)][0]}) imports upward: {upward}"


def test_no_import_cycle() -> None:
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
        if module in done:
            return
        path.append(module)
        for target in sorted(GRAPH[module]):
            # A package's __init__ re-exporting its own modules is not a cycle of design.
            if target in GRAPH and not module.startswith(target + "."):
                visit(target)
        path.pop()
        done.add(module)

    for module in GRAPH:
        visit(module)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: _module(p))
def test_long_modules_say_why(path: Path) -> None:
    text = path.read_text()
    lines = text.count("\n")
    docstring = ast.get_docstring(ast.parse(text)) or ""
    assert lines <= MAX_LINES or "Long on purpose:" in docstring, (
        f"{_module(path)} has {lines} lines: split it, or say at its top why it is one module "
        "('Long on purpose: ...')"
    )


def test_the_checker_sees_upward_edges_at_any_depth() -> None:
    source = (
        "from memory_agent.persistence import vectors\n"
        "def f():\n"
        "    from memory_agent.graph import build_graph\n"
        "    import memory_agent.agent.boundary\n"
        "    from ..memory import records\n"
    )
    module = "memory_agent.persistence.example"
    imports = _imports_of(source, module, "memory_agent.persistence")
    assert imports == {
        "memory_agent.persistence.vectors",
        "memory_agent.graph",
        "memory_agent.agent.boundary",
        "memory_agent.memory.records",
    }
    assert _upward(module, imports) == [
        "memory_agent.agent.boundary (agent)",
        "memory_agent.graph (graph)",
        "memory_agent.memory.records (memory)",
    ]


PUBLIC_API = """
    Agent AgentContext ConfigurationError DatabaseUnavailableError GuardedAgent
    InputState InvalidInputError MemoryAgentError MemoryService ModelError
    OfflineChatModel OutputState PruneReceipt StorageRefusedError SupervisorState
    SyncAgent Team TeamRequest ThreadBusyError ThreadOwnershipError TransientError
    build_graph builder default_teams forget_user graph memories open_agent
    open_agent_sync open_pool prune reindex_store resolve_chat_model resolve_memory_key
    resume_turn setup_database
""".split()
"""The names `memory_agent` exported before the package was layered: programs import them."""


def test_the_public_api_keeps_its_names() -> None:
    import memory_agent

    assert set(PUBLIC_API) <= set(memory_agent.__all__)
    missing = [name for name in PUBLIC_API if not hasattr(memory_agent, name)]
    assert not missing, f"memory_agent no longer exports {missing}"
