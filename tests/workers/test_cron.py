"""Cron arithmetic in the schedule's own time zone, and the names a slot is known by."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from graphql_api.core.errors import BadInput
from graphql_api.core.schedules import (
    latest_slot_before,
    next_run_after,
    slot_job_id,
    slot_session_id,
    validate_cron,
    validate_timezone,
)
from graphql_api.core.sessions import validate_session_id


def test_next_run_is_read_in_the_schedules_time_zone() -> None:
    moment = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)  # a Monday
    assert next_run_after("0 9 * * *", "UTC", moment) == datetime(2025, 1, 7, 9, tzinfo=UTC)
    assert next_run_after("0 9 * * *", "Europe/Berlin", moment) == datetime(
        2025, 1, 7, 8, tzinfo=UTC
    )
    assert next_run_after("0 9 * * MON-FRI", "America/New_York", moment) == datetime(
        2025, 1, 6, 14, tzinfo=UTC
    )


def test_daylight_saving_time_keeps_the_local_hour() -> None:
    before = datetime(2025, 3, 29, 12, 0, tzinfo=UTC)  # Berlin moves to summer time on the 30th
    first = next_run_after("0 9 * * *", "Europe/Berlin", before)
    second = next_run_after("0 9 * * *", "Europe/Berlin", first)
    assert first == datetime(2025, 3, 30, 7, tzinfo=UTC)  # 09:00 CEST
    assert second == datetime(2025, 3, 31, 7, tzinfo=UTC)
    winter = next_run_after("0 9 * * *", "Europe/Berlin", datetime(2025, 10, 26, 0, tzinfo=UTC))
    assert winter == datetime(2025, 10, 26, 8, tzinfo=UTC)  # 09:00 CET


def test_the_latest_due_slot_is_the_one_before_the_next() -> None:
    now = datetime(2025, 1, 6, 14, 25, tzinfo=UTC)
    following = next_run_after("*/15 * * * *", "UTC", now)
    assert following == datetime(2025, 1, 6, 14, 30, tzinfo=UTC)
    assert latest_slot_before("*/15 * * * *", "UTC", following) == datetime(
        2025, 1, 6, 14, 15, tzinfo=UTC
    )
    on_the_dot = datetime(2025, 1, 6, 14, 30, tzinfo=UTC)  # a slot exactly now is due now
    following = next_run_after("*/15 * * * *", "UTC", on_the_dot)
    assert latest_slot_before("*/15 * * * *", "UTC", following) == on_the_dot


@pytest.mark.parametrize(
    "expression", ["0 9 * * *", "*/5 * * * *", "0 9 * * MON-FRI", "0 0 1 JAN,JUL *", "@daily"]
)
def test_standard_cron_expressions_are_accepted(expression: str) -> None:
    assert validate_cron(f"  {expression} ") == expression


@pytest.mark.parametrize(
    "expression", ["", "* * * *", "* * * * * *", "60 * * * *", "H * * * *", "R 9 * * *", "@often"]
)
def test_other_expressions_are_rejected(expression: str) -> None:
    with pytest.raises(BadInput) as caught:
        validate_cron(expression)
    assert caught.value.field == "cron"


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "utc+1", "../etc/localtime"])
def test_unknown_time_zones_are_rejected(name: str) -> None:
    with pytest.raises(BadInput) as caught:
        validate_timezone(name)
    assert caught.value.field == "timezone"


def test_slot_names_are_valid_session_and_job_ids() -> None:
    schedule_id = uuid.uuid4()
    slot = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    assert slot_session_id(schedule_id, slot) == f"sched:{schedule_id}:20250106T090000Z"
    assert validate_session_id(slot_session_id(schedule_id, slot))
    with_micros = slot.replace(microsecond=1500)
    assert validate_session_id(slot_session_id(schedule_id, with_micros)).endswith(
        "20250106T090000.001500Z"
    )
    assert slot_job_id(schedule_id, slot) != slot_job_id(schedule_id, with_micros)


def test_aliases_are_stored_in_lower_case() -> None:
    assert validate_cron("@DAILY") == "@daily"
