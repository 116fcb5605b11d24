"""The API without Telegram configured never imports aiogram (seconds of start-up per worker),
neither in `create_app` nor in what `serve` checks first."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from graphql_api.app import create_app
from graphql_api.core.settings import Settings

settings = Settings.from_env({"JWT_SECRET": "x" * 32, "DATABASE_URL": "postgresql://h/db"})
create_app(settings)
# What `serve` checks before it starts the workers.
from graphql_api.channels import enabled_channels

enabled_channels(settings)
# What sendMessage in a Telegram session uses: the channel's delivery targets.
from graphql_api.channels import installed_channels

[telegram] = [c for c in installed_channels() if c.name == "telegram"]
assert telegram.delivery is not None and telegram.delivery().person_target is not None
print(sorted(name for name in sys.modules if name.split(".")[0] == "aiogram"))
"""


def test_the_api_without_a_webhook_does_not_import_aiogram() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
