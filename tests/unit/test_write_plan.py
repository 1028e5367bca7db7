"""A turn's write plan, decided without a store: dedupe, supersession, provenance, episodes and
the conversation record are checked on the ops `plan_turn` returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from langgraph.store.base import Item, PutOp

from memory_agent import InvalidInputError
from memory_agent.memory.conversation import ConversationFields
from memory_agent.memory.extraction import MemoryDraft
from memory_agent.memory.plan import (
    Address,
    EpisodeDraft,
    Turn,
    TurnWrites,
    memory_key,
    plan_turn,
)
from memory_agent.memory.records import episode_key, message_source, version_id
from memory_agent.persistence.namespaces import user_namespace

USER = "ada"
SAID = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
NOW = "2023-05-08T13:56:30+00:00"
LATER = "2023-05-09T09:00:00+00:00"
FACTS = user_namespace(USER, "facts")
HISTORY = user_namespace(USER, "history")
EPISODES = user_namespace(USER, "episodes")
CONVERSATIONS = user_namespace(USER, "conversations")
HOME = memory_key("home city")


def lives_in(city: str, subject: str = "home city") -> MemoryDraft:
    return {"kind": "fact", "subject": subject, "text": f"The user lives in {city}."}


def said(text: str, message_id: str = "m1") -> EpisodeDraft:
    return {"message_id": message_id, "text": text, "speaker": None, "before": "", "after": ""}


def make_turn(
    drafts: Sequence[MemoryDraft] = (),
    *,
    message_ids: Sequence[str] = ("m1",),
    episodes: Sequence[EpisodeDraft] = (),
    conversation: ConversationFields | None = None,
    thread_id: str | None = "t1",
) -> Turn:
    return Turn(USER, thread_id, conversation, drafts, message_ids, episodes, SAID)


def plan(
    turn: Turn,
    stored: Mapping[Address, dict[str, Any]] | None = None,
    twins: Mapping[tuple[tuple[str, ...], str], Sequence[Item]] | None = None,
    now: str = NOW,
) -> TurnWrites:
    return plan_turn(turn, stored or {}, twins or {}, now)


def put_at(writes: TurnWrites, ns: tuple[str, ...], key: str) -> PutOp:
    found = [p for p in writes.puts if p.namespace == ns and p.key == key]
    assert len(found) == 1, f"expected one write at {ns}/{key}: {writes.puts}"
    return found[0]


def stored_after(*writes: TurnWrites) -> dict[Address, dict[str, Any]]:
    """What a store holds after applying `writes` in order."""
    out: dict[Address, dict[str, Any]] = {}
    for w in writes:
        for p in w.puts:
            assert p.value is not None
            out[(p.namespace, p.key)] = p.value
    return out


def test_a_new_fact_is_created_as_version_one_with_its_provenance() -> None:
    writes = plan(make_turn([lives_in("Paris")]))
    assert len(writes.puts) == 1
    value = put_at(writes, FACTS, HOME).value
    assert value is not None
    assert value["text"] == "The user lives in Paris."
    assert value["version"] == 1 and value["id"] == version_id(HOME, 1)
    assert value["supersedes"] is None
    assert value["scope"] == "memory" and value["mentions"] == 1
    assert value["message_ids"] == ["m1"] and value["thread_id"] == "t1"
    assert value["said_at"] == SAID.isoformat()
    assert value["created_at"] == value["updated_at"] == NOW
    assert value["terms"], "recall's BM25 needs the memory's terms"
    assert writes.written == [HOME]
    assert writes.record is None


def test_the_same_fact_again_is_deduplicated_and_its_provenance_merged() -> None:
    first = plan(make_turn([lives_in("Paris")]))
    stored = stored_after(first)
    again = plan(make_turn([lives_in("Paris")], message_ids=["m2"]), stored, now=LATER)
    assert len(again.puts) == 1, "a restated fact is updated in place, no history"
    value = put_at(again, FACTS, HOME).value
    assert value is not None
    assert value["version"] == 1
    assert value["mentions"] == 2
    assert value["message_ids"] == ["m1", "m2"]
    assert value["created_at"] == NOW and value["updated_at"] == LATER
    assert again.written == [HOME]
    # The same message once more (a retry) is not a new mention: nothing to write.
    retried = plan(make_turn([lives_in("Paris")], message_ids=["m2"]), stored_after(first, again))
    assert retried.puts == [] and retried.written == []


def test_a_fuller_restatement_keeps_the_fuller_text() -> None:
    stored = stored_after(plan(make_turn([lives_in("Paris")])))
    fuller: MemoryDraft = {
        "kind": "fact",
        "subject": "home city",
        "text": "The user lives in Paris, France.",
    }
    value = put_at(plan(make_turn([fuller], message_ids=["m1"]), stored), FACTS, HOME).value
    assert value is not None
    assert value["text"] == "The user lives in Paris, France."
    assert value["mentions"] == 1, "the same source again: fuller text, no new mention"


def test_a_changed_fact_supersedes_the_old_version_into_history() -> None:
    stored = stored_after(plan(make_turn([lives_in("Paris")])))
    writes = plan(make_turn([lives_in("Berlin")], message_ids=["m2"]), stored, now=LATER)
    assert len(writes.puts) == 2
    old = put_at(writes, HISTORY, version_id(HOME, 1)).value
    new = put_at(writes, FACTS, HOME).value
    assert old is not None and new is not None
    assert old["text"] == "The user lives in Paris."
    assert old["scope"] == "history" and old["current_key"] == HOME
    assert old["valid_to"] == SAID.isoformat()
    assert old["superseded_by"] == version_id(HOME, 2)
    assert new["text"] == "The user lives in Berlin."
    assert new["scope"] == "memory" and new["version"] == 2
    assert new["supersedes"] == version_id(HOME, 1)
    assert new["message_ids"] == ["m2"] and new["created_at"] == LATER
    assert writes.written == [HOME]


def test_a_negation_is_a_change_not_a_restatement() -> None:
    likes: MemoryDraft = {"kind": "preference", "subject": "tea", "text": "The user likes tea."}
    stored = stored_after(plan(make_turn([likes])))
    dislikes: MemoryDraft = {**likes, "text": "The user does not like tea."}
    writes = plan(make_turn([dislikes], message_ids=["m2"]), stored)
    assert {p.namespace[-1] for p in writes.puts} == {"preferences", "history"}


def test_two_drafts_about_one_subject_in_one_turn_the_last_stands_without_history() -> None:
    writes = plan(make_turn([lives_in("Paris"), lives_in("Berlin")]))
    assert len(writes.puts) == 1
    value = put_at(writes, FACTS, HOME).value
    assert value is not None
    assert value["text"] == "The user lives in Berlin." and value["version"] == 1
    assert writes.written == [HOME]


def test_an_episode_per_sentence_keyed_by_the_messages_source() -> None:
    text = "I moved to Berlin yesterday with my whole family. The flat is near the river."
    turn = make_turn(episodes=[said(text)], message_ids=["m1"])
    source = message_source("t1", "2023-05-08", text)
    keys = [episode_key(source, 0), episode_key(source, 1)]
    assert turn.reads() == [(EPISODES, k) for k in keys]
    writes = plan(turn)
    assert writes.written == keys
    first = put_at(writes, EPISODES, keys[0]).value
    second = put_at(writes, EPISODES, keys[1]).value
    assert first is not None and second is not None
    assert first["text"] == "User: I moved to Berlin yesterday (2023-05-07) with my whole family."
    assert second["text"] == "User: The flat is near the river."
    assert first["message_ids"] == ["m1"] and first["part"] == 0 and second["part"] == 1
    assert first["context"]["message"] == "The flat is near the river."
    # Re-sent under a new id after a failed turn: the same keys, found stored, not rewritten.
    resent = make_turn(episodes=[said(text, "m9")], message_ids=["m9"])
    assert resent.reads() == turn.reads()
    again = plan(resent, stored_after(writes))
    assert again.puts == [] and again.written == []


def test_a_facts_mention_counts_once_per_source_not_per_message_id() -> None:
    text = "I live in Paris."
    first = plan(make_turn([lives_in("Paris")], episodes=[said(text, "m1")]))
    # The same message re-sent under another id (its turn failed): the same source.
    resent = make_turn([lives_in("Paris")], episodes=[said(text, "m2")], message_ids=["m2"])
    again = plan(resent, stored_after(first))
    assert again.puts == [] and again.written == []


def test_the_conversation_record_is_written_then_left_alone_when_unchanged() -> None:
    fields: ConversationFields = {
        "title": "Moving",
        "summary": "moved to Berlin",
        "last_message": "I moved.",
        "message_count": 2,
    }
    turn = make_turn(conversation=fields)
    assert (CONVERSATIONS, "t1") in turn.reads(), "created_at unknown: read the stored one"
    writes = plan(turn)
    put = put_at(writes, CONVERSATIONS, "t1")
    assert put.index is False, "conversations are loaded by recency, never embedded"
    assert put.value is not None
    assert put.value["text"] == "Moving | moved to Berlin | I moved."
    assert put.value["scope"] == "conversation"
    assert writes.record == {
        "thread_id": "t1",
        "title": "Moving",
        "summary": "moved to Berlin",
        "last_message": "I moved.",
        "message_count": 2,
        "created_at": NOW,
        "updated_at": NOW,
    }
    # The same record again: nothing written, the stored times kept.
    same = plan(turn, stored_after(writes), now=LATER)
    assert same.puts == []
    assert same.record is not None and same.record["updated_at"] == NOW
    # A new message: rewritten, created_at kept from the stored record.
    changed = plan(
        make_turn(conversation={**fields, "message_count": 4}), stored_after(writes), now=LATER
    )
    record = put_at(changed, CONVERSATIONS, "t1").value
    assert record is not None
    assert record["created_at"] == NOW and record["updated_at"] == LATER
    assert record["message_count"] == 4


def test_a_record_with_a_known_start_is_not_read_without_drafts() -> None:
    fields: ConversationFields = {
        "title": "t",
        "summary": "",
        "last_message": "hi",
        "message_count": 1,
        "created_at": "2023-01-01T00:00:00+00:00",
    }
    assert make_turn(conversation=fields).reads() == []
    with_draft = make_turn([lives_in("Paris")], conversation=fields)
    assert with_draft.reads() == [(FACTS, HOME), (CONVERSATIONS, "t1")]
    record = plan(with_draft).record
    assert record is not None and record["created_at"] == "2023-01-01T00:00:00+00:00"


def test_a_conversation_needs_a_thread() -> None:
    fields: ConversationFields = {
        "title": "",
        "summary": "",
        "last_message": "",
        "message_count": 0,
    }
    with pytest.raises(InvalidInputError):
        make_turn(conversation=fields, thread_id=None)


def test_a_fact_stored_under_another_subject_is_updated_there() -> None:
    home = memory_key("home")
    stored_value = stored_after(plan(make_turn([lives_in("Paris", subject="home")])))[(FACTS, home)]
    twin = Item(
        value=stored_value,
        key=home,
        namespace=FACTS,
        created_at=SAID,
        updated_at=SAID,
    )
    turn = make_turn([lives_in("Paris")], message_ids=["m2"])
    (search,) = turn.twin_searches({})
    assert search.namespace_prefix == FACTS and search.query == "The user lives in Paris."
    writes = plan(turn, {}, {(FACTS, "The user lives in Paris."): [twin]})
    assert [(p.namespace, p.key) for p in writes.puts] == [(FACTS, home)]
    value = writes.puts[0].value
    assert value is not None
    assert value["subject"] == "home", "the stored memory keeps its subject"
    assert value["mentions"] == 2 and value["message_ids"] == ["m1", "m2"]
    assert writes.written == [home]
    # Without the twin found, the draft's own subject is created.
    alone = plan(turn)
    assert [(p.namespace, p.key) for p in alone.puts] == [(FACTS, HOME)]


def test_a_different_statement_elsewhere_is_not_a_twin() -> None:
    other = stored_after(plan(make_turn([lives_in("Berlin", subject="home")])))
    (value,) = other.values()
    twin = Item(value=value, key="k", namespace=FACTS, created_at=SAID, updated_at=SAID)
    writes = plan(make_turn([lives_in("Paris")]), {}, {(FACTS, "The user lives in Paris."): [twin]})
    assert [(p.namespace, p.key) for p in writes.puts] == [(FACTS, HOME)]


def test_only_drafts_on_subjects_not_stored_search_for_a_twin() -> None:
    stored = stored_after(plan(make_turn([lives_in("Paris")])))
    cat: MemoryDraft = {"kind": "entity", "subject": "entity:cat", "text": "The user has a cat."}
    turn = make_turn([lives_in("Berlin"), cat, cat])
    searches = turn.twin_searches(stored)
    assert [(s.namespace_prefix, s.query) for s in searches] == [
        (user_namespace(USER, "entities"), "The user has a cat.")
    ]


def test_writes_come_in_one_order_whoever_writes() -> None:
    text = "We adopted a cat last week and named her Miso."
    cat: MemoryDraft = {"kind": "entity", "subject": "entity:cat", "text": "The user has a cat."}
    writes = plan(make_turn([lives_in("Paris"), cat], episodes=[said(text)]))
    addresses = [(p.namespace, p.key) for p in writes.puts]
    assert addresses == sorted(addresses) and len(addresses) == 3
    assert writes.written[:2] == [HOME, memory_key("entity:cat")], "memories first"
