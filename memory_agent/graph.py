"""The supervisor graph: wiring only.

`START -> initialize -> planning -> response -> END`, with `initialize -> reject` for refused
turns. `graph` is compiled without persistence (the LangGraph server attaches its own
checkpointer and store from `langgraph.json`); programs and tests call `build_graph` with theirs.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from memory_agent.context import AgentContext
from memory_agent.nodes import initialize, planning, reject, response, route_after_planning
from memory_agent.state import InputState, OutputState, SupervisorState

Agent = CompiledStateGraph[SupervisorState, AgentContext, InputState, OutputState]


def make_builder() -> StateGraph[SupervisorState, AgentContext, InputState, OutputState]:
    """A fresh, uncompiled supervisor graph."""
    b = StateGraph(
        SupervisorState,
        context_schema=AgentContext,
        input_schema=InputState,
        output_schema=OutputState,
    )
    b.add_node("initialize", initialize, destinations=("planning", "reject"))
    b.add_node("reject", reject)
    b.add_node("planning", planning)
    b.add_node("response", response)
    b.add_edge(START, "initialize")
    b.add_conditional_edges("planning", route_after_planning, ["response"])
    b.add_edge("response", END)
    b.add_edge("reject", END)
    return b


builder = make_builder()


def build_graph(
    *,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    store: BaseStore | None = None,
    name: str = "supervisor",
) -> Agent:
    """Compile the supervisor graph with the persistence the caller chose."""
    return make_builder().compile(checkpointer=checkpointer, store=store, name=name)


graph = build_graph()
