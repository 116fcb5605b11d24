"""Durable Telegram turns: the bot files a message and queues its chat; the worker answers.

The update handler stores the person's message (in the registry at once, live on the web) and
queues the chat's job; it never waits for the agent. The job (`answer_chat`, in the worker)
answers the chat's waiting messages one at a time in Telegram's order (message ids grow within
a chat): the turn (conversation.run_turn, keyed by the Telegram message, so a repeated turn
stores nothing twice and reuses the reply), then the reply into the outbox (which sends one
address's deliveries in order), then the message marked answered. Every step is idempotent, so
a job that runs twice, or a worker killed mid-turn, loses nothing and answers once: the
worker's sweep (`sweep_waiting`) queues any chat whose next message has waited a moment with no
turn running in its session (a lost enqueue, a dead worker whose lease expired). Each try is
counted, so a message whose every try fails is set aside after `TELEGRAM_TURN_TRIES` instead of
holding up its chat forever.

arq is spoken here for the Telegram channel's own jobs (workers/arq_queue.py has the scheduled
channel's): the job ids and names below are used by both the bot and the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from graphql_api.core import conversation, deliveries, sessions
from graphql_api.core.channels import Job, WorkerPart
from graphql_api.core.models import SessionRow
from graphql_api.core.settings import Settings

from . import links
from .channel import TELEGRAM
from .outbound import NOT_LINKED

if TYPE_CHECKING:
    from aiogram import Bot
    from arq.connections import ArqRedis
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

ANSWER_JOB = "answer_telegram_chat"  # answer_chat(ctx, chat_id)
SWEEP_JOB = "sweep_telegram_turns"  # sweep_waiting(ctx)
SWEEP_EVERY = 5  # seconds
WAITED = 2.0  # seconds a message waits (with no turn running in its session) before the sweep
BOT = "telegram_bot"  # the worker ctx's Bot API client (None without a token)
ENQUEUE_TIMEOUT = 5.0

QueueChat = Callable[[int], Awaitable[None]]  # the bot's way to queue a chat's job


def idempotency_key(telegram_chat_id: int, message_id: int) -> str:
    """Stable across Telegram's redeliveries of the same message."""
    return f"tg:{telegram_chat_id}:{message_id}"


def job_id(queue_name: str, telegram_chat_id: int, suffix: str = "") -> str:
    """One queued job per chat: the bot's enqueues while it waits are one job. A continuation
    or a sweep adds a suffix, so a job still finishing (or left by a dead worker) is no bar."""
    return f"tg-chat:{queue_name}:{telegram_chat_id}{':' + suffix if suffix else ''}"


async def enqueue_chat(
    arq: ArqRedis, queue_name: str, telegram_chat_id: int, suffix: str = ""
) -> None:
    await arq.enqueue_job(
        ANSWER_JOB,
        telegram_chat_id,
        _job_id=job_id(queue_name, telegram_chat_id, suffix),
        _queue_name=queue_name,
    )


def chat_queue(redis: Redis | None, queue_name: str) -> QueueChat | None:
    """How the bot queues a chat (None without Redis: the worker's sweep finds its turns)."""
    if redis is None:
        return None
    from arq.connections import ArqRedis

    arq = ArqRedis(connection_pool=redis.connection_pool)

    async def queue(telegram_chat_id: int) -> None:
        """Best effort: a chat Redis did not take is queued by the worker's sweep."""
        try:
            async with asyncio.timeout(ENQUEUE_TIMEOUT):
                await enqueue_chat(arq, queue_name, telegram_chat_id)
        except Exception as exc:
            log.warning("could not queue chat %s (%r); the sweep will", telegram_chat_id, exc)

    return queue


# --- the worker's side ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Waiting:
    telegram_chat_id: int
    message_id: int
    user_id: uuid.UUID
    session_id: str
    text: str


_WAITING = """
SELECT telegram_chat_id, message_id, user_id, session_id, text
  FROM telegram_messages
 WHERE telegram_chat_id = $1 AND queued_at IS NOT NULL AND answered_at IS NULL
 ORDER BY message_id
 LIMIT $2
"""


async def waiting_in(db: asyncpg.Pool, telegram_chat_id: int, limit: int) -> list[Waiting]:
    return [Waiting(*r) for r in await db.fetch(_WAITING, telegram_chat_id, limit)]


