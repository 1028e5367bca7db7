"""memory_agent: a LangGraph supervisor agent with per-user long-term memory and
PostgreSQL-checkpointed threads.

The API, by what you do with it:
- Run the agent: `open_agent` (async) or `open_agent_sync` give a `GuardedAgent` (the graph
  behind the run boundary, with its checkpointer and store); `resume_turn` finishes a turn cut
  off by a failure. `graph` / `build_graph` / `builder` are the graph itself, without
  persistence (the LangGraph server loads `memory_agent.server.deployment:graph`).
- Configure a run: `AgentContext` (models, limits, budgets), passed as `context=`; the state is
  `InputState` -> `SupervisorState` -> `OutputState`; `Team` / `TeamRequest` / `default_teams`
  are the supervisor's teams.
- A user's data: `memories(agent)` gives the `MemoryService` (list, search, edit, history,
  audit); `resolve_memory_key`, `forget_user`, `prune` (`PruneReceipt`), `reindex_store`.
- The database: `open_pool`, `setup_database`.
- Models: `resolve_chat_model` ("offline" is `OfflineChatModel`, or any "provider:model").
- Errors: every one is a `MemoryAgentError` (see `errors`).

The package is layered; each layer imports only the ones below it (tests/unit/test_layers.py):
`cli`, `server` -> `agent` -> `graph` -> `nodes` -> `teams` -> core (`state`, `intent`,
`validation`, `identity`, `analysis`) -> `memory` -> `persistence` -> foundation (`errors`,
`utils`, `context`, `prompts`, `events`, `secrets`, `embeddings`, `offline`, `models`).
"""

from memory_agent.agent.boundary import GuardedAgent, resume_turn
from memory_agent.agent.manage import (
    forget_user,
    memories,
    prune,
    reindex_store,
    resolve_memory_key,
)
from memory_agent.agent.open import open_agent
from memory_agent.agent.sync import SyncAgent, open_agent_sync
from memory_agent.context import AgentContext
from memory_agent.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    InvalidInputError,
    MemoryAgentError,
    ModelError,
    StorageRefusedError,
    ThreadBusyError,
    ThreadOwnershipError,
    TransientError,
)
from memory_agent.graph import Agent, build_graph, builder, graph
from memory_agent.memory import MemoryService
from memory_agent.models import resolve_chat_model
from memory_agent.offline import OfflineChatModel
from memory_agent.persistence.pool import open_pool
from memory_agent.persistence.retention import PruneReceipt
from memory_agent.persistence.schema import setup_database
from memory_agent.state import InputState, OutputState, SupervisorState
from memory_agent.teams import Team, TeamRequest, default_teams

__all__ = [
    "Agent",
    "AgentContext",
    "ConfigurationError",
    "DatabaseUnavailableError",
    "GuardedAgent",
    "InputState",
    "InvalidInputError",
    "MemoryAgentError",
    "MemoryService",
    "ModelError",
    "OfflineChatModel",
    "OutputState",
    "PruneReceipt",
    "StorageRefusedError",
    "SupervisorState",
    "SyncAgent",
    "Team",
    "TeamRequest",
    "ThreadBusyError",
    "ThreadOwnershipError",
    "TransientError",
    "build_graph",
    "builder",
    "default_teams",
    "forget_user",
    "graph",
    "memories",
    "open_agent",
    "open_agent_sync",
    "open_pool",
    "prune",
    "reindex_store",
    "resolve_chat_model",
    "resolve_memory_key",
    "resume_turn",
    "setup_database",
]
