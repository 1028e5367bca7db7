"""A real PostgreSQL for the tests: $DATABASE_URL when set, else an embedded pgserver one.

Each test gets a database of its own (created from a template-free CREATE DATABASE and dropped
afterwards), so tests never see each other's rows. The server and the fresh database are the
benchmarks' (`benchmarks/common.py`, which the benchmark scripts import without the repository
on their path); the tests import them from here.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import fresh_database, server_url

__all__ = ["StoppableServer", "fresh_database", "server_url"]


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