async def answered(db: asyncpg.Pool, waiting: Waiting) -> None:
    """Its reply is in the registry and the outbox: a redelivery changes nothing, and its text
    (the registry has it) is forgotten here."""
    await db.execute(
        "UPDATE telegram_messages SET answered_at = now(), text = NULL "
        "WHERE telegram_chat_id = $1 AND message_id = $2",
        waiting.telegram_chat_id,
        waiting.message_id,
    )


async def set_aside(db: asyncpg.Pool, waiting: Waiting) -> None:
    """The agent failed (recorded on the session, the person told), or every try did: it no
    longer waits, and a redelivery of it queues it again (chats.file_message)."""
    await db.execute(
        "UPDATE telegram_messages SET queued_at = NULL "
        "WHERE telegram_chat_id = $1 AND message_id = $2",
        waiting.telegram_chat_id,
        waiting.message_id,
    )


def job_timeout(settings: Settings) -> float:
    """Turns are started for `settings.agent_timeout` seconds, and each may wait for the
    session's lease and take the agent's whole timeout."""
    return 2 * (settings.agent_timeout + conversation.LEASE_MARGIN) + 30


async def answer_chat(ctx: dict[str, Any], telegram_chat_id: int) -> str:
    """Answer the chat's waiting messages, oldest first, for about AGENT_TIMEOUT seconds; then,
    if more wait, queue a continuation."""
    pool: asyncpg.Pool = ctx["pool"]
    settings: Settings = ctx["settings"]
    started, done = time.monotonic(), 0
    while time.monotonic() - started < settings.agent_timeout:
        waiting = await waiting_in(pool, telegram_chat_id, 1)
        if not waiting:
            return f"{done} answered"
        await answer(ctx, waiting[0])
        done += 1
    if await waiting_in(pool, telegram_chat_id, 1):
        await enqueue_chat(ctx["redis"], ctx["queue_name"], telegram_chat_id, f"more:{time.time()}")
    return f"{done} answered, more queued"


async def counted_try(db: asyncpg.Pool, waiting: Waiting) -> int:
    """Count a try of this message's turn; how many there have been, this one included."""
    tries = await db.fetchval(
        "UPDATE telegram_messages SET tries = tries + 1 "
        "WHERE telegram_chat_id = $1 AND message_id = $2 RETURNING tries",
        waiting.telegram_chat_id,
        waiting.message_id,
    )
    return int(tries or 0)


async def answer(ctx: dict[str, Any], waiting: Waiting) -> None:
    pool: asyncpg.Pool = ctx["pool"]
    bot: Bot | None = ctx.get(BOT)
    tries = ctx["settings"].telegram_turn_tries
    if await counted_try(pool, waiting) > tries:
        # Each try raised (the turn, its delivery): without this the sweep would try it
        # forever, and the chat's later messages would wait behind it.
        log.error(
            "chat %s: message %s failed %d tries; set aside",
            waiting.telegram_chat_id,
            waiting.message_id,
            tries,
        )
        await _tell_it_failed(bot, waiting.telegram_chat_id)
        await set_aside(pool, waiting)
        return
    session = await sessions.get_session(pool, waiting.user_id, waiting.session_id)
    if session is None:  # deleted meanwhile (or never created): nothing to answer into
        await answered(pool, waiting)
        return
    chat = waiting.telegram_chat_id
    try:
        turn = await _turn(ctx, session, waiting, bot)
    except asyncpg.ForeignKeyViolationError:  # the session was deleted mid-turn
        log.info("chat %s: its session was deleted during the turn", chat)
        await answered(pool, waiting)
        return
    if turn.reply is None:
        await _tell_it_failed(bot, chat)
        await set_aside(pool, waiting)
        return
    await _deliver(ctx, turn.reply.id, waiting)
    await answered(pool, waiting)


async def _turn(
    ctx: dict[str, Any], session: SessionRow, waiting: Waiting, bot: Bot | None
) -> conversation.TurnOutcome:
    chat = waiting.telegram_chat_id
    async with _showing_work(bot, chat, waiting.message_id) as show:
        return await conversation.run_turn(
            ctx["pool"],
            ctx["agent"],
            session,
            waiting.text,
            idempotency_key=idempotency_key(chat, waiting.message_id),
            agent_timeout=ctx["settings"].agent_timeout,
            on_progress=show,
            via=TELEGRAM,
        )


