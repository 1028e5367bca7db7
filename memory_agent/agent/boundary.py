"""The agent's boundary: what every run of `open_agent()`'s graph goes through.

`GuardedAgent` is the compiled supervisor graph with one addition around each run
(`ainvoke`, `astream`, `astream_events` all pass through `astream`):
1. the input and config are validated before anything is stored (`validation`), secret-
   looking config keys are refused (`secrets`), and a turn on another user's thread is refused
   before its message enters that thread's history (the initialize node checks it again);
2. the run holds its thread exclusively, and its user shared (`locks`): concurrent turns on one
   thread run one after another, in arrival order within a process, and a turn that cannot get
   its thread within the lock timeout fails with `ThreadBusyError` having stored nothing;
3. PostgreSQL errors surface as `DatabaseUnavailableError` naming the database. The thread keeps
   its last checkpoint, so once the database is back, `ainvoke(None, config)` (or
   `resume_turn`) finishes the turn; memory writes are keyed, so nothing is written twice;
4. a new turn on a thread whose last turn was cut off first finishes that turn: with LangGraph's
   default "async" durability the checkpoints of a turn's last steps may not be stored when a
   process dies, and a new input would otherwise discard the committed but unanswered message.

Programs get it from `open_agent()`; the LangGraph server gets it too (`server.graph`), with
the locks of its checkpointer, so its runs take part in the same per-thread and per-user
coordination as programs and the CLI (they share one database). The nodes establish the
identity again where memory is touched (`identity.acting_user`): the boundary refuses what it
can before anything is stored, the nodes refuse whatever still gets through.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from langchain_core.runnables import RunnableConfig

# LangGraph 1.x keeps the keys of its own subgraph calls private; import them from
# `langgraph.constants` if it exports them again (if they move, this import fails at once).
from langgraph._internal._constants import CONFIG_KEY_CHECKPOINT_NS, CONFIG_KEY_SEND
from langgraph.types import StateSnapshot, StateUpdate
from psycopg_pool import AsyncConnectionPool

from memory_agent.context import AgentContext, client_context, resolve_context
from memory_agent.errors import (
    ConfigurationError,
    InvalidInputError,
    ThreadOwnershipError,
    database_error,
    database_errors,
)
from memory_agent.graph import Agent
from memory_agent.identity import authenticated_user, claimed_user, not_theirs
from memory_agent.models import check_models
from memory_agent.persistence.locks import ThreadLocks
from memory_agent.secrets import refuse_secret_keys
from memory_agent.validation import thread_id_from, validate_messages, validate_turn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Guard:
    """What a `GuardedAgent` needs: the locks and how to name the database in errors."""

    locks: ThreadLocks
    database: str
    """The database as named in error messages (no password)."""
    pool: AsyncConnectionPool[Any]
    """The agent's connection pool (for the cheap look at a thread's latest checkpoint)."""


UPDATABLE_KEYS = frozenset({"messages", "summary", "title"})
"""State keys `update_state` may change. Identity (`user_id`, `thread_owner`) and a turn's
bookkeeping are the graph's own; an edit of them would let a later run act as someone else or
skip a check."""


class GuardedAgent(Agent):
    """The supervisor graph, compiled with persistence, behind the run boundary above.

    Args:
        guard: the locks and database of the process; None: taken from the checkpointer when
            it carries one (the server's), else no boundary (a graph without persistence).
        client_context: when set, a run's context comes from an untrusted client (the server):
            it may only tighten these settings (see `context.client_context`).
    """

    def __init__(
        self,
        *,
        guard: Guard | None = None,
        client_context: AgentContext | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.guard = guard
        self.client_context = client_context

    @property
    def boundary(self) -> Guard | None:
        """The guard of this agent's runs (its own, else its checkpointer's), if any."""
        if self.guard is not None:
            return self.guard
        provided = getattr(self.checkpointer, "guard", None)
        return provided if isinstance(provided, Guard) else None

    def _context(self, context: Any) -> AgentContext:
        if self.client_context is not None:
            return client_context(context, self.client_context)
        return resolve_context(context)

    async def abulk_update_state(
        self, config: RunnableConfig, supersteps: Sequence[Sequence[StateUpdate]]
    ) -> RunnableConfig:
        """`bulk_update_state`, and so `update_state` (LangGraph's calls this one) and the
        server's thread creation with `supersteps`: only `UPDATABLE_KEYS` may change, and
        messages must pass the input checks."""
        if self.boundary is not None and not _nested(config):
            thread_id_from(config)
            for superstep in supersteps:
                for update in superstep:
                    values = update.values
                    for one in values if isinstance(values, list | tuple) else [values]:
                        _check_update(one)
        return await super().abulk_update_state(config, supersteps)

    async def astream(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        context: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        guard = self.boundary
        if guard is None or _nested(config):
            async for part in super().astream(input, config, context=context, **kwargs):
                yield part
            return
        ctx = self._context(context)
        thread_id = thread_id_from(config)
        refuse_secret_keys(config)
        # The canonical id (a UUID or int becomes its string) is what every layer then sees.
        given: RunnableConfig = config or {}
        config = {
            **given,
            "configurable": {**given.get("configurable", {}), "thread_id": thread_id},
        }
        turn: Any = validate_turn(input, ctx)
        check_models(ctx)  # no provider package or credentials: refused before it is stored
        user_id = await self._user_of(turn, config)
        try:
            async with guard.locks.hold(thread_id, user_id):
                latest = await self._latest(thread_id)
                # Before anything runs: the intruder's message never enters the thread's
                # history, and nobody finishes (or learns the state of) another user's turn.
                latest.check_owner(user_id)
                if turn is None:
                    if not latest.cut_off:
                        raise InvalidInputError(
                            f"nothing to resume on thread {thread_id!r}: its last turn is "
                            "complete (or it has none); send a message instead"
                        )
                elif latest.cut_off:
                    # Its input is committed: running the new turn first would drop it.
                    logger.warning("thread %r: finishing the turn that was cut off", thread_id)
                    await super().ainvoke(None, config, context=ctx)
                async for part in super().astream(turn, config, context=ctx, **kwargs):
                    yield part
        except psycopg.Error as exc:
            raise database_error(
                exc,
                f"running a turn on thread {thread_id!r}",
                database=guard.database,
                refusals=True,
                after="the thread keeps its last checkpoint",
                retry="Once the database is back, ainvoke(None, config) finishes the turn",
            ) from exc

    async def aget_state(self, config: RunnableConfig, *, subgraphs: bool = False) -> StateSnapshot:
        if self.boundary is not None and not _nested(config):
            thread_id_from(config)  # a thread id PostgreSQL cannot hold is an input error
        guard = self.boundary
        with database_errors(
            "reading the thread's state", database=guard.database if guard else None
        ):
            return await super().aget_state(config, subgraphs=subgraphs)

    async def _latest(self, thread_id: str) -> LatestTurn:
        guard = self.boundary
        assert guard is not None
        return await latest_turn(guard.pool, thread_id)

    async def cut_off(self, config: RunnableConfig) -> bool:
        """Whether the thread's last turn was cut off (see `cut_off`), from its checkpoint rows."""
        guard = self.boundary
        if guard is None:
            return await cut_off(self, config)
        with database_errors("reading the thread's last turn", database=guard.database):
            return (await self._latest(thread_id_from(config))).cut_off

    async def _user_of(self, turn: dict[str, Any] | None, config: RunnableConfig | None) -> Any:
        """The user a run acts for (for the shared user lock), None when anonymous."""
        if turn is not None:
            return claimed_user(turn["user_id"], config)
        auth = authenticated_user(config)
        if auth is not None:
            return auth
        state = await self.aget_state(config or {})
        return state.values.get("user_id")

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        """Refused: this agent's checkpointer and locks are async; use `astream`/`ainvoke`."""
        if self.boundary is None:
            return super().stream(*args, **kwargs)
        raise ConfigurationError(
            "the agent from open_agent() is asynchronous: use ainvoke/astream inside "
            "'async with open_agent() as agent'"
        )


def _nested(config: RunnableConfig | None) -> bool:
    """Whether this run is a subgraph of another run (the parent already holds the thread).

    Only LangGraph itself can say so: it hands a subgraph its parent task's send function. A
    `checkpoint_ns` string alone is something any caller can write into a config.
    """
    configurable = (config or {}).get("configurable") or {}
    return bool(configurable.get(CONFIG_KEY_CHECKPOINT_NS)) and callable(
        configurable.get(CONFIG_KEY_SEND)
    )


def _check_update(update: Any) -> None:
    """Refuse a `update_state` value that touches what only the graph may write."""
    if update is None:
        return
    if not isinstance(update, Mapping):
        raise InvalidInputError(
            f"update_state takes a dict of state keys, not {type(update).__name__}"
        )
    refused = sorted(str(k) for k in update if k not in UPDATABLE_KEYS)
    if refused:
        raise InvalidInputError(
            f"update_state may not change {refused}: only {sorted(UPDATABLE_KEYS)} can be "
            "edited (identity and turn bookkeeping belong to the graph)"
        )
    if "messages" in update:
        validate_messages(update["messages"])
    for key in ("summary", "title"):
        if key in update and not isinstance(update[key], str):
            raise InvalidInputError(f"{key} must be a string")


def guard_agent(
    agent: Agent,
    guard: Guard | None,
    *,
    cls: type[GuardedAgent] = GuardedAgent,
    client_context: AgentContext | None = None,
) -> GuardedAgent:
    """`agent` (a compiled supervisor graph) behind the run boundary (an instance of `cls`)."""
    attrs = {k: v for k, v in agent.__dict__.items() if k != "__orig_class__"}
    return cls(guard=guard, client_context=client_context, **attrs)


LATEST_CHECKPOINTS = """
SELECT metadata ->> 'source' AS source,
       checkpoint -> 'channel_values' ->> 'status' AS status,
       checkpoint -> 'channel_values' ->> 'thread_owner' AS owner,
       checkpoint -> 'channel_values' ->> 'user_id' AS claimed,
       coalesce((checkpoint -> 'channel_values' ->> 'turn_count')::int, 0) AS turns
FROM checkpoints
WHERE thread_id = %s AND checkpoint_ns = ''
ORDER BY checkpoint_id DESC
LIMIT 2
"""
"""A thread's two latest checkpoints, read from the primitive channels the checkpointer keeps
inline in the checkpoint document: enough to tell a finished turn from a cut-off one without
loading and replaying the state (which cost about a tenth of the throughput under load)."""


@dataclass(frozen=True)
class LatestTurn:
    """What the boundary needs to know of a thread before a turn."""

    cut_off: bool
    owner: str | None
    turns: int
    claimed: str | None = None
    """The `user_id` of the latest checkpoint (a first turn's input, before initialize)."""

    @classmethod
    def of(cls, rows: list[Any]) -> LatestTurn:
        """From the rows of `LATEST_CHECKPOINTS`.

        A turn's checkpoints go: the input (source "input"), `__start__` (the input applied,
        `status` still the previous turn's), then the nodes' (initialize sets "running" or
        "rejected", response sets "completed"). So the last turn finished, or was refused,
        exactly when the latest checkpoint is a node's with status "completed" or "rejected"
        and does not directly follow an input checkpoint. Superseded checkpoints are pruned
        only when an input checkpoint is saved, so that one is still there to tell.
        """
        if not rows:
            return cls(cut_off=False, owner=None, turns=0, claimed=None)
        latest = rows[0]
        after_input = len(rows) > 1 and rows[1]["source"] == "input"
        cut = (
            latest["source"] == "input"
            or latest["status"] not in ("completed", "rejected")
            or after_input
        )
        return cls(
            cut_off=cut,
            owner=latest["owner"],
            turns=int(latest["turns"]),
            claimed=latest["claimed"],
        )

    def problem_for(self, user_id: str | None) -> str | None:
        """`identity.not_theirs` of the thread for `user_id`."""
        values = {"thread_owner": self.owner, "turn_count": self.turns, "user_id": self.claimed}
        return not_theirs(values, user_id)

    def check_owner(self, user_id: str | None) -> None:
        """`problem_for`, raised, before anything runs on the thread."""
        if problem := self.problem_for(user_id):
            raise ThreadOwnershipError(problem)


async def latest_turn(pool: AsyncConnectionPool[Any], thread_id: str) -> LatestTurn:
    """`LatestTurn` of `thread_id`, read with one query on `pool`."""
    async with pool.connection() as conn:
        cur = await conn.execute(LATEST_CHECKPOINTS, (thread_id,))
        return LatestTurn.of(await cur.fetchall())


async def cut_off(agent: Agent, config: RunnableConfig) -> bool:
    """Whether the thread's last turn was cut off (a crash, a database failure) before its end.

    Such a turn's input is committed and it still has steps to run (anything from `__start__`
    to `response`). A refused turn is not cut off: it failed on purpose.
    """
    if isinstance(agent, GuardedAgent) and agent.guard is not None:
        return await agent.cut_off(config)
    state = await agent.aget_state(config)
    return bool(state.tasks) and not any(t.name == "reject" for t in state.tasks)


_ANYONE: Any = object()


async def resume_turn(
    agent: Agent,
    config: RunnableConfig,
    *,
    context: AgentContext | None = None,
    user_id: str | None = _ANYONE,
) -> dict[str, Any] | None:
    """Finish the thread's turn if one was cut off (crash, database failure); else do nothing.

    Returns the turn's output when one was resumed, None when there was nothing to resume. A
    refused turn is not resumed (it already failed on purpose). With `user_id` (None: an
    anonymous caller), a thread that is not theirs is refused before anything runs.

    Raises:
        ThreadOwnershipError: `user_id` was given and the thread is not theirs.
    """
    if user_id is not _ANYONE:
        if isinstance(agent, GuardedAgent) and agent.boundary is not None:
            latest = await agent._latest(thread_id_from(config))
            latest.check_owner(user_id)
        elif problem := not_theirs((await agent.aget_state(config)).values, user_id):
            raise ThreadOwnershipError(problem)
    if not await cut_off(agent, config):
        return None
    out: dict[str, Any] = await agent.ainvoke(None, config, context=context)
    return out
