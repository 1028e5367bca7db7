"""The offline chat model: deterministic answers from what the prompt carries, no API key.

`OfflineChatModel` answers from the memories the planning node loaded, the running summary and
the messages of the thread, by lexical overlap with the question, and streams its answer token
by token like any chat model. `resolve_chat_model("offline")` (see `models`) gives it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from memory_agent.embeddings import STOPWORDS, light_stem
from memory_agent.prompts import FAILED_PREFIX
from memory_agent.utils import GREETING, message_text, words

OFFLINE = "offline"

_QUESTION_START = re.compile(
    r"^\s*(what|who|where|when|why|how|which|do|does|did|is|are|can|could|would|will|tell me|"
    r"remind me|remember)\b",
    re.IGNORECASE,
)
_SECOND_PERSON = [
    (re.compile(r"\bThe user's\b"), "Your"),
    (re.compile(r"\bthe user's\b"), "your"),
    (re.compile(r"\bThe user does not\b"), "You do not"),
    (re.compile(r"\bThe user is\b"), "You are"),
    (re.compile(r"\bThe user (\w+?)s\b"), r"You \1"),
    (re.compile(r"\bThe user\b"), "You"),
]
_TOKEN = re.compile(r"\s*\S+")
_NAME_FACT = "The user's name is"
_ABOUT_ME = re.compile(
    r"\b(about me|who am i|know me|(know|remember) (of|on) me|my profile)\b"
    r"|^\s*(what|tell me what) (do|did|can|could) you (know|remember|recall)\s*[?.!]*\s*$",
    re.IGNORECASE,
)
_THANKS = re.compile(r"^\s*(many )?(thanks|thank you|thx|ty|cheers)\b", re.IGNORECASE)
_BYE = re.compile(r"^\s*(bye|goodbye|good night|see you|see ya|later)\b", re.IGNORECASE)
_STATED_NAME = re.compile(
    r"\b(?:my name is|my name's|i am called|i'm called|call me)\s+([A-Z][\w'-]*)", re.IGNORECASE
)
# Words that ask about the same thing as the memory's wording ("What do I like?" is answered by
# "The user loves hiking."): each group is one concept for the overlap of question and memory.
_CONCEPTS = [
    {
        "like",
        "likes",
        "love",
        "loves",
        "enjoy",
        "enjoys",
        "adore",
        "prefer",
        "favorite",
        "favourite",
        "fan",
    },
    {"job", "work", "works", "occupation", "profession", "career", "employer", "working"},
    {"live", "lives", "home", "city", "reside", "based", "located", "living"},
    {"name", "called", "named"},
]
_SUMMARY_PREFIX = "Earlier conversation"
_EPISODE = re.compile(r"^(\[[^\]]*\]\s*)?User:\s")
_MAX_LISTED = 6


_CONCEPT_OF = {light_stem(w): min(group) for group in _CONCEPTS for w in group}
_CONCEPT_NAMES = set(_CONCEPT_OF.values())


def _terms(text: str) -> set[str]:
    """The stems of `text`'s words, a word of a `_CONCEPTS` group standing for its group."""
    stems = {
        light_stem(w) for w in words(text) if w not in STOPWORDS or light_stem(w) in _CONCEPT_OF
    }
    return {_CONCEPT_OF.get(t, t) for t in stems}


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _listing(facts: list[str]) -> str:
    said = [_second_person(f).rstrip(".") for f in facts]
    said = [said[0]] + [
        s[:1].lower() + s[1:] if s.startswith(("You", "Your")) else s for s in said[1:]
    ]
    return "; ".join(said) + "."


def _second_person(text: str) -> str:
    for pattern, repl in _SECOND_PERSON:
        text = pattern.sub(repl, text)
    return text


def is_question(text: str) -> bool:
    return text.rstrip().endswith("?") or bool(_QUESTION_START.match(text))


