"""The public signing keys of a JWKS (a Supabase project's, or any), fetched without blocking.

PyJWT parses the keys (`PyJWK`: the algorithm comes from the key's `alg`, else its kty/crv);
this module fetches them with httpx and caches them. PyJWT's own `PyJWKClient` is not used: it
fetches with blocking urllib under a thread lock, and while the endpoint is down it fetches again
on every call, so a flood of tokens would be a flood of fetches. Here:

- keys are fetched at start-up (in the background: the server starts whether the JWKS answers or
  not) and again after `max_age`, or when a token names a kid the cache does not have;
- at most one fetch per `min_interval` seconds, whatever arrives, and one at a time (requests that
  need a fetch under way wait for it rather than starting their own);
- each fetch is bounded by `timeout` and `MAX_JWKS_BYTES`; a failed fetch keeps the keys we had;
- only asymmetric signing keys are kept: a symmetric (`oct`) key in a JWKS is never used.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from jwt import PyJWK, PyJWTError

log = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "ES256K", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    | {"EdDSA"}
)
MAX_JWKS_BYTES = 1 << 20
FETCH_TIMEOUT = 5.0
MAX_AGE = 600.0

Loader = Callable[[], Awaitable[bytes]]


class JwksUnavailable(Exception):
    """The JWKS could not be fetched or holds no usable signing key."""


def http_loader(url: str, *, timeout: float = FETCH_TIMEOUT) -> Loader:
    async def load() -> bytes:
        try:
            async with (
                httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client,
                client.stream("GET", url, headers={"Accept": "application/json"}) as response,
            ):
                response.raise_for_status()
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_JWKS_BYTES:
                        raise JwksUnavailable(f"the JWKS at {url} is larger than 1 MiB")
                return bytes(body)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise JwksUnavailable(f"fetching {url}: {exc!r}") from None

    return load


def file_loader(path: Path) -> Loader:
    async def load() -> bytes:
        try:
            return await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise JwksUnavailable(f"reading {path}: {exc}") from None

    return load


def parse_signing_keys(body: bytes) -> dict[str, PyJWK]:
    """kid -> key for each asymmetric signing key with a kid; the others are skipped."""
    try:
        document: Any = json.loads(body)
    except ValueError:
        raise JwksUnavailable("the JWKS is not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksUnavailable("the JWKS has no 'keys' list")
    keys: dict[str, PyJWK] = {}
    for entry in entries:
        key = _signing_key(entry)
        if key is not None and key.key_id is not None:
            keys[key.key_id] = key
    if not keys:
        raise JwksUnavailable("the JWKS holds no asymmetric signing key with a kid")
    return keys


def _signing_key(entry: object) -> PyJWK | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
        return None
    if entry.get("use") not in (None, "sig"):
        return None
    try:
        key = PyJWK(entry)
    except PyJWTError as exc:
        log.warning("JWKS key %r skipped: %s", entry.get("kid"), exc)
        return None
    if key.algorithm_name not in ASYMMETRIC_ALGORITHMS:
        log.warning(
            "JWKS key %r skipped: %s is not an asymmetric algorithm", key.key_id, key.algorithm_name
        )
        return None
    return key


class JwksKeys:
    """The cached signing keys of one JWKS, refreshed at a bounded rate."""

    def __init__(
        self,
        load: Loader,
        *,
        source: str,
        min_interval: float = 30.0,
        max_age: float = MAX_AGE,
    ) -> None:
        self._load = load
        self.source = source
        self._min_interval = min_interval
        self._max_age = max_age
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch (monotonic)
        self._attempted_at: float | None = None  # last fetch started, successful or not
        self._lock = asyncio.Lock()
        self.fetches = 0  # fetches started, for logs and tests

    async def key(self, kid: str) -> PyJWK | None:
        """The key named `kid`, or None. Fetches first if `kid` is unknown or the cache is old,
        unless a fetch happened less than `min_interval` ago (then answers from the cache)."""
        known = self._keys.get(kid)
        if known is not None and not self._stale():
            return known
        if self._may_fetch() or self._lock.locked():
            await self.refresh()
        return self._keys.get(kid)

    async def refresh(self) -> bool:
        """Fetch now unless a fetch is under way or was made less than `min_interval` ago.
        True when the cache holds keys afterwards. Never raises for an unreachable JWKS."""
        async with self._lock:
            if self._may_fetch():
                await self._fetch()
        return bool(self._keys)

    def _stale(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at >= self._max_age

    def _may_fetch(self) -> bool:
        last = self._attempted_at
        return last is None or time.monotonic() - last >= self._min_interval

    async def _fetch(self) -> None:
        self._attempted_at = time.monotonic()
        self.fetches += 1
        try:
            keys = parse_signing_keys(await self._load())
        except JwksUnavailable as exc:
            log.warning(
                "JWKS %s unavailable (%s); keeping %d cached key(s), next try in %.0f s",
                self.source,
                exc,
                len(self._keys),
                self._min_interval,
            )
            return
        if set(keys) != set(self._keys):
            log.info("JWKS %s: signing keys %s", self.source, ", ".join(sorted(keys)))
        self._keys = keys
        self._fetched_at = time.monotonic()
