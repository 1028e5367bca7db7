"""Schema changes of our own, append-only.

`MIGRATIONS[v]` is schema version `v`. A database records the versions it has in
`memory_agent_migrations`; `apply_migrations` runs the missing ones in order, each in its own
transaction together with its version row, so a failure leaves the database at the last good
version. Never edit, reorder or remove an entry: a database made by an earlier version has
already run it (tests/unit/test_migrations.py holds the hash of each one and fails if one
changes). LangGraph's checkpointer and store keep their own migrations, run by their `setup()`.
"""

from __future__ import annotations

import logging
from typing import Any, LiteralString

from psycopg import AsyncConnection

from memory_agent.errors import ConfigurationError

logger = logging.getLogger(__name__)

CREATE_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS memory_agent_migrations (v integer PRIMARY KEY)"
)
"""The versions table, created before anything else (not itself a migration)."""

MIGRATIONS: list[LiteralString] = [
    # v0, v1: the memory's own tables (see `memory.pg`): the embedder record, and BM25's
    # inverted index kept by a trigger on the store.
    "CREATE TABLE IF NOT EXISTS memory_agent_settings "
    "(name text PRIMARY KEY, value jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())",
    """
CREATE TABLE IF NOT EXISTS memory_terms (
    prefix text NOT NULL,
    key text NOT NULL,
    term text NOT NULL,
    tf real NOT NULL,
    len real NOT NULL,
    PRIMARY KEY (prefix, term, key)
);
CREATE TABLE IF NOT EXISTS memory_term_stats (
    prefix text PRIMARY KEY,
    docs bigint NOT NULL,
    total_len double precision NOT NULL
);
CREATE OR REPLACE FUNCTION memory_agent_index_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.value->>'scope' = 'memory' AND OLD.value ? 'terms' THEN
        -- By the old terms, so the primary key serves (no second index to keep).
        DELETE FROM memory_terms
         WHERE prefix = OLD.prefix
           AND term = ANY(ARRAY(SELECT jsonb_object_keys(OLD.value->'terms')))
           AND key = OLD.key;
        UPDATE memory_term_stats
           SET docs = docs - 1, total_len = total_len - (OLD.value->>'length')::float8
         WHERE prefix = OLD.prefix;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.value->>'scope' = 'memory' AND NEW.value ? 'terms' THEN
        INSERT INTO memory_terms (prefix, key, term, tf, len)
        SELECT NEW.prefix, NEW.key, t.key, t.value::text::real, (NEW.value->>'length')::real
          FROM jsonb_each(NEW.value->'terms') AS t;
        INSERT INTO memory_term_stats AS s (prefix, docs, total_len)
        VALUES (NEW.prefix, 1, (NEW.value->>'length')::float8)
        ON CONFLICT (prefix) DO UPDATE
           SET docs = s.docs + 1, total_len = s.total_len + EXCLUDED.total_len;
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS memory_agent_terms ON store;
CREATE TRIGGER memory_agent_terms AFTER INSERT OR UPDATE OR DELETE ON store
    FOR EACH ROW EXECUTE FUNCTION memory_agent_index_terms();
INSERT INTO memory_terms (prefix, key, term, tf, len)
SELECT s.prefix, s.key, t.key, t.value::text::real, (s.value->>'length')::real
  FROM store s, jsonb_each(s.value->'terms') AS t
 WHERE s.value->>'scope' = 'memory' AND s.value ? 'terms'
ON CONFLICT DO NOTHING;
INSERT INTO memory_term_stats (prefix, docs, total_len)
SELECT prefix, count(*), sum((value->>'length')::float8)
  FROM store WHERE value->>'scope' = 'memory' AND value ? 'terms'
 GROUP BY prefix
ON CONFLICT (prefix) DO NOTHING;
""",
    # v2: find a user's threads (forget-user) without reading every checkpoint. The owner is a
    # string channel, which the checkpointer keeps inline in the checkpoint document.
    """CREATE INDEX IF NOT EXISTS memory_agent_checkpoints_owner_idx
    ON checkpoints ((checkpoint -> 'channel_values' ->> 'thread_owner'))
    WHERE checkpoint_ns = ''""",
    # v3: the BM25 index skips a term too long for an index row. Our analyzer cuts words to
    # `lexical.MAX_TERM_CHARS`; this keeps any other writer of a memory (the server's store
    # routes, an older version) from failing its write on `memory_terms_pkey`.
    """
CREATE OR REPLACE FUNCTION memory_agent_index_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.value->>'scope' = 'memory' AND OLD.value ? 'terms' THEN
        DELETE FROM memory_terms
         WHERE prefix = OLD.prefix
           AND term = ANY(ARRAY(SELECT jsonb_object_keys(OLD.value->'terms')))
           AND key = OLD.key;
        UPDATE memory_term_stats
           SET docs = docs - 1, total_len = total_len - (OLD.value->>'length')::float8
         WHERE prefix = OLD.prefix;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.value->>'scope' = 'memory' AND NEW.value ? 'terms' THEN
        INSERT INTO memory_terms (prefix, key, term, tf, len)
        SELECT NEW.prefix, NEW.key, t.key, t.value::text::real, (NEW.value->>'length')::real
          FROM jsonb_each(NEW.value->'terms') AS t
         WHERE octet_length(t.key) <= 512;
        INSERT INTO memory_term_stats AS s (prefix, docs, total_len)
        VALUES (NEW.prefix, 1, (NEW.value->>'length')::float8)
        ON CONFLICT (prefix) DO UPDATE
           SET docs = s.docs + 1, total_len = s.total_len + EXCLUDED.total_len;
    END IF;
    RETURN NULL;
END $$""",
]

LATEST_VERSION = "SELECT max(v) AS v FROM memory_agent_migrations"
RECORD_VERSION = "INSERT INTO memory_agent_migrations (v) VALUES (%s)"


async def schema_version(conn: AsyncConnection[Any]) -> int:
    """The highest of our migrations the database has run (-1: none)."""
    row = await (await conn.execute(LATEST_VERSION)).fetchone()
    value = None if row is None else row["v"]
    return -1 if value is None else int(value)


async def apply_migrations(conn: AsyncConnection[Any]) -> list[int]:
    """Run the migrations the database lacks, in order; return their versions.

    Needs an autocommit connection (each migration gets its own transaction) and the caller's
    guarantee that no other setup runs at the same time (see `persistence.setup_database`).

    Raises:
        ConfigurationError: the database was set up by a newer memory_agent.
    """
    await conn.execute(CREATE_MIGRATIONS_TABLE)
    current = await schema_version(conn)
    if current >= len(MIGRATIONS):
        raise ConfigurationError(
            f"the database has memory_agent schema version {current}, newer than this "
            f"memory_agent knows ({len(MIGRATIONS) - 1}): upgrade memory_agent"
        )
    applied: list[int] = []
    for version in range(current + 1, len(MIGRATIONS)):
        async with conn.transaction():
            # Not prepared: a migration may hold several statements.
            await conn.execute(MIGRATIONS[version], prepare=False)
            await conn.execute(RECORD_VERSION, (version,))
        logger.info("applied memory_agent migration %d", version)
        applied.append(version)
    return applied
