"""The supervisor's teams: the plug-in point for work done before the answer.

`Team(name, description, worker)` wraps a LangChain tool or a compiled LangGraph subgraph;
`build_graph(teams=[...])` / `open_agent(teams=[...])` register them (default:
`default_teams()`, i.e. `memory` and `history`).
"""

from memory_agent.teams.base import (
    DEFAULT_RETRY,
    Team,
    TeamRequest,
    is_transient,
    node_name,
    validate_teams,
)
from memory_agent.teams.builtin import default_teams, history_team, memory_team
from memory_agent.teams.choice import choose_teams

__all__ = [
    "DEFAULT_RETRY",
    "Team",
    "TeamRequest",
    "choose_teams",
    "default_teams",
    "history_team",
    "is_transient",
    "memory_team",
    "node_name",
    "validate_teams",
]
