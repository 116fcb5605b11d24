"""Apply db/migrations/*.sql in order, once each, under an advisory lock.

Every file runs in its own transaction together with the row that records it, so a failed file
leaves nothing half-applied. An applied file whose checksum changed stops the run: migrations are
history, and editing one silently would leave databases that claim the same version but differ.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from .settings import shipped_path

MIGRATIONS_DIR = shipped_path("db", "migrations")
# Any constant shared by every migrating process; "unified-sessions" as a 63-bit number.
_ADVISORY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"unified-sessions:migrate").digest()[:8]) >> 1
_NAME = re.compile(r"^(\d{14})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The migrations on disk and the ones recorded in the database disagree."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or MIGRATIONS_DIR
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"{path.name}: migration files are named YYYYMMDDHHMMSS_snake_case_name.sql"
            )
        found.append(Migration(match[1], match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version")
    return found


_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


async def migrate(
    dsn: str, *, directory: Path | None = None, until: str | None = None
) -> list[str]:
    """Apply pending migrations (up to and including `until`); return the versions applied."""
    migrations = [m for m in discover(directory) if until is None or m.version <= until]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
        try:
            await conn.execute(_CREATE_LEDGER)
            recorded = {
                r["version"]: r["checksum"]
                for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
            }
            _refuse_edited(migrations, recorded)
            applied = []
            for migration in migrations:
                if migration.version in recorded:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                applied.append(migration.version)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)
    finally:
        await conn.close()


def _refuse_edited(migrations: list[Migration], recorded: dict[str, str]) -> None:
    for migration in migrations:
        checksum = recorded.get(migration.version)
        if checksum is not None and checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.version}_{migration.name}.sql was edited after it was "
                "applied (its checksum differs from the recorded one). Restore the file and put "
                "the change in a new migration."
            )
