"""What the tests share: a turn's input and config, one turn through an agent, a turn through the
memory write path, the CLI in a subprocess, and the embedded PostgreSQL a test left running.

A plain module (imported as `tests.helpers`) rather than conftest.py: conftest is for fixtures
pytest injects, and its functions are not meant to be imported; `tests/pg.py` is about
provisioning PostgreSQL. Where test modules wanted slightly different shapes of one helper, the
one here takes keyword arguments for the difference.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from memory_agent import AgentContext, Team, build_graph
from memory_agent.embeddings import HashingEmbeddings
from memory_agent.memory.ingest import TurnRecord, extract, remember_turn
from memory_agent.memory.plan import EpisodeDraft
from memory_agent.memory.service import MemoryService
from memory_agent.models import OfflineChatModel

REPO = Path(__file__).resolve().parents[1]

NASTY = [
    "",
    " ",
    "\t\n",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    ".",
    "%",
    "_",
    "%2E",
    "a.b",
    "a%b",
    "'; DROP TABLE store; --",
    "users.alice.facts",
    "x" * 10_000,
]
"""Strings full of what validation, namespaces, LIKE patterns and SQL care about (the fuzz
tests add their own)."""


def cfg(thread: str, user: str | None = None, **extra: Any) -> Any:
    """The run config of `thread`; `user` as the server's authenticated user, `extra` added."""
    c: dict[str, Any] = {"configurable": {"thread_id": thread, **extra}}
    if user is not None:
        c["configurable"]["langgraph_auth_user_id"] = user
    return c


def ask(text: str, user: str | None = "u1") -> Any:
    """The input of one turn: `text` said by `user`."""
    return {"messages": [("user", text)], "user_id": user}


async def run_turn(
    agent: Any,
    user: str | None,
    thread: str,
    text: str,
    *,
    context: AgentContext | None = None,
    status: str | None = None,
    **ctx: Any,
) -> Any:
    """One turn through `agent`; its final state.

    `ctx` builds the run's `AgentContext` (else `context`, else none: the defaults); with
    `status`, the turn must have ended with it.
    """
    out = await agent.ainvoke(
        ask(text, user), cfg(thread), context=AgentContext(**ctx) if ctx else context
    )
    if status is not None:
        assert out["status"] == status, out
    return out


async def say(agent: Any, user: str | None, thread: str, text: str, **options: Any) -> str:
    """One turn through `agent` (`options` as `run_turn`'s); the answer's text."""
    out = await run_turn(agent, user, thread, text, **options)
    return str(out["messages"][-1].content)


def episodes(texts: Sequence[str], speaker: str | None = None) -> list[EpisodeDraft]:
    """One episode draft per text, each its own message (m0, m1, ...), said by `speaker`."""
    return [
        {"message_id": f"m{i}", "text": t, "speaker": speaker, "before": "", "after": ""}
        for i, t in enumerate(texts)
    ]


def memory_store() -> InMemoryStore:
    """An in-memory store indexed as the product's (offline hashing embedder)."""
    return InMemoryStore(index={"dims": 512, "embed": HashingEmbeddings(), "fields": ["text"]})


def offline_graph(teams: Sequence[Team] | None = None) -> Any:
    """The whole agent in memory (InMemorySaver, `memory_store()`); `teams` as `build_graph`."""
    return build_graph(checkpointer=InMemorySaver(), store=memory_store(), teams=teams)


async def tell(
    service: MemoryService,
    user: str,
    thread: str,
    text: str,
    *,
    when: str | None = None,
    speaker: str | None = None,
    answer: str = "Noted.",
) -> dict[str, Any]:
    """One turn (of the user, or of a named speaker) through the response node's write path,
    answered with `answer`; what the write reported."""
    said = HumanMessage(text, name=speaker, id=f"{thread}-{abs(hash(text))}")
    window = [said, AIMessage(answer, id=f"{said.id}-a")]
    drafts = await extract([said], OfflineChatModel(), "rules", when=when)
    turn: TurnRecord = {
        "thread_id": thread,
        "title": "t",
        "summary": "",
        "last_message": text,
        "message_count": 2,
        "created_at": None,
        "when": when,
    }
    return dict(await remember_turn(service, user, turn, window, {said.id or ""}, drafts))


def cli(
    database_url: str,
    *args: str,
    stdin: str | None = None,
    unset: tuple[str, ...] = (),
    **env: str | None,
) -> subprocess.CompletedProcess[str]:
    """`python -m memory_agent.cli ARGS` on `database_url`, run in the repository; `unset`
    variables are removed from the environment and `env` (those not None) set."""
    environ = {**os.environ, "DATABASE_URL": database_url}
    for name in unset:
        environ.pop(name, None)
    environ |= {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-m", "memory_agent.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def postmaster(pgdata: Path) -> int | None:
    """The pid of the PostgreSQL running on `pgdata`, or None."""
    import psutil

    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return None
    pid = int(pidfile.read_text().split()[0])
    return pid if psutil.pid_exists(pid) else None
