"""Supabase JWTs, verified the way a Supabase project issues them.

- A user's access token: `sub` = the user's uuid, `role` = authenticated, `aud` = authenticated.
- The project's legacy `service_role` key: `iss` = supabase, `ref`, `role` = service_role, no
  `sub`, no `aud`: the service identity, acting for no person of its own. (A service token that
  does carry a `sub` also acts as that person.)
- The `anon` key identifies no one: a request with it is anonymous.

Signing: HS256 with JWT_SECRET (the legacy shared secret), or an asymmetric key (ES256, RS256,
...) from the project's JWKS, named by the token's `kid`. The token's `alg` only says which of the
two it claims; it never picks the algorithm a key is used with: the secret is used with HS256
only, a JWKS key with its own algorithm only (so an HS256 token "signed" with a public key, or an
`alg: none` token, is refused).

A token that verified is remembered (`TokenVerifier`) until its `exp` or for `REMEMBER_SECONDS`,
whichever comes first: a client sends the same token with every request, and checking it again
(PyJWT: base64, JSON, HMAC, claims) was a fifth of the CPU of a compiled request. A token that
failed is never remembered. (A JWKS's keys are cached too, for the JWKS's `max_age`: jwks.py.)
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import jwt.algorithms

from .errors import Forbidden
from .jwks import ASYMMETRIC_ALGORITHMS, JwksKeys, file_loader, http_loader
from .settings import Settings, SettingsError

ALGORITHM = "HS256"
AUDIENCE = "authenticated"
USER_ROLE = "authenticated"
SERVICE_ROLE = "service_role"
ANON_ROLE = "anon"
SERVICE_ISSUER = "supabase"
REMEMBERED_TOKENS = 4096  # per process; a token is a few hundred bytes
REMEMBER_SECONDS = 60.0


class InvalidToken(Exception):
    """The bearer token is missing, malformed, expired or not signed by a key we trust."""


@dataclass(frozen=True, init=False)
class Viewer:
    """Who a request acts as. `subject` is the token's `sub`: None for the service key."""

    subject: uuid.UUID | None
    role: str
    expires_at: float | None  # the token's exp (seconds since the epoch): a subscription ends then

    def __init__(
        self, user_id: uuid.UUID | None, role: str, *, expires_at: float | None = None
    ) -> None:
        if user_id is None and role != SERVICE_ROLE:
            raise ValueError("only the service identity may have no user id")
        object.__setattr__(self, "subject", user_id)
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "expires_at", expires_at)

    @property
    def is_service(self) -> bool:
        return self.role == SERVICE_ROLE

    @property
    def user_id(self) -> uuid.UUID:
        """The person this viewer is. The service key is no person: whatever would read or
        write "the viewer's own" data with it is refused here, so no query ever runs for a
        missing user id."""
        if self.subject is None:
            raise Forbidden(
                "the service key names no person: use a person's token, or an operation that "
                "takes a userId"
            )
        return self.subject


def mint_token(secret: str, user_id: uuid.UUID, *, service: bool = False, ttl: int = 3600) -> str:
    """A token for `user_id`, shaped like a Supabase access token (HS256)."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "role": SERVICE_ROLE if service else USER_ROLE,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def mint_service_key(secret: str, *, ttl: int = 3600, ref: str = "local") -> str:
    """A key shaped like a Supabase project's legacy service_role key: no sub, no aud."""
    now = int(time.time())
    claims = {"iss": SERVICE_ISSUER, "ref": ref, "role": SERVICE_ROLE, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


class TokenVerifier:
    """Verifies bearer tokens with the shared secret and/or a JWKS; either may be absent."""

    def __init__(self, secret: str | None, keys: JwksKeys | None = None) -> None:
        self._secret = secret
        self.keys = keys
        self._verified: OrderedDict[str, tuple[Viewer | None, float]] = OrderedDict()

    @property
    def remembered(self) -> int:
        """How many verified tokens are remembered now (at most REMEMBERED_TOKENS)."""
        return len(self._verified)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        settings.require_token_keys()
        secret = settings.require_jwt_secret() if settings.jwt_secret is not None else None
        return cls(secret, jwks_keys(settings))

    async def warm_up(self) -> None:
        """Fetch the JWKS once at start-up; an unreachable one is logged, never fatal."""
        if self.keys is not None:
            await self.keys.refresh()

    async def verify(self, token: str) -> Viewer | None:
        """The viewer the token names; None for the anon key. InvalidToken otherwise."""
        now = time.time()
        remembered = self._verified.get(token)
        if remembered is not None:
            viewer, until = remembered
            if now < until:
                self._verified.move_to_end(token)
                return viewer
            del self._verified[token]
        viewer, expires_at = await self._check(token)
        self._verified[token] = (viewer, min(now + REMEMBER_SECONDS, expires_at))
        if len(self._verified) > REMEMBERED_TOKENS:
            self._verified.popitem(last=False)
        return viewer

    async def _check(self, token: str) -> tuple[Viewer | None, float]:
        """The viewer and the token's exp, from the signature and the claims."""
        try:
            key, algorithm = await self._key_for(jwt.get_unverified_header(token))
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],  # the key's own algorithm, never the header's choice
                options={"require": ["exp", "role"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        expires_at = _expiry(claims)
        if expires_at is None:  # PyJWT requires exp and checks it is a number
            raise InvalidToken("the token has no expiry")
        return viewer_from_claims(claims), expires_at

    async def _key_for(self, header: dict[str, Any]) -> tuple[Any, str]:
        claimed = header.get("alg")
        if claimed == ALGORITHM:
            if self._secret is None:
                raise InvalidToken("HS256 tokens are not accepted: JWT_SECRET is not set")
            return self._secret, ALGORITHM
        if claimed not in ASYMMETRIC_ALGORITHMS or self.keys is None:
            raise InvalidToken(f"tokens signed with {claimed!r} are not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("an asymmetrically signed token must name its key (kid)")
        found = await self.keys.key(kid)
        if found is None:
            raise InvalidToken(f"no signing key {kid!r} in the JWKS")
        return found.key, found.algorithm_name


def jwks_keys(settings: Settings) -> JwksKeys | None:
    source = settings.jwks_source
    if source is None:
        return None
    if not jwt.algorithms.has_crypto:
        raise SettingsError(
            "verifying tokens with a JWKS needs the cryptography package (pyjwt[crypto])"
        )
    load = file_loader(source) if isinstance(source, Path) else http_loader(source)
    return JwksKeys(load, source=str(source), min_interval=settings.jwt_jwks_refetch_seconds)


def viewer_from_claims(claims: dict[str, Any]) -> Viewer | None:
    """The viewer of verified claims (signature and exp already checked)."""
    role = claims["role"]
    if role == ANON_ROLE:
        return None
    if role == SERVICE_ROLE:
        if "aud" in claims and AUDIENCE not in _audiences(claims):
            raise InvalidToken("the token is for another audience")
        subject = _subject(claims) if "sub" in claims else None
        return Viewer(subject, SERVICE_ROLE, expires_at=_expiry(claims))
    if role == USER_ROLE:
        if AUDIENCE not in _audiences(claims):
            raise InvalidToken("a user's token must have aud 'authenticated'")
        return Viewer(_subject(claims), USER_ROLE, expires_at=_expiry(claims))
    raise InvalidToken(f"unsupported role {role!r}")


def _expiry(claims: dict[str, Any]) -> float | None:
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else None


def _subject(claims: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(str(claims["sub"]))
    except (KeyError, ValueError):
        raise InvalidToken("sub must be the user's uuid") from None


def _audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return aud
    return []
