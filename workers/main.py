"""The arq worker: `unified-sessions worker`, or a task inside `unified-sessions dev`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import asyncpg
from arq.connections import RedisSettings
from arq.cron import CronJob, cron
from arq.typing import WorkerCoroutine
from arq.worker import Function, Worker, func
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from graphql_api.channels import installed_channels
from graphql_api.core import deliveries
from graphql_api.core.agent import Agent, build_agent
from graphql_api.core.channels import Job, WorkerPart
from graphql_api.core.db import create_pool
from graphql_api.core.settings import Settings

from . import arq_queue
from .execution import Policy
from .jobs import (
    POSTGRES_DOWN,
    claim_due_schedules,
    deliver_message,
    execute_schedule_run,
    send_due_deliveries,
)
from .outbox import close_senders, open_senders

if TYPE_CHECKING:
    from graphql_api.core.runtime import Resources

log = logging.getLogger(__name__)


class PoolAndAgent(Protocol):
    """What jobs need: the app's Resources (`dev`, tests) or the worker's own."""

    @property
    def pool(self) -> asyncpg.Pool: ...

    @property
    def agent(self) -> Agent: ...


@dataclass(frozen=True)
class OwnResources:
    """The `unified-sessions worker` process's pool and agent (graphql_api.app, which holds
    Resources, builds the whole GraphQL schema on import: a worker does not need it)."""

    pool: asyncpg.Pool
    agent: Agent


CLAIM_TIMEOUT = 60.0
CHANNEL_STATE = "channel_state"  # the exit stack of the channels' worker lifespans
# Jobs at once. Most wait on an agent (a turn) or the Bot API, holding no connection meanwhile.
MAX_JOBS = 64
# How often an idle worker asks Redis for jobs: a queued delivery waits half of it on average.
POLL_DELAY = 0.1
SWEEP_EVERY = 5  # seconds between outbox sweeps (due retries, rows the API could not queue)

# Redis (or PostgreSQL at start) unreachable: the worker waits 0.5 s, 1 s, 2 s, 4 s, then 5 s
# between attempts, so it is back at most 5 s after the server is.
RECONNECT_BASE = 0.25
RECONNECT_CAP = 5.0
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)


def build_worker(
    settings: Settings,
    resources: PoolAndAgent | None = None,
    *,
    burst: bool = False,
    queue_name: str | None = None,
    claim_at_startup: bool = False,
    handle_signals: bool = True,
    poll_delay: float = POLL_DELAY,
    on_connected: Callable[[], None] | None = None,
) -> Worker:
    """An arq Worker for scheduled runs.

    Given `resources` (`dev`, tests) it uses their pool and agent and leaves closing them to the
    caller; otherwise its startup hook creates them and its shutdown hook closes them. The claim
    runs every minute (unique across workers); `claim_at_startup` also runs it at once, which is
    what a burst-mode worker needs, and a worker that reconnected after an outage (a claim it
    missed meanwhile runs at once). arq_queue.CLAIM_JOB can also be enqueued by name.
    `on_connected` is
    called once the worker has reached Redis.
    """
    queue = queue_name or settings.worker_queue
    policy = Policy.from_settings(settings)
    parts = [channel.worker() for channel in installed_channels()]

    async def startup(ctx: dict[str, Any]) -> None:
        if on_connected is not None:
            on_connected()
        await open_senders(ctx)
        ctx[deliveries.WAKE] = functools.partial(_wake, ctx)
        stack = ctx[CHANNEL_STATE] = contextlib.AsyncExitStack()
        for part in parts:
            ctx.update(await stack.enter_async_context(part.lifespan(settings)))
        if resources is not None:
            ctx["pool"], ctx["agent"] = resources.pool, resources.agent
            return
        ctx["pool"] = await create_pool(
            settings.require_database_url(),
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
        )
        ctx["agent"] = build_agent(settings)
        ctx["owns_resources"] = True

    async def shutdown(ctx: dict[str, Any]) -> None:
        await close_senders(ctx)
        stack: contextlib.AsyncExitStack | None = ctx.pop(CHANNEL_STATE, None)
        if stack is not None:
            await stack.aclose()
        if ctx.pop("owns_resources", False):
            await ctx["agent"].aclose()
            await ctx["pool"].close()

    return Worker(
        functions=[
            func(
                execute_schedule_run,
                name=arq_queue.EXECUTE_JOB,
                timeout=policy.job_timeout,
                # The run row counts attempts (policy.max_attempts); this is only a safety net.
                max_tries=arq_queue.execute_max_tries(policy.max_attempts),
            ),
            func(
                claim_due_schedules,
                name=arq_queue.CLAIM_JOB,
                timeout=CLAIM_TIMEOUT,
                max_tries=1,
            ),
            # The outbox row counts attempts and decides retries: one try per job.
            # No result kept: a job id then only dedupes while queued or running, and the next
            # attempt (or a new database with the same ids, against the same Redis) is queued.
            func(
                deliver_message,
                name=arq_queue.DELIVER_JOB,
                # Under the claim's lease: a stuck send ends before another worker may retry it.
                timeout=0.8 * settings.delivery_lease_seconds,
                max_tries=1,
                keep_result=0,
            ),
            func(
                arq_queue.RETENTION_FUNCTION,
                name=arq_queue.RETENTION_JOB,
                timeout=arq_queue.RETENTION_TIMEOUT,
                max_tries=1,  # idempotent: the next hour's run carries on
            ),
            func(send_due_deliveries, name=arq_queue.SWEEP_JOB, timeout=CLAIM_TIMEOUT, max_tries=1),
            *channel_functions(parts, settings),
        ],
        cron_jobs=[
            cron(
                claim_due_schedules,
                name=arq_queue.claim_cron_name(queue),
                second=0,
                unique=True,
                run_at_startup=claim_at_startup,
                timeout=CLAIM_TIMEOUT,
            ),
            cron(
                arq_queue.RETENTION_FUNCTION,
                name=arq_queue.retention_cron_name(queue),
                minute=arq_queue.RETENTION_MINUTE,
                second=0,
                unique=True,
                timeout=arq_queue.RETENTION_TIMEOUT,
            ),
            cron(
                send_due_deliveries,
                name=arq_queue.sweep_cron_name(queue),
                # A burst worker (tests) sweeps at start-up and once a minute, as it claims.
                second={0} if burst else set(range(0, 60, SWEEP_EVERY)),
                unique=True,
                run_at_startup=claim_at_startup,
                timeout=CLAIM_TIMEOUT,
            ),
            # A burst worker (tests) runs the claim and the queued jobs, not the channels' sweeps.
            *([] if burst else channel_crons(parts, queue)),
        ],
        queue_name=queue,
        redis_settings=redis_settings(settings.require_redis_url()),
        burst=burst,
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=handle_signals,
        poll_delay=poll_delay,
        max_jobs=MAX_JOBS,
        ctx={"settings": settings, "policy": policy, "queue_name": queue},
    )


def channel_functions(parts: list[WorkerPart], settings: Settings) -> list[Function]:
    """The channels' jobs. Each is idempotent and decides its own retries (a sweep finds what a
    failed run left): one try per job, no result kept, so its job id is free once it ends."""
    return [
        func(
            _coroutine(job),
            name=job.name,
            timeout=job.timeout(settings),
            max_tries=1,
            keep_result=0,
        )
        for part in parts
        for job in part.jobs
    ]


def channel_crons(parts: list[WorkerPart], queue: str) -> list[CronJob]:
    """The channels' periodic jobs (sweeps)."""
    return [
        cron(
            _coroutine(job),
            name=f"cron:{job.name}:{queue}",  # cron job ids are global in Redis
            second=set(range(0, 60, job.every)),
            unique=True,
            timeout=60.0,
        )
        for part in parts
        for job in part.jobs
        if job.every is not None
    ]


