"""The console command, run as a newcomer would: a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest

from graphql_api.core.embedded import free_port
from graphql_api.core.migrate import discover
from tests.conftest import DatabaseFactory

COMMAND = str(Path(sys.executable).parent / "unified-sessions")
SECRET = "cli-test-secret-0123456789abcdef"


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "JWT_SECRET", "TELEGRAM_BOT_TOKEN"}
    }
    env.update(extra)
    return env


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COMMAND, *args], env=_env(**env), capture_output=True, text=True, timeout=120
    )


def test_token_verifies_with_the_secret_and_carries_supabase_claims() -> None:
    user = uuid.uuid4()
    result = _run("token", "--user", str(user), "--service", "--ttl", "120", JWT_SECRET=SECRET)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == str(user)
    assert claims["role"] == "service_role"
    assert claims["aud"] == "authenticated"
    assert 110 <= claims["exp"] - time.time() <= 121
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, SECRET + "x", algorithms=["HS256"], audience="authenticated")

    user_token = _run("token", "--user", str(user), JWT_SECRET=SECRET).stdout.strip()
    assert (
        jwt.decode(user_token, SECRET, algorithms=["HS256"], audience="authenticated")["role"]
        == "authenticated"
    )


def test_token_refuses_bad_input_clearly() -> None:
    assert _run("token", "--user", "not-a-uuid", JWT_SECRET=SECRET).returncode == 2
    no_secret = _run("token", "--user", str(uuid.uuid4()), DATA_DIR="/nonexistent-data-dir")
    assert no_secret.returncode == 2
    assert "JWT_SECRET" in no_secret.stderr
    assert SECRET not in no_secret.stderr + no_secret.stdout


async def test_migrate_command_applies_then_reports_nothing_to_do(
    databases: DatabaseFactory, tmp_path: Path
) -> None:
    url = await databases.create()
    first = _run("migrate", DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert f"applied {len(discover())} migration(s)" in first.stdout
    second = _run("migrate", DATABASE_URL=url)
    assert second.returncode == 0
    assert "applied 0 migration(s)" in second.stdout

    edited = tmp_path / "migrations"
    shutil.copytree(Path(__file__).resolve().parents[2] / "db" / "migrations", edited)
    last = sorted(edited.glob("*.sql"))[-1]
    last.write_text(last.read_text() + "\n-- edited\n")
    refused = _run("migrate", DATABASE_URL=url, MIGRATIONS_DIR=str(edited))
    assert refused.returncode == 2
    assert "was edited after it was applied" in refused.stderr


def test_dev_starts_on_embedded_servers_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [COMMAND, "dev", "--port", str(port)],
        env=_env(DATA_DIR=str(data_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        health = _wait_for_health(f"http://127.0.0.1:{port}/healthz", process)
        assert health == {"status": "ok", "database": "ok", "redis": "ok"}
    finally:
        # Ctrl-C in a terminal signals the whole foreground process group, not just `dev`.
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    assert "embedded PostgreSQL" in output
    assert "#token=" in output
    # The URL is the last thing start-up prints (only request logs follow it), and the embedded
    # servers' and worker's routine logs go to .data/dev.log instead of the terminal.
    after_banner = output.split("Ctrl-C stops everything.")[1].strip().splitlines()
    after_banner = after_banner[: next(i for i, x in enumerate(after_banner) if "Shutting" in x)]
    assert all('"GET /healthz' in line for line in after_banner), after_banner
    assert "INFO pgserver" not in output, output  # its warnings and errors still show
    assert "pgserver" in (data_dir / "dev.log").read_text()
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), output
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def _wait_for_health(url: str, process: subprocess.Popen[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"dev exited early: {process.stdout.read() if process.stdout else ''}"
            )
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("dev did not answer /healthz in time")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_POOL_MAX", "2.9"),
        ("DB_POOL_MAX", "0"),
        ("DB_POOL_MIN", "30"),
        ("AGENT_TIMEOUT", "nan"),
        ("AGENT_TIMEOUT", "inf"),
        ("AGENT_TIMEOUT", "0"),
        ("SCHEDULE_MAX_ATTEMPTS", "0"),
        ("LINK_CODE_TTL_SECONDS", "1e3"),
        ("LINK_CODE_TTL_SECONDS", "86401"),
        ("TELEGRAM_TURN_TRIES", "0"),
        ("SCHEDULE_RETRY_DELAY", "-5"),
    ],
)
def test_a_malformed_number_setting_is_one_clear_line(name: str, value: str) -> None:
    """Read as a whole or finite number, never rounded or clamped into something else."""
    result = _run("migrate", DATABASE_URL="postgresql://127.0.0.1:1/none", **{name: value})
    assert result.returncode == 2, result.stdout + result.stderr
    assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_misconfigured_channel_is_one_clear_line() -> None:
    """`serve` checks every channel it would run before it starts: here the webhook without
    its secret."""
    result = _run(
        "serve",
        DATABASE_URL="postgresql://127.0.0.1:1/none",
        JWT_SECRET="x" * 32,
        TELEGRAM_BOT_TOKEN="42:test-token",
        TELEGRAM_WEBHOOK="true",
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "TELEGRAM_WEBHOOK_SECRET is not set" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("access_log", ["", "true"])
async def test_serve_logs_requests_only_with_access_log(
    databases: DatabaseFactory, access_log: str
) -> None:
    env = _env(DATABASE_URL=await databases.create(), JWT_SECRET=SECRET, ACCESS_LOG=access_log)
    migrated = await asyncio.to_thread(
        subprocess.run, [COMMAND, "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    server = subprocess.Popen(
        [COMMAND, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(300):
                assert server.poll() is None, server.communicate()[0]
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            await client.get("/healthz?after-start")
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(server.communicate, timeout=30)
    assert "Application startup complete" in output, output
    assert ("GET /healthz?after-start" in output) is bool(access_log), output
