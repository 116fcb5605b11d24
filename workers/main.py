"""The arq worker: `unified-sessions worker`, or a task inside `unified-sessions dev`."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from arq.connections import RedisSettings
from arq.cron import cron
from arq.worker import Worker, func

from graphql_api.core.agent import build_agent
from graphql_api.core.db import create_pool
from graphql_api.core.settings import Settings

from .execution import Policy
from .jobs import CLAIM_JOB, EXECUTE_JOB, claim_due_schedules, execute_schedule_run

if TYPE_CHECKING:
    from graphql_api.app import Resources

log = logging.getLogger(__name__)

CLAIM_TIMEOUT = 60.0


def build_worker(
    settings: Settings,
    resources: Resources | None = None,
    *,
    burst: bool = False,
    queue_name: str | None = None,
    claim_at_startup: bool = False,
    handle_signals: bool = True,
    poll_delay: float = 0.5,
) -> Worker:
    """An arq Worker for scheduled runs.

    Given `resources` (`dev`, tests) it uses their pool and agent and leaves closing them to the
    caller; otherwise its startup hook creates them and its shutdown hook closes them. The claim
    runs every minute (unique across workers); `claim_at_startup` also runs it at once, which is
    what a burst-mode worker needs. CLAIM_JOB can also be enqueued by name.
    """
    queue = queue_name or settings.worker_queue
    policy = Policy.from_settings(settings)

    async def startup(ctx: dict[str, Any]) -> None:
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
        if ctx.pop("owns_resources", False):
            await ctx["agent"].aclose()
            await ctx["pool"].close()

    return Worker(
        functions=[
            func(
                execute_schedule_run,
                name=EXECUTE_JOB,
                timeout=policy.job_timeout,
                # arq's tries include runs cut short by a killed worker; the run row counts the
                # attempts that matter and closes the run as failed after policy.max_attempts.
                max_tries=policy.max_attempts + 2,
            ),
            func(claim_due_schedules, name=CLAIM_JOB, timeout=CLAIM_TIMEOUT, max_tries=1),
        ],
        cron_jobs=[
            cron(
                claim_due_schedules,
                # The queue is in the name: cron job ids are global in Redis, and deployments
                # (or test runs) sharing one Redis on different queues must not suppress each
                # other's claim.
                name=f"cron:{CLAIM_JOB}:{queue}",
                second=0,
                unique=True,
                run_at_startup=claim_at_startup,
                timeout=CLAIM_TIMEOUT,
            )
        ],
        queue_name=queue,
        redis_settings=RedisSettings.from_dsn(settings.require_redis_url()),
        burst=burst,
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=handle_signals,
        poll_delay=poll_delay,
        ctx={"settings": settings, "policy": policy, "queue_name": queue},
    )


def run_worker(settings: Settings) -> None:
    """`unified-sessions worker`: run until SIGINT/SIGTERM."""
    settings.require_database_url()
    settings.require_redis_url()
    asyncio.set_event_loop(asyncio.new_event_loop())
    try:
        build_worker(settings).run()
    except asyncio.CancelledError:
        log.info("stopped while jobs were running; they run again when a worker starts")


async def worker_task(settings: Settings, resources: Resources) -> None:
    """The worker inside an already running event loop (`unified-sessions dev`)."""
    worker = build_worker(settings, resources, handle_signals=False)
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("the scheduled-runs worker stopped")
    finally:
        await _stop(worker)


async def _stop(worker: Worker) -> None:
    """Cancel running jobs (arq runs them again on the next start and the run rows resume
    them), wait for them to wind down, then close the worker's Redis pool."""
    for task in worker.tasks.values():
        task.cancel()
    await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
    worker.tasks.clear()
    await worker.close()
