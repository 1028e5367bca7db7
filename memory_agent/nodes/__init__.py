"""The supervisor's nodes, one per module."""

from memory_agent.nodes.initialize import initialize, reject
from memory_agent.nodes.planning import planning, route_after_planning
from memory_agent.nodes.response import response

__all__ = ["initialize", "planning", "reject", "response", "route_after_planning"]
