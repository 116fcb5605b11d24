"""A channel is one folder, one migration and one registration: a test-only channel proves it.

The `echo` channel below is installed the way any channel is (an entry point in the group
`unified_sessions.channels`, here from a dist-info folder on PYTHONPATH), brings its migration
(added to a copy of db/migrations), and is served by the real `unified-sessions serve` command.
Nothing in the project's tree is edited for it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from graphql_api.core.embedded import free_port
from graphql_api.core.settings import shipped_path
from tests.conftest import TEST_JWT_SECRET, DatabaseFactory, make_person

COMMAND = str(Path(sys.executable).parent / "unified-sessions")

ECHO_CHANNEL = '''
"""A test-only channel: POST /echo/hook files a message in the person's echo session."""

import contextlib
import uuid

import strawberry
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from graphql_api.core import messages, sessions
from graphql_api.core.channels import Channel, SchemaPart
from graphql_api.core.models import Role
from graphql_api.core.tokens import SERVICE_ROLE, Viewer
from graphql_api.schema.types import Info

ECHO = "echo"
SERVICE = Viewer(None, SERVICE_ROLE)


@strawberry.type
class EchoQuery:
    @strawberry.field(description="Whether the echo channel's lifespan ran.")
    def echo_channel_started(self, info: Info) -> bool:
        return info.context.state.echo_started


async def hook(request: Request) -> JSONResponse:
    body = await request.json()
    pool = request.state.resources.pool
    session = await sessions.upsert_session(
        pool,
        SERVICE,
        sessions.SessionUpsert(
            session_id="echo-" + body["chat"], channel=ECHO, user_id=uuid.UUID(body["user"])
        ),
    )
    await messages.append_message(pool, session.session_id, Role.USER, body["text"])
    return JSONResponse({"session": session.session_id})


@contextlib.asynccontextmanager
async def lifespan(settings, resources):
    yield {"echo_started": True}


def channel() -> Channel:
    return Channel(
        name=ECHO,
        service_id_prefix="echo-",
        schema=lambda: SchemaPart(query=EchoQuery),
        routes=lambda settings: [Route("/echo/hook", hook, methods=["POST"])],
        lifespan=lifespan,
    )
'''

ECHO_MIGRATION = """
-- The echo channel's sessions may be stored.
ALTER TABLE chat_sessions DROP CONSTRAINT chat_sessions_channel_check;
ALTER TABLE chat_sessions ADD CONSTRAINT chat_sessions_channel_check
    CHECK (channel IN ('web', 'telegram', 'scheduled', 'echo')) NOT VALID;
ALTER TABLE chat_sessions VALIDATE CONSTRAINT chat_sessions_channel_check;
"""


def install_echo_channel(root: Path) -> tuple[Path, Path]:
    """The channel's folder (a module and its dist-info, as pip would leave them) and a
    migrations folder with the project's migrations plus the channel's one."""
    site = root / "site"
    (site / "echo_channel-0.1.dist-info").mkdir(parents=True)
    (site / "echo_channel.py").write_text(textwrap.dedent(ECHO_CHANNEL))
    info = site / "echo_channel-0.1.dist-info"
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-channel\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[unified_sessions.channels]\necho = echo_channel:channel\n"
    )
    migrations = root / "migrations"
    shutil.copytree(shipped_path("db", "migrations"), migrations)
    (migrations / "29990101000000_echo_channel.sql").write_text(ECHO_MIGRATION)
    return site, migrations


@pytest.fixture
def echo_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    site, migrations = install_echo_channel(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")])),
        MIGRATIONS_DIR=str(migrations),
        JWT_SECRET=TEST_JWT_SECRET,
    )
    yield env


async def test_a_channel_registered_as_an_entry_point_is_served_end_to_end(
    databases: DatabaseFactory, echo_env: dict[str, str]
) -> None:
    env = dict(echo_env, DATABASE_URL=await databases.create())
    migrated = await asyncio.to_thread(
        subprocess.run, [COMMAND, "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    server = subprocess.Popen(
        [COMMAND, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await _wait_until_up(client, server)
            await _check_echo_channel(client)
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(server.communicate, timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM (exit status -15).
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output and "Traceback" not in output, output


async def _wait_until_up(client: httpx.AsyncClient, server: subprocess.Popen[str]) -> None:
    for _ in range(300):
        assert server.poll() is None, server.communicate()[0]
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the server did not come up")


async def _check_echo_channel(client: httpx.AsyncClient) -> None:
    person = make_person()
    auth = {"Authorization": f"Bearer {person.token}"}

    async def graphql(query: str, variables: dict[str, object] | None = None) -> dict[str, object]:
        answer = await client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=auth
        )
        return answer.json()  # type: ignore[no-any-return]

    # Its schema part and its lifespan state.
    assert await graphql("{ echoChannelStarted }") == {"data": {"echoChannelStarted": True}}
    values = await graphql('{ __type(name: "Channel") { enumValues { name } } }')
    names = [v["name"] for v in values["data"]["__type"]["enumValues"]]  # type: ignore[index]
    assert names == ["WEB", "ECHO", "SCHEDULED", "TELEGRAM"]  # the web, then sorted by name

    # Its route files a session into the one registry, listed like any other channel's.
    hooked = await client.post(
        "/echo/hook", json={"user": str(person.user_id), "chat": "42", "text": "hello, echo"}
    )
    assert hooked.json() == {"session": "echo-42"}
    listed = await graphql(
        "query($c: Channel) { sessions(channel: $c) { edges { node { sessionId channel "
        "lastMessage { role content } } } } }",
        {"c": "ECHO"},
    )
    assert listed == {
        "data": {
            "sessions": {
                "edges": [
                    {
                        "node": {
                            "sessionId": "echo-42",
                            "channel": "ECHO",
                            "lastMessage": {"role": "USER", "content": "hello, echo"},
                        }
                    }
                ]
            }
        }
    }

    # Its session-id prefix is the service's: a person cannot take one for a web session.
    taken = await graphql('mutation { upsertSession(input: {sessionId: "echo-43"}) { sessionId } }')
    assert taken["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", taken  # type: ignore[index]
    assert "echo-" in taken["errors"][0]["message"]  # type: ignore[index]
