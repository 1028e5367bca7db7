"""memory_agent: a LangGraph supervisor agent with per-user long-term memory and
PostgreSQL-checkpointed threads."""

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
