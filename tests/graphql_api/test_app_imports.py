"""The API without Telegram configured never imports aiogram (seconds of start-up per worker)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from graphql_api.app import create_app
from graphql_api.core.settings import Settings

create_app(Settings.from_env({"JWT_SECRET": "x" * 32, "DATABASE_URL": "postgresql://h/db"}))
print(sorted(name for name in sys.modules if name.split(".")[0] == "aiogram"))
"""


def test_the_api_without_a_webhook_does_not_import_aiogram() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
