"""Which PostgreSQL errors are an outage (retry later) and which a refusal (say what was wrong)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from memory_agent import DatabaseUnavailableError, StorageRefusedError
from memory_agent.errors import database_error, database_errors, is_outage
from memory_agent.persistence.store_sql import MAX_BATCH_OPS


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
    error = database_error(exc, "to store this turn's memories", refusals=True)
    assert isinstance(error, StorageRefusedError)
    assert "index row size" in str(error) and sqlstate in str(error)
    assert str(error).startswith("PostgreSQL refused to store this turn's memories: ")
    # Without `refusals` every error is the database failing.
    assert isinstance(database_error(exc, "pruning"), DatabaseUnavailableError)


def test_an_outage_stays_an_outage_and_names_the_database() -> None:
    exc = errors.lookup("57P01")("terminating connection due to administrator command")
    error = database_error(
        exc,
        "running a turn on thread 't'",
        database="PostgreSQL database 'x' at h:5432",
        refusals=True,
        after="the thread keeps its last checkpoint",
        retry="Resume it",
    )
    assert isinstance(error, DatabaseUnavailableError)
    assert str(error) == (
        "PostgreSQL database 'x' at h:5432 failed while running a turn on thread 't': "
        "terminating connection due to administrator command. The thread keeps its last "
        "checkpoint. Resume it"
    )


def test_the_context_manager_translates_and_chains_the_cause() -> None:
    cause = psycopg.OperationalError("connection refused")
    with pytest.raises(DatabaseUnavailableError, match="failed while connecting") as raised:
        with database_errors("connecting", database="db"):
            raise cause
    assert raised.value.__cause__ is cause


def test_a_batch_binds_far_fewer_parameters_than_postgresql_allows() -> None:
    # A put binds at most 6 parameters and its vector 4 more.
    assert MAX_BATCH_OPS * 10 < 65_535
