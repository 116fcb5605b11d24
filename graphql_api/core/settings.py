"""Settings: read once from the environment into one typed, immutable object."""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from starlette.datastructures import Secret

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def shipped_path(*parts: str) -> Path:
    """A folder that ships with the project (web/, db/migrations/): the checkout's own, else
    the copy a non-editable `pip install .` puts under <prefix>/share/unified-sessions/."""
    local = PROJECT_ROOT.joinpath(*parts)
    if local.exists():
        return local
    return Path(sys.prefix, "share", "unified-sessions", *parts)


class SettingsError(ValueError):
    """A configuration value is missing or malformed."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    """A finite number >= minimum (nan and inf are refused, as is anything below)."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise SettingsError(f"{name} must be a number of at least {minimum:g}, not {raw!r}")
    return value


def _int(
    env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    """A whole number in [minimum, maximum]: "2.9" is refused, not read as 2."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {raw!r}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be at most {maximum}, not {raw!r}")
    return value


def _http_url(env: Mapping[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")):
        raise SettingsError(f"{name} must be an http(s) URL, not {raw!r}")
    return raw.rstrip("/")


def _search_language(env: Mapping[str, str]) -> str:
    """A text-search configuration's name (`english`, `pg_catalog.german`); lower case."""
    raw = (env.get("SEARCH_LANGUAGE") or "").strip().lower()
    if not raw:
        return "english"
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?", raw):
        raise SettingsError(f"SEARCH_LANGUAGE must name a text-search configuration, not {raw!r}")
    return raw


RETENTION_CHANNELS = ("web", "telegram", "scheduled")  # RETENTION_DAYS_<CHANNEL>
MAX_RETENTION_DAYS = 36_500


def _retention(env: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
    """(channel, days) for each channel with a RETENTION_DAYS_<CHANNEL>; unset keeps all."""
    policy = []
    for channel in RETENTION_CHANNELS:
        name = f"RETENTION_DAYS_{channel.upper()}"
        if (env.get(name) or "").strip():
            days = _int(env, name, 0, minimum=1)
            if days > MAX_RETENTION_DAYS:
                raise SettingsError(f"{name} must be at most {MAX_RETENTION_DAYS}, not {days}")
            policy.append((channel, days))
    return tuple(policy)


def _secret(env: Mapping[str, str], name: str) -> Secret | None:
    raw = env.get(name)
    return Secret(raw) if raw else None


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    jwt_secret: Secret | None = field(default=None, repr=False)
    # Asymmetric signing keys (ES256/RS256): the project's JWKS. JWT_JWKS_URL, else JWT_JWKS_FILE,
    # else <SUPABASE_URL>/auth/v1/.well-known/jwks.json.
    supabase_url: str | None = None
    jwt_jwks_url: str | None = None
    jwt_jwks_file: Path | None = None
    jwt_jwks_refetch_seconds: float = 30.0  # at most one JWKS fetch per this many seconds
    # Introspection, GraphiQL and "did you mean" suggestions: on for development, off in production.
    graphql_dev_tools: bool = True
    access_log: bool = False  # uvicorn's line per request under `serve`
    # The hot read operations through compiled plans (graphql_api/compiled); off: every
    # request through Strawberry's executor (the reference the plans are tested against).
    compiled_execution: bool = True
    agent_backend: str = "echo"
    default_agent_name: str = "assistant"
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: Secret | None = field(default=None, repr=False)
    openai_model: str = "gpt-4o-mini"
    agent_timeout: float = 60.0
    echo_word_delay: float = 0.0  # the echo agent's pause between streamed words (demos, tests)
    telegram_bot_token: Secret | None = field(default=None, repr=False)
    telegram_webhook_secret: Secret | None = field(default=None, repr=False)
    # Serve POST /telegram/webhook on the API (production) instead of polling; needs the secret.
    telegram_webhook: bool = False
    telegram_api_base: str | None = None
    telegram_bot_username: str | None = None
    link_code_ttl_seconds: int = 600
    # How often one Telegram message's turn is tried before it is set aside (bots/turns.py).
    telegram_turn_tries: int = 5
    # The checkout's .data/ (git-ignored); for an installed copy, .data/ in the working directory.
    migrations_dir: Path = field(default_factory=lambda: shipped_path("db", "migrations"))
    data_dir: Path = (
        PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()
    ) / ".data"
    db_pool_min: int = 1
    db_pool_max: int = 20
    # Scheduled runs (workers/): the arq queue, and how often a failed run is tried in all.
    worker_queue: str = "arq:queue"
    schedule_max_attempts: int = 3
    schedule_retry_delay: float = 30.0
    # The outbox: how long a worker's claim on a delivery lasts before another may send it again.
    delivery_lease_seconds: float = 60.0
    # Search: the PostgreSQL text-search configuration (stemming, stop words). Must be the one
    # the stored vectors were built with (search_settings); checked when the API starts.
    search_language: str = "english"
    # Retention: (channel, days) pairs; a session idle longer is deleted by the worker's job.
    # A channel not listed keeps everything (RETENTION_DAYS_WEB/_TELEGRAM/_SCHEDULED unset).
    retention: tuple[tuple[str, int], ...] = ()

    @property
    def retention_policy(self) -> dict[str, int]:
        return dict(self.retention)

    def __post_init__(self) -> None:
        if self.db_pool_min > self.db_pool_max:
            raise SettingsError(
                f"DB_POOL_MIN ({self.db_pool_min}) must not exceed DB_POOL_MAX ({self.db_pool_max})"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        backend = env.get("AGENT_BACKEND", "echo").strip().lower()
        if backend not in {"echo", "openai"}:
            raise SettingsError(f"AGENT_BACKEND must be 'echo' or 'openai', not {backend!r}")
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            jwt_secret=_secret(env, "JWT_SECRET"),
            supabase_url=_http_url(env, "SUPABASE_URL"),
            jwt_jwks_url=_http_url(env, "JWT_JWKS_URL"),
            jwt_jwks_file=Path(env["JWT_JWKS_FILE"]) if env.get("JWT_JWKS_FILE") else None,
            jwt_jwks_refetch_seconds=_float(
                env, "JWT_JWKS_REFETCH_SECONDS", cls.jwt_jwks_refetch_seconds
            ),
            graphql_dev_tools=_bool(env, "GRAPHQL_DEV_TOOLS", True),
            access_log=_bool(env, "ACCESS_LOG", False),
            compiled_execution=_bool(env, "COMPILED_EXECUTION", True),
            agent_backend=backend,
            default_agent_name=env.get("DEFAULT_AGENT_NAME") or "assistant",
            openai_base_url=(env.get("OPENAI_BASE_URL") or cls.openai_base_url).rstrip("/"),
            openai_api_key=_secret(env, "OPENAI_API_KEY"),
            openai_model=env.get("OPENAI_MODEL") or cls.openai_model,
            agent_timeout=_float(env, "AGENT_TIMEOUT", cls.agent_timeout, minimum=0.001),
            echo_word_delay=_float(env, "ECHO_WORD_DELAY", cls.echo_word_delay),
            telegram_bot_token=_secret(env, "TELEGRAM_BOT_TOKEN"),
            telegram_webhook_secret=_secret(env, "TELEGRAM_WEBHOOK_SECRET"),
            telegram_webhook=_bool(env, "TELEGRAM_WEBHOOK", False),
            telegram_api_base=(env.get("TELEGRAM_API_BASE") or None),
            telegram_bot_username=(env.get("TELEGRAM_BOT_USERNAME") or None),
            link_code_ttl_seconds=_int(
                env, "LINK_CODE_TTL_SECONDS", 600, minimum=1, maximum=86_400
            ),  # a one-time credential: a day at most
            telegram_turn_tries=_int(env, "TELEGRAM_TURN_TRIES", 5, minimum=1),
            data_dir=Path(env.get("DATA_DIR") or cls.data_dir),
            migrations_dir=Path(env.get("MIGRATIONS_DIR") or shipped_path("db", "migrations")),
            db_pool_min=_int(env, "DB_POOL_MIN", 1, minimum=0),
            db_pool_max=_int(env, "DB_POOL_MAX", 20, minimum=1),
            worker_queue=env.get("WORKER_QUEUE") or cls.worker_queue,
            schedule_max_attempts=_int(env, "SCHEDULE_MAX_ATTEMPTS", 3, minimum=1),
            schedule_retry_delay=_float(env, "SCHEDULE_RETRY_DELAY", cls.schedule_retry_delay),
            delivery_lease_seconds=_float(
                env, "DELIVERY_LEASE_SECONDS", cls.delivery_lease_seconds, minimum=1.0
            ),
            search_language=_search_language(env),
            retention=_retention(env),
        )

    def require_database_url(self) -> str:
        if not self.database_url:
            raise SettingsError("DATABASE_URL is not set")
        return self.database_url

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise SettingsError("REDIS_URL is not set")
        return self.redis_url

    @property
    def jwks_source(self) -> str | Path | None:
        """Where the asymmetric signing keys are: a URL, a file, or None (HS256 only)."""
        if self.jwt_jwks_url and self.jwt_jwks_file:
            raise SettingsError("set JWT_JWKS_URL or JWT_JWKS_FILE, not both")
        if self.jwt_jwks_url:
            return self.jwt_jwks_url
        if self.jwt_jwks_file:
            return self.jwt_jwks_file
        if self.supabase_url:
            return self.supabase_url + "/auth/v1/.well-known/jwks.json"
        return None

    def require_token_keys(self) -> None:
        """Serving needs a way to verify tokens: JWT_SECRET (HS256), a JWKS, or both."""
        if self.jwks_source is None and self.jwt_secret is None:
            raise SettingsError(
                "set JWT_SECRET (at least 16 characters) and/or SUPABASE_URL, JWT_JWKS_URL or "
                "JWT_JWKS_FILE to verify tokens"
            )
        if self.jwt_secret is not None:
            self.require_jwt_secret()  # a secret that is set must be long enough

    def require_jwt_secret(self) -> str:
        if self.jwt_secret is None or len(str(self.jwt_secret)) < 16:
            raise SettingsError("JWT_SECRET must be set to at least 16 characters")
        return str(self.jwt_secret)
