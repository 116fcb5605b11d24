"""The retention job: every hour, delete the sessions idle longer than their channel's retention
(RETENTION_DAYS_WEB, _TELEGRAM, _SCHEDULED), exactly as deleteSession does
(graphql_api/core/forgetting.py), in bounded batches within a time budget. Idempotent (arq runs
a job at least once; a second run deletes what is left), unique across workers (arq's cron
lock; and SKIP LOCKED if two overlap anyway), each run recorded in retention_runs for
`unified-sessions retention`."""

from __future__ import annotations

import logging
from typing import Any

from graphql_api.core import forgetting

log = logging.getLogger(__name__)

# Seconds of deleting per run (what is left waits for the next hour); under the job's timeout,
# arq_queue.RETENTION_TIMEOUT, with room for the batch in flight.
RETENTION_BUDGET = 240.0


async def apply_retention(ctx: dict[str, Any]) -> int:
    """Delete the idle sessions of every channel with a retention; the number deleted."""
    policy = ctx["settings"].retention_policy
    deleted = await forgetting.apply_retention(ctx["pool"], policy, budget=RETENTION_BUDGET)
    if deleted:
        log.info("retention deleted %d session(s) (policy %s)", deleted, policy)
    return deleted
