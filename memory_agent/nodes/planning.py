"""planning: classify the intent, load the memories its budget allows, choose the teams,
write the plan."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import Command

from memory_agent.context import AgentContext, resolve_context, thread_id_of
from memory_agent.errors import ConfigurationError, ModelError
from memory_agent.events import emit
from memory_agent.identity import acting_user
from memory_agent.intent import about_the_user, budget_for, classify
from memory_agent.memory.records import KNOWLEDGE, MemoryRecord
from memory_agent.memory.service import MemoryService
from memory_agent.models import ModelFallback, decision_model, fallback_line
from memory_agent.nodes.rollback import roll_back
from memory_agent.state import Plan, SupervisorState
from memory_agent.teams import Team, choose_teams
from memory_agent.utils import message_text


async def planning(
    state: SupervisorState, runtime: Runtime[AgentContext], teams: Sequence[Team] = ()
) -> dict[str, Any] | Command[Literal["reject"]]:
    """The node; graph.py binds `teams` (the registered teams) with `functools.partial`.

    A model failure that would only repeat rolls the turn back (see `rollback`).
    """
    try:
        return await _plan(state, runtime, teams)
    except ModelError as exc:
        if exc.retryable:
            raise
        return roll_back(state, exc)


async def _plan(
    state: SupervisorState, runtime: Runtime[AgentContext], teams: Sequence[Team]
) -> dict[str, Any]:
    # The identity is established here again, before any model call or memory read: a run may
    # start at this node (a command, a state edit) without passing through initialize.
    user_id = acting_user(state, get_config())
    ctx = resolve_context(runtime.context)
    text = message_text(state["messages"][-1])
    method = ctx.structured_output
    fallbacks: list[ModelFallback] = []
    intent_model = decision_model(ctx, "intent")
    intent, reason = await classify(text, intent_model, method=method, fallbacks=fallbacks)
    budget = budget_for(intent, ctx)
    records: list[MemoryRecord] = []
    skipped: str | None = None
    started = time.perf_counter()
    if user_id is None:
        skipped = "anonymous"
    elif budget["conversations"] == budget["memories"] == 0:
        skipped = "no budget"
    elif runtime.store is None:
        raise ConfigurationError("memories need a store: compile with build_graph(store=...)")
    else:
        service = MemoryService(runtime.store)
        records = await service.recall(user_id, text, budget, exclude_thread=thread_id_of(runtime))
        if about_the_user(text, intent):
            known = await service.search(user_id, "", limit=budget["memories"], kinds=KNOWLEDGE)
            keys = {r.get("key") for r in records}
            records += [r for r in known if r.get("key") not in keys]
    load_ms = round((time.perf_counter() - started) * 1000, 3)
    counts: dict[str, int] = {}
    for r in records:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    emit(
        runtime.stream_writer,
        "memory_loaded",
        user_id=user_id,
        counts=counts,
        memory_count=len(records),
        ms=load_ms,
        skipped=skipped,
    )
    teams_model = decision_model(ctx, "teams") if teams else None
    tasks = await choose_teams(
        text, intent, user_id, records, teams, teams_model, method=method, fallbacks=fallbacks
    )
    for fallback in fallbacks:
        emit(runtime.stream_writer, "model_fallback", **fallback)
    plan: Plan = {
        "intent": intent,
        "budget": budget,
        "teams": [t["team"] for t in tasks],
        "tasks": tasks,
        "reason": reason,
    }
    emit(
        runtime.stream_writer,
        "plan_ready",
        intent=intent,
        budget=dict(budget),
        teams=plan["teams"],
        team_reasons={t["team"]: t["reason"] for t in tasks},
        reason=reason,
    )
    return {
        "intent": intent,
        "plan": plan,
        "loaded_memories": records,
        "memory_load_time": load_ms,
        "active_teams": list(plan.get("teams", [])),
        "error_log": [fallback_line(f) for f in fallbacks],
    }
