"""TokenVerifier remembers the tokens that verified, never past their expiry, never a failure,
and never more than REMEMBERED_TOKENS of them."""

from __future__ import annotations

import asyncio
import time
import uuid

import jwt
import pytest

from graphql_api.core import tokens
from graphql_api.core.tokens import InvalidToken, TokenVerifier, mint_token

SECRET = "a-test-secret-of-at-least-32-bytes!!"


def _token(user: uuid.UUID, *, exp: float) -> str:
    claims = {"sub": str(user), "role": "authenticated", "aud": "authenticated", "exp": exp}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def test_a_remembered_token_is_refused_once_it_expires() -> None:
    verifier, user = TokenVerifier(SECRET), uuid.uuid4()
    expires = int(time.time()) + 2
    token = _token(user, exp=expires)
    for _ in range(2):  # checked, then remembered
        viewer = await verifier.verify(token)
        assert viewer is not None and viewer.user_id == user
    assert verifier.remembered == 1
    await asyncio.sleep(expires - time.time() + 0.05)
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(token)
    assert verifier.remembered == 0


async def test_a_token_that_failed_is_never_remembered() -> None:
    verifier = TokenVerifier(SECRET)
    forged = mint_token("another-secret-of-at-least-32-bytes!", uuid.uuid4())
    for _ in range(2):
        with pytest.raises(InvalidToken, match="Signature verification failed"):
            await verifier.verify(forged)
    assert verifier.remembered == 0


async def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "REMEMBERED_TOKENS", 3)
    verifier = TokenVerifier(SECRET)
    users = [uuid.uuid4() for _ in range(5)]
    issued = [mint_token(SECRET, user) for user in users]
    for token in issued:
        await verifier.verify(token)
    assert verifier.remembered == 3
    for token, user in zip(issued, users, strict=True):  # the forgotten ones are checked again
        viewer = await verifier.verify(token)
        assert viewer is not None and viewer.user_id == user


async def test_a_token_is_remembered_for_at_most_remember_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tokens, "REMEMBER_SECONDS", 0.2)
    verifier = TokenVerifier(SECRET)
    token = mint_token(SECRET, uuid.uuid4())
    await verifier.verify(token)
    checked = []
    real_check = verifier._check

    async def counting(token: str) -> tuple[tokens.Viewer | None, float]:
        checked.append(token)
        return await real_check(token)

    monkeypatch.setattr(verifier, "_check", counting)
    await verifier.verify(token)
    assert checked == []
    await asyncio.sleep(0.25)
    await verifier.verify(token)
    assert checked == [token]
