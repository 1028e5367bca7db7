"""What happened in a thread: per turn, its time, intent, memories, teams and what was saved.

The response node appends one `TurnEntry` per completed turn to the thread's `turn_log` (the
last `TURN_LOG_TURNS` are kept); memories are kept there by reference, and `thread_report`
resolves them against the store when the report is asked for. A thread written before the log
existed has only its latest turn's fields: its report holds that one turn, marked `partial`.

Used by `memory-agent threads show ID` and by the `/me/threads/{id}/report` route (the web
page's "what happened" view).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.store.base import BaseStore, GetOp, Item

from memory_agent.memory.records import MemoryRecord
from memory_agent.persistence.namespaces import Kind, user_namespace
from memory_agent.state import SupervisorState, TeamRun, TurnEntry, TurnSaved
from memory_agent.utils import message_text

QUESTION_CHARS = 120
"""How much of the user's message a turn entry keeps."""
_NAMESPACE: dict[str, Kind] = {
    "conversation": "conversations",
    "fact": "facts",
    "preference": "preferences",
    "entity": "entities",
    "episode": "episodes",
}


class LoadedMemory(TypedDict):
    """A memory loaded for a turn, with its text as the store holds it now."""

    kind: str
    key: str
    text: str
    """Its current text ("" when it has since been deleted)."""
    found: bool
    """Whether the store still holds it."""


class TurnMemories(TypedDict):
    load_ms: float | None
    counts: dict[str, int]
    items: list[LoadedMemory]


class TurnReport(TypedDict):
    """One turn of a thread report."""

    turn: int | None
    started_at: str | None
    ms: float | None
    question: str
    message_id: str | None
    answer_id: str | None
    intent: str | None
    reason: str
    memories: TurnMemories
    teams: list[TeamRun]
    saved: TurnSaved | None
    partial: bool
    """Rebuilt from the latest turn's fields (a thread older than the turn log)."""


class ThreadReport(TypedDict):
    """What happened in a thread (see `thread_report`)."""

    thread_id: str
    title: str
    owner: str | None
    created_at: str | None
    turn_count: int
    message_count: int
    earlier_turns: int
    """Completed turns no longer in the log (it keeps the last `TURN_LOG_TURNS`)."""
    turns: list[TurnReport]
    status: NotRequired[str | None]


def turn_entry(
    state: SupervisorState, *, answer_id: str | None, saved: TurnSaved, now: float
) -> TurnEntry:
    """The log entry of the turn `state` is finishing (called by the response node)."""
    plan = state.get("plan", {})
    started = state.get("start_time") or now
    turn_ids = set(state.get("turn_messages", []))
    said = [m for m in state.get("messages", []) if m.id in turn_ids]
    return {
        "turn": state.get("turn_count", 0) + 1,
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        "ms": round((now - started) * 1000, 3),
        "question": _question(said),
        "message_id": said[-1].id if said else None,
        "answer_id": answer_id,
        "intent": state.get("intent", plan.get("intent", "question")),
        "reason": plan.get("reason", ""),
        "load_ms": state.get("memory_load_time", 0.0),
        "loaded": loaded_refs(state.get("loaded_memories", [])),
        "teams": _teams(state),
        "saved": saved,
    }


def _question(said: Sequence[AnyMessage]) -> str:
    return message_text(said[-1])[:QUESTION_CHARS] if said else ""


def _teams(state: Mapping[str, Any]) -> list[TeamRun]:
    """The turn's team outcomes; failures recorded without a run (resumed turns) included."""
    runs: list[TeamRun] = list(state.get("team_runs") or [])
    seen = {r["team"] for r in runs}
    log = list(state.get("error_log") or [])
    for name in state.get("failed_teams") or []:
        if name not in seen:
            prefix = f"team {name}: "
            error = next((e[len(prefix) :] for e in log if e.startswith(prefix)), "failed")
            runs.append({"team": name, "ok": False, "ms": None, "error": error})
    for name in state.get("completed_teams") or []:
        if name not in seen:
            runs.append({"team": name, "ok": True, "ms": None, "error": None})
    return runs


def entries_of(values: Mapping[str, Any]) -> tuple[list[TurnEntry], bool]:
    """The turn entries a thread's state holds, and whether they were rebuilt (partial)."""
    log = list(values.get("turn_log") or [])
    if log or not values.get("turn_count"):
        return log, False
    if values.get("status") != "completed":
        return [], False
    plan = values.get("plan") or {}
    entry: TurnEntry = {
        "turn": int(values["turn_count"]),
        "intent": values.get("intent", plan.get("intent")),
        "reason": plan.get("reason", ""),
        "load_ms": values.get("memory_load_time", 0.0),
        "loaded": loaded_refs(values.get("loaded_memories") or []),
        "teams": _teams(values),
        "answer_id": values.get("last_message_id"),
    }
    if isinstance(values.get("start_time"), int | float):
        entry["started_at"] = datetime.fromtimestamp(values["start_time"], UTC).isoformat()
    return [entry], True