async def _deliver(ctx: dict[str, Any], reply_id: int, waiting: Waiting) -> None:
    """Into the outbox, to the chat it came from while its sender is still linked to the
    session's owner (else the delivery fails: not linked)."""
    pool: asyncpg.Pool = ctx["pool"]
    link = await links.find_link(pool, waiting.telegram_chat_id)
    linked = link is not None and link.user_id == waiting.user_id
    target = str(waiting.telegram_chat_id) if linked else None
    row = await deliveries.queue(pool, reply_id, TELEGRAM, target, no_target=NOT_LINKED)
    wake = ctx.get(deliveries.WAKE)
    if row.status == "pending" and wake is not None:
        await wake(row.id)


@contextlib.asynccontextmanager
async def _showing_work(
    bot: Bot | None, chat: int, message_id: int
) -> AsyncIterator[conversation.OnProgress | None]:
    """ "typing" in the chat while the agent works, and its reply growing as a draft."""
    if bot is None:
        yield None
        return
    from .delivery import Draft, typing

    async with typing(bot, chat):
        yield Draft(bot, chat, draft_id=message_id).show


NOTICE_TRIES = 3  # a pooled connection the Bot API's side closed fails once, then works


async def _tell_it_failed(bot: Bot | None, chat: int) -> None:
    """Best effort, not through the outbox: the failure is recorded on the session. A network
    error (a reset keep-alive connection) is tried again at once."""
    if bot is None:
        return
    from aiogram.exceptions import TelegramAPIError, TelegramNetworkError

    from . import texts

    for attempt in range(1, NOTICE_TRIES + 1):
        try:
            await bot.send_message(chat_id=chat, text=texts.AGENT_FAILED)
            return
        except TelegramNetworkError as exc:
            if attempt == NOTICE_TRIES:
                log.info("could not tell chat %s its answer failed: %s", chat, exc)
        except TelegramAPIError as exc:
            log.info("could not tell chat %s its answer failed: %s", chat, exc)
            return


# A chat is stuck when the message its job would answer next (its oldest waiting one) has
# waited with no turn running in that message's session. Not any waiting message: after /new
# or /resume mid-turn, a later one waits in a session no turn holds while the chat's job is
# busy with an earlier one, and a second job would count a try of that earlier one (which it
# only waits for) and answer the later one ahead of it.
_STUCK = """
SELECT m.telegram_chat_id
  FROM (SELECT DISTINCT ON (telegram_chat_id) telegram_chat_id, session_id, queued_at
          FROM telegram_messages
         WHERE queued_at IS NOT NULL AND answered_at IS NULL
         ORDER BY telegram_chat_id, message_id) AS m
 WHERE m.queued_at < now() - make_interval(secs => $1)
   AND NOT EXISTS (SELECT FROM session_turns t
                    WHERE t.session_id = m.session_id AND t.lease_until > now())
 LIMIT 500
"""


async def sweep_waiting(ctx: dict[str, Any]) -> int:
    """Queue every chat whose next message waited WAITED seconds while no turn ran in its
    session: its enqueue was lost (Redis down, the bot killed) or its worker died."""
    chats = await ctx["pool"].fetch(_STUCK, WAITED)
    bucket = str(int(time.time() // SWEEP_EVERY))
    for row in chats:
        await enqueue_chat(ctx["redis"], ctx["queue_name"], row[0], f"sweep:{bucket}")
    return len(chats)


@contextlib.asynccontextmanager
async def worker_state(settings: Settings) -> AsyncIterator[Mapping[str, Any]]:
    """The worker's Bot API client, for "typing", drafts and failure notices."""
    if settings.telegram_bot_token is None:
        yield {BOT: None}
        return
    from .dispatcher import build_bot

    bot = build_bot(settings)
    try:
        yield {BOT: bot}
    finally:
        await bot.session.close()


def telegram_worker() -> WorkerPart:
    return WorkerPart(
        jobs=(
            Job(ANSWER_JOB, answer_chat, job_timeout),
            Job(SWEEP_JOB, sweep_waiting, lambda settings: 60.0, every=SWEEP_EVERY),
        ),
        lifespan=worker_state,
    )
