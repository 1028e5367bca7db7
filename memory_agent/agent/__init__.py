"""The agent as programs use it: `open_agent` assembles the graph with its persistence behind
the run boundary (`boundary.GuardedAgent`); `manage` holds the calls on a user's data that span
the store and the checkpointer; `sync` is the same for synchronous code."""
