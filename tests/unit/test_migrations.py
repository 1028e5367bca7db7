"""Our migrations are append-only: a released migration never changes, moves or disappears."""

from __future__ import annotations

import hashlib

from memory_agent.migrations import MIGRATIONS

RELEASED = [
    "0e56b79b50faacbb0bc1dc914ca4e9f857c35f5fc707eb93375ce39be87fd303",
    "0fdbf5571080750a1343303cc4d79f987fb54e23afd0513b6c6b0f9eebb8ed8a",
]
"""SHA-256 of each released migration, by version. Add a new migration's hash at the end when
it is released; never edit a line above (a database made by an earlier version ran it)."""


def test_released_migrations_are_unchanged_and_in_order() -> None:
    assert len(MIGRATIONS) >= len(RELEASED), "a released migration was removed"
    for version, digest in enumerate(RELEASED):
        got = hashlib.sha256(MIGRATIONS[version].encode()).hexdigest()
        assert got == digest, f"migration {version} was edited: add a new one instead"


def test_every_migration_is_recorded() -> None:
    assert len(MIGRATIONS) == len(RELEASED), "record the hash of the new migration in RELEASED"


def test_migrations_are_rerunnable() -> None:
    # A migration may find its object already there (made by hand, or a restored dump whose
    # versions table lags): it must not fail then.
    for sql in MIGRATIONS:
        assert "IF NOT EXISTS" in sql.upper(), sql
