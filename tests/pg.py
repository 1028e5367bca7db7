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


class StoppableServer:
    """An embedded PostgreSQL of its own, which a test may stop and start again.

    The fault tests use it (never the shared test server), so stopping it disturbs no other test.
    """

    def __init__(self, workdir: Path) -> None:
        from pgserver.postgres_server import get_server

        self._server = get_server(workdir / "pgdata", cleanup_mode="delete")
        self.url = str(self._server.get_uri())

    def stop(self) -> None:
        """Stop PostgreSQL now (fast shutdown: open sessions are cut)."""
        from pgserver._commands import pg_ctl

        pg_ctl(
            ["-w", "-m", "fast", "stop"],
            pgdata=self._server.pgdata,
            user=self._server.system_user,
            timeout=60,
        )

    def start(self) -> None:
        """Start it again, at the same address."""
        from pgserver.postgres_server import PostgresServer

        with PostgresServer._lock:
            self._server.ensure_postgres_running()
        assert str(self._server.get_uri()) == self.url

    def close(self) -> None:
        self._server.cleanup()
