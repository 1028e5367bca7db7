"""The built-in teams, useful with no API key: `memory` (a tool) and `history` (a subgraph).

- `memory` searches the user's long-term memory (facts, preferences, entities) with a query of
  its own, for questions about what the user told before; it reports only what planning did
  not already load.
- `history` looks through the user's past conversations (the per-thread summaries) for the
  ones the question is about, or the most recent ones when it names nothing in particular.
  It is a two-node LangGraph subgraph (load, then pick), to show the subgraph form of a team.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypedDict

from langchain_core.tools import InjectedToolArg, tool
from langgraph.graph import START, StateGraph
from langgraph.pregel import Pregel
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore

from memory_agent.context import thread_id_of
from memory_agent.errors import ConfigurationError
from memory_agent.memory.service import Conversation, MemoryService
from memory_agent.teams.base import Team, TeamRequest

MEMORY_RESULTS = 8
"""Memories the memory team looks at per query."""
HISTORY_SCAN = 50
"""Most recent conversations the history team looks through."""
HISTORY_RESULTS = 3
"""Conversations the history team reports."""
_SUMMARY_CHARS = 400
_NO_STORE = "the {team} team needs a store: compile with build_graph(store=...)"

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_SCAFFOLD = frozenset(
    """a about again all also am an and any anything are as at be been before but by can could
    did do does don't earlier else ever for from had has have how i i'd i'm if in is it it's
    just know last let's me mention mentioned my myself of on or our please previous previously
    recall remember remind said say so some something tell than that that's the their them then
    there these they this time to told us was we were what what's when where which who whom why
    will with would you your talk talked talking discuss discussed chat chatted spoke speak
    conversation conversations""".split()
)
_HISTORY = re.compile(
    r"\b(we|us|our)\b[^.?!]*\b(talk(ed)?|discuss(ed)?|chat(ted)?|spoke|conversations?)\b|"
    r"\blast time\b|"
    r"\b(previous|earlier|past|other|last|older) (conversations?|chats?|sessions?|threads?)\b",
    re.IGNORECASE,
)


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _SCAFFOLD and len(w) > 1]


def content_words(text: str) -> set[str]:
    """The words of `text` that say what it is about (question scaffolding removed)."""
    return set(_words(text))


def _memory_query(request: TeamRequest) -> str:
    return " ".join(dict.fromkeys(_words(request["message"])))


def _asks_about_the_past(request: TeamRequest) -> str | bool:
    if request["user_id"] is None or request["intent"] != "recall":
        return False
    return "the user asks about what they told before"


def _asks_about_conversations(request: TeamRequest) -> str | bool:
    if request["user_id"] is None or not _HISTORY.search(request["message"]):
        return False
    return "the user asks about earlier conversations"


@tool("memory")
async def search_memory(
    query: str,
    user_id: Annotated[str | None, InjectedToolArg],
    memories: Annotated[list[dict[str, Any]], InjectedToolArg],
    store: Annotated[BaseStore | None, InjectedToolArg],
) -> list[str]:
    """Search the user's long-term memory (facts, preferences, entities) for the query."""
    if user_id is None:
        return []
    if store is None:
        raise ConfigurationError(_NO_STORE.format(team="memory"))
    found = await MemoryService(store).recall(
        user_id, query, {"conversations": 0, "memories": MEMORY_RESULTS}
    )
    known = {m.get("key") for m in memories}
    return [r["text"] for r in found if r.get("key") not in known and r.get("text")]


class HistoryState(TypedDict, total=False):
    """The history subgraph's state (its input keys come from the `TeamRequest`)."""

    query: str
    user_id: str | None
    conversations: list[Conversation]
    """The user's other conversations, most recent first."""
    result: list[str]
    """One line per conversation reported."""


async def _load(state: HistoryState, runtime: Runtime[Any]) -> dict[str, Any]:
    user_id = state.get("user_id")
    if user_id is None:
        return {"conversations": []}
    if runtime.store is None:
        raise ConfigurationError(_NO_STORE.format(team="history"))
    convs = await MemoryService(runtime.store).list_conversations(user_id, limit=HISTORY_SCAN)
    here = thread_id_of(runtime)
    return {"conversations": [c for c in convs if c["thread_id"] != here]}


def _pick(state: HistoryState) -> dict[str, Any]:
    convs = state.get("conversations", [])
    wanted = content_words(state.get("query", ""))
    overlap = [
        len(wanted & content_words(f"{c['title']} {c['summary']} {c['last_message']}"))
        for c in convs
    ]
    ranked = sorted((i for i in range(len(convs)) if overlap[i]), key=lambda i: (-overlap[i], i))
    chosen = ranked[:HISTORY_RESULTS] or list(range(min(HISTORY_RESULTS, len(convs))))
    return {"result": [_line(convs[i], latest=i == 0) for i in chosen]}


def _line(conv: Conversation, *, latest: bool) -> str:
    when = conv["updated_at"][:10]
    summary = " ".join(conv["summary"].split())
    if len(summary) > _SUMMARY_CHARS:
        summary = summary[: _SUMMARY_CHARS - 1] + "…"
    lead = f"Last time, on {when}," if latest else f"On {when}"
    return f'{lead} we talked about "{conv["title"]}": {summary}'.rstrip(": ")


def history_graph() -> Pregel[Any, Any, Any, Any]:
    """The history team's subgraph: load the user's conversations, pick the relevant ones."""
    builder = StateGraph(HistoryState)
    builder.add_node("load", _load)
    builder.add_node("pick", _pick)
    builder.add_edge(START, "load")
    builder.add_edge("load", "pick")
    # A quick read-only lookup: no checkpoints of its own (a retry simply runs it again).
    return builder.compile(checkpointer=False, name="history")


def memory_team() -> Team:
    """The `memory` team (a tool)."""
    return Team(
        "memory",
        "Searches the user's long-term memory (facts, preferences, people and things in their "
        "life) for what the question is about. Use it for questions about what the user told "
        "before.",
        search_memory,
        when=_asks_about_the_past,
        query=_memory_query,
        timeout=10.0,
    )


def history_team() -> Team:
    """The `history` team (a subgraph)."""
    return Team(
        "history",
        "Looks through the user's past conversations (their titles and summaries) and reports "
        "the ones the question is about, or the most recent ones. Use it when the user asks "
        "what was discussed before.",
        history_graph(),
        when=_asks_about_conversations,
        timeout=10.0,
    )


def default_teams() -> tuple[Team, ...]:
    """The teams a graph gets when none are given: `memory` and `history`."""
    return (memory_team(), history_team())