def _coroutine(job: Job) -> WorkerCoroutine:
    return cast("WorkerCoroutine", job.function)  # (ctx, *args) -> awaitable, as arq calls it


async def _wake(ctx: dict[str, Any], delivery_id: int) -> None:
    """Queue a delivery the worker itself wrote (a Telegram turn's reply)."""
    await arq_queue.enqueue_delivery(ctx["redis"], ctx["queue_name"], delivery_id)


def redis_settings(url: str) -> RedisSettings:
    """arq's connection to Redis. A command that meets a dropped connection is tried again on
    a new one (twice, 0.2 s then 0.4 s later): a blip costs nothing. arq's own start-up retries
    are off: a longer outage ends the arq Worker, and the supervisor (`keep_running`) logs it,
    backs off and starts a new one."""
    return dataclasses.replace(
        RedisSettings.from_dsn(url),
        conn_retries=0,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def run_worker(settings: Settings) -> None:
    """`unified-sessions worker`: run until SIGINT/SIGTERM, through Redis and PostgreSQL
    outages."""
    settings.require_database_url()
    settings.require_redis_url()
    asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> None:
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, main.cancel)
    try:
        resources = await _open_resources(settings)
        try:
            await keep_running(settings, resources)
        finally:
            await resources.agent.aclose()
            await resources.pool.close()
    except asyncio.CancelledError:
        log.info("the worker stopped; a run it cut short resumes on the next worker")


