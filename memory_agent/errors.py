"""The exceptions memory_agent raises, in one place.

Every error the package raises on purpose is a `MemoryAgentError`; lower-level errors
(psycopg, pgserver, LangChain) are wrapped at the boundary with `raise ... from exc` so the
caller sees what went wrong in our terms and can still reach the cause.
"""

from __future__ import annotations


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
    """A chat model or embedding model could not be resolved or called."""


class TransientError(MemoryAgentError):
    """A temporary failure worth another attempt (a service briefly unreachable, a rate limit).

    A team that raises it is retried under its retry policy; see `memory_agent.teams`.
    """


REJECTION_ERRORS: dict[str, type[MemoryAgentError]] = {
    "invalid_input": InvalidInputError,
    "ownership": ThreadOwnershipError,
    "storage": StorageRefusedError,
}
"""Maps the `rejection.code` recorded in the state to the error the `reject` node raises."""
