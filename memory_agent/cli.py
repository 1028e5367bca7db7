"""The `memory-agent` command: chat, one-shot questions, threads, memories, forget, prune, db.

Long on purpose: it is the command's whole surface, the parser and one short handler per
subcommand, each calling the agent's API; read top-down, it is the command's manual.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableConfig

from memory_agent.agent.boundary import cut_off, resume_turn
from memory_agent.agent.manage import (
    forget_user,
    known_user,
    memories,
    prune,
    reindex_store,
    resolve_memory_key,
)
from memory_agent.agent.open import open_agent
from memory_agent.analysis import report_lines, thread_report
from memory_agent.context import AgentContext
from memory_agent.errors import InvalidInputError, MemoryAgentError, ModelError
from memory_agent.graph import Agent
from memory_agent.memory.records import (
    KNOWLEDGE,
    MEMORY_KINDS,
    Memory,
    MemoryKind,
    MemoryRecord,
)
from memory_agent.memory.service import AuditReport, MemoryService
from memory_agent.models import check_models
from memory_agent.persistence.checkpointer import DURABILITY
from memory_agent.persistence.embedded import database_url
from memory_agent.persistence.namespaces import validate_user_id
from memory_agent.persistence.pool import open_pool
from memory_agent.persistence.retention import parse_age
from memory_agent.persistence.vector_search import MIN_MEMORIES, index_large_users
from memory_agent.state import InputState

HELP = "commands: /new  /threads  /switch ID  /memories  /quit   (Ctrl-C: cancel the turn, or quit)"

MAX_LIMIT = 10_000
"""The most items one listing asks for (`--limit`)."""
TTL_ENV = "MEMORY_AGENT_MEMORY_TTL"


def _progress(event: dict[str, Any]) -> str:
    name = event.get("event")
    if name == "memory_loaded":
        if event.get("skipped"):
            return f"memory: skipped ({event['skipped']})"
        counts = ", ".join(f"{k} {v}" for k, v in event.get("counts", {}).items()) or "nothing"
        return f"memory: loaded {event['memory_count']} ({counts}) in {event['ms']:.1f} ms"
    if name == "plan_ready":
        teams = ", ".join(event.get("teams", [])) or "none"
        return f"plan: {event['intent']} (teams: {teams})"
    if name == "memory_saved":
        if event.get("skipped"):
            return f"saved: nothing ({event['skipped']})"
        extra = f" + {len(event['memories'])} memories" if event["memories"] else ""
        return f"saved: conversation{extra}"
    if name == "model_fallback":
        return f"model: {event.get('purpose')} by {event.get('fallback')} ({event.get('error')})"
    if name == "team_started":
        return f"team {event.get('team')}: started"
    if name == "team_finished":
        ms = event.get("ms")
        took = f" in {ms:.1f} ms" if isinstance(ms, int | float) else ""
        if event.get("ok"):
            return f"team {event.get('team')}: done{took}"
        return f"team {event.get('team')}: failed{took} ({event.get('error')})"
    return str(name)


async def _turn(
    agent: Agent, user: str | None, thread: str, text: str, ctx: AgentContext, live: bool
) -> str:
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    # A turn cut off by a crash or a database failure is finished first, so every question
    # keeps its answer right after it.
    if await resume_turn(agent, config, context=ctx, user_id=user) is not None:
        print("  · finished the turn that was cut off on this thread", file=sys.stderr)
    turn: InputState = {"messages": [HumanMessage(text)], "user_id": user}
    answer: list[str] = []
    mid_line = False
    async for mode, part in agent.astream(
        turn,
        config,
        context=ctx,
        stream_mode=["custom", "messages"],
        durability=DURABILITY,
    ):
        chunk: Any = part
        if mode == "custom" and live:
            if mid_line:
                print(flush=True)
                mid_line = False
            print(f"  · {_progress(chunk)}", file=sys.stderr, flush=True)
        elif mode == "messages":
            message, meta = chunk
            if isinstance(message, AIMessageChunk) and meta.get("langgraph_node") == "response":
                answer.append(str(message.content))
                if live:
                    print(message.content, end="", flush=True)
                    mid_line = True
    if live and mid_line:
        print(flush=True)
    return "".join(answer)


class _Lines:
    """Lines of standard input, read in a daemon thread so the event loop never blocks on it.

    Read on the loop's own thread, a Ctrl-C at the prompt only took effect after Enter: asyncio
    turns SIGINT into a cancellation of the task, which a blocking read never yields to.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._wanted = threading.Event()
        self._prompt = ""
        threading.Thread(target=self._read, name="stdin", daemon=True).start()

    def _read(self) -> None:
        tty = sys.stdin.isatty()
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                line: str | None = input(self._prompt) if tty else sys.stdin.readline()
            except EOFError:
                line = None
            if line == "" and not tty:
                line = None  # end of input
            self._loop.call_soon_threadsafe(self._queue.put_nowait, line)
            if line is None:
                return

    async def next(self, prompt: str) -> str | None:
        """The next line (without its newline), or None at the end of input or on `close`."""
        self._prompt = prompt
        self._wanted.set()
        line = await self._queue.get()
        return None if line is None else line.rstrip("\n")

    def close(self) -> None:
        self._queue.put_nowait(None)


