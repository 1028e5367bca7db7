"""Which teams a turn needs: the chat model's structured output, or rules offline.

With a real model the planner reads each team's description and answers with the teams to run,
a query for each in its own words, and why. With the offline model (or a model without
structured output, or an unusable answer) each team's own rule decides: its `keywords`, or
its `when`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, Field

from memory_agent.context import StructuredOutputMethod
from memory_agent.memory.records import MemoryRecord
from memory_agent.models import ModelFallback, decide, structured_call
from memory_agent.prompts import TEAM_CHOICE_PROMPT
from memory_agent.state import Intent, TeamTask
from memory_agent.teams.base import Team, TeamRequest

logger = logging.getLogger(__name__)


class _Task(BaseModel):
    team: str = Field(description="the team's name, as listed")
    query: str = Field(default="", description="what the team should look for")
    reason: str = Field(default="", description="why this message needs the team")


class _Choice(BaseModel):
    tasks: list[_Task] = Field(default_factory=list, description="the teams to run; often none")


def choose_by_rules(request: TeamRequest, teams: Sequence[Team]) -> list[TeamTask]:
    """The teams whose own rules want the request, in registration order."""
    tasks: list[TeamTask] = []
    for team in teams:
        mine: TeamRequest = {**request, "team": team.name}
        reason = team.wanted(mine)
        if reason is not None:
            tasks.append({"team": team.name, "query": team.offline_query(mine), "reason": reason})
    return tasks


async def choose_teams(
    message: str,
    intent: Intent,
    user_id: str | None,
    memories: list[MemoryRecord],
    teams: Sequence[Team],
    model: BaseChatModel | None,
    *,
    method: StructuredOutputMethod = "auto",
    fallbacks: list[ModelFallback] | None = None,
) -> list[TeamTask]:
    """The teams this turn needs, each with a query and a reason (empty: answer directly).

    With a model, an unusable answer falls back to the teams' rules and is appended to
    `fallbacks`.

    Raises:
        ModelError: the model could not be reached (after its retries) or timed out.
    """
    if not teams:
        return []
    request: TeamRequest = {
        "team": "",
        "query": message,
        "message": message,
        "user_id": user_id,
        "intent": intent,
        "memories": memories,
    }
    if model is None:
        return choose_by_rules(request, teams)
    listing = "\n".join(f"- {t.name}: {t.description}" for t in teams)
    system = TEAM_CHOICE_PROMPT.format(teams=listing)

    async def ask() -> list[TeamTask]:
        messages = [("system", system), ("human", message)]
        decision = await structured_call(model, _Choice, messages, method=method, purpose="teams")
        return _tasks(decision, teams, message)

    return await decide("teams", model, ask, lambda: choose_by_rules(request, teams), fallbacks)


def _tasks(decision: _Choice, teams: Sequence[Team], message: str) -> list[TeamTask]:
    known = {t.name for t in teams}
    tasks: list[TeamTask] = []
    for task in decision.tasks:
        if task.team not in known or any(t["team"] == task.team for t in tasks):
            logger.info("planner named unknown or repeated team %r; ignored", task.team)
            continue
        tasks.append(
            {
                "team": task.team,
                "query": task.query.strip() or message,
                "reason": task.reason.strip() or "chosen by the model",
            }
        )
    return tasks