async def thread_report(
    thread_id: str, values: Mapping[str, Any], store: BaseStore | None
) -> ThreadReport:
    """What happened in a thread, from its state `values` and (for memory texts) the store.

    The loaded memories' texts are read in one batch; a memory deleted since is listed with
    `found` false, or with the text the latest turn loaded when it is that turn's.
    """
    entries, partial = entries_of(values)
    owner = values.get("thread_owner")
    texts = await _texts(store, owner, entries) if owner else {}
    recent: dict[tuple[str, str], str] = {
        (str(m.get("kind")), str(m.get("key"))): str(m.get("text", ""))
        for m in values.get("loaded_memories") or []
    }
    last_answer = values.get("last_message_id")
    turns: list[TurnReport] = []
    for entry in entries:
        items: list[LoadedMemory] = []
        counts: dict[str, int] = {}
        latest = entry.get("answer_id") == last_answer
        for ref in entry.get("loaded", []):
            kind, _, key = ref.partition(":")
            counts[kind] = counts.get(kind, 0) + 1
            text = texts.get((kind, key))
            if text is None and latest:
                text = recent.get((kind, key))
            items.append({"kind": kind, "key": key, "text": text or "", "found": text is not None})
        turns.append(
            {
                "turn": entry.get("turn"),
                "started_at": entry.get("started_at"),
                "ms": entry.get("ms"),
                "question": entry.get("question", ""),
                "message_id": entry.get("message_id"),
                "answer_id": entry.get("answer_id"),
                "intent": entry.get("intent"),
                "reason": entry.get("reason", ""),
                "memories": {"load_ms": entry.get("load_ms"), "counts": counts, "items": items},
                "teams": list(entry.get("teams", [])),
                "saved": entry.get("saved"),
                "partial": partial,
            }
        )
    turn_count = int(values.get("turn_count") or 0)
    return {
        "thread_id": thread_id,
        "title": str(values.get("title") or ""),
        "owner": owner,
        "created_at": values.get("created_at"),
        "turn_count": turn_count,
        "message_count": int(values.get("message_count") or 0),
        "earlier_turns": max(0, turn_count - len(turns)),
        "turns": turns,
        "status": values.get("status"),
    }


async def _texts(
    store: BaseStore | None, owner: str, entries: Sequence[TurnEntry]
) -> dict[tuple[str, str], str]:
    if store is None:
        return {}
    pairs = (ref.partition(":") for e in entries for ref in e.get("loaded", []))
    refs = list(dict.fromkeys((kind, key) for kind, _, key in pairs if kind in _NAMESPACE))
    if not refs:
        return {}
    ops = [GetOp(user_namespace(owner, _NAMESPACE[kind]), key) for kind, key in refs]
    found = await store.abatch(ops)
    out: dict[tuple[str, str], str] = {}
    for ref, item in zip(refs, found, strict=True):
        if isinstance(item, Item):
            out[ref] = _text_of(ref[0], item.value)
    return out


def _text_of(kind: str, value: Mapping[str, Any]) -> str:
    if kind == "conversation":
        return f'Earlier conversation "{value.get("title", "")}": {value.get("summary", "")}'
    return str(value.get("text", ""))


def report_lines(report: ThreadReport) -> list[str]:
    """The report as text (the CLI's `threads show`)."""
    owner = report["owner"] or "anonymous"
    lines = [
        f"thread {report['thread_id']}  {report['title']!r}  owner {owner}  "
        f"{report['turn_count']} turn(s), {report['message_count']} message(s)"
    ]
    if report["earlier_turns"]:
        lines.append(f"  ({report['earlier_turns']} earlier turn(s) no longer logged)")
    if not report["turns"]:
        lines.append("  no completed turn")
    for turn in report["turns"]:
        lines.extend(_turn_lines(turn))
    return lines


def _turn_lines(turn: TurnReport) -> list[str]:
    when = (turn["started_at"] or "")[:19].replace("T", " ") or "time unknown"
    took = f"  {turn['ms']:.0f} ms" if turn["ms"] is not None else ""
    partial = "  (partial: rebuilt from the latest state)" if turn["partial"] else ""
    lines = [f"turn {turn['turn']}  {when}{took}  intent {turn['intent'] or '?'}{partial}"]
    if turn["question"]:
        lines.append(f"  asked: {turn['question']}")
    if turn["reason"]:
        lines.append(f"  why: {turn['reason']}")
    mem = turn["memories"]
    counts = ", ".join(f"{k} {v}" for k, v in mem["counts"].items()) or "nothing"
    load = f" in {mem['load_ms']:.1f} ms" if isinstance(mem["load_ms"], int | float) else ""
    lines.append(f"  memory: loaded {len(mem['items'])} ({counts}){load}")
    for item in mem["items"]:
        text = item["text"] if item["found"] else "(no longer stored)"
        lines.append(f"    [{item['kind']}] {text[:120]}")
    for run in turn["teams"]:
        took = f" in {run['ms']:.0f} ms" if isinstance(run["ms"], int | float) else ""
        outcome = "done" if run["ok"] else f"failed ({run['error']})"
        lines.append(f"  team {run['team']}: {outcome}{took}")
    if not turn["teams"]:
        lines.append("  teams: none")
    lines.append(f"  saved: {saved_text(turn['saved'])}")
    return lines


def saved_text(saved: TurnSaved | None) -> str:
    """One line on what a turn wrote."""
    if saved is None:
        return "unknown"
    if saved["skipped"]:
        return f"nothing ({saved['skipped']})"
    parts = ["conversation"] if saved["conversation"] else []
    if saved["memories"]:
        parts.append(f"{len(saved['memories'])} memory(ies)")
    if saved["episodes"]:
        parts.append(f"{saved['episodes']} episode(s)")
    return ", ".join(parts) or "nothing new"


def loaded_refs(records: Sequence[MemoryRecord]) -> list[str]:
    """References of loaded memory records, "<kind>:<key>" (what `turn_log` keeps of them)."""
    return [f"{r['kind']}:{r['key']}" for r in records if "kind" in r and "key" in r]