async def _chat(args: argparse.Namespace, ctx: AgentContext) -> int:
    user: str = args.user if args.user is not None else getpass.getuser()
    thread: str = args.thread or uuid.uuid4().hex[:12]
    check_models(ctx)
    loop = asyncio.get_running_loop()
    lines = _Lines(loop)
    running: list[asyncio.Task[str]] = []

    def interrupt() -> None:
        # Ctrl-C: cancel the turn in flight, else quit (at the prompt, at once).
        if running and not running[-1].done():
            running[-1].cancel()
        else:
            print(file=sys.stderr)
            lines.close()

    async with open_agent(args.database, embeddings=args.embeddings) as agent:
        service = memories(agent)
        print(f"memory-agent: chatting as {user!r} on thread {thread}. {HELP}", file=sys.stderr)
        loop.add_signal_handler(signal.SIGINT, interrupt)
        try:
            while (line := await lines.next(f"{user}> ")) is not None:
                text = line.strip()
                if not text:
                    continue
                if text in ("/quit", "/exit"):
                    break
                if text == "/new":
                    thread = uuid.uuid4().hex[:12]
                    print(f"new thread {thread}", file=sys.stderr)
                elif text == "/threads":
                    await _list_threads(service, user, thread)
                elif text.startswith("/switch"):
                    thread = await _switch(service, user, thread, text)
                elif text == "/memories":
                    for mem in await service.list_memories(user):
                        print(f"- [{mem['kind']}] {mem['text']}")
                elif text.startswith("/"):
                    print(HELP, file=sys.stderr)
                else:
                    task = asyncio.create_task(_turn(agent, user, thread, text, ctx, live=True))
                    running.append(task)
                    try:
                        await task
                    except asyncio.CancelledError:
                        if not task.cancelled():
                            raise
                        print(
                            "\n  · cancelled: the turn is cut off; your next message on this "
                            "thread finishes it first",
                            file=sys.stderr,
                        )
                    except ModelError as exc:
                        print(f"error: {exc}", file=sys.stderr)
                        print(f"  · {await _standing(agent, thread)}", file=sys.stderr)
                    except MemoryAgentError as exc:
                        print(f"error: {exc}", file=sys.stderr)
                    finally:
                        running.clear()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
    return 0


async def _list_threads(service: MemoryService, user: str, current: str) -> None:
    convs = await service.list_conversations(user, limit=MAX_LIMIT)
    for conv in convs:
        mark = "*" if conv["thread_id"] == current else " "
        count = conv["message_count"]
        print(f"{mark} {conv['thread_id']}  {conv['title']}  ({count} messages)")
    if all(conv["thread_id"] != current for conv in convs):
        print(f"* {current}  (current: no messages yet)")


async def _switch(service: MemoryService, user: str, current: str, text: str) -> str:
    """The thread `/switch ID` names: one of the user's by id or unambiguous prefix, else new."""
    parts = text.split(maxsplit=1)
    if len(parts) != 2:
        print("usage: /switch THREAD_ID (or the start of one, as /threads shows)", file=sys.stderr)
        return current
    wanted = parts[1].strip()
    ids = [c["thread_id"] for c in await service.list_conversations(user, limit=MAX_LIMIT)]
    matches = [t for t in ids if t == wanted] or [t for t in ids if t.startswith(wanted)]
    if len(matches) > 1:
        print(f"{wanted!r} starts several of your threads: {', '.join(matches)}", file=sys.stderr)
        return current
    if matches:
        print(f"switched to thread {matches[0]}", file=sys.stderr)
        return matches[0]
    print(
        f"no thread of yours is or starts with {wanted!r}: switched to a new thread {wanted}",
        file=sys.stderr,
    )
    return wanted


