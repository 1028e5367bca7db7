"""Absolute dates for the relative ones people use ("yesterday", "last Friday", "next month").

A memory outlives the day it was told, so "I went hiking yesterday" is stored as "I went
hiking yesterday (2023-05-07)" when it was said on 8 May 2023. Only expressions whose meaning
the date alone settles are resolved; vague ones ("a few weeks ago") are left as they are.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from memory_agent.errors import InvalidInputError

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_SEASONS = {"spring": (3, 5), "summer": (6, 8), "fall": (9, 11), "autumn": (9, 11)}
_COUNT = r"(?:\d{1,2}|a|an|one|two|three|four|five|six|seven|eight|nine|ten)"
_RELATIVE = re.compile(
    r"\b(?:the day before yesterday|yesterday|today|tonight|tomorrow|last night"
    r"|this (?:morning|afternoon|evening)"
    rf"|{_COUNT} (?:days?|weeks?|months?|years?) ago"
    r"|(?:last|this past|this|next) (?:week(?:end)?|month|year"
    rf"|{'|'.join(_WEEKDAYS)}|spring|summer|fall|autumn|winter))\b(?!\s*\()",
    re.IGNORECASE,
)


def parse_when(value: str | datetime | None) -> datetime:
    """A timezone-aware datetime from ISO-8601 text or a datetime; now (UTC) for None.

    Raises:
        InvalidInputError: `value` is not an ISO-8601 date or time.
    """
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(f"not an ISO-8601 date or time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def day(d: date) -> str:
    """A day, compact and unambiguous: "2023-05-07" (one word in a memory's budget)."""
    return d.isoformat()[:10]


def _month(d: date, delta: int) -> date:
    index = d.year * 12 + d.month - 1 + delta
    return date(index // 12, index % 12 + 1, 1)


def _weekday(today: date, name: str, which: str) -> date:
    target = _WEEKDAYS.index(name)
    if which == "next":
        return today + timedelta(days=(target - today.weekday() - 1) % 7 + 1)
    if which == "this":
        return today + timedelta(days=target - today.weekday())
    return today - timedelta(days=(today.weekday() - target - 1) % 7 + 1)


def _season(today: date, name: str, which: str) -> str:
    if name == "winter":
        # Winter spans the turn of the year: name it by both years.
        start = today.year - 1 if today.month <= 2 else today.year
        if which in ("last", "this past") and today.month not in (12, 1, 2):
            start -= 1
        if which == "next":
            start = today.year if today.month < 12 else today.year + 1
        return f"winter {start}-{start + 1}"
    first, last = _SEASONS[name]
    year = today.year
    if which in ("last", "this past"):
        year = year - 1 if today.month <= last else year
    elif which == "next":
        year = year + 1 if today.month >= first else year
    return f"{name} {year}"


def _resolve(phrase: str, today: date) -> str | None:
    p = phrase.lower()
    simple = {
        "the day before yesterday": -2,
        "yesterday": -1,
        "last night": -1,
        "today": 0,
        "tonight": 0,
        "this morning": 0,
        "this afternoon": 0,
        "this evening": 0,
        "tomorrow": 1,
    }
    if p in simple:
        return day(today + timedelta(days=simple[p]))
    if p.endswith(" ago"):
        count_word, unit, _ = p.split()
        n = int(count_word) if count_word.isdigit() else _NUMBERS[count_word]
        if unit.startswith("day"):
            return day(today - timedelta(days=n))
        if unit.startswith("week"):
            return f"week of {day(today - timedelta(weeks=n, days=today.weekday()))}"
        if unit.startswith("month"):
            return _month(today, -n).strftime("%B %Y")
        return str(today.year - n)
    which, unit = p.rsplit(" ", 1)
    step = {"last": -1, "this past": -1, "this": 0, "next": 1}[which]
    if unit in _WEEKDAYS:
        return day(_weekday(today, unit, which))
    if unit in _SEASONS or unit == "winter":
        return _season(today, unit, which)
    if unit == "week":
        monday = today - timedelta(days=today.weekday()) + timedelta(weeks=step)
        return f"week of {day(monday)}"
    if unit == "weekend":
        saturday = today + timedelta(days=5 - today.weekday())
        if which in ("last", "this past"):
            saturday -= timedelta(weeks=1)
        elif which == "next":
            saturday += timedelta(weeks=1)
        return f"weekend of {day(saturday)}"
    if unit == "month":
        return _month(today, step).strftime("%B %Y")
    if unit == "year":
        return str(today.year + step)
    return None


def resolve_dates(text: str, when: datetime) -> str:
    """`text` with an absolute date after each relative one it contains, as of `when`.

    >>> resolve_dates("I went hiking yesterday.", datetime(2023, 5, 8))
    'I went hiking yesterday (2023-05-07).'
    """
    today = when.date()

    def annotate(match: re.Match[str]) -> str:
        resolved = _resolve(match.group(0), today)
        return f"{match.group(0)} ({resolved})" if resolved else match.group(0)

    return _RELATIVE.sub(annotate, text)
