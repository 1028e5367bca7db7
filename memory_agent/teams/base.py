"""The team contract: what a team is, what it receives, and how the supervisor calls it.

A team is a named unit of work the supervisor can run before it answers: a LangChain tool or a
compiled LangGraph subgraph. Every team of a turn gets a `TeamRequest` (its query, the user's
message, the user id, the intent and the memories planning loaded) and returns a result that
the response node shows to the model.

- A **tool** gets the query in its one required model-visible argument, whatever its name (if
  none is required: in `query`, or in its only argument). Arguments marked `InjectedToolArg`
  are filled by name from the request (`user_id`, `message`, `intent`, `memories`, `team`,
  `query`) or with the run's `store` and `thread_id`.
- A **subgraph** is invoked with the request as its input (it reads the keys its input schema
  declares) and should return its answer under `result`; without one, the last message's text
  (a `messages` graph) or the whole output is the result. It inherits the supervisor's
  checkpointer, store and context.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, TypedDict

from langchain_core.messages import BaseMessage
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import NodeTimeoutError
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore
from langgraph.types import RetryPolicy
from pydantic import BaseModel

from memory_agent.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    MemoryAgentError,
    TransientError,
)
from memory_agent.memory.records import MemoryRecord
from memory_agent.state import Intent
from memory_agent.utils import message_text

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_RESERVED = frozenset({"initialize", "planning", "response", "reject"})


class TeamRequest(TypedDict):
    """What one team gets for a turn: its slice of the supervisor's state."""

    team: str
    query: str
    """What to look for (the model's words, or the user's message with the offline rules)."""
    message: str
    """The user's message of this turn."""
    user_id: str | None
    intent: Intent
    memories: list[MemoryRecord]
    """What planning already loaded (a team need not find it again)."""


def is_transient(exc: BaseException) -> bool:
    """Whether a team's failure is worth another attempt (the default `retry_on`).

    Retried: connection and I/O time-outs, `TransientError`, a database that is briefly
    unreachable, and HTTP 429/5xx answers (any error carrying such a `status_code` or
    `response.status_code`). Not retried: a team that hit its own time-out (it would only make
    the turn slower), configuration and input errors, and anything else (a bug stays a bug).
    """
    if isinstance(exc, NodeTimeoutError):
        return False
    if isinstance(exc, TransientError | DatabaseUnavailableError):
        return True
    if isinstance(exc, MemoryAgentError):
        return False
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if type(exc).__name__ == "OperationalError" and type(exc).__module__.startswith("psycopg"):
        return True  # the connection was lost or the server is restarting
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return isinstance(status, int) and (status == 429 or 500 <= status < 600)


DEFAULT_RETRY = RetryPolicy(
    initial_interval=0.25,
    backoff_factor=2.0,
    max_interval=2.0,
    max_attempts=3,
    jitter=False,
    retry_on=is_transient,
)
"""Up to 3 attempts for transient failures, 0.25 s then 0.5 s apart. No jitter: LangGraph's
adds up to a whole second, too much while a user waits for the turn."""

Worker = BaseTool | Pregel[Any, Any, Any, Any]


