"""HTTP routes of the LangGraph server for a user's own memory (`http.app` in langgraph.json).

Every route acts on the caller's data only. With auth on (see `server.auth`) the caller is the
authenticated user and a `user_id` query parameter, if given, must be the same user; on an
open server (no tokens configured) `user_id` is required and names the user.

    GET    /me                            who the caller is: {"user_id", "auth"}
    GET    /me/conversations?limit=20     the caller's threads (title, last message, count, ...);
                                          `offset` pages on
    DELETE /me/conversations/{thread_id}  delete a thread, its record and its episodes
    GET    /me/threads/{thread_id}/report what happened in a thread, turn by turn
    GET    /me/memories?kind=fact         facts, preferences, entities (kind optional, repeatable)
    GET    /me/memories/search?q=..       the memories most relevant to `q` (`limit`, default 10)
    GET    /me/memories/{key}/history     every version of a memory, oldest first
    PATCH  /me/memories/{key}             correct a memory's text ({"text": ...}); a fact
                                          gets a new version, the old one stays in its history
    DELETE /me/memories/{key}             delete one memory -> {"deleted": key}
    DELETE /me                            forget me: every memory and thread -> a receipt
                                          (checkpoints and memories in one transaction)

The chat page (`server/ui/`) is served at `/ui/` without a token: static files only, no
data; everything it shows comes from the routes above and the server's own API, called with the
caller's token.

Errors are JSON `{"error": <code>, "detail": <message>}` with the matching status: 400, 401,
403, 404, 409 (the user's turns did not finish in time), 422, 503.

Long on purpose: every route that reaches a user's data is here with its own identity and
ownership checks, so the server's whole surface beyond LangGraph's API is reviewed in one file.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import httpx
from langgraph.store.base import PutOp
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from memory_agent.agent.boundary import latest_turn
from memory_agent.analysis import thread_report
from memory_agent.errors import (
    DatabaseUnavailableError,
    InvalidInputError,
    MemoryAgentError,
    database_errors,
)
from memory_agent.memory.records import KNOWLEDGE, MemoryBudget
from memory_agent.memory.service import MemoryService
from memory_agent.persistence.namespaces import user_namespace, validate_user_id
from memory_agent.persistence.opening import open_store
from memory_agent.persistence.pool import Pool
from memory_agent.persistence.retention import forget_user_data
from memory_agent.server.auth import OWNER_KEY
from memory_agent.server.deployment import http_status, server_pool
from memory_agent.server.tokens import TokenTable, bearer_token
from memory_agent.validation import storage_problem, validate_key

logger = logging.getLogger(__name__)

MAX_LIMIT = 100
MAX_OFFSET = 100_000
MAX_MEMORY_CHARS = 2_000
_THREAD_PAGE = 100
_KINDS = KNOWLEDGE


class RouteError(Exception):
    """An error answered as JSON with `status`."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclass
class _Deps:
    service: MemoryService
    pool: Pool
    client: LangGraphClient
    tokens: TokenTable | None

    @property
    def auth_on(self) -> bool:
        return self.tokens is not None


Handler = Callable[[Request, "_Deps", str], Awaitable[Any]]


def _caller(request: Request, tokens: TokenTable | None) -> str:
    """Who is asking: the bearer token's user, or on an open server the `user_id` parameter.

    The routes authenticate for themselves (`http.enable_custom_route_auth` is off) so that
    every answer, 401 included, has this module's `{"error", "detail"}` shape.
    """
    named = request.query_params.get("user_id")
    if tokens is not None:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise RouteError(
                401, "unauthenticated", "missing bearer token (Authorization: Bearer <token>)"
            )
        identity = tokens.identify(token)
        if identity is None:
            raise RouteError(401, "unauthenticated", "invalid token")
        if named is not None and named != identity:
            raise RouteError(403, "forbidden", "user_id differs from the authenticated user")
        return identity
    if named is None:
        raise RouteError(400, "bad_request", "user_id is required (the server has no auth)")
    return validate_user_id(named)


