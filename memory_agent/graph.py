"""The supervisor graph: wiring only.

`START -> initialize -> planning -> (the plan's teams, in parallel) -> response -> END`, with
`initialize -> reject` for refused turns and `planning -> response` when no team is needed.
Each registered team is a node of its own (`team_<name>`) with its retry policy, time-out and
an error handler that records its failure and lets the turn go on.

`graph` is compiled without persistence (the LangGraph server attaches its own checkpointer and
store from `langgraph.json`); programs and tests call `build_graph` with theirs. Every step ends
in a checkpoint; turns run with `durability="async"` (see `checkpointer` for why, and for how a
thread's storage stays bounded).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from memory_agent.context import AgentContext
from memory_agent.nodes import (
    initialize,
    planning,
    reject,
    response,
    route_after_planning,
    team_failed,
    team_node,
)
from memory_agent.state import InputState, OutputState, SupervisorState
from memory_agent.teams import Team, default_teams, validate_teams

Agent = CompiledStateGraph[SupervisorState, AgentContext, InputState, OutputState]


def make_builder(
    teams: Sequence[Team] | None = None,
) -> StateGraph[SupervisorState, AgentContext, InputState, OutputState]:
    """A fresh, uncompiled supervisor graph with `teams` (None: `default_teams()`)."""
    registry = validate_teams(default_teams() if teams is None else teams)
    b = StateGraph(
        SupervisorState,
        context_schema=AgentContext,
        input_schema=InputState,
        output_schema=OutputState,
    )
    b.add_node("initialize", initialize, destinations=("planning", "reject"))
    b.add_node("reject", reject)
    b.add_node("planning", partial(planning, teams=registry))
    b.add_node("response", response)
    for team in registry:
        b.add_node(
            team.node,
            team_node(team),
            retry_policy=team.retry,
            timeout=team.timeout,
            error_handler=team_failed,
        )
        b.add_edge(team.node, "response")
    b.add_edge(START, "initialize")
    b.add_conditional_edges(
        "planning", route_after_planning, [*(t.node for t in registry), "response"]
    )
    b.add_edge("response", END)
    b.add_edge("reject", END)
    return b


builder = make_builder()


def build_graph(
    *,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    store: BaseStore | None = None,
    name: str = "supervisor",
    teams: Sequence[Team] | None = None,
) -> Agent:
    """Compile the supervisor graph with the persistence and the teams the caller chose.

    Args:
        checkpointer: saves every thread's state (e.g. `AsyncPostgresSaver`); None: no threads.
        store: the users' long-term memory (e.g. `AsyncPostgresStore`); None: anonymous only.
        name: the graph's name (in traces and the server).
        teams: the teams the supervisor may run; None: `default_teams()` (`memory` and
            `history`); `[]`: none. To add yours to the built-in ones:
            `teams=[*default_teams(), Team(...)]`.

    Raises:
        ConfigurationError: a team is invalid or two share a name.
    """
    return make_builder(teams).compile(checkpointer=checkpointer, store=store, name=name)


graph = build_graph()
