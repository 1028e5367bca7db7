"""teams: fan the plan's teams out in parallel, run each one, account for its outcome.

`route_after_planning` sends one `TeamRequest` per chosen team (`Send`), so the teams run in
the same superstep; each one's node is built by `team_node`, with the team's LangGraph retry
policy and time-out. A team whose last attempt raised or timed out is handed to
`team_failed` (the node's error handler), which records it in `failed_teams` and `error_log`;
either way the turn goes on to `response`, which sees every result through `team_prompt`.

A finished team's writes are saved as soon as it finishes (LangGraph's pending writes, with
durability "async" or "sync"; "exit" would save nothing until the run ends), so a turn
interrupted while other teams still run resumes from the checkpoint without running the
finished ones again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any, Literal, Protocol, cast

from langgraph.config import get_config
from langgraph.errors import NodeError, NodeTimeoutError
from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from memory_agent.context import AgentContext, thread_id_of
from memory_agent.events import emit
from memory_agent.identity import acting_user, claimed_user
from memory_agent.prompts import FAILED_BLOCK, TEAMS_BLOCK
from memory_agent.state import SupervisorState, TeamRun
from memory_agent.teams.base import Team, TeamRequest, failure_reason, node_name
from memory_agent.utils import message_text

logger = logging.getLogger(__name__)


class TeamNode(Protocol):
    """A team's node: one attempt at the team for one request."""

    def __call__(
        self, state: TeamRequest, *, runtime: Runtime[AgentContext]
    ) -> Awaitable[dict[str, Any]]: ...


class ErrorHandler(Protocol):
    """A node's error handler as LangGraph's type stubs know it (they omit the `error`)."""

    def __call__(
        self, state: TeamRequest, *, runtime: Runtime[AgentContext]
    ) -> Awaitable[Command[Literal["response"]]]: ...


_ELAPSED_MS = "memory_agent_team_ms"
"""Attribute set on a team's exception: ms from its first attempt (read by `team_failed`)."""
_RESULT_LINES = 20
_LINE_CHARS = 1_000


def route_after_planning(state: SupervisorState) -> list[Send] | Literal["response"]:
    """One `Send` per team of the plan (they run in parallel), or straight to the response
    (nowhere when planning rolled the turn back: its `Command` goes to `reject`)."""
    if state.get("status") == "rejected":
        return []
    tasks = state.get("plan", {}).get("tasks", [])
    if not tasks:
        return "response"
    message = message_text(state["messages"][-1])
    shared = {
        "message": message,
        "user_id": acting_user(state, get_config()),
        "intent": state.get("intent", "question"),
        "memories": list(state.get("loaded_memories", [])),
    }
    return [
        Send(node_name(task["team"]), {"team": task["team"], "query": task["query"], **shared})
        for task in tasks
    ]


def team_node(team: Team) -> TeamNode:
    """The graph node that runs `team` (one attempt per call; LangGraph retries it)."""

    # `state` is deliberately not annotated as `TeamRequest`: LangGraph would make the
    # request's keys channels of the supervisor's state.
    async def run_team(
        state: Mapping[str, Any], *, runtime: Runtime[AgentContext]
    ) -> dict[str, Any]:
        request = cast(TeamRequest, state)
        # A team can be reached by a `Send` its request was forged into (a server command):
        # under auth it acts only for the authenticated user.
        claimed_user(request.get("user_id"), get_config())
        info = runtime.execution_info
        first = (info.node_first_attempt_time if info else None) or time.time()
        if info is None or info.node_attempt == 1:
            emit(runtime.stream_writer, "team_started", team=team.name, query=request["query"])
        try:
            result = await team.run(request, store=runtime.store, thread_id=thread_id_of(runtime))
        except Exception as exc:
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, _ELAPSED_MS, _ms_since(first))
            raise
        ms = _ms_since(first)
        emit(runtime.stream_writer, "team_finished", team=team.name, ok=True, ms=ms, error=None)
        run: TeamRun = {"team": team.name, "ok": True, "ms": ms, "error": None}
        return {
            "team_results": {team.name: result},
            "completed_teams": [team.name],
            "team_runs": [run],
        }

    run_team.__name__ = team.node
    return run_team


async def _team_failed(
    state: Mapping[str, Any], *, error: NodeError, runtime: Runtime[AgentContext]
) -> Command[Literal["response"]]:
    name = str(state.get("team", error.node))
    reason = failure_reason(error.error)
    ms = getattr(error.error, _ELAPSED_MS, None)
    if ms is None and isinstance(error.error, NodeTimeoutError):
        ms = round(error.error.elapsed * 1000, 3)
    logger.warning("team %s failed: %s", name, reason)
    logger.debug("team %s failed", name, exc_info=error.error)
    emit(runtime.stream_writer, "team_finished", team=name, ok=False, ms=ms, error=reason)
    run: TeamRun = {"team": name, "ok": False, "ms": ms, "error": reason}
    return Command(
        update={
            "failed_teams": [name],
            "error_log": [f"team {name}: {reason}"],
            "team_runs": [run],
        },
        goto="response",
    )


team_failed = cast(ErrorHandler, _team_failed)
"""Error handler of every team node (LangGraph passes it the failed node's `NodeError`): record
the failure in `failed_teams` and `error_log`, emit `team_finished`; the turn goes on."""


def team_prompt(state: SupervisorState) -> tuple[str, str]:
    """The response prompt's blocks: what the teams found, and what could not be done."""
    order = list(state.get("plan", {}).get("teams", []))
    results = state.get("team_results", {})
    names = order + [n for n in results if n not in order]
    lines = [line for name in names if name in results for line in _lines(results[name])]
    failed = state.get("failed_teams", [])
    log = state.get("error_log", [])
    failures = []
    for name in failed:
        prefix = f"team {name}: "
        reason = next((e[len(prefix) :] for e in log if e.startswith(prefix)), "failed")
        failures.append(f"{name} ({reason})")
    found = TEAMS_BLOCK.format(lines="\n".join(lines)) if lines else ""
    missing = FAILED_BLOCK.format(failures="; ".join(failures)) if failures else ""
    return found, missing


def _lines(result: Any) -> list[str]:
    if result is None:
        return []
    if isinstance(result, str):
        items = result.splitlines()
    elif isinstance(result, list | tuple):
        items = [x if isinstance(x, str) else _json(x) for x in result]
    else:
        items = [_json(result)]
    out: list[str] = []
    for item in items:
        text = " ".join(item.split()).removeprefix("- ").strip()
        if text:
            out.append(f"- {text[:_LINE_CHARS]}")
    return out[:_RESULT_LINES]


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _ms_since(first: float) -> float:
    return round((time.time() - first) * 1000, 3)
