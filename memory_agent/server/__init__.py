"""What `langgraph.json` names for the LangGraph server: `deployment` (the graph behind the run
boundary, and the checkpointer and store factories), `auth` (bearer tokens) and `routes` (the
memory routes and the chat page under `ui/`)."""
