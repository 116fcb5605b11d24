"""Cron arithmetic in the schedule's own time zone, and the names a slot is known by."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from graphql_api.core.errors import BadInput
from graphql_api.core.sessions import validate_session_id
from workers.cron import latest_slot_before, next_run_after
from workers.schedules import Slot, validate_cron, validate_timezone


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
    "expression",
    ["0 9 * * *", "* * * * *", "*/5 * * * *", "0 9 * * MON-FRI", "0 0 1 JAN,JUL *", "@daily"],
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


@pytest.mark.parametrize(
    ("expression", "stored"),
    [
        ("0 0 * * 7", "0 0 * * 7"),  # 0 and 7 are both Sunday
        ("0 9 * * mon-fri", "0 9 * * mon-fri"),
        ("0 9 * * Sat,SUN", "0 9 * * Sat,SUN"),
        ("0 0 1 jan-Mar,DEC *", "0 0 1 jan-Mar,DEC *"),
        ("0-30/10 */2 1-15/2 * 1-5", "0-30/10 */2 1-15/2 * 1-5"),
        ("59 23 31 12 6", "59 23 31 12 6"),
        ("00 09 * * *", "00 09 * * *"),
        ("5-5 * * * *", "5-5 * * * *"),
        ("0 0 29 2 *", "0 0 29 2 *"),  # leap days exist
        ("@ANNUALLY", "@annually"),
        ("@Hourly", "@hourly"),
        ("@midnight", "@midnight"),
    ],
)
def test_the_whole_standard_syntax_is_accepted(expression: str, stored: str) -> None:
    assert validate_cron(expression) == stored


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("0 0 L * *", "'L'"),  # last day of the month (Quartz)
        ("0 0 1W * *", "'1W'"),  # nearest weekday (Quartz)
        ("0 0 * * 5#3", "'5#3'"),  # third Friday (Quartz)
        ("0 0 * * 5L", "'5L'"),
        ("* * ? * *", "'?'"),
        ("1-0 * * * *", "1-0"),  # a range must not go backwards
        ("0 0 * * FRI-MON", "FRI-MON"),
        ("0 0 * DEC-JAN *", "DEC-JAN"),
        ("60 * * * *", "0-59"),
        ("* 24 * * *", "0-23"),
        ("* * 0 * *", "1-31"),
        ("* * 32 * *", "1-31"),
        ("* * * 0 *", "1-12"),
        ("* * * 13 *", "1-12"),
        ("* * * * 8", "0-7"),
        ("0-60 * * * *", "0-59"),
        ("*/0 * * * *", "step"),
        ("*/60 * * * *", "step"),
        ("5/15 * * * *", "'5/15'"),  # a step follows * or a range: 5-59/15
        ("* * * JAN-MON *", "'JAN-MON'"),
        ("* * * * MON-JAN", "'MON-JAN'"),
        ("* * MON * *", "'MON'"),  # names only in the month and weekday fields
        ("* * * * MONDAY", "'MONDAY'"),
        ("1,,2 * * * *", "'1,,2'"),
        ("1, * * * *", "'1,'"),
        ("-5 * * * *", "'-5'"),
        ("+5 * * * *", "'+5'"),
        ("\u0663 * * * *", "'\u0663'"),  # an Arabic-Indic digit is not a cron number
        ("*-5 * * * *", "'*-5'"),
        ("1-2-3 * * * *", "'1-2-3'"),
        ("@reboot", "@reboot"),
        ("@daily *", "five fields"),
    ],
)
def test_non_standard_cron_is_rejected_saying_why(expression: str, says: str) -> None:
    with pytest.raises(BadInput) as caught:
        validate_cron(expression)
    assert caught.value.field == "cron"
    assert says in caught.value.message, caught.value.message


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "", "utc+1", "../etc/localtime", "localtime", "Factory", "posixrules"]
)
def test_unknown_time_zones_are_rejected(name: str) -> None:
    with pytest.raises(BadInput) as caught:
        validate_timezone(name)
    assert caught.value.field == "timezone"


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires"])
def test_iana_time_zones_are_accepted(name: str) -> None:
    assert validate_timezone(f" {name} ") == name


def test_slot_names_are_valid_session_and_job_ids() -> None:
    schedule_id = uuid.uuid4()
    slot = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    assert Slot(schedule_id, slot).session_id == f"sched:{schedule_id}:20250106T090000Z"
    assert validate_session_id(Slot(schedule_id, slot).session_id)
    with_micros = slot.replace(microsecond=1500)
    assert validate_session_id(Slot(schedule_id, with_micros).session_id).endswith(
        "20250106T090000.001500Z"
    )
    assert Slot(schedule_id, slot).job_id != Slot(schedule_id, with_micros).job_id


def test_every_name_of_a_slot_comes_from_one_token() -> None:
    schedule_id = uuid.uuid4()
    berlin = datetime(2025, 1, 6, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # 09:00 UTC
    slot = Slot(schedule_id, berlin)
    assert slot == Slot(schedule_id, datetime(2025, 1, 6, 9, 0, tzinfo=UTC))
    assert slot.at.tzinfo is UTC and slot.token == "20250106T090000Z"
    # The forms stored in the registry and queued on arq, exactly as runs in flight carry them.
    assert slot.session_id == f"sched:{schedule_id}:20250106T090000Z"
    assert slot.job_id == f"schedule:{schedule_id}:20250106T090000Z"
    assert slot.idempotency_key == "schedule:20250106T090000Z"
    with pytest.raises(ValueError):
        Slot(schedule_id, datetime(2025, 1, 6, 9, 0))  # a naive time names no moment


def test_aliases_are_stored_in_lower_case() -> None:
    assert validate_cron("@DAILY") == "@daily"


# --- daylight saving time: every wall time the expression names runs once ------------------


def _slots(cron: str, timezone: str, start: datetime, end: datetime) -> list[datetime]:
    found, moment = [], start
    while (moment := next_run_after(cron, timezone, moment)) <= end:
        found.append(moment)
    return found


def test_a_wall_time_that_occurs_twice_runs_once_at_its_first_occurrence() -> None:
    # 2025-10-26 in Berlin: 03:00 CEST becomes 02:00 CET, so 02:30 happens at 00:30Z and 01:30Z.
    start, end = datetime(2025, 10, 25, 12, tzinfo=UTC), datetime(2025, 10, 27, 12, tzinfo=UTC)
    assert _slots("30 2 * * *", "Europe/Berlin", start, end) == [
        datetime(2025, 10, 26, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2025, 10, 27, 1, 30, tzinfo=UTC),  # 02:30 CET, the next day
    ]
    assert next_run_after(
        "30 2 * * *", "Europe/Berlin", datetime(2025, 10, 26, 0, 30, tzinfo=UTC)
    ) == datetime(2025, 10, 27, 1, 30, tzinfo=UTC)
    # Created during the repeated hour, after 02:30 CEST passed: 02:30 CET is not a new 02:30.
    assert next_run_after(
        "30 2 * * *", "Europe/Berlin", datetime(2025, 10, 26, 1, 0, tzinfo=UTC)
    ) == datetime(2025, 10, 27, 1, 30, tzinfo=UTC)
    # Hourly: 02:00 runs once; the repeated hour has no second run.
    night = _slots(
        "0 * * * *",
        "Europe/Berlin",
        datetime(2025, 10, 25, 22, tzinfo=UTC),
        datetime(2025, 10, 26, 3, tzinfo=UTC),
    )
    assert [s.hour for s in night] == [23, 0, 2, 3]  # 01:00 CEST, 02:00 CEST, 03:00 CET, 04:00
    # The latest due slot (the claim's) is the first occurrence as well.
    assert latest_slot_before(
        "30 2 * * *", "Europe/Berlin", datetime(2025, 10, 27, 1, 30, tzinfo=UTC)
    ) == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)


def test_a_wall_time_that_does_not_exist_runs_once_at_the_first_time_after_the_gap() -> None:
    # 2025-03-30 in Berlin: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
    start, end = datetime(2025, 3, 29, 12, tzinfo=UTC), datetime(2025, 3, 31, 12, tzinfo=UTC)
    assert _slots("30 2 * * *", "Europe/Berlin", start, end) == [
        datetime(2025, 3, 30, 1, 0, tzinfo=UTC),  # 03:00 CEST
        datetime(2025, 3, 31, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]
    # A schedule that runs every hour has no runs in the hour that does not exist.
    night = _slots(
        "15,45 * * * *",
        "Europe/Berlin",
        datetime(2025, 3, 30, 0, 30, tzinfo=UTC),
        datetime(2025, 3, 30, 1, 30, tzinfo=UTC),
    )
    assert [s.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") for s in night] == [
        "01:45",
        "03:15",
    ]


DST_ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",  # clocks change at midnight
    "Australia/Lord_Howe",  # a half-hour change
]


@pytest.mark.parametrize("timezone", DST_ZONES)
@pytest.mark.parametrize("cron", ["30 2 * * *", "0 0 * * *", "30 1 * * *", "*/20 * * * *"])
def test_around_every_clock_change_each_wall_time_runs_exactly_once(
    timezone: str, cron: str
) -> None:
    """Against the definition: each matching wall time that exists runs at its first occurrence;
    one that does not exist runs when the gap ends, unless the expression runs every hour."""
    zone = ZoneInfo(timezone)
    for change in _clock_changes(zone, 2025):
        start, end = change - timedelta(hours=8), change + timedelta(hours=8)
        expected: set[datetime] = set()
        wall = start.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        while wall <= end.astimezone(zone).replace(tzinfo=None):
            if croniter.match(cron, wall):
                real = [
                    moment
                    for fold in (0, 1)
                    if (moment := wall.replace(tzinfo=zone, fold=fold).astimezone(UTC))
                    .astimezone(zone)
                    .replace(tzinfo=None)
                    == wall
                ]
                if real:
                    expected.add(min(real))
                elif cron.split()[1] != "*":
                    expected.add(change)
            wall += timedelta(minutes=1)
        slots = _slots(cron, timezone, start, end)
        assert slots == sorted(m for m in expected if start < m <= end), (timezone, change)
        for earlier, later in pairwise(slots):
            assert latest_slot_before(cron, timezone, later) == earlier


def _clock_changes(zone: ZoneInfo, year: int) -> list[datetime]:
    moment = datetime(year, 1, 1, tzinfo=UTC)
    offset, changes = moment.astimezone(zone).utcoffset(), []
    while moment.year == year:
        moment += timedelta(minutes=30)
        if (now := moment.astimezone(zone).utcoffset()) != offset:
            changes.append(moment)
            offset = now
    return changes
