"""Which PostgreSQL errors are an outage (retry later) and which a refusal (say what was wrong)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from memory_agent import StorageRefusedError
from memory_agent.persistence.store_sql import MAX_BATCH_OPS, is_outage, refused


@pytest.mark.parametrize(
    "sqlstate",
    ["08006", "40001", "40P01", "53100", "55P03", "57P01", "57014", "58030", "XX000"],
)
def test_a_failing_database_is_an_outage(sqlstate: str) -> None:
    assert is_outage(errors.lookup(sqlstate)("x"))


def test_a_client_side_error_is_an_outage() -> None:
    assert is_outage(psycopg.OperationalError("server closed the connection unexpectedly"))


@pytest.mark.parametrize("sqlstate", ["54000", "22003", "22021", "23505", "42P01", "42703"])
def test_data_the_database_refuses_is_not_an_outage(sqlstate: str) -> None:
    exc = errors.lookup(sqlstate)("index row size 3064 exceeds btree version 4 maximum 2704")
    assert not is_outage(exc)
    error = refused(exc, "this turn's memories")
    assert isinstance(error, StorageRefusedError)
    assert "index row size" in str(error) and sqlstate in str(error)


def test_a_batch_binds_far_fewer_parameters_than_postgresql_allows() -> None:
    # A put binds at most 6 parameters and its vector 4 more.
    assert MAX_BATCH_OPS * 10 < 65_535
