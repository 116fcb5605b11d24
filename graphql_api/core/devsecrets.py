"""The development JWT secret: generated once into the data folder when JWT_SECRET is unset."""

from __future__ import annotations

import secrets
from dataclasses import replace

from starlette.datastructures import Secret

from .settings import Settings


def with_dev_secret(settings: Settings, *, create: bool) -> Settings:
    if settings.jwt_secret is not None:
        return settings
    path = settings.data_dir / "jwt-secret"
    if not path.exists():
        if not create:
            return settings
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return replace(settings, jwt_secret=Secret(path.read_text().strip()))
