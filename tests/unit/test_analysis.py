"""What happened in a thread: the turn log the response node keeps, and the report made of it."""

from __future__ import annotations

from typing import Any

from memory_agent import MemoryService
from memory_agent.analysis import entries_of, report_lines, thread_report
from memory_agent.state import TURN_LOG_TURNS, append_turns
from tests.helpers import ask, cfg, offline_graph
from tests.unit.test_teams import Probe


def make(probe: Probe) -> Any:
    return offline_graph([probe.team("broken", fail=ValueError("bad input")), probe.team("fine")])


async def test_each_turn_is_logged_with_intent_memories_teams_and_what_was_saved() -> None:
    agent = make(Probe())
    await agent.ainvoke(ask("My favourite colour is teal."), cfg("other"))
    await agent.ainvoke(ask("Hello there!"), cfg("t1"))
    await agent.ainvoke(ask("What is my favourite colour? ask broken and fine"), cfg("t1"))

    values = (await agent.aget_state(cfg("t1"))).values
    report = await thread_report("t1", values, agent.store)

    assert report["owner"] == "u1" and report["turn_count"] == 2 and report["earlier_turns"] == 0
    first, second = report["turns"]
    assert [first["turn"], second["turn"]] == [1, 2]
    assert first["question"] == "Hello there!" and first["intent"] == "greeting"
    assert first["memories"]["items"] == [] and first["teams"] == []
    assert second["intent"] in ("question", "recall")
    assert second["started_at"] and second["ms"] is not None and second["ms"] > 0
    texts = [m["text"] for m in second["memories"]["items"] if m["found"]]
    assert any("teal" in t for t in texts), second["memories"]
    assert second["memories"]["counts"].get("preference", 0) >= 1
    teams = {t["team"]: t for t in second["teams"]}
    assert teams["fine"]["ok"] and teams["fine"]["ms"] is not None
    assert not teams["broken"]["ok"] and teams["broken"]["error"] == "ValueError: bad input"
    assert second["answer_id"] == values["messages"][-1].id
    assert second["saved"] is not None and second["saved"]["conversation"] is True
    assert not second["partial"]

    lines = report_lines(report)
    assert lines[0].startswith("thread t1  'Hello there!'  owner u1  2 turn(s)")
    assert any(line.startswith("  team broken: failed (ValueError: bad input)") for line in lines)
    assert any(line.startswith("  team fine: done in ") for line in lines)
    assert any(line.startswith("turn 2 ") and "intent" in line for line in lines)


async def test_a_deleted_memory_is_reported_as_gone_and_anonymous_turns_save_nothing() -> None:
    agent = make(Probe())
    await agent.ainvoke(ask("I live in Lima."), cfg("a"))
    await agent.ainvoke(ask("Where do I live?"), cfg("b"))
    await agent.ainvoke(ask("Where do I live again?"), cfg("b"))
    service = MemoryService(agent.store)
    for memory in await service.list_memories("u1"):
        await service.delete_memory("u1", memory["key"])

    values = (await agent.aget_state(cfg("b"))).values
    report = await thread_report("b", values, agent.store)
    first = report["turns"][0]  # not the latest turn: nothing to fall back on
    facts = [m for m in first["memories"]["items"] if m["kind"] == "fact"]
    assert facts and all(not m["found"] and m["text"] == "" for m in facts)
    assert "(no longer stored)" in "\n".join(report_lines(report))

    await agent.ainvoke(ask("Hi.", user=None), cfg("anon"))
    anon = await thread_report("anon", (await agent.aget_state(cfg("anon"))).values, agent.store)
    assert anon["owner"] is None
    assert anon["turns"][0]["saved"] == {
        "conversation": False,
        "memories": [],
        "episodes": 0,
        "skipped": "anonymous",
    }


def test_the_log_is_bounded_and_an_older_thread_gets_its_latest_turn() -> None:
    log: list[Any] = []
    for n in range(TURN_LOG_TURNS + 7):
        log = append_turns(log, [{"turn": n + 1}])
    assert len(log) == TURN_LOG_TURNS and log[0]["turn"] == 8 and log[-1]["turn"] == n + 1

    older = {
        "turn_count": 4,
        "status": "completed",
        "intent": "question",
        "plan": {"reason": "asks something"},
        "loaded_memories": [{"kind": "fact", "key": "k1", "text": "The user lives in Lima."}],
        "failed_teams": ["web"],
        "error_log": ["team web: timed out after 5 s"],
        "completed_teams": ["memory"],
        "start_time": 0.0,
    }
    entries, partial = entries_of(older)
    assert partial and entries[0]["turn"] == 4
    assert entries[0]["teams"] == [
        {"team": "web", "ok": False, "ms": None, "error": "timed out after 5 s"},
        {"team": "memory", "ok": True, "ms": None, "error": None},
    ]
    assert entries_of({"turn_count": 0}) == ([], False)
