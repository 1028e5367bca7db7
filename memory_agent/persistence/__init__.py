"""Persistence: every line of SQL, and nothing above it.

- `pool`: the connection pool every part shares; `embedded`: the default embedded PostgreSQL.
- `store` (LangGraph's store with exact per-user vector search), opened by `opening.open_store`.
- `schema`: tables created and upgraded (LangGraph's, then `migrations`), one process at a time.
- `checkpointer`: LangGraph's PostgreSQL checkpointer, bounded per thread.
- `bm25`: BM25 over the inverted index.
- `store_sql`: what the memory layer asks of the store beyond LangGraph's API (the inverted
  index's tables, transactions with subject locks, pages of a namespace, re-indexing).
- `locks`: the per-user and per-thread advisory locks; `retention`: forgetting and pruning.
- `namespaces`: how a user's items are laid out in the store; `vector_search`, `vectors`.
- `hybrid`: recall's BM25 and vector searches, the query embedded while BM25 runs.

Nothing here imports the memory, graph, agent or server layers (tests/unit/test_layers.py).
"""