def _limit(request: Request, default: int) -> int:
    raw = request.query_params.get("limit", str(default))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise RouteError(422, "invalid_input", f"limit must be an integer in 1..{MAX_LIMIT}")
    return value


def _offset(request: Request) -> int:
    raw = request.query_params.get("offset", "0")
    if not raw.isdigit() or int(raw) > MAX_OFFSET:
        raise RouteError(422, "invalid_input", f"offset must be an integer in 0..{MAX_OFFSET}")
    return int(raw)


async def _conversations(request: Request, deps: _Deps, user: str) -> Any:
    limit, offset = _limit(request, 20), _offset(request)
    found = await deps.service.list_conversations(user, limit=limit, offset=offset)
    return {"conversations": found}


async def _memories(request: Request, deps: _Deps, user: str) -> Any:
    kinds = request.query_params.getlist("kind") or list(_KINDS)
    unknown = sorted(set(kinds) - set(_KINDS))
    if unknown:
        raise RouteError(422, "invalid_input", f"unknown kind(s) {unknown}; known: {_KINDS}")
    chosen = [k for k in _KINDS if k in kinds]
    return {"memories": await deps.service.list_memories(user, kinds=chosen)}


async def _search(request: Request, deps: _Deps, user: str) -> Any:
    query = request.query_params.get("q", "").strip()
    if not query:
        raise RouteError(422, "invalid_input", "q (the search text) is required")
    budget: MemoryBudget = {"conversations": 0, "memories": _limit(request, 10)}
    return {"memories": await deps.service.recall(user, query, budget)}


async def _delete_memory(request: Request, deps: _Deps, user: str) -> Any:
    key = validate_key(request.path_params["key"], "memory key")
    if not await deps.service.delete_memory(user, key):
        raise RouteError(404, "not_found", f"no memory {key!r}")
    return {"deleted": key}


async def _forget(request: Request, deps: _Deps, user: str) -> Any:
    # The server's own records of the user's threads, found before their checkpoints go.
    on_server = await _server_threads(deps, user)
    # A record the user holds over another user's checkpoints (created before those were
    # written) is left alone: deleting it would delete them.
    on_server = [t for t in on_server if not await _someone_elses(deps, t, user)]
    # A run of the user's still queued or going would write again after the receipt: stop them
    # first. A turn of a program or the CLI holds the user's lock, which forget waits for.
    for thread_id in on_server:
        await _stop_runs(deps, thread_id)
    # Checkpoints and memories: one transaction (see `retention.forget_user_data`).
    receipt = await forget_user_data(deps.pool, user)
    for thread_id in on_server:
        await _delete_server_thread(deps, thread_id)
    threads = sorted({*receipt["threads"], *on_server})
    receipt["threads"] = threads
    receipt["deleted"]["threads"] = len(threads)
    logger.info("forgot user: %s", receipt["deleted"])
    return receipt


async def _server_threads(deps: _Deps, user: str) -> list[str]:
    """Threads the server knows as the user's: by owner metadata (auth on) or by state (open).

    On an open server the threads carry no owner metadata, so all of them are paged through and
    the owner read from their state (filtering by `values` server-side fails in langgraph-api
    0.16 as soon as any thread has no state yet).
    """
    found: list[str] = []
    metadata = {OWNER_KEY: user} if deps.auth_on else None
    offset = 0
    while True:
        page = await deps.client.threads.search(
            metadata=metadata, limit=_THREAD_PAGE, offset=offset
        )
        for thread in page:
            if deps.auth_on or (thread.get("values") or {}).get("thread_owner") == user:
                found.append(str(thread["thread_id"]))
        if len(page) < _THREAD_PAGE:
            return found
        offset += _THREAD_PAGE


async def _someone_elses(deps: _Deps, thread_id: str, user: str) -> bool:
    return (await latest_turn(deps.pool, thread_id)).problem_for(user) is not None


async def _stop_runs(deps: _Deps, thread_id: str) -> None:
    """Cancel the thread's queued and running server runs, and wait until they have stopped."""
    for status in ("pending", "running"):
        for run in await deps.client.runs.list(thread_id, status=status, limit=MAX_LIMIT):
            try:
                await deps.client.runs.cancel(thread_id, run["run_id"], wait=True)
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code not in (404, 409):
                    raise


