"""Intent classification and the memory budget each intent gets.

The planning node asks the chat model (structured output) when a real model is configured and
falls back to these rules when the model has no structured output or its answer is unusable;
the offline model always uses the rules. The budget is what keeps memory look-ups off turns
that do not need them.
"""

from __future__ import annotations

import re

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel

from memory_agent.context import AgentContext, StructuredOutputMethod
from memory_agent.memory.records import MemoryBudget
from memory_agent.models import ModelFallback, decide, structured_call
from memory_agent.offline import is_question
from memory_agent.prompts import INTENT_PROMPT
from memory_agent.state import Intent
from memory_agent.utils import GREETING

_SMALL_TALK = re.compile(
    r"^\s*(hi|hello|hey|yo|hiya|good (morning|afternoon|evening|night)|thanks?( you)?|thx|"
    r"ok(ay)?|cool|great|nice|bye|goodbye|see you|how are you( doing)?|what'?s up|lol)\b[\s!.?,]*"
    r"(there|again|so much|a lot|everyone|friend)?[\s!.?,]*$",
    re.IGNORECASE,
)
_RECALL = re.compile(
    r"\b(remember|recall|last time|earlier|before|previous(ly)?|again|we (talked|discussed|spoke)|"
    r"i (told|said|mentioned)|you know about me|about me|what(?:'s| is| are| was| were) my|"
    r"who am i|where do i|what do i|do you know)\b",
    re.IGNORECASE,
)


class _IntentDecision(BaseModel):
    intent: Intent
    reason: str = ""


def classify_by_rules(text: str) -> tuple[Intent, str]:
    """The intent of a user message, by deterministic rules, with the reason."""
    if not text.strip():
        return "irrelevant", "empty message"
    if _SMALL_TALK.match(text):
        if GREETING.match(text):
            return "greeting", "a greeting"
        return "small_talk", "small talk needs no memory"
    if _RECALL.search(text):
        return "recall", "refers to the past or to what is known about the user"
    if is_question(text):
        return "question", "a question"
    return "statement", "the user tells something"


async def classify(
    text: str,
    model: BaseChatModel | None,
    *,
    method: StructuredOutputMethod = "auto",
    fallbacks: list[ModelFallback] | None = None,
) -> tuple[Intent, str]:
    """Classify with the model's structured output when given one, else by rules.

    An unusable answer (prose, the wrong shape, truncated, cut at the length limit) falls back
    to the rules and is appended to `fallbacks`.

    Raises:
        ModelError: the model could not be reached (after its retries) or timed out.
    """
    if model is None:
        return classify_by_rules(text)

    async def ask() -> tuple[Intent, str]:
        messages = [("system", INTENT_PROMPT), ("human", text)]
        decision = await structured_call(
            model, _IntentDecision, messages, method=method, purpose="intent"
        )
        return decision.intent, decision.reason or "classified by the model"

    return await decide("intent", model, ask, lambda: classify_by_rules(text), fallbacks)


_SELF = re.compile(r"\b(i|me|my|mine|myself)\b", re.IGNORECASE)


def about_the_user(text: str, intent: Intent) -> bool:
    """Whether the message asks about the user ("What do I like?", "What do you know about
    me?"): such a turn loads what is known of the user, not only what matches its words."""
    return intent in ("recall", "question") and is_question(text) and bool(_SELF.search(text))


def budget_for(intent: Intent, ctx: AgentContext) -> MemoryBudget:
    """How many memories a turn of this intent may load."""
    if intent in ("greeting", "small_talk", "irrelevant"):
        return {"conversations": 0, "memories": 0}
    if intent == "recall":
        return {
            "conversations": max(5, ctx.recent_conversations),
            "memories": 2 * ctx.max_memories,
        }
    return {"conversations": ctx.recent_conversations, "memories": ctx.max_memories}