async def _standing(agent: Agent, thread: str) -> str:
    """How a thread stands after its turn failed on the model, in words for the user."""
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    try:
        kept = await cut_off(agent, config)
    except MemoryAgentError as exc:
        return f"the state of thread {thread} could not be read: {exc}"
    if kept:
        return (
            f"the turn was cut off: your message is kept on thread {thread} and is answered "
            "before your next message there (no need to send it again)"
        )
    return f"nothing of this turn was stored on thread {thread}; send it again"


async def _ask(args: argparse.Namespace, ctx: AgentContext) -> int:
    check_models(ctx)
    async with open_agent(args.database, embeddings=args.embeddings) as agent:
        try:
            answer = await _turn(agent, args.user, args.thread, args.text, ctx, live=False)
        except ModelError as exc:
            print(f"memory-agent: {exc}", file=sys.stderr)
            print(f"memory-agent: {await _standing(agent, args.thread)}", file=sys.stderr)
            return 1
    print(answer)
    return 0


async def _threads(args: argparse.Namespace, ctx: AgentContext) -> int:
    if not args.user:
        print("memory-agent threads: --user is required to list conversations", file=sys.stderr)
        return 2
    async with open_agent(args.database, embeddings=args.embeddings) as agent:
        convs = await memories(agent).list_conversations(args.user, limit=args.limit)
        if not convs:
            await _say_unknown(agent, args.user, "threads")
    if args.json:
        print(json.dumps(convs, indent=2))
    for conv in [] if args.json else convs:
        print(
            f"{conv['thread_id']}  {conv['updated_at'][:19]}  {conv['message_count']:>4} msgs  "
            f"{conv['title']}\n    last: {conv['last_message'][:80]}"
        )
    return 0


def _thread_show_parser(threads: argparse.ArgumentParser) -> None:
    show = threads.add_subparsers(dest="threads_command").add_parser(
        "show", help="what happened in a thread, turn by turn"
    )
    show.add_argument("thread_id")
    show.add_argument(
        "--user", type=_user, default=argparse.SUPPRESS, help="refuse unless this user owns it"
    )
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    show.set_defaults(func=_thread_show)


async def _thread_show(args: argparse.Namespace, ctx: AgentContext) -> int:
    """Per turn: time, intent, memories loaded, teams run or failed, what was saved."""
    async with open_agent(args.database, embeddings=args.embeddings) as agent:
        config: RunnableConfig = {"configurable": {"thread_id": args.thread_id}}
        values = (await agent.aget_state(config)).values
        owner = values.get("thread_owner")
        if not values or (args.user and owner != args.user):
            print(f"memory-agent threads show: no thread {args.thread_id!r}", file=sys.stderr)
            return 1
        report = await thread_report(args.thread_id, values, agent.store)
    _emit(args, report, report_lines(report))
    return 0


_KINDS: dict[str, tuple[MemoryKind, ...]] = {
    "knowledge": KNOWLEDGE,
    **{kind: (kind,) for kind in MEMORY_KINDS},
    "all": MEMORY_KINDS,
}


def _show(mem: Memory | MemoryRecord) -> str:
    # A fact, preference or entity by its subject (what a user types to name it), else its key.
    name = mem.get("subject") or mem.get("key", "")
    when = str(mem.get("said_at", ""))[:10]
    return f"{name}  {when}  [{mem.get('kind')}] {mem.get('text', '')}"


async def _say_unknown(agent: Agent, user: str, what: str) -> None:
    """On stderr: why a listing of the user's `what` is empty."""
    if await known_user(agent, user):
        print(f"user {user!r} has no {what}", file=sys.stderr)
    else:
        print(
            f"no user {user!r}: nothing is stored for them (never seen, or forgotten)",
            file=sys.stderr,
        )


def _emit(args: argparse.Namespace, value: Any, lines: list[str]) -> None:
    if args.json:
        print(json.dumps(value, indent=2, default=str))
    else:
        for line in lines:
            print(line)