async def _open_resources(settings: Settings) -> OwnResources:
    """The worker's PostgreSQL pool and agent; waits, with backoff, for PostgreSQL to answer."""
    backoff = ExponentialBackoff(cap=RECONNECT_CAP, base=RECONNECT_BASE)
    failures = 0
    while True:
        try:
            pool = await create_pool(
                settings.require_database_url(),
                min_size=settings.db_pool_min,
                max_size=settings.db_pool_max,
            )
        except POSTGRES_DOWN as exc:
            failures += 1
            delay = backoff.compute(failures)
            log.warning("PostgreSQL is unreachable (%s); trying again in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            continue
        return OwnResources(pool=pool, agent=build_agent(settings))


async def keep_running(settings: Settings, resources: PoolAndAgent) -> None:
    """Run arq Workers until cancelled. When Redis goes away the Worker ends; this logs one
    line, waits with backoff and starts a new Worker, which claims due schedules at once. Jobs
    the old Worker was running go on (they need PostgreSQL, not Redis) and their Worker is
    closed when they end. Jobs are idempotent, so one that runs again is harmless."""
    backoff = ExponentialBackoff(cap=RECONNECT_CAP, base=RECONNECT_BASE)
    failures = 0
    retiring: set[asyncio.Task[None]] = set()

    def connected() -> None:
        nonlocal failures
        if failures:
            log.info("Redis is reachable again; claiming due schedules now")
        failures = 0

    try:
        while True:
            worker = build_worker(
                settings,
                resources,
                claim_at_startup=failures > 0,
                handle_signals=False,
                on_connected=connected,
            )
            try:
                await worker.async_run()
            except REDIS_DOWN as exc:
                failures += 1
                delay = backoff.compute(failures)
                log.warning(
                    "Redis is unreachable (%s: %s); reconnecting in %.1f s",
                    type(exc).__name__,
                    exc,
                    delay,
                )
                retiring.add(asyncio.create_task(_retire(worker)))
                retiring = {task for task in retiring if not task.done()}
                await asyncio.sleep(delay)
                continue
            except BaseException:
                await stop_worker(worker)
                raise
            await stop_worker(worker)  # a burst Worker that found nothing to do
            return
    finally:
        for task in retiring:
            task.cancel()
        await asyncio.gather(*retiring, return_exceptions=True)


async def worker_task(settings: Settings, resources: Resources) -> None:
    """The worker inside an already running event loop (`unified-sessions dev`): the same
    supervisor as `unified-sessions worker`, on the app's pool and agent."""
    try:
        await keep_running(settings, resources)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("the scheduled-runs worker stopped")


# arq has no public way to wait for the jobs of a Worker without ending them with an error:
# Worker.close() awaits them with a plain gather (the first job that failed or was cancelled
# aborts the close) and then writes to Redis, so it cannot close a Worker whose Redis is gone.
# Worker.tasks (job id -> the task running it) is the attribute close() and handle_sig() use
# themselves (arq 0.28); we only read it and clear it.


async def _retire(worker: Worker) -> None:
    """Let the jobs of a Worker that lost Redis finish, then close its Redis connections."""
    try:
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
    finally:
        worker.tasks.clear()
        redis = worker.ctx.get("redis")  # arq puts its ArqRedis there once connected
        if redis is not None:
            await redis.aclose()


async def stop_worker(worker: Worker) -> None:
    """Cancel running jobs (arq runs them again on the next start and the run rows resume
    them), wait for them to wind down, then close the worker's Redis pool."""
    for task in worker.tasks.values():
        task.cancel()
    await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
    worker.tasks.clear()
    try:
        await worker.close()
    except REDIS_DOWN:  # close() removes the health-check key first; the pool is closed anyway
        redis = worker.ctx.get("redis")
        if redis is not None:
            await redis.aclose()
