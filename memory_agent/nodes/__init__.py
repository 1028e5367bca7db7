"""The supervisor's nodes, one per module."""

from memory_agent.nodes.initialize import initialize, reject
from memory_agent.nodes.planning import planning
from memory_agent.nodes.response import response
from memory_agent.nodes.teams import route_after_planning, team_failed, team_node

__all__ = [
    "initialize",
    "planning",
    "reject",
    "response",
    "route_after_planning",
    "team_failed",
    "team_node",
]
