"""What the LangGraph dev server costs: its start-up time, and the latency it adds to a turn.

Starts the real `langgraph dev` (our langgraph.json, auth on, PostgreSQL) several times and
times each start until /ok answers. Then, on one running server, times whole turns through
langgraph_sdk (`runs.wait`) against the same turns through `open_agent(...).ainvoke` on the same
database, interleaved so both see the same machine load: `runs.wait`, `runs.stream` (total, first
progress event, first token) and a plain HTTP round trip (`threads.get`) for scale. Prints one
JSON object (medians, plus every sample).

    python benchmarks/server_overhead.py [--starts 3] [--runs 15] [--quick]

Uses $DATABASE_URL when set, else an embedded PostgreSQL in a temporary directory.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from common import arguments, database, emit, median, ms
from devserver import DevServer
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph_sdk import get_client

from memory_agent import InputState, open_agent

TEXT = "I live in Busan and I like hiking. What should I do this weekend?"
TOKEN = "bench-token-0123456789abcdef"


def _server(workdir: Path, url: str) -> DevServer:
    return DevServer(
        workdir,
        {
            "DATABASE_URL": url,
            "MEMORY_AGENT_HOME": str(workdir / "home"),
            "MEMORY_AGENT_AUTH_TOKENS": json.dumps({TOKEN: "bench-server"}),
        },
    )


def _queue_median_ms(server: DevServer, last: int) -> float:
    """Median time the server's last runs waited in its queue (`run_queue_ms` in its log)."""
    log = re.sub(r"\x1b\[[0-9;]*m", "", server.log_path.read_text())  # colour codes
    waits = [int(m) for m in re.findall(r"run_queue_ms=(\d+)", log)]
    return float(statistics.median(waits[-last:])) if waits else float("nan")


async def _latencies(server: DevServer, url: str, runs: int, warmup: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {
        "server_wait": [],
        "server_stream": [],
        "server_stream_first_event": [],
        "server_stream_first_token": [],
        "program": [],
        "http_round_trip": [],
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    turn_json: dict[str, Any] = {"messages": [{"role": "user", "content": TEXT}]}
    async with (
        get_client(url=server.url, api_key=None, headers=headers) as client,
        open_agent(url) as agent,
    ):
        for i in range(warmup + runs):
            sample: dict[str, float] = {}
            thread_id = str((await client.threads.create())["thread_id"])
            started = time.perf_counter()
            await client.threads.get(thread_id)
            sample["http_round_trip"] = time.perf_counter() - started

            started = time.perf_counter()
            result = await client.runs.wait(thread_id, "supervisor", input=turn_json)
            sample["server_wait"] = time.perf_counter() - started
            assert isinstance(result, dict) and result.get("messages"), result

            thread_id = str((await client.threads.create())["thread_id"])
            started = time.perf_counter()
            first_event = first_token = None
            async for part in client.runs.stream(
                thread_id, "supervisor", input=turn_json, stream_mode=["custom", "messages-tuple"]
            ):
                now = time.perf_counter() - started
                if part.event in ("custom", "messages") and first_event is None:
                    first_event = now
                if part.event == "messages" and first_token is None:
                    first_token = now
            sample["server_stream"] = time.perf_counter() - started
            assert first_event is not None and first_token is not None
            sample["server_stream_first_event"] = first_event
            sample["server_stream_first_token"] = first_token

            config: RunnableConfig = {"configurable": {"thread_id": str(uuid.uuid4())}}
            turn: InputState = {"messages": [HumanMessage(TEXT)], "user_id": "bench-program"}
            started = time.perf_counter()
            await agent.ainvoke(turn, config)
            sample["program"] = time.perf_counter() - started
            if i >= warmup:
                for name, value in sample.items():
                    times[name].append(value)
    medians = {f"{name}_median_ms": ms(median(values)) for name, values in times.items()}
    program = statistics.median(times["program"])
    return {
        **medians,
        "added_by_server_wait_ms": round(
            (statistics.median(times["server_wait"]) - program) * 1000, 2
        ),
        "added_by_server_stream_ms": round(
            (statistics.median(times["server_stream"]) - program) * 1000, 2
        ),
        "ratio_server_wait_to_program": round(statistics.median(times["server_wait"]) / program, 2),
        "runs_ms": {name: [ms(v) for v in values] for name, values in times.items()},
    }


def main() -> None:
    parser = arguments(__doc__ or "")
    parser.add_argument("--starts", type=int, default=3, help="server starts to time")
    parser.add_argument("--runs", type=int, default=15, help="timed turns per path")
    parser.add_argument("--warmup", type=int, default=2, help="untimed turns per path first")
    args = parser.parse_args()
    if args.quick:
        args.starts, args.runs, args.warmup = 1, 2, 1

    with tempfile.TemporaryDirectory(prefix="server-overhead-") as tmp, database() as url:
        startups: list[float] = []
        for i in range(args.starts):
            server = _server(Path(tmp) / f"start-{i}", url)
            startups.append(server.start())
            server.stop()
        server = _server(Path(tmp) / "latency", url)
        server.start()
        try:
            latency = asyncio.run(_latencies(server, url, args.runs, args.warmup))
        finally:
            server.stop()
        latency["server_run_queue_median_ms"] = _queue_median_ms(server, args.runs * 2)

    emit(
        {
            "benchmark": "server_overhead",
            "dev_server_startup_s": {
                "median": round(statistics.median(startups), 3),
                "runs": [round(s, 3) for s in startups],
            },
            "turn_latency": latency,
            "config": {
                "starts": args.starts,
                "runs": args.runs,
                "warmup": args.warmup,
                "auth": True,
                "model": "offline",
                "server_calls": ["runs.wait", "runs.stream"],
                "program_call": "open_agent().ainvoke",
            },
        }
    )


if __name__ == "__main__":
    main()