async def _memories(args: argparse.Namespace, ctx: AgentContext) -> int:
    command = getattr(args, "memories_command", None) or "list"
    if command == "reindex":
        receipt = await reindex_store(args.database, embeddings=args.embeddings)
        print(json.dumps(receipt, indent=2))
        return 0
    if not getattr(args, "user", None):
        print(f"memory-agent memories {command}: --user is required", file=sys.stderr)
        return 2
    async with open_agent(args.database, embeddings=args.embeddings) as agent:
        service = memories(agent)
        user: str = args.user
        if command == "list":
            mems = await service.list_memories(user, kinds=_KINDS[args.kind])
            if not mems:
                await _say_unknown(agent, user, "memories of that kind")
            _emit(args, mems, [_show(m) for m in mems])
        elif command == "search":
            found = await service.search(user, args.query, limit=args.limit)
            _emit(args, found, [f"{r.get('score') or 0:.3f}  {_show(r)}" for r in found])
        elif command == "history":
            versions = await service.history(user, await resolve_memory_key(agent, user, args.key))
            lines = [
                f"v{v.get('version', 1)}  {str(v['said_at'])[:10]} -> "
                f"{str(v.get('valid_to') or 'now')[:10]}  {v['text']}"
                for v in versions
            ]
            _emit(args, versions, lines)
        elif command == "edit":
            key = await resolve_memory_key(agent, user, args.key)
            edited = await service.edit_memory(user, key, args.text)
            _emit(args, edited, [_show(edited)])
        elif command == "delete":
            try:
                key = await resolve_memory_key(agent, user, args.key)
            except InvalidInputError as exc:
                print(f"memory-agent: {exc}", file=sys.stderr)
                return 1
            deleted = await service.delete_memory(user, key)
            _emit(args, {"deleted": deleted}, ["deleted" if deleted else "no such memory"])
            return 0 if deleted else 1
        elif command == "audit":
            report = await service.audit(user)
            _emit(args, report, _audit_lines(report))
    return 0


def _audit_lines(report: AuditReport) -> list[str]:
    counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items())
    lines = [f"memories of {report['user_id']!r}: {counts}"]
    lines.append(f"near-duplicates: {len(report['near_duplicates'])}")
    for pair in report["near_duplicates"]:
        lines.append(f"  {pair['similarity']:.2f}  {_show(pair['a'])}")
        lines.append(f"        {_show(pair['b'])}")
    lines.append(f"superseded: {len(report['superseded'])}")
    for fact in report["superseded"]:
        lines.append(f"  {fact['key']}  {fact['subject']}")
        lines.extend(f"    v{v.get('version', 1)}  {v['text']}" for v in fact["versions"])
    return lines


async def _forget(args: argparse.Namespace, ctx: AgentContext) -> int:
    if not args.yes:
        print(f"this deletes every memory and thread of {args.user!r}; add --yes", file=sys.stderr)
        return 2
    async with open_agent(args.database, embeddings=args.embeddings) as agent:
        receipt = await forget_user(agent, args.user)
    print(json.dumps(receipt, indent=2))
    return 0


async def _prune(args: argparse.Namespace, ctx: AgentContext) -> int:
    async with open_agent(args.database, embeddings=args.embeddings) as agent:
        receipt = await prune(
            agent, args.older_than, keep_summaries=not args.drop_summaries, dry_run=args.dry_run
        )
    print(json.dumps(receipt, indent=2))
    return 0


async def _db(args: argparse.Namespace, ctx: AgentContext) -> int:
    async with open_agent(args.database, embeddings=args.embeddings, setup=True):
        pass
    print("database is set up")
    return 0


async def _db_index(args: argparse.Namespace, ctx: AgentContext) -> int:
    url = await database_url(args.database)
    async with open_pool(url, max_size=1) as pool, pool.connection() as conn:
        built = await index_large_users(conn, min_memories=args.min_memories)
    print(f"built {len(built)} user index(es)" + (f": {', '.join(built)}" if built else ""))
    return 0


