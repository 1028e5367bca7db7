"""A real PostgreSQL for the tests: $DATABASE_URL when set, else an embedded pgserver one.

Each test gets a database of its own (created from a template-free CREATE DATABASE and dropped
afterwards), so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo


@contextmanager
def server_url(workdir: Path) -> Iterator[str]:
    """The admin URL of the test server (embedded unless $DATABASE_URL is set)."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    from pgserver.postgres_server import get_server

    server = get_server(workdir / "pgdata", cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of `admin_url`; dropped on exit."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(admin_url)
    params["dbname"] = name
    try:
        yield make_conninfo(**params)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
