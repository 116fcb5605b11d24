"""Throughput of the API's hot GraphQL operations, beside a hand-written Starlette + asyncpg
endpoint serving the same answers (scripts/bench_raw.py). Printed, never asserted.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres make bench
    python scripts/bench.py [--rounds 3] [--duration 5] [--warmup 3] [--connections 32]
                            [--threads 2] [--workers 1,2] [--only Q1,Q2,Q2T] [--check 50]
                            [--pool 2 per core]

Data: 3,000,000 messages in 100,000 sessions of 2,000 people (scripts/bench_data.py), kept in
the database `us_bench_3m` on BENCH_DATABASE_URL's server and reused by later runs (generated
again if incomplete); without BENCH_DATABASE_URL an embedded PostgreSQL, generated every time.

Operations (the documents below), 1,000 rotating parameter sets each:
- Q1: a page of 50 messages `before:` a cursor deep in a busy session (2,000-10,000 messages),
  as the session's owner;
- Q2: a person's first 50 sessions with each one's newest message, each request a different
  person (its own bearer token);
- Q2T: the same, telegram sessions only.

Before anything is timed, the tables the bench reads and their B-tree indexes are read into
the OS cache (bench_data.warm: pg_prewarm where it can be created), so that reused data after a
dropped cache does not measure the disk.

For each process count in --workers, both servers are started as real processes on the same
data: `unified-sessions serve --workers N` (DATABASE_URL, JWT_SECRET, AGENT_BACKEND=echo, no
REDIS_URL) and `uvicorn bench_raw:app --workers N`. Both hold the same number of PostgreSQL
connections: --pool per server (default two per core, the usual size for a database on this
machine's cores), split evenly over its processes (DB_POOL_MAX for the API, BENCH_RAW_POOL_SIZE
for the raw endpoint). Before timing, --check parameter sets per operation are sent to both and
the parsed answers must be identical (json.dumps of each, so key order counts); a difference
stops the bench. Then, per operation, wrk (Debian's /usr/bin/wrk) warms each server up and runs
--rounds timed runs on each, the two servers taking turns (raw, API; API, raw; ...), so that
what drifts on a shared machine while the bench runs weighs on both alike. wrk runs a generated
Lua script that rotates through the parameter sets (full body and Authorization header each)
and counts non-200 answers and answers with "errors"; a run with any is reported as invalid.
Printed per process count: req/s over all rounds, the median round's p50 and p99 (wrk's
latency), CPU ms per request of the server's process tree (parent and workers, /proc utime +
stime around each timed run), and API/raw: the median of the rounds' ratios, each taken between
two back-to-back runs (their range is printed below the table, with the worst round's p99 and
PostgreSQL's backends' and wrk's own CPU per request: all share the same cores).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from graphql_api.core.embedded import embedded_postgres
from graphql_api.core.tokens import mint_token
from graphql_api.schema.types import message_cursor

sys.path.insert(0, str(Path(__file__).parent))
import bench_data
from bench_load import Request, Result, Rounds, Server, measure, start, stop, write_lua, wrk

SECRET = "bench-" + secrets.token_hex(16)
PARAMETER_SETS = 1_000

Q1 = (
    "query Q1($s: String!, $b: String) { messages(sessionId: $s, last: 50, before: $b) "
    "{ edges { cursor node { id role content createdAt via } } "
    "pageInfo { hasPreviousPage startCursor } } }"
)
Q2 = (
    "query Q2($first: Int) { sessions(first: $first) { edges { cursor node { id sessionId "
    "channel agentName title isActive updatedAt lastMessage { id role content createdAt } } } "
    "pageInfo { hasNextPage endCursor } } }"
)
Q2T = (
    "query Q2T($first: Int) { sessions(first: $first, channel: TELEGRAM) { edges { cursor node "
    "{ id sessionId channel agentName title isActive updatedAt lastMessage { id role content "
    "createdAt } } } pageInfo { hasNextPage endCursor } } }"
)
DOCUMENTS = {"Q1": Q1, "Q2": Q2, "Q2T": Q2T}
LABELS = {
    "Q1": "Q1 messages(last:50, before: deep)",
    "Q2": "Q2 sessions(first:50) + lastMessage",
    "Q2T": "Q2T sessions(first:50, TELEGRAM)",
}


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    if url := os.environ.get("BENCH_DATABASE_URL"):
        yield url
        return
    with (
        tempfile.TemporaryDirectory() as tmp,
        embedded_postgres(Path(tmp) / "pg", delete=True) as url,
    ):
        yield url


async def wait_until_healthy(client: httpx.AsyncClient, tries: int = 300) -> None:
    """Until the server under test answers /healthz (it may still be importing)."""
    for _ in range(tries):
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/healthz")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError("the server under test did not answer /healthz in time")


# --- parameter sets -------------------------------------------------------------------------


async def parameter_sets(url: str) -> dict[str, list[Request]]:
    rng = random.Random(1414)
    tokens: dict[uuid.UUID, str] = {}

    def bearer(user_id: uuid.UUID) -> str:
        if user_id not in tokens:
            tokens[user_id] = "Bearer " + mint_token(SECRET, user_id, ttl=12 * 3600)
        return tokens[user_id]

    def body(name: str, variables: dict[str, Any]) -> str:
        return json.dumps({"query": DOCUMENTS[name], "operationName": name, "variables": variables})

    conn = await asyncpg.connect(url)
    try:
        busy = await conn.fetch(
            "SELECT m.session_id, s.user_id, m.n FROM (SELECT session_id, count(*) AS n "
            "FROM chat_message_history GROUP BY session_id HAVING count(*) >= 2000) m "
            "JOIN chat_sessions s USING (session_id) ORDER BY m.session_id"
        )
        q1 = []
        for k in range(PARAMETER_SETS):
            row = busy[k % len(busy)]
            offset = rng.randint(row["n"] // 10, row["n"] * 9 // 10)
            position = await conn.fetchval(  # setup only, not what is measured
                "SELECT id FROM chat_message_history WHERE session_id = $1 "
                "ORDER BY id OFFSET $2 LIMIT 1",
                row["session_id"],
                offset,
            )
            q1.append(
                Request(
                    bearer(row["user_id"]),
                    body(
                        "Q1",
                        {"s": row["session_id"], "b": message_cursor(row["session_id"], position)},
                    ),
                )
            )
        rng.shuffle(q1)
        people = [
            r["user_id"]
            for r in await conn.fetch("SELECT DISTINCT user_id FROM chat_sessions ORDER BY user_id")
        ]
    finally:
        await conn.close()
    sets = {"Q1": q1}
    for name in ("Q2", "Q2T"):
        chosen = rng.sample(people, min(PARAMETER_SETS, len(people)))
        sets[name] = [Request(bearer(p), body(name, {"first": 50})) for p in chosen]
    return sets


# --- correctness ----------------------------------------------------------------------------


def check_same_answers(
    raw: Server, project: Server, sets: dict[str, list[Request]], count: int
) -> None:
    with httpx.Client(timeout=30) as client:
        for name, requests in sets.items():
            for request in requests[:count]:
                answers = []
                for server in (raw, project):
                    response = client.post(
                        server.base + "/graphql",
                        content=request.body,
                        headers={
                            "Authorization": request.authorization,
                            "Content-Type": "application/json",
                        },
                    )
                    if response.status_code != 200 or "errors" in response.json():
                        raise SystemExit(
                            f"{name}: {server.name} answered {response.status_code}: "
                            f"{response.text[:500]}\nrequest: {request.body}"
                        )
                    answers.append(json.dumps(response.json()))
                if answers[0] != answers[1]:
                    at = next(
                        (i for i, (a, b) in enumerate(zip(*answers, strict=False)) if a != b),
                        min(map(len, answers)),
                    )
                    raise SystemExit(
                        f"{name}: the raw endpoint and the API answer differently "
                        f"(first difference at character {at}):\n"
                        f"  raw: ...{answers[0][max(0, at - 120) : at + 120]}\n"
                        f"  api: ...{answers[1][max(0, at - 120) : at + 120]}\n"
                        f"request: {request.body}"
                    )
            print(f"  {name}: {count} answers identical", flush=True)


# --- the run --------------------------------------------------------------------------------


def ratios(by_server: dict[str, Rounds]) -> list[float]:
    """API/raw of each round, between two back-to-back runs."""
    pairs = zip(by_server["project"].runs, by_server["raw"].runs, strict=True)
    return [api.rate / raw.rate for api, raw in pairs]


def compare(
    raw: Server, project: Server, url: str, lua: Path, args: argparse.Namespace
) -> dict[str, Rounds]:
    """Warm both up, then --rounds timed runs each, taking turns (who goes first alternates)."""
    servers = (raw, project)
    for server in servers:
        wrk(server, lua, args.warmup, args)
    runs: dict[str, list[Result]] = {server.name: [] for server in servers}
    for index in range(args.rounds):
        for server in servers if index % 2 == 0 else servers[::-1]:
            runs[server.name].append(measure(server, url, lua, args))
    return {name: Rounds(results) for name, results in runs.items()}


def print_table(workers: int, pool: int, results: dict[str, dict[str, Rounds]]) -> None:
    processes = f"{workers} worker process{'es' if workers > 1 else ''}"
    print(f"\n{processes} each, {pool} PostgreSQL connections per process")
    head = f"{'operation':38} | {'raw req/s':>9} {'p50':>6} {'p99':>6} {'CPU ms':>6} | "
    head += f"{'API req/s':>9} {'p50':>6} {'p99':>6} {'CPU ms':>6} | {'API/raw':>7}"
    print(head)
    print("-" * len(head))
    for name, by_server in results.items():
        cells = []
        for kind in ("raw", "project"):
            r = by_server[kind]
            rate = f"{r.rate:9.0f}" if not r.bad else f"{'INVALID':>9}"
            cpu = r.per_request("cpu_ms") or 0.0
            cells.append(f"{rate} {r.median('p50_ms'):6.1f} {r.median('p99_ms'):6.1f} {cpu:6.2f}")
        ratio = statistics.median(ratios(by_server))
        print(f"{LABELS[name]:38} | {cells[0]} | {cells[1]} | {ratio:7.2f}")
    print(
        "(p50/p99: the median round's, ms; CPU ms: the server's processes' user+system CPU per "
        "request; API/raw: the median round's ratio)"
    )
    for name, by_server in results.items():
        each = ratios(by_server)
        parts = [f"API/raw per round {' '.join(f'{x:.2f}' for x in each)}"]
        for kind in ("raw", "project"):
            r = by_server[kind]
            pg = r.per_request("pg_ms")
            worst = max(run.p99_ms for run in r.runs)
            parts.append(
                f"{kind}: worst p99 {worst:.1f}, PostgreSQL "
                f"{f'{pg:.2f}' if pg is not None else 'n/a'}, wrk {r.per_request('wrk_ms'):.2f}"
            )
            if r.bad:
                parts[-1] += f", {r.bad} bad answers (INVALID)"
        print(f"  {name}: " + "; ".join(parts))


def run(server_url: str, args: argparse.Namespace) -> None:
    url, generated = asyncio.run(bench_data.ensure_data(server_url))
    seconds = (
        generated if generated is not None else asyncio.run(bench_data.generation_seconds(url))
    )
    how = "generated now" if generated is not None else "reused"
    print(
        f"data: {bench_data.SHAPE} in {bench_data.DATABASE} ({how}; generation took "
        f"{seconds:.0f} s)"
        if seconds is not None
        else f"data: {bench_data.SHAPE}"
    )
    print(f"warmed the OS cache: {asyncio.run(bench_data.warm(url))}", flush=True)
    sets = asyncio.run(parameter_sets(url))
    only = [name for name in args.only.split(",") if name]
    sets = {name: sets[name] for name in only}
    print(
        f"{PARAMETER_SETS} parameter sets per operation; wrk -t{args.threads} "
        f"-c{args.connections}, {args.warmup:g} s warm-up, {args.rounds} rounds of "
        f"{args.duration:g} s, the servers taking turns; "
        f"{os.cpu_count()} cores shared by wrk, the server and PostgreSQL; {args.pool} "
        "PostgreSQL connections per server"
    )
    with tempfile.TemporaryDirectory(prefix="us-bench-") as tmp:
        scripts = {name: write_lua(Path(tmp), name, requests) for name, requests in sets.items()}
        for index, workers in enumerate(int(w) for w in args.workers.split(",")):
            per_process = max(1, args.pool // workers)
            raw = start("raw", url, workers, per_process, SECRET)
            try:
                project = start("project", url, workers, per_process, SECRET)
                try:
                    if index == 0 and args.check:
                        print("checking that both answer alike:", flush=True)
                        check_same_answers(raw, project, sets, args.check)
                    results: dict[str, dict[str, Rounds]] = {}
                    for name, lua in scripts.items():
                        results[name] = compare(raw, project, url, lua, args)
                        print(f"  {name} measured at {workers} worker(s)", flush=True)
                finally:
                    stop(project)
            finally:
                stop(raw)
            print_table(workers, per_process, results)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per server")
    parser.add_argument("--duration", type=float, default=5, help="seconds per timed run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", default="1,2", help="server process counts, e.g. 1,2")
    parser.add_argument("--only", default="Q1,Q2,Q2T", help="operations, e.g. Q1,Q2")
    parser.add_argument("--check", type=int, default=50, help="answers compared per operation")
    parser.add_argument(
        "--pool",
        type=int,
        default=2 * (os.cpu_count() or 1),
        help="PostgreSQL connections per server, split over its processes (default: 2 per core)",
    )
    args = parser.parse_args()
    if unknown := set(args.only.split(",")) - DOCUMENTS.keys() - {""}:
        parser.error(f"unknown operations: {', '.join(sorted(unknown))}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.pool < 1:
        parser.error("--pool must be at least 1")
    with postgres_server() as server_url:
        run(server_url, args)


if __name__ == "__main__":
    main()