def _count(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`."""

    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range ({low} to {high})")
        return value

    return count


def _checked(check: Callable[[str], Any]) -> Callable[[str], str]:
    """An argparse type: the text, if `check` accepts it (its error message otherwise)."""

    def checked(text: str) -> str:
        try:
            check(text)
        except InvalidInputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return checked


_user = _checked(validate_user_id)
_age = _checked(parse_age)


def _memory_options(p: argparse.ArgumentParser, *, suppress: bool = True) -> None:
    # SUPPRESS: a subcommand's unset option must not overwrite the one given before it.
    default: Any = argparse.SUPPRESS if suppress else None
    p.add_argument("--user", type=_user, default=default, help="whose memories")
    p.add_argument("--json", action="store_true", default=default if suppress else False)
    p.add_argument(
        "--kind",
        choices=sorted(_KINDS),
        default=default if suppress else "knowledge",
        help="which memories to list (default: knowledge = facts, preferences, entities)",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memory-agent", description=__doc__)
    p.add_argument("--database", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)")
    p.add_argument("--model", help="chat model: offline (default) or provider:model")
    p.add_argument("--embeddings", help="embedder: offline (default), local, or provider:model")
    p.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    sub = p.add_subparsers(dest="command", required=True)
    chat = sub.add_parser("chat", help="chat in a REPL with live progress")
    chat.add_argument("--user", type=_user, help="user id (default: the OS user)")
    chat.add_argument("--thread", help="thread id to resume (default: a new thread)")
    chat.set_defaults(func=_chat)
    ask = sub.add_parser("ask", help="one turn; prints the answer")
    ask.add_argument("--user", type=_user, help="user id (omit for an anonymous turn)")
    ask.add_argument("--thread", required=True, help="thread id")
    ask.add_argument("text")
    ask.set_defaults(func=_ask)
    threads = sub.add_parser(
        "threads",
        help="list a user's conversations; show what happened in one",
        description="Without a subcommand: list --user's conversations.",
    )
    threads.add_argument("--user", type=_user, help="whose conversations (required to list)")
    threads.add_argument("--limit", type=_count(1, MAX_LIMIT), default=20)
    threads.add_argument("--json", action="store_true")
    threads.set_defaults(func=_threads)
    _thread_show_parser(threads)
    mems = sub.add_parser(
        "memories",
        help="list, search, edit, delete, audit a user's memories; re-index",
        description="Without a subcommand: list (as `memories list`).",
    )
    _memory_options(mems, suppress=False)
    mems.set_defaults(func=_memories)
    msub = mems.add_subparsers(dest="memories_command")
    m_list = msub.add_parser(
        "list", help="current memories (default: facts, preferences, entities)"
    )
    _memory_options(m_list)
    m_search = msub.add_parser("search", help="the memories most relevant to a query")
    _memory_options(m_search)
    m_search.add_argument("query")
    m_search.add_argument("--limit", type=_count(1, MAX_LIMIT), default=10)
    m_history = msub.add_parser("history", help="every version of a memory, oldest first")
    _memory_options(m_history)
    m_history.add_argument("key", help="its subject (as `memories list` shows it) or key")
    m_edit = msub.add_parser("edit", help="correct a memory (a fact gets a new version)")
    _memory_options(m_edit)
    m_edit.add_argument("key", help="its subject or key")
    m_edit.add_argument("text")
    m_delete = msub.add_parser("delete", help="delete a memory and its history")
    _memory_options(m_delete)
    m_delete.add_argument("key", help="its subject or key")
    m_audit = msub.add_parser("audit", help="near-duplicates and superseded facts of a user")
    _memory_options(m_audit)
    msub.add_parser("reindex", help="re-embed every stored memory (after changing --embeddings)")
    forget = sub.add_parser("forget", help="delete all of a user's memories and threads")
    forget.add_argument("--user", type=_user, required=True)
    forget.add_argument("--yes", action="store_true", help="confirm")
    forget.set_defaults(func=_forget)
    prune_cmd = sub.add_parser(
        "prune", help="delete threads inactive for longer than --older-than, and expired memories"
    )
    prune_cmd.add_argument(
        "--older-than", type=_age, required=True, help="e.g. 30d, 12h, 2w (at most 36500d)"
    )
    prune_cmd.add_argument(
        "--drop-summaries",
        action="store_true",
        help="delete the pruned threads' conversation records too (default: keep them)",
    )
    prune_cmd.add_argument("--dry-run", action="store_true", help="only report what would go")
    prune_cmd.set_defaults(func=_prune)
    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    setup = db_sub.add_parser("setup", help="create or upgrade the tables (idempotent)")
    setup.set_defaults(func=_db)
    index = db_sub.add_parser(
        "index", help="give each user with many memories a vector index of their own"
    )
    index.add_argument(
        "--min-memories",
        type=_count(1, 10**9),
        default=MIN_MEMORIES,
        help=f"index users holding at least this many memories (default {MIN_MEMORIES})",
    )
    index.set_defaults(func=_db_index)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    if ttl := os.environ.get(TTL_ENV):
        try:
            parse_age(ttl)
        except InvalidInputError as exc:
            print(f"memory-agent: {TTL_ENV}: {exc}", file=sys.stderr)
            return 2
    try:
        ctx = AgentContext(model=args.model) if args.model else AgentContext()
        code: int = asyncio.run(args.func(args, ctx))
        return code
    except MemoryAgentError as exc:
        print(f"memory-agent: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