async def _delete_server_thread(deps: _Deps, thread_id: str) -> None:
    """Delete the server's record of a thread (its copy of the state included)."""
    try:
        await deps.client.threads.delete(thread_id)
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code not in (404, 422):
            raise


async def _whoami(request: Request, deps: _Deps) -> JSONResponse:
    """GET /me: the caller, and whether the server checks tokens (the page's sign-in)."""
    try:
        if deps.auth_on or "user_id" in request.query_params:
            user: str | None = _caller(request, deps.tokens)
        else:
            user = None  # an open server: the page asks who is talking
    except RouteError as exc:
        return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status)
    except InvalidInputError as exc:
        return JSONResponse({"error": "invalid_input", "detail": str(exc)}, status_code=422)
    return JSONResponse({"user_id": user, "auth": deps.auth_on})


async def _memory_history(request: Request, deps: _Deps, user: str) -> Any:
    key = validate_key(request.path_params["key"], "memory key")
    if await deps.service.get_memory(user, key) is None:
        raise RouteError(404, "not_found", f"no memory {key!r}")
    return {"versions": await deps.service.history(user, key)}


async def _edit_memory(request: Request, deps: _Deps, user: str) -> Any:
    key = validate_key(request.path_params["key"], "memory key")
    try:
        body = await request.json()
    except ValueError as exc:
        raise RouteError(400, "bad_request", 'the body must be JSON: {"text": "..."}') from exc
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise RouteError(422, "invalid_input", "text (the corrected memory) is required")
    if len(text) > MAX_MEMORY_CHARS:
        raise RouteError(
            422, "invalid_input", f"text is {len(text)} characters; the limit is {MAX_MEMORY_CHARS}"
        )
    if problem := storage_problem(text):
        raise RouteError(422, "invalid_input", f"text {problem}")
    found = await deps.service.get_memory(user, key)
    if found is None:
        raise RouteError(404, "not_found", f"no memory {key!r}")
    if found.get("valid_to") or found.get("superseded_by"):
        raise RouteError(409, "superseded", "an old version cannot be edited; edit the current one")
    return {"memory": await deps.service.edit_memory(user, key, text)}


async def _owned_thread(deps: _Deps, user: str, thread_id: str) -> dict[str, Any]:
    """The server's thread if the caller owns it; else 404 (whether it exists or not)."""
    missing = RouteError(404, "not_found", f"no conversation {thread_id!r}")
    try:
        thread: dict[str, Any] = dict(await deps.client.threads.get(thread_id))
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code in (404, 422):
            raise missing from exc
        raise
    if deps.auth_on:
        owner = (thread.get("metadata") or {}).get(OWNER_KEY)
    else:
        owner = (thread.get("values") or {}).get("thread_owner")
    # The record may be the caller's while the checkpoints are someone else's (a program wrote
    # the id after the record was made): the routes' in-process client is not checked by the
    # server's checkpointer, so the checkpoints' owner is checked here.
    if owner != user or await _someone_elses(deps, thread_id, user):
        raise missing
    return thread


async def _thread_report(request: Request, deps: _Deps, user: str) -> Any:
    thread_id = validate_key(request.path_params["thread_id"], "thread id")
    await _owned_thread(deps, user, thread_id)
    state = await deps.client.threads.get_state(thread_id)
    values = state.get("values") or {}
    if not isinstance(values, dict):
        values = {}
    return await thread_report(thread_id, values, deps.service.store)


