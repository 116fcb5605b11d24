"""`unified-sessions dev`: the whole system in one command, on embedded servers when needed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from pathlib import Path

import uvicorn

from .app import create_app
from .core.devsecrets import with_dev_secret
from .core.embedded import embedded_postgres, embedded_redis
from .core.migrate import migrate
from .core.runtime import Resources, open_resources
from .core.settings import Settings
from .core.tokens import mint_token
from .demo import seed_demo
from .server import server_config

log = logging.getLogger("unified_sessions.dev")

# Loggers that narrate routine work at INFO (initdb and pg_ctl command lines, every minute's
# claim job, polling start-up): in `dev` they write to .data/dev.log, the terminal shows
# warnings and errors only, so the URL line stays visible.
CHATTY_LOGGERS = ("pgserver", "arq.worker", "arq.jobs", "aiogram.dispatcher", "aiogram.event")


def quiet_chatty_loggers(log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(log_file, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_terminal = logging.StreamHandler()
    to_terminal.setLevel(logging.WARNING)
    to_terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.handlers = [to_file, to_terminal]


def run_dev(settings: Settings, *, host: str, port: int, seed: bool) -> int:
    settings = with_dev_secret(settings, create=True)
    quiet_chatty_loggers(settings.data_dir / "dev.log")
    with contextlib.ExitStack() as stack:
        if settings.database_url is None:
            print(f"DATABASE_URL is not set: starting embedded PostgreSQL in {settings.data_dir}")
            dsn = stack.enter_context(embedded_postgres(settings.data_dir / "postgres"))
            settings = replace(settings, database_url=dsn)
        if settings.redis_url is None:
            print("REDIS_URL is not set: starting embedded Redis")
            url = stack.enter_context(embedded_redis(settings.data_dir / "redis"))
            settings = replace(settings, redis_url=url)
        applied = asyncio.run(
            migrate(settings.require_database_url(), directory=settings.migrations_dir)
        )
        print(f"migrations: {len(applied)} applied")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_everything(settings, host=host, port=port, seed=seed))
        print("stopping embedded servers")
    return 0


async def _serve_everything(settings: Settings, *, host: str, port: int, seed: bool) -> None:
    async with open_resources(settings) as resources:
        demo_user = await seed_demo(resources.pool) if seed else None
        server = uvicorn.Server(
            server_config(create_app(settings, resources), host=host, port=port, lifespan="on")
        )
        companions = [asyncio.create_task(_announce(server, settings, host, port, demo_user))]
        companions += _start_companions(settings, resources)
        try:
            await server.serve()
        finally:
            for task in companions:
                task.cancel()
            await asyncio.gather(*companions, return_exceptions=True)


def _start_companions(settings: Settings, resources: Resources) -> list[asyncio.Task[None]]:
    """The worker, and the bot when a token is configured, in the same event loop."""
    from bots.main import polling_task
    from workers.main import worker_task

    tasks = [asyncio.create_task(worker_task(settings, resources))]
    if settings.telegram_bot_token is None:
        print("TELEGRAM_BOT_TOKEN is not set: the Telegram bot is not started")
    else:
        tasks.append(asyncio.create_task(polling_task(settings, resources)))
    return tasks


async def _announce(
    server: uvicorn.Server, settings: Settings, host: str, port: int, demo_user: object
) -> None:
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.05)
    url = f"http://{host}:{port}/"
    if demo_user is not None:
        token = mint_token(settings.require_jwt_secret(), demo_user, ttl=7 * 24 * 3600)  # type: ignore[arg-type]
        url += f"#token={token}"
    log_file = settings.data_dir / "dev.log"
    print(
        f"\n  Unified Sessions is running.\n\n  Open {url}\n\n"
        f"  GraphiQL: http://{host}:{port}/graphql    (embedded servers' and worker logs: "
        f"{log_file})\n  Ctrl-C stops everything.\n",
        flush=True,
    )
