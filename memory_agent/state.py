"""The graph's state: a narrow input, the full supervisor state, and the output.

`InputState` is what the outside world sends (the LangGraph server's chat UI included):
messages and an optional `user_id`. `SupervisorState` is everything a turn keeps; the fields
marked "per turn" are reset by the initialize node at the start of every turn.

The team accounting fields are written by teams running in parallel, so they have reducers
(lists append, results merge by team name); initialize resets them with LangGraph's
`Overwrite`, which bypasses the reducer (see `reset_team_accounting`).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from langgraph.types import Overwrite

from memory_agent.memory.records import MemoryBudget, MemoryRecord

Intent = Literal["greeting", "small_talk", "recall", "question", "statement", "irrelevant"]
Status = Literal["running", "completed", "rejected"]


class TeamTask(TypedDict):
    """One team the planning node asked for, with what to do and why."""

    team: str
    query: str
    """What the team should look for: written by the model, or the message (offline rules)."""
    reason: str
    """Why this turn needs the team."""


class Plan(TypedDict, total=False):
    """What the planning node decided for this turn."""

    intent: Intent
    budget: MemoryBudget
    teams: list[str]
    """Teams to run before the response, in parallel (empty: answer directly)."""
    tasks: list[TeamTask]
    """The same teams with their queries and reasons."""
    reason: str
    """Why, in a sentence: shown in progress events and logs."""


class TeamRun(TypedDict):
    """How one team of a turn went (written by the team's node or its error handler)."""

    team: str
    ok: bool
    ms: float | None
    """Wall time from its first attempt to its outcome, retries included (None: unknown)."""
    error: str | None
    """Why it failed (None when ok)."""


class TurnSaved(TypedDict):
    """What a turn wrote to long-term memory."""

    conversation: bool
    memories: list[str]
    """Keys of the facts, preferences and entities written or updated."""
    episodes: int
    skipped: str | None
    """Why nothing was written ("anonymous", "no store"), else None."""


class TurnEntry(TypedDict, total=False):
    """One completed turn of a thread, as `turn_log` keeps it (see `memory_agent.analysis`)."""

    turn: int
    """Its number on the thread (1 for the first)."""
    started_at: str
    """ISO-8601 time the turn started."""
    ms: float
    """Wall time from initialize to the end of the response."""
    question: str
    """The start of the user's message."""
    message_id: str | None
    answer_id: str | None
    intent: Intent
    reason: str
    load_ms: float
    loaded: list[str]
    """The memories loaded, by reference: "<kind>:<key>" (their texts stay in the store)."""
    teams: list[TeamRun]
    saved: TurnSaved


TURN_LOG_TURNS = 20
"""Completed turns `turn_log` keeps (older ones drop out). The log is rewritten with each turn's
checkpoint, so it is kept short and its entries compact (see the README for its size)."""


def append_turns(left: list[TurnEntry], right: list[TurnEntry]) -> list[TurnEntry]:
    """Reducer of `turn_log`: append, keep the last `TURN_LOG_TURNS`."""
    return [*left, *right][-TURN_LOG_TURNS:]


def merge_results(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    """Reducer of `team_results`: each team adds its own entry."""
    return {**left, **right}


TeamNames = Annotated[list[str], operator.add]
TeamResults = Annotated[dict[str, Any], merge_results]
ErrorLog = Annotated[list[str], operator.add]
TeamRuns = Annotated[list[TeamRun], operator.add]
TurnLog = Annotated[list[TurnEntry], append_turns]


def reset_team_accounting() -> dict[str, Any]:
    """The update that empties the per-turn team fields, bypassing their reducers."""
    return {
        "active_teams": [],
        "completed_teams": Overwrite([]),
        "failed_teams": Overwrite([]),
        "team_results": Overwrite({}),
        "error_log": Overwrite([]),
        "team_runs": Overwrite([]),
    }


class Rejection(TypedDict):
    """Why a turn was refused (by initialize; or rolled back by response, when the model or
    the database refused it in a way that would only repeat); the reject node raises the
    matching error."""

    code: Literal["invalid_input", "ownership", "model", "storage"]
    message: str


class InputState(TypedDict, total=False):
    """What a caller sends for one turn."""

    messages: Annotated[list[AnyMessage], add_messages]
    """The new message(s) of the turn; the last one must be the user's."""
    user_id: str | None
    """Who is talking. None or absent: an anonymous turn (no memory read or written). Under the
    LangGraph server with auth on, the authenticated identity wins and a different value here is
    refused."""


class OutputState(TypedDict, total=False):
    """What a turn returns."""

    messages: Annotated[list[AnyMessage], add_messages]
    user_id: str | None
    status: Status
    intent: Intent
    plan: Plan
    loaded_memories: list[MemoryRecord]
    team_results: TeamResults
    completed_teams: TeamNames
    failed_teams: TeamNames
    error_log: ErrorLog
    summary: str


class SupervisorState(InputState, total=False):
    """The full state of a thread, checkpointed after every step."""

    # --- per turn (reset by initialize) ---
    status: Status
    start_time: float
    """Wall-clock start of the turn (seconds since the epoch)."""
    intent: Intent
    plan: Plan
    active_teams: list[str]
    """Teams the plan started this turn."""
    completed_teams: TeamNames
    """Teams that finished this turn (appended as each finishes)."""
    failed_teams: TeamNames
    """Teams that raised or timed out this turn, after their retries."""
    team_results: TeamResults
    """What each completed team returned, by team name."""
    error_log: ErrorLog
    """Readable reasons of this turn's failures ("team weather: timed out after 5 s")."""
    team_runs: TeamRuns
    """How each team of this turn went: outcome, duration, reason (appended as each ends)."""
    loaded_memories: list[MemoryRecord]
    memory_load_time: float
    """Milliseconds spent loading memories in planning."""
    rejection: Rejection | None
    turn_messages: list[str]
    """Ids of the messages this turn's input added (their provenance for memories)."""

    # --- per thread ---
    thread_owner: str | None
    """The user id recorded on the first turn (None: an anonymous thread)."""
    turn_count: int
    """Completed turns on this thread."""
    message_count: int
    """Messages ever exchanged on this thread (the window keeps only the recent ones)."""
    last_message_id: str | None
    """Id of the last message of the previous turn: what comes after it is the new input."""
    summary: str
    """Running summary of the messages that left the window."""
    title: str
    """Title of the conversation (from its first message)."""
    created_at: str
    """ISO-8601 time of the first turn."""
    turn_log: TurnLog
    """The thread's last `TURN_LOG_TURNS` completed turns: what happened in each."""
