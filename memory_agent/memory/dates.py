"""Absolute dates for the relative ones people use ("yesterday", "last Friday", "next month").

A memory outlives the day it was told, so "I went hiking yesterday" is stored as "I went
hiking yesterday (2023-05-07)" when it was said on 8 May 2023. Only expressions whose meaning
the date alone settles are resolved; vague ones ("a few weeks ago") are left as they are.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

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


# --- dates as a signal of their own --------------------------------------------------------
# A resolved date is written into a memory's text for the model to read, but as words it would
# give every greeting of that day ("how are you today (2023-05-07)?") the date's tokens. So
# recall keeps dates out of the lexical terms and matches them on their own: the days a query
# names against the days a memory was said on or mentions.

_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTH = rf"(?P<month>{'|'.join(_MONTHS)}|{'|'.join(m[:3] for m in _MONTHS)})\.?"
_DAY_OF_MONTH = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d{2})"
_ABSOLUTE = (
    # 2023-05-07, optionally "week of" / "weekend of" one (as `resolve_dates` writes them).
    r"(?P<span>(?:the )?week(?:end)? of )?"
    r"(?P<iso>(?P<iyear>\d{4})-(?P<imonth>\d{2})-(?P<iday>\d{2}))",
    # 7 May 2023, 7 May, 2023, the 7th of May 2023
    rf"(?:the )?{_DAY_OF_MONTH} (?:of )?{_MONTH},? {_YEAR}",
    # May 7, 2023 / May 7th 2023
    rf"{_MONTH} {_DAY_OF_MONTH},? {_YEAR}",
    # May 2023, spring 2023, winter 2022-2023
    rf"{_MONTH},? {_YEAR}",
    rf"(?P<season>spring|summer|fall|autumn) (?:of )?{_YEAR}",
    r"winter (?P<wfrom>(?:19|20)\d{2})-(?P<wto>(?:19|20)\d{2})",
    # a year alone
    _YEAR,
)
_DATE_PATTERNS = [re.compile(rf"\b{p}\b", re.IGNORECASE) for p in _ABSOLUTE]
_YEAR_DIGITS = re.compile(r"(?:19|20)\d\d")
_REACH_BEFORE = 32
"""How far before its year a date form can start ("the weekend of ", "the 21st of September ")."""
_REACH_AFTER = 6
"""How far after its year's digits it can end ("-05-07")."""

DayRange = tuple[date, date]
"""An inclusive range of days (one day: the same day twice)."""


def _month_number(name: str) -> int:
    return next(i for i, m in enumerate(_MONTHS, 1) if m.startswith(name.lower().rstrip(".")))


def _month_range(year: int, month: int) -> DayRange:
    return date(year, month, 1), _month(date(year, month, 1), 1) - timedelta(days=1)


def _range(m: re.Match[str]) -> DayRange | None:
    g = {k: v for k, v in m.groupdict().items() if v}
    try:
        if "iso" in g:
            first = date(int(g["iyear"]), int(g["imonth"]), int(g["iday"]))
            if "span" in g:
                return first, first + timedelta(days=6 if "weekend" not in g["span"] else 1)
            return first, first
        if "wfrom" in g:
            return date(int(g["wfrom"]), 12, 1), _month_range(int(g["wto"]), 2)[1]
        year = int(g["year"])
        if "season" in g:
            first_month, last_month = _SEASONS[g["season"].lower()]
            return date(year, first_month, 1), _month_range(year, last_month)[1]
        if "month" in g and "day" in g:
            d = date(year, _month_number(g["month"]), int(g["day"]))
            return d, d
        if "month" in g:
            return _month_range(year, _month_number(g["month"]))
        return date(year, 1, 1), date(year, 12, 31)
    except ValueError:  # 31 February and the like: not a date
        return None


def find_dates(text: str) -> tuple[list[DayRange], str]:
    """The absolute dates `text` names (as day ranges), and `text` without them (the words a
    lexical index should see: the dates `resolve_dates` added are among those removed).

    >>> find_dates("What did she bake on 7 May, 2023?")
    ([(datetime.date(2023, 5, 7), datetime.date(2023, 5, 7))], 'What did she bake on?')
    """
    # Every form names a year: only the stretch around the years is scanned (recall runs this
    # over every candidate of a query that names a date).
    years = list(_YEAR_DIGITS.finditer(text))
    if not years:
        return [], text
    start = max(0, years[0].start() - _REACH_BEFORE)
    end = min(len(text), years[-1].end() + _REACH_AFTER)
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    ranges: list[DayRange] = []

    def take(m: re.Match[str]) -> str:
        found = _range(m)
        if found is None:
            return m.group(0)
        ranges.append(found)
        return " "

    middle = text[start:end]
    for pattern in _DATE_PATTERNS:
        middle = pattern.sub(take, middle)
    if not ranges:
        return [], text
    rest = f"{text[:start]}{middle}{text[end:]}"
    return ranges, " ".join(rest.split()).replace(" ?", "?")


def query_dates(text: str, when: datetime | None = None) -> tuple[list[DayRange], str]:
    """The days a query names (relative ones resolved as of `when`, default now) and the query
    without them."""
    resolved = resolve_dates(text, parse_when(when))
    ranges, rest = find_dates(resolved)
    return ranges, rest


@lru_cache(maxsize=16_384)
def _named_days(text: str) -> tuple[DayRange, ...]:
    """The days a stored text names (recall asks again for the texts it ranks often)."""
    return tuple(find_dates(text)[0])


def memory_days(text: str, said_at: str | None) -> list[DayRange]:
    """The days a memory is about: the day it was said on and the days its text names."""
    ranges = list(_named_days(text))
    if said_at:
        try:
            said = parse_when(said_at).date()
        except InvalidInputError:
            return ranges
        ranges.append((said, said))
    return ranges


def overlaps(a: list[DayRange], b: list[DayRange]) -> bool:
    """Whether any range of `a` meets any of `b`."""
    return any(x0 <= y1 and y0 <= x1 for x0, x1 in a for y0, y1 in b)
