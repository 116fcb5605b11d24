"""Supabase tokens, unchanged, over real HTTP: the legacy service_role and anon keys, and user
tokens signed with asymmetric keys (ES256, RS256) published in a JWKS served by a local server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from graphql_api.app import create_app
from graphql_api.core.embedded import free_port
from graphql_api.core.settings import Settings
from tests.conftest import TEST_JWT_SECRET, GraphQLClient, Person, make_person, running_server

SESSIONS = "{ sessions(first: 5) { edges { node { sessionId } } } }"
UPSERT = """
mutation($input: UpsertSessionInput!) { upsertSession(input: $input) { sessionId channel } }
"""
JWKS_PATH = "/auth/v1/.well-known/jwks.json"
COMMAND = str(Path(sys.executable).parent / "unified-sessions")

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


# --- keys, tokens and a JWKS server ----------------------------------------------------------


@dataclass
class SigningKey:
    kid: str
    private: PrivateKey
    algorithm: str

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")

    def jwk(self) -> dict[str, Any]:
        """The public half, as a JWKS publishes it (Supabase's have kid, alg, use)."""
        public = self.private.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        headers = {"kid": self.kid, **header}
        return jwt.encode(claims, self.private, algorithm=self.algorithm, headers=headers)


def user_claims(user_id: uuid.UUID, *, ttl: int = 600, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "https://project.supabase.co/auth/v1",
        "sub": str(user_id),
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + ttl,
        **extra,
    }


def legacy_key(role: str, *, secret: str = TEST_JWT_SECRET, ttl: int = 600, **extra: Any) -> str:
    """A key shaped exactly like a Supabase project's legacy anon / service_role key."""
    now = int(time.time())
    claims = {"iss": "supabase", "ref": "abcdefghijklmnop", "role": role, "iat": now}
    return jwt.encode({**claims, "exp": now + ttl, **extra}, secret, algorithm="HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def handmade(header: dict[str, Any], claims: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token PyJWT would refuse to make: HS256 keyed with a public key's PEM, or alg none."""
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    if hmac_key is None:
        return signing_input + "."
    digest = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(digest)


@dataclass
class JwksServer:
    """Serves `keys` at JWKS_PATH (and /keys.json) and counts the fetches."""

    keys: list[SigningKey]
    port: int = field(default_factory=free_port)
    hits: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> Starlette:
        async def jwks(request: Request) -> JSONResponse:
            self.hits += 1
            return JSONResponse({"keys": [key.jwk() for key in self.keys]})

        return Starlette(routes=[Route(JWKS_PATH, jwks), Route("/keys.json", jwks)])

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[JwksServer]:
        server = uvicorn.Server(
            uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        try:
            yield self
        finally:
            server.should_exit = True
            await task


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 15.0) -> None:
    """Polls `check` until it holds; a generous bound, not a speed test."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "did not happen in time"
        await asyncio.sleep(0.1)


async def accepted(graphql: GraphQLClient, token: str) -> bool:
    result = await graphql(SESSIONS, token=token)
    if result.errors:
        assert result.codes == ["UNAUTHENTICATED"], result.errors
        return False
    return True


@contextlib.asynccontextmanager
async def app_with(settings: Settings, **changes: Any) -> AsyncIterator[GraphQLClient]:
    """The whole app started the production way (its own resources, JWKS fetched at start)."""
    async with running_server(create_app(replace(settings, **changes))) as url:
        yield GraphQLClient(url)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey.ec("ec-key-1")


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey.rsa("rsa-key-1")


@pytest.fixture(scope="module")
async def project_jwks(ec_key: SigningKey, rsa_key: SigningKey) -> AsyncIterator[JwksServer]:
    async with JwksServer([ec_key, rsa_key]).running() as server:
        yield server


@pytest.fixture(scope="module")
async def supabase_app(
    settings: Settings, project_jwks: JwksServer
) -> AsyncIterator[GraphQLClient]:
    """The app of a Supabase project that signs with asymmetric keys and keeps its JWT secret."""
    async with app_with(
        settings, supabase_url=project_jwks.url, jwt_jwks_refetch_seconds=0.2
    ) as graphql:
        yield graphql


# --- asymmetric keys -------------------------------------------------------------------------


async def test_es256_and_rs256_user_tokens_are_accepted(
    supabase_app: GraphQLClient, ec_key: SigningKey, rsa_key: SigningKey
) -> None:
    user = uuid.uuid4()
    es256 = ec_key.sign(user_claims(user))
    rs256 = rsa_key.sign(user_claims(user))
    created = await supabase_app.ok(UPSERT, {"input": {}}, token=es256)
    listed = await supabase_app.ok(SESSIONS, token=rs256)
    assert [e["node"]["sessionId"] for e in listed["sessions"]["edges"]] == [
        created["upsertSession"]["sessionId"]
    ]
    hs256 = make_person()  # the legacy shared secret keeps working beside the JWKS
    assert await accepted(supabase_app, hs256.token)


async def test_an_unknown_kid_refetches_the_jwks_and_finds_a_rotated_key(
    supabase_app: GraphQLClient, project_jwks: JwksServer
) -> None:
    rotated = SigningKey.ec("ec-key-rotated")
    token = rotated.sign(user_claims(uuid.uuid4()))
    assert not await accepted(supabase_app, token)
    project_jwks.keys.append(rotated)
    try:
        await eventually(lambda: accepted(supabase_app, token))
    finally:
        project_jwks.keys.remove(rotated)


def _bad_tokens(ec_key: SigningKey, rsa_key: SigningKey) -> dict[str, str]:
    user = uuid.uuid4()
    claims = user_claims(user)
    forger = SigningKey.ec(ec_key.kid)  # another key that claims the published kid
    return {
        "hs256-keyed-with-the-ec-public-key": handmade(
            {"alg": "HS256", "typ": "JWT", "kid": ec_key.kid}, claims, ec_key.public_pem()
        ),
        "hs256-keyed-with-the-rsa-public-key": handmade(
            {"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid}, claims, rsa_key.public_pem()
        ),
        "alg-none-with-a-kid": handmade({"alg": "none", "kid": ec_key.kid}, claims, None),
        "rsa-signed-but-naming-the-ec-key": rsa_key.sign(claims, kid=ec_key.kid),
        "forged-with-another-key": forger.sign(claims),
        "expired": ec_key.sign(user_claims(user, ttl=-10)),
        "no-kid": jwt.encode(claims, ec_key.private, algorithm="ES256"),
        "wrong-audience": ec_key.sign({**claims, "aud": "somebody-else"}),
        "no-sub": ec_key.sign({k: v for k, v in claims.items() if k != "sub"}),
        "sub-not-a-uuid": ec_key.sign({**claims, "sub": "admin"}),
    }


async def test_tokens_the_keys_did_not_sign_as_claimed_are_refused(
    supabase_app: GraphQLClient, ec_key: SigningKey, rsa_key: SigningKey
) -> None:
    for name, token in _bad_tokens(ec_key, rsa_key).items():
        result = await supabase_app(SESSIONS, token=token)
        assert result.codes == ["UNAUTHENTICATED"], name


async def test_a_jwks_down_at_start_is_used_once_it_answers(
    settings: Settings, project_jwks: JwksServer
) -> None:
    late_key = SigningKey.ec("late-key")
    late = JwksServer([late_key])  # nothing listens on its port yet
    token = late_key.sign(user_claims(uuid.uuid4()))
    async with app_with(
        settings,
        supabase_url=project_jwks.url,  # JWT_JWKS_URL wins: late-key is only there
        jwt_jwks_url=late.url + "/keys.json",
        jwt_jwks_refetch_seconds=0.2,
    ) as graphql:
        assert await accepted(graphql, make_person().token)  # started; HS256 works
        assert not await accepted(graphql, token)
        async with late.running():
            await eventually(lambda: accepted(graphql, token))


async def test_a_flood_of_unknown_kids_fetches_the_jwks_at_most_once_per_interval(
    settings: Settings, ec_key: SigningKey
) -> None:
    async with (
        JwksServer([ec_key]).running() as jwks,
        app_with(settings, jwt_jwks_url=jwks.url + "/keys.json") as graphql,  # 30 s default
    ):
        await eventually(lambda: accepted(graphql, ec_key.sign(user_claims(uuid.uuid4()))))
        before = jwks.hits
        flood = [SigningKey.ec(f"random-{n}").sign(user_claims(uuid.uuid4())) for n in range(40)]
        results = await asyncio.gather(*(graphql(SESSIONS, token=t) for t in flood))
        assert {tuple(r.codes) for r in results} == {("UNAUTHENTICATED",)}
        assert jwks.hits <= before + 1, (before, jwks.hits)
        assert await accepted(graphql, ec_key.sign(user_claims(uuid.uuid4())))


async def test_keys_can_come_from_a_jwks_file(
    settings: Settings, rsa_key: SigningKey, tmp_path: Path
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_key.jwk()]}))
    async with app_with(settings, jwt_secret=None, jwt_jwks_file=path) as graphql:
        await eventually(lambda: accepted(graphql, rsa_key.sign(user_claims(uuid.uuid4()))))
        assert not await accepted(graphql, make_person().token)  # no JWT_SECRET: no HS256


# --- the legacy service_role and anon keys ---------------------------------------------------


async def test_the_legacy_service_role_key_acts_for_a_named_person(
    graphql: GraphQLClient, person: Person
) -> None:
    service_key = legacy_key("service_role")
    created = await graphql.ok(
        UPSERT, {"input": {"userId": str(person.user_id)}}, token=service_key
    )
    listed = await graphql.ok(SESSIONS, token=person.token)
    assert [e["node"]["sessionId"] for e in listed["sessions"]["edges"]] == [
        created["upsertSession"]["sessionId"]
    ]


async def test_the_service_key_has_no_sessions_of_its_own(graphql: GraphQLClient) -> None:
    service_key = legacy_key("service_role")
    for query, variables, code in [
        (SESSIONS, None, "FORBIDDEN"),
        ('{ session(sessionId: "x") { sessionId } }', None, "FORBIDDEN"),
        ('mutation { sendMessage(input: {content: "hi"}) { reply { id } } }', None, "FORBIDDEN"),
        ("{ telegramLink { telegramUserId } }", None, "FORBIDDEN"),
        (UPSERT, {"input": {}}, "BAD_USER_INPUT"),  # "userId is required"
    ]:
        result = await graphql(query, variables, token=service_key)
        assert result.codes == [code], (query, result.errors)


async def test_the_anon_key_is_an_anonymous_request(graphql: GraphQLClient, person: Person) -> None:
    anon = legacy_key("anon")
    assert (await graphql(SESSIONS, token=anon)).codes == ["UNAUTHENTICATED"]
    written = await graphql(UPSERT, {"input": {"userId": str(person.user_id)}}, token=anon)
    assert written.codes == ["UNAUTHENTICATED"]
    assert await graphql.ok("{ __typename }", token=anon) == {"__typename": "Query"}


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: legacy_key("service_role", ttl=-10), id="expired"),
        pytest.param(lambda: legacy_key("service_role", secret="x" * 40), id="other-secret"),
        pytest.param(lambda: legacy_key("service_role", aud="somebody-else"), id="other-aud"),
        pytest.param(lambda: legacy_key("service_role", sub="not-a-uuid"), id="bad-sub"),
        pytest.param(lambda: legacy_key("supabase_admin"), id="other-role"),
        pytest.param(
            lambda: jwt.encode(
                {"role": "authenticated", "aud": "authenticated", "exp": int(time.time()) + 60},
                TEST_JWT_SECRET,
                algorithm="HS256",
            ),
            id="user-without-sub",
        ),
        pytest.param(
            lambda: jwt.encode(
                {k: v for k, v in user_claims(uuid.uuid4()).items() if k != "aud"},
                TEST_JWT_SECRET,
                algorithm="HS256",
            ),
            id="user-without-aud",
        ),
    ],
)
async def test_keys_that_are_not_what_supabase_issues_are_refused(
    graphql: GraphQLClient, person: Person, token: Callable[[], str]
) -> None:
    result = await graphql(UPSERT, {"input": {"userId": str(person.user_id)}}, token=token())
    assert result.codes == ["UNAUTHENTICATED"]


async def test_the_cli_service_key_is_shaped_like_supabases(
    graphql: GraphQLClient, person: Person
) -> None:
    minted = subprocess.run(
        [COMMAND, "token", "--service", "--ttl", "120"],
        env={**os.environ, "JWT_SECRET": TEST_JWT_SECRET},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert minted.returncode == 0, minted.stderr
    key = minted.stdout.strip()
    claims = jwt.decode(key, TEST_JWT_SECRET, algorithms=["HS256"], options={"verify_aud": False})
    assert claims["role"] == "service_role" and claims["iss"] == "supabase"
    assert "sub" not in claims and "aud" not in claims
    await graphql.ok(UPSERT, {"input": {"userId": str(person.user_id)}}, token=key)