async def _delete_conversation(request: Request, deps: _Deps, user: str) -> Any:
    """The thread (checkpoints included, through the server), its record and its episodes.

    The facts, preferences and entities learnt in it stay: they are the user's knowledge, listed
    and deletable on their own.
    """
    thread_id = validate_key(request.path_params["thread_id"], "thread id")
    await _owned_thread(deps, user, thread_id)
    await _stop_runs(deps, thread_id)  # a run still going would write the thread again
    await _delete_server_thread(deps, thread_id)
    store = deps.service.store
    record_ns = user_namespace(user, "conversations")
    had_record = await store.aget(record_ns, thread_id) is not None
    episodes_ns = user_namespace(user, "episodes")
    episodes: list[str] = []
    while True:
        page = await store.asearch(
            episodes_ns, filter={"thread_id": thread_id}, limit=_THREAD_PAGE, offset=len(episodes)
        )
        episodes.extend(i.key for i in page)
        if len(page) < _THREAD_PAGE:
            break
    ops = [PutOp(episodes_ns, key, None) for key in episodes]
    ops.append(PutOp(record_ns, thread_id, None))
    await store.abatch(ops)
    return {"deleted": thread_id, "conversation": had_record, "episodes": len(episodes)}


_UI_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
_UI_HEADERS = {
    # Everything the page loads is its own; nothing inline, nothing from elsewhere.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def _ui(request: Request) -> Response:
    """The chat page's files (static: no data, so no token is needed to fetch them)."""
    name = request.path_params.get("name") or "index.html"
    if name not in _UI_FILES:
        return JSONResponse({"error": "not_found", "detail": "no such file"}, status_code=404)
    body = (resources.files("memory_agent.server") / "ui" / name).read_bytes()
    return Response(body, media_type=_UI_FILES[name], headers=_UI_HEADERS)


async def _ui_redirect(request: Request) -> Response:
    return RedirectResponse("/ui/", status_code=307)


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[JSONResponse]]:
    """Wrap a handler: resolve the caller, answer JSON, translate errors to status codes."""

    async def endpoint(request: Request) -> JSONResponse:
        deps: _Deps = request.app.state.memory_routes
        try:
            with database_errors("answering a memory route", refusals=True):
                return JSONResponse(await handler(request, deps, _caller(request, deps.tokens)))
        except RouteError as exc:
            status, code, detail = exc.status, exc.code, exc.detail
        except MemoryAgentError as exc:
            (status, code), detail = http_status(exc), str(exc)
            if isinstance(exc, DatabaseUnavailableError):
                logger.error("database unavailable: %s", exc)
                detail = "the database is unavailable"
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)

    endpoint.__name__ = handler.__name__.lstrip("_")
    return endpoint


async def _whoami_endpoint(request: Request) -> JSONResponse:
    return await _whoami(request, request.app.state.memory_routes)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Open the routes' own pool on the server's database (the server has set up the tables)."""
    async with (
        server_pool() as pool,
        get_client(url=None, api_key=None) as client,  # in-process, no auth: we filter
    ):
        app.state.memory_routes = _Deps(
            service=MemoryService(await open_store(pool, setup=False)),
            pool=pool,
            client=client,
            tokens=TokenTable.from_env(),
        )
        yield


def create_app() -> Starlette:
    """The routes as a Starlette app (no I/O until the server runs its lifespan)."""
    return Starlette(
        routes=[
            Route("/me", _whoami_endpoint, methods=["GET"]),
            Route("/me/conversations", _endpoint(_conversations), methods=["GET"]),
            Route(
                "/me/conversations/{thread_id}",
                _endpoint(_delete_conversation),
                methods=["DELETE"],
            ),
            Route("/me/threads/{thread_id}/report", _endpoint(_thread_report), methods=["GET"]),
            Route("/me/memories/{key}/history", _endpoint(_memory_history), methods=["GET"]),
            Route("/me/memories/{key}", _endpoint(_edit_memory), methods=["PATCH"]),
            Route("/me/memories", _endpoint(_memories), methods=["GET"]),
            Route("/me/memories/search", _endpoint(_search), methods=["GET"]),
            Route("/me/memories/{key}", _endpoint(_delete_memory), methods=["DELETE"]),
            Route("/me", _endpoint(_forget), methods=["DELETE"]),
            Route("/ui", _ui_redirect, methods=["GET"]),
            Route("/ui/", _ui, methods=["GET"]),
            Route("/ui/{name}", _ui, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


app = create_app()
"""The object `http.app` in langgraph.json names."""
