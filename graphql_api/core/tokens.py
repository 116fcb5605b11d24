"""Supabase-style HS256 JWTs: `sub` is the user's uuid, `role` is authenticated or service_role."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
AUDIENCE = "authenticated"
USER_ROLE = "authenticated"
SERVICE_ROLE = "service_role"


class InvalidToken(Exception):
    """The bearer token is missing, malformed, expired or not signed with our secret."""


@dataclass(frozen=True)
class Viewer:
    user_id: uuid.UUID
    role: str

    @property
    def is_service(self) -> bool:
        return self.role == SERVICE_ROLE


def mint_token(secret: str, user_id: uuid.UUID, *, service: bool = False, ttl: int = 3600) -> str:
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "role": SERVICE_ROLE if service else USER_ROLE,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str) -> Viewer:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],  # fixed here, never read from the token's header
            audience=AUDIENCE,
            options={"require": ["sub", "exp", "role"]},
        )
        user_id = uuid.UUID(str(claims["sub"]))
    except (jwt.PyJWTError, ValueError) as exc:
        raise InvalidToken(str(exc)) from None
    role = claims["role"]
    if role not in {USER_ROLE, SERVICE_ROLE}:
        raise InvalidToken(f"unsupported role {role!r}")
    return Viewer(user_id=user_id, role=role)