class OfflineChatModel(BaseChatModel):
    """A deterministic chat model that answers from its prompt; no network, no API key."""

    @property
    def _llm_type(self) -> str:
        return "memory-agent-offline"

    def _answer(self, messages: list[BaseMessage]) -> str:
        answer = self._reply(messages)
        # Teams that failed this turn are listed on one line of the system prompt: say so.
        for m in messages:
            for line in message_text(m).splitlines() if m.type == "system" else ():
                if line.startswith(FAILED_PREFIX):
                    failures = line.removeprefix(FAILED_PREFIX).strip().rstrip(".")
                    return f"{answer} Note: I could not use {failures}."
        return answer

    def _reply(self, messages: list[BaseMessage]) -> str:
        system = [message_text(m) for m in messages if m.type == "system"]
        dialogue = [m for m in messages if m.type in ("human", "ai")]
        if not dialogue or dialogue[-1].type != "human":
            return "How can I help?"
        question = message_text(dialogue[-1]).strip()
        memories = [
            line[2:].strip()
            for block in system
            for line in block.splitlines()
            if line.startswith("- ")
        ]
        facts = [m for m in memories if m.startswith("The user")]
        names = [m.split(" is ", 1)[1].rstrip(".") for m in facts if m.startswith(_NAME_FACT)]
        stated = _STATED_NAME.search(question)
        # Small talk loads no memories: a name said earlier in this thread still counts.
        earlier = [
            found.group(1)
            for m in dialogue[:-1]
            if m.type == "human" and (found := _STATED_NAME.search(message_text(m)))
        ]
        name = stated.group(1) if stated else names[0] if names else (earlier or [None])[-1]
        if GREETING.match(question) and (stated or len(_terms(question)) <= 3):
            met = " Nice to meet you." if stated else ""
            return f"Hello{', ' + name if name else ''}!{met} How can I help you today?"
        if _THANKS.match(question) and not is_question(question):
            return f"You're welcome{', ' + name if name else ''}!"
        if _BYE.match(question) and len(_terms(question)) <= 3:
            return f"Goodbye{', ' + name if name else ''}! I'll remember what you told me."
        if not is_question(question):
            return "Got it, thank you for telling me."
        if _ABOUT_ME.search(question):
            if not facts:
                return "I don't know anything about you yet. Tell me, and I will remember it."
            return "Here is what I know about you: " + _listing(facts[:_MAX_LISTED])
        return self._best_match(question, memories, facts, dialogue[:-1])

    def _best_match(
        self,
        question: str,
        memories: list[str],
        facts: list[str],
        earlier: list[BaseMessage],
    ) -> str:
        """The memories that answer `question` best: the facts about the user sharing the most
        concepts with it (every one tied at the best, so "What do I like?" lists all likes),
        else the best sentence of a summary, episode or earlier message."""
        wanted = _terms(question)
        # "Do I like coffee?" is about coffee: a fact sharing only "like" does not answer it.
        specific = wanted - _CONCEPT_NAMES

        def score(fact: str) -> int:
            terms = _terms(fact)
            return 0 if specific and not specific & terms else len(wanted & terms)

        scored = [(score(f), f) for f in facts]
        best = max((score for score, _ in scored), default=0)
        if best:
            tied = [f for score, f in scored if score == best]
            return _sentence_case(_listing(tied[:_MAX_LISTED]))
        candidates: list[tuple[int, str]] = []
        for memory in memories:
            if memory in facts:
                continue
            said = _EPISODE.match(memory)
            if memory.startswith(_SUMMARY_PREFIX):
                # A summary lists what was said ("a; b; c"): answer with its best part.
                parts = memory.split(": ", 1)[-1].split("; ")
            elif said:
                parts = [memory[said.end() :]]
            else:  # what a team found, or a fact about someone else: as it stands
                terms = _terms(memory)
                overlap = 0 if specific and not specific & terms else len(wanted & terms)
                if overlap:
                    candidates.append((overlap, _second_person(memory)))
                continue
            for part in parts:
                terms = _terms(part)
                overlap = 0 if specific and not specific & terms else len(wanted & terms)
                if overlap and not is_question(part):
                    candidates.append((overlap, f'Earlier you told me: "{part.strip()}"'))
        for m in earlier:
            text = message_text(m)
            if m.type == "human" and not is_question(text):
                terms = _terms(text)
                overlap = 0 if specific and not specific & terms else len(wanted & terms)
                if overlap:
                    candidates.append((overlap, f'Earlier you told me: "{text.strip()}"'))
        if not candidates:
            return "I don't know that yet. Tell me, and I will remember it."
        candidates.sort(key=lambda c: -c[0])
        return candidates[0][1]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self._answer(messages)))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for token in _TOKEN.findall(self._answer(messages)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for token in _TOKEN.findall(self._answer(messages)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager:
                await run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
