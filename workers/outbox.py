"""The worker's side of the outbox (graphql_api/core/deliveries.py): send one due delivery.

Each channel's sender (DeliveryPart.sender) is opened once per worker, at its start-up, and
closed with the worker; a channel whose sender cannot open (no bot token) fails its deliveries'
attempts with that reason, so they are retried and then failed with it. Sending is at least
once: a worker killed between the Bot API call and `sent` leaves a claimed row whose lease
expires, and the next sweep sends it again.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import asyncpg

from graphql_api.channels import installed_channels
from graphql_api.core import deliveries
from graphql_api.core.channels import Send
from graphql_api.core.settings import Settings, SettingsError

log = logging.getLogger(__name__)

SENDERS = "senders"  # the worker ctx's {channel name: send}, and its exit stack
SENDERS_STACK = "senders_stack"


async def deliver(ctx: dict[str, Any], delivery_id: int) -> str:
    """Send a delivery if it is due, then the ones to the same address that waited behind it
    (at most deliveries.IN_A_ROW); returns what became of the last (for arq's log)."""
    pool: asyncpg.Pool = ctx["pool"]
    outcome = "not due"
    next_id: int | None = delivery_id
    for _ in range(deliveries.IN_A_ROW):
        if next_id is None:
            break
        claimed = await deliveries.claim(pool, next_id, ctx["settings"].delivery_lease_seconds)
        if claimed is None:
            break
        outcome = await _attempt(ctx, claimed)
        if outcome == "pending":  # to be retried: the later ones wait for it
            break
        next_id = await deliveries.next_in_line(pool, claimed)
    return outcome


async def _attempt(ctx: dict[str, Any], claimed: deliveries.Claimed) -> str:
    pool: asyncpg.Pool = ctx["pool"]
    try:
        send = await _sender(ctx, claimed.channel)
        await send(claimed.target, claimed.text)
    except deliveries.RetryLater as later:
        return await deliveries.failed_attempt(pool, claimed, str(later), retry_in=later.seconds)
    except deliveries.Undeliverable as refused:
        return await deliveries.failed_attempt(pool, claimed, str(refused), final=True)
    except Exception as exc:
        log.warning("delivery %s through %s failed: %r", claimed.id, claimed.channel, exc)
        return await deliveries.failed_attempt(pool, claimed, _describe(exc))
    await deliveries.sent(pool, claimed.id)
    return "sent"


async def open_senders(ctx: dict[str, Any]) -> None:
    """Open every delivering channel's sender (the worker's start-up)."""
    settings: Settings = ctx["settings"]
    stack = ctx[SENDERS_STACK] = contextlib.AsyncExitStack()
    senders: dict[str, Send | str] = {}
    for channel in installed_channels():
        if channel.delivery is None:
            continue
        try:
            senders[channel.name] = await stack.enter_async_context(
                channel.delivery().sender(settings)
            )
        except SettingsError as exc:
            log.info("the worker cannot send %s deliveries: %s", channel.name, exc)
            senders[channel.name] = f"the worker cannot send through {channel.name}: {exc}"
    ctx[SENDERS] = senders


async def _sender(ctx: dict[str, Any], channel_name: str) -> Send:
    found = ctx.get(SENDERS, {}).get(channel_name)
    if found is None:
        raise deliveries.Undeliverable(f"the {channel_name} channel sends nothing")
    if isinstance(found, str):  # its sender could not open: retried, then failed with this
        raise RuntimeError(found)
    send: Send = found
    return send


async def close_senders(ctx: dict[str, Any]) -> None:
    stack: contextlib.AsyncExitStack | None = ctx.pop(SENDERS_STACK, None)
    ctx.pop(SENDERS, None)
    if stack is not None:
        await stack.aclose()


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
