"""The load side of scripts/bench.py: the servers under test as real processes, wrk driving
them from a generated Lua script, and the CPU each side spent (/proc), per timed run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from graphql_api.core.embedded import free_port

SCRIPTS = Path(__file__).parent
WRK = shutil.which("wrk") or "/usr/bin/wrk"


@dataclass(frozen=True)
class Request:
    authorization: str
    body: str


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    bad: int  # non-200, answers with errors, socket errors
    cpu_ms: float  # server process tree, per request
    pg_ms: float | None  # PostgreSQL backends of the bench database, per request
    wrk_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class Rounds:
    """One server's timed runs of one operation."""

    runs: list[Result]

    @property
    def rate(self) -> float:
        return sum(r.requests for r in self.runs) / sum(r.seconds for r in self.runs)

    @property
    def bad(self) -> int:
        return sum(r.bad for r in self.runs)

    def median(self, value: str) -> float:
        return statistics.median(getattr(r, value) for r in self.runs)

    def per_request(self, value: str) -> float | None:
        """CPU ms per request over all rounds (None if a round could not measure it)."""
        values = [getattr(r, value) for r in self.runs]
        if any(v is None for v in values):
            return None
        total = sum(v * r.requests for v, r in zip(values, self.runs, strict=True))
        return float(total / max(1, sum(r.requests for r in self.runs)))


# --- servers --------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start(kind: str, url: str, workers: int, pool: int, secret: str) -> Server:
    """Start a server whose processes hold `pool` PostgreSQL connections each."""
    port = free_port()
    env = {**os.environ, "JWT_SECRET": secret, "AGENT_BACKEND": "echo"}
    env.pop("REDIS_URL", None)
    if kind == "project":
        env["DATABASE_URL"] = url
        env["DB_POOL_MAX"] = str(pool)  # both sides hold as many connections
        command = [str(Path(sys.executable).parent / "unified-sessions"), "serve"]
        command += ["--port", str(port), "--workers", str(workers)]
    else:
        env["BENCH_RAW_DATABASE_URL"] = url
        env["BENCH_RAW_POOL_SIZE"] = str(pool)
        command = [sys.executable, "-m", "uvicorn", "bench_raw:app", "--app-dir", str(SCRIPTS)]
        command += ["--port", str(port), "--workers", str(workers), "--no-access-log"]
        command += ["--log-level", "warning"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    server = Server(kind, process, port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {kind} server exited with code {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            healthy = httpx.get(server.base + "/healthz", timeout=2).status_code == 200
            # every worker up: as many children as workers (a single worker runs in-process)
            if healthy and (workers == 1 or len(_tree(process.pid)) > workers):
                return server
        time.sleep(0.2)
    stop(server)
    raise RuntimeError(f"the {kind} server did not answer /healthz in time")


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


# --- CPU accounting -------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found.extend(_tree(int(child)))
    return found


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            seconds[pid] = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return seconds


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


async def _backends(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return [r["pid"] for r in rows]
    finally:
        await conn.close()


# --- load -----------------------------------------------------------------------------------

_LUA = """
local requests = {}
local position = 0
non200 = 0
gqlerrors = 0
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_number", counter)
  table.insert(threads, thread)
end

function init(args)
  for k = 1, #bodies do
    requests[k] = wrk.format("POST", "/graphql", {
      ["Content-Type"] = "application/json",
      ["Authorization"] = auths[k],
    }, bodies[k])
  end
  position = ((thread_number or 1) - 1) * 499 % #requests
end

function request()
  position = position % #requests + 1
  return requests[position]
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  elseif string.find(body, '"errors"', 1, true) then
    gqlerrors = gqlerrors + 1
  end
end

function done(summary, latency, requests)
  local bad_status, bad_answers = 0, 0
  for _, thread in ipairs(threads) do
    bad_status = bad_status + thread:get("non200")
    bad_answers = bad_answers + thread:get("gqlerrors")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH-RESULT %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), bad_status, bad_answers,
    e.connect + e.read + e.write + e.timeout))
end
"""


def _lua_string(text: str) -> str:
    assert "]==]" not in text
    return "[==[" + text + "]==]"


def write_lua(directory: Path, name: str, requests: list[Request]) -> Path:
    path = directory / f"{name}.lua"
    bodies = ",\n".join(_lua_string(r.body) for r in requests)
    auths = ",\n".join(_lua_string(r.authorization) for r in requests)
    path.write_text(f"bodies = {{\n{bodies}\n}}\nauths = {{\n{auths}\n}}\n{_LUA}")
    return path


def wrk(server: Server, lua: Path, seconds: float, args: argparse.Namespace) -> list[int]:
    command = [WRK, f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds:g}s"]
    command += ["--timeout", "10s", "-s", str(lua), server.base + "/graphql"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    for line in output.splitlines():
        if line.startswith("BENCH-RESULT "):
            return [int(float(v)) for v in line.split()[1:]]
    raise RuntimeError(f"wrk printed no result:\n{output}")


def measure(server: Server, url: str, lua: Path, args: argparse.Namespace) -> Result:
    """One timed run (the server warmed up already)."""
    pids = _tree(server.process.pid)
    backends = asyncio.run(_backends(url))
    cpu_before, pg_before = _cpu_seconds(pids), _cpu_seconds(backends)
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    requests, duration_us, p50, p99, non200, errors, socket_errors = wrk(
        server, lua, args.duration, args
    )
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = _spent(cpu_before, _cpu_seconds(_tree(server.process.pid)))
    backends = sorted(set(backends) | set(asyncio.run(_backends(url))))
    pg_after = _cpu_seconds(backends)
    n = max(requests, 1)
    wrk_cpu = (wrk_after.ru_utime + wrk_after.ru_stime) - (
        wrk_before.ru_utime + wrk_before.ru_stime
    )
    return Result(
        requests=requests,
        seconds=duration_us / 1e6,
        p50_ms=p50 / 1000,
        p99_ms=p99 / 1000,
        bad=non200 + errors + socket_errors,
        cpu_ms=cpu * 1000 / n,
        pg_ms=_spent(pg_before, pg_after) * 1000 / n if pg_after else None,
        wrk_ms=wrk_cpu * 1000 / n,
    )
