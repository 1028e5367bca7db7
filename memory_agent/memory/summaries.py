"""Running summaries of a thread.

The extractive summary keeps the first sentence of each user message (what the user brought
up), always keeping the first (the topic) and dropping the oldest of the rest when over budget.
It is deterministic and costs microseconds, so the conversation record is refreshed every turn;
with a real model, the text that leaves the message window is summarised by the model instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from memory_agent.models import ModelFallback, decide, internal_text, is_offline
from memory_agent.prompts import SUMMARY_PROMPT
from memory_agent.utils import message_text

_SEP = "; "
_FIRST_SENTENCE = re.compile(r"^(.{1,160}?[.!?])(\s|$)", re.DOTALL)


def first_sentence(text: str, limit: int = 160, at_least: int = 40) -> str:
    """The opening of `text`: whole sentences until `at_least` characters, within `limit`."""
    text = " ".join(text.split())
    out = ""
    rest = text
    while rest and len(out) < at_least:
        m = _FIRST_SENTENCE.match(rest)
        if not m:
            out = f"{out} {rest}".strip()
            break
        out = f"{out} {m.group(1)}".strip()
        rest = rest[m.end() :].lstrip()
    return out if len(out) <= limit else out[: limit - 1].rstrip() + "…"


def title_for(text: str, limit: int = 60) -> str:
    """A conversation title from its first user message."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def extractive_summary(summary: str, messages: Sequence[BaseMessage], chars: int) -> str:
    """`summary` extended with the first sentence of each user message, within `chars`."""
    items = [s for s in summary.split(_SEP) if s] if summary else []
    for m in messages:
        if m.type == "human":
            sentence = first_sentence(message_text(m))
            if sentence and (not items or items[-1] != sentence):
                items.append(sentence)
    while len(items) > 2 and len(_SEP.join(items)) > chars:
        del items[1]
    joined = _SEP.join(items)
    return joined if len(joined) <= chars else joined[: chars - 1] + "…"


async def fold_summary(
    model: BaseChatModel,
    summary: str,
    messages: Sequence[BaseMessage],
    chars: int,
    *,
    fallbacks: list[ModelFallback] | None = None,
) -> str:
    """The running summary after `messages` left the window.

    With a real model, the model folds them in; if its call fails (the answer is already
    given, so nothing is worth losing it for), the extractive summary is used and the failure
    appended to `fallbacks`.
    """
    if is_offline(model):
        return extractive_summary(summary, messages, chars)
    transcript = "\n".join(f"{m.type}: {message_text(m)}" for m in messages)
    prompt = SUMMARY_PROMPT.format(chars=chars, summary=summary or "(none)", messages=transcript)

    async def ask() -> str:
        folded = (await internal_text(model, prompt, purpose="summary")).strip()
        if not folded:
            raise ValueError("the model gave an empty summary")
        return folded[:chars]

    return await decide(
        "summary",
        model,
        ask,
        lambda: extractive_summary(summary, messages, chars),
        fallbacks,
        absorb_all=True,
        fallback="the extractive summary",
    )
