"""Our migrations are append-only: a released migration never changes, moves or disappears."""

from __future__ import annotations

import hashlib

from memory_agent.persistence.migrations import MIGRATIONS

RELEASED = [
    "2839d5b01efd40b5290562edd5d077be8c0e622838b5cc687427a1e337582087",  # v0 settings
    "bf564b440b1ef68fdb1856efc75cd38576cf28ba345b86469c6b0e6825431b09",  # v1 BM25 terms
    "0fdbf5571080750a1343303cc4d79f987fb54e23afd0513b6c6b0f9eebb8ed8a",  # v2 owner index
    "779d399ba51950989858cacc04dbb4e242da89c417c3139b44c780ebaf967f35",  # v3 term length cap
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
        assert "IF NOT EXISTS" in sql.upper() or "CREATE OR REPLACE" in sql.upper(), sql
