"""The exceptions memory_agent raises, and the one place psycopg's errors are translated.

Every error the package raises on purpose is a `MemoryAgentError`; lower-level errors
(psycopg, pgserver, LangChain) are wrapped with `raise ... from exc` so the caller sees what
went wrong in our terms and can still reach the cause. Every PostgreSQL error goes through
`database_errors` (or `database_error`), so each message has one shape and names the database:
"<database> failed while <doing>: <cause>. <consequence>".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import PoolTimeout


class MemoryAgentError(Exception):
    """Base class of every error memory_agent raises on purpose."""


class ConfigurationError(MemoryAgentError):
    """A setting is missing or wrong; the message says which and what to do."""


class DatabaseUnavailableError(MemoryAgentError):
    """PostgreSQL cannot be reached or failed; never hidden behind a fall-back."""


class StorageRefusedError(MemoryAgentError):
    """PostgreSQL refused to store what a turn wrote (bad data, a limit, a schema error: not an
    outage). The turn is rolled back with nothing stored and the thread stays usable; sending
    the same input again fails the same way, so it is not retried."""


class InvalidInputError(MemoryAgentError, ValueError):
    """The input of a turn (message, user id, thread id) was rejected before anything was stored."""


class ThreadOwnershipError(MemoryAgentError, PermissionError):
    """A turn on a thread by a user who does not own it was refused."""


class ThreadBusyError(MemoryAgentError):
    """The thread (or its user's data) stayed locked by another run for longer than the lock
    timeout; nothing of this turn was stored, so it can simply be sent again."""


class ModelError(MemoryAgentError):
    """A chat model or embedding model could not be resolved or called.

    Raised for what a turn cannot absorb: the answer call failing (connection refused, HTTP
    5xx or 429 after the retries, a time-out), or a call made before the answer failing the
    same way; the turn is then cut off, and finished before the thread's next turn. A failure
    that would only repeat (`retryable` False) rolls the turn back instead.
    `provider` names the provider ("openai"), `purpose` the call ("answer",
    "intent", ...) and `cause` the underlying error, in words; `__cause__` is the error itself.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        purpose: str | None = None,
        cause: str | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.purpose = purpose
        self.cause = cause
        self.retryable = retryable
        """False for what the same request will meet again (a wrong key or model name, a
        request refused as invalid, a prompt longer than the context): such a turn is rolled
        back, so that resuming it cannot wedge the thread."""


# Raised by langchain-openai / openai when a completion stopped at its token limit or was
# filtered: the call worked, its output is unusable (matched by name: openai is optional).
_UNUSABLE_OUTPUT_ERRORS = frozenset(
    {"LengthFinishReasonError", "ContentFilterFinishReasonError", "ModelRefusalError"}
)


def is_unusable_output(exc: BaseException) -> bool:
    """Whether a model call's failure is about its output (prose where JSON was asked for, the
    wrong shape, truncated JSON, a length-limit finish) rather than about reaching the model.

    Output failures of a decision fall back to rules; the others become a `ModelError`.
    Parsers and pydantic raise `ValueError` subclasses (`OutputParserException`,
    `ValidationError`, `JSONDecodeError`); transport and HTTP errors never do.
    """
    return isinstance(exc, ValueError) or type(exc).__name__ in _UNUSABLE_OUTPUT_ERRORS


class TransientError(MemoryAgentError):
    """A temporary failure worth another attempt (a service briefly unreachable, a rate limit).

    A team that raises it is retried under its retry policy; see `memory_agent.teams`.
    """


REJECTION_ERRORS: dict[str, type[MemoryAgentError]] = {
    "invalid_input": InvalidInputError,
    "ownership": ThreadOwnershipError,
    "model": ModelError,
    "storage": StorageRefusedError,
}
"""Maps the `rejection.code` recorded in the state to the error the `reject` node raises."""


_OUTAGE_CLASSES = ("08", "40", "53", "55", "57", "58", "XX")
"""SQLSTATE classes of a failing server rather than a refused statement: connection exception,
transaction rollback (serialization, deadlock), insufficient resources, object not in
prerequisite state (lock not available), operator intervention (shutdown), system error,
internal error."""


def is_outage(exc: psycopg.Error) -> bool:
    """Whether `exc` is PostgreSQL failing (down, restarting, out of resources, a conflict worth
    another attempt) rather than refusing what was sent (bad data, a limit, a schema error).

    An error without an SQLSTATE comes from the client (a lost connection): an outage.
    """
    state = exc.sqlstate
    return state is None or state[:2] in _OUTAGE_CLASSES


def _first_line(exc: BaseException) -> str:
    """The first line of `exc`'s message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cause(exc: BaseException) -> str:
    if isinstance(exc, PoolTimeout):
        return f"it could not be reached ({_first_line(exc)}; is it running?)"
    return _first_line(exc)


def database_error(
    exc: psycopg.Error,
    doing: str,
    *,
    database: str | None = None,
    after: str = "",
    retry: str = "",
    refusals: bool = False,
) -> MemoryAgentError:
    """Our error for `exc`, raised by PostgreSQL (`database`) while `doing` something.

    With `refusals`, an error that is not an outage (see `is_outage`) is a
    `StorageRefusedError`: PostgreSQL is up and refused what was sent, and sending it again
    fails the same way. Otherwise (and for every outage) it is a `DatabaseUnavailableError`.
    `after` says what the failure left behind ("nothing was deleted"); `retry`, for an outage,
    how to finish once the database is back.
    """
    name = database or "PostgreSQL"
    tail = "".join(f". {part[0].upper()}{part[1:]}" for part in (after, retry) if part)
    if refusals and not is_outage(exc):
        return StorageRefusedError(
            f"{name} refused {doing}: {_cause(exc)} (SQLSTATE {exc.sqlstate}). The database "
            f"is up{'; ' + after if after else ''}"
        )
    return DatabaseUnavailableError(f"{name} failed while {doing}: {_cause(exc)}{tail}")


@contextmanager
def database_errors(
    doing: str,
    *,
    database: str | None = None,
    after: str = "",
    retry: str = "",
    refusals: bool = False,
) -> Iterator[None]:
    """Translate a psycopg error (or a pool timeout) raised in the block: `database_error`."""
    try:
        yield
    except psycopg.Error as exc:  # a pool's timeout is one too
        raise database_error(
            exc, doing, database=database, after=after, retry=retry, refusals=refusals
        ) from exc