@dataclass(frozen=True)
class Team:
    """A named unit of work the supervisor can run in parallel with others before answering.

    Args:
        name: lower-case letters, digits, '-' and '_' (at most 40); unique among the teams.
        description: what the team does, in a sentence: the planner (a real model) reads it.
        worker: a LangChain tool, or a compiled LangGraph subgraph (see the module docstring).
        keywords: words that make the offline planner choose the team when one appears in the
            message (case-insensitive, whole words).
        when: a rule for the offline planner: the team is chosen when it returns True or a
            reason (a non-empty string) for the request; with `keywords`, either one suffices.
        query: how the offline planner words the team's query; default: the user's message.
        timeout: seconds one attempt may take before it is cancelled and the team fails
            (None: no limit).
        retry: the LangGraph retry policy for failed attempts; default `DEFAULT_RETRY`
            (transient failures only); None: no retry.

    Raises:
        ConfigurationError: a field is invalid (the message says which and why).
    """

    name: str
    description: str
    worker: Worker
    _: KW_ONLY
    keywords: Sequence[str] = ()
    when: Callable[[TeamRequest], bool | str] | None = None
    query: Callable[[TeamRequest], str] | None = None
    timeout: float | None = 30.0
    retry: RetryPolicy | None = DEFAULT_RETRY
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _query_arg: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigurationError(
                f"team name {self.name!r} is invalid: use 1-40 lower-case letters, digits, '-' "
                "or '_', starting with a letter"
            )
        if self.name in _RESERVED:
            raise ConfigurationError(f"team name {self.name!r} is reserved; choose another")
        if not isinstance(self.description, str) or not self.description.strip():
            raise ConfigurationError(f"team {self.name!r} needs a description")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigurationError(f"team {self.name!r}: timeout must be positive or None")
        words = (self.keywords,) if isinstance(self.keywords, str) else tuple(self.keywords)
        pattern = (
            re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
            if words
            else None
        )
        object.__setattr__(self, "keywords", words)
        object.__setattr__(self, "_pattern", pattern)
        if isinstance(self.worker, BaseTool):
            object.__setattr__(self, "_query_arg", _query_argument(self.name, self.worker))
        elif isinstance(self.worker, Pregel):
            if isinstance(self.worker.checkpointer, BaseCheckpointSaver):
                raise ConfigurationError(
                    f"team {self.name!r}: compile its subgraph without a checkpointer; it uses "
                    "the supervisor's"
                )
            object.__setattr__(self, "_query_arg", None)
        else:
            raise ConfigurationError(
                f"team {self.name!r}: the worker must be a LangChain tool or a compiled "
                f"LangGraph graph, not {type(self.worker).__name__}"
            )

    @classmethod
    def from_tool(cls, tool: BaseTool, **options: Any) -> Team:
        """A team named and described by its tool (`options` as for `Team`)."""
        return cls(tool.name, tool.description, tool, **options)

    @property
    def node(self) -> str:
        """The name of the team's node in the supervisor graph."""
        return node_name(self.name)

    def wanted(self, request: TeamRequest) -> str | None:
        """Why the offline rules choose this team for the request (None: they do not)."""
        if self._pattern is not None and (found := self._pattern.search(request["message"])):
            return f'the message mentions "{found.group(0)}"'
        verdict = self.when(request) if self.when is not None else False
        if isinstance(verdict, str) and verdict.strip():
            return verdict.strip()
        return f"its rule matched: {self.description}" if verdict is True else None

    def offline_query(self, request: TeamRequest) -> str:
        """The query the offline rules give the team."""
        return (self.query(request) if self.query else "").strip() or request["message"]

    async def run(
        self, request: TeamRequest, *, store: BaseStore | None, thread_id: str | None
    ) -> Any:
        """Call the worker with the request; return what it produced."""
        if isinstance(self.worker, BaseTool):
            return await self.worker.ainvoke(self._tool_input(request, store, thread_id))
        output = await self.worker.ainvoke(dict(request))
        return result_of(output)

    def _tool_input(
        self, request: TeamRequest, store: BaseStore | None, thread_id: str | None
    ) -> dict[str, Any]:
        available: dict[str, Any] = {**request, "store": store, "thread_id": thread_id}
        args: dict[str, Any] = {}
        for name in _fields(self.worker.get_input_schema())[0]:
            if name == self._query_arg:
                args[name] = request["query"]
            elif name in available:
                args[name] = available[name]
        return args


def node_name(team: str) -> str:
    """The supervisor graph's node that runs the team named `team`."""
    return f"team_{team}"


def result_of(output: Any) -> Any:
    """A subgraph's result: its `result`, else its last message's text, else its output."""
    if isinstance(output, dict):
        if "result" in output:
            return output["result"]
        messages = output.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[-1], BaseMessage):
            return message_text(messages[-1])
    return output


_INJECTABLE = frozenset({*TeamRequest.__annotations__, "store", "thread_id"})


def _fields(schema: Any) -> tuple[list[str], list[str]]:
    """(all argument names, required ones) of a tool schema (pydantic model or JSON schema)."""
    if isinstance(schema, dict):
        props = list(schema.get("properties", {}))
        return props, [p for p in schema.get("required", []) if p in props]
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        fields = schema.model_fields
        return list(fields), [n for n, f in fields.items() if f.is_required()]
    return [], []


def _query_argument(team: str, tool: BaseTool) -> str | None:
    """The one model-visible argument that receives the query (None: the tool takes none)."""
    visible, required = _fields(tool.tool_call_schema)
    hidden = [n for n in _fields(tool.get_input_schema())[0] if n not in visible]
    unknown = [n for n in hidden if n not in _INJECTABLE]
    if unknown:
        raise ConfigurationError(
            f"team {team!r}: tool {tool.name!r} has injected argument(s) {unknown} that the "
            f"supervisor cannot fill; it fills {sorted(_INJECTABLE)}"
        )
    if len(required) > 1:
        raise ConfigurationError(
            f"team {team!r}: tool {tool.name!r} must take one argument (the query), plus "
            f"injected ones; it requires {required}"
        )
    if required:
        return required[0]
    if "query" in visible:
        return "query"
    return visible[0] if len(visible) == 1 else None


def validate_teams(teams: Sequence[Team]) -> tuple[Team, ...]:
    """The teams as a tuple, refusing anything that is not a `Team` and duplicate names."""
    seen: set[str] = set()
    for team in teams:
        if not isinstance(team, Team):
            raise ConfigurationError(
                f"teams must be Team objects, not {type(team).__name__}: wrap a tool or a "
                "compiled graph in Team(name, description, worker)"
            )
        if team.name in seen:
            raise ConfigurationError(f"two teams are named {team.name!r}")
        seen.add(team.name)
    return tuple(teams)


def failure_reason(error: BaseException) -> str:
    """A readable, one-line reason for a team's failure."""
    if isinstance(error, NodeTimeoutError):
        return f"timed out after {error.timeout:g} s"
    text = " ".join(str(error).split())
    reason = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return reason if len(reason) <= 300 else reason[:299] + "…"
