"""`unified-sessions`: one console command for every process of the system."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import uuid
from collections.abc import Sequence

from .core.devsecrets import with_dev_secret
from .core.migrate import MigrationError, migrate
from .core.settings import Settings, SettingsError
from .core.tokens import mint_service_key, mint_token


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    applied = asyncio.run(
        migrate(settings.require_database_url(), directory=settings.migrations_dir)
    )
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def _cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    settings = with_dev_secret(settings, create=False)
    secret = settings.require_jwt_secret()
    if args.user is None:
        if not args.service:
            raise SettingsError("--user is required (only --service mints a key without one)")
        print(mint_service_key(secret, ttl=args.ttl))
    else:
        print(mint_token(secret, args.user, service=args.service, ttl=args.ttl))
    return 0


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from .channels import enabled_channels
    from .server import serve

    settings.require_database_url()
    settings.require_token_keys()
    enabled_channels(settings)  # a misconfigured channel is one clear line, not a traceback
    # Header and body limits: server.py.
    serve(host=args.host, port=args.port, workers=args.workers, access_log=settings.access_log)
    return 0


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.main import run_worker

    run_worker(settings)
    return 0


def _cmd_bot(args: argparse.Namespace, settings: Settings) -> int:
    from bots.main import run_polling

    asyncio.run(run_polling(settings))
    return 0


def _cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from .dev import run_dev

    return run_dev(settings, host=args.host, port=args.port, seed=not args.no_seed)


def _cmd_retention(args: argparse.Namespace, settings: Settings) -> int:
    from .core.forgetting import retention_report

    print(asyncio.run(retention_report(settings)))
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unified-sessions", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("migrate", help="apply pending migrations to DATABASE_URL")

    serve = commands.add_parser("serve", help="the API and the web app under uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=_positive, default=1)

    commands.add_parser("worker", help="the arq worker (scheduled executions)")
    commands.add_parser("bot", help="the Telegram bot, long polling")

    dev = commands.add_parser(
        "dev", help="everything in one process, on embedded servers when no URLs are set"
    )
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--no-seed", action="store_true", help="do not create the demo data")

    commands.add_parser(
        "retention", help="print the retention policy and the retention job's last run"
    )

    token = commands.add_parser("token", help="print a signed JWT for local use")
    token.add_argument("--user", type=uuid.UUID, help="the user's uuid (sub)")
    token.add_argument(
        "--service",
        action="store_true",
        help="role=service_role; without --user, shaped like Supabase's service_role key (no sub)",
    )
    token.add_argument("--ttl", type=_positive, default=3600, help="seconds until it expires")
    return parser


_COMMANDS = {
    "migrate": _cmd_migrate,
    "serve": _cmd_serve,
    "worker": _cmd_worker,
    "bot": _cmd_bot,
    "dev": _cmd_dev,
    "token": _cmd_token,
    "retention": _cmd_retention,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = Settings.from_env()
        return _COMMANDS[args.command](args, settings)
    except (SettingsError, MigrationError) as exc:
        print(f"unified-sessions {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
