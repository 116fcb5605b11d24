"""Standard five-field cron syntax, checked strictly (croniter, which computes the slots, also
reads extensions (L, W, #, ?, N/step, reversed ranges, ...) that a schedule must not rely on),
and the slots of an expression in a time zone."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from graphql_api.core.errors import BadInput

MAX_CRON = 100
ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_NUMBER = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() also takes '٣' and '²'


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] = field(default_factory=dict)

    def hint(self) -> str:
        named = f" or {_name_range(self)}" if self.names else ""
        return (
            f"use numbers {self.low}-{self.high}{named}, *, lists (1,5), ranges (1-5) "
            "and steps (*/5, 1-30/5)"
        )


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, {name: number for number, name in enumerate(_MONTHS, 1)}),
    _Field("day-of-week", 0, 7, {name: number for number, name in enumerate(_WEEKDAYS)}),
)


class _Refused(Exception):
    """One field's problem; check_cron_syntax turns it into BadInput."""


def check_cron_syntax(expression: str) -> str:
    """The expression with its whitespace collapsed (aliases in lower case), or BadInput."""
    expression = " ".join(expression.split())
    if len(expression) > MAX_CRON:
        raise BadInput(f"cron must be at most {MAX_CRON} characters", field="cron")
    if expression.startswith("@") and " " not in expression:
        if expression.lower() not in ALIASES:
            raise BadInput(f"cron {expression!r} is not one of {', '.join(ALIASES)}", field="cron")
        return expression.lower()
    parts = expression.split(" ") if expression else []
    if len(parts) != len(FIELDS):
        raise BadInput(
            "cron must have five fields (minute hour day-of-month month day-of-week), "
            f"such as '0 9 * * MON-FRI', or be one of {', '.join(ALIASES)}",
            field="cron",
        )
    for text, cron_field in zip(parts, FIELDS, strict=True):
        try:
            _check_field(text, cron_field)
        except _Refused as refused:
            raise BadInput(f"cron {cron_field.name} field: {refused}", field="cron") from None
    return expression


def _check_field(text: str, cron_field: _Field) -> None:
    items = text.split(",")
    if "" in items:
        raise _Refused(f"{text!r} has an empty list item")
    for item in items:
        _check_item(item, cron_field)


def _check_item(item: str, cron_field: _Field) -> None:
    base, slash, step = item.partition("/")
    if slash:
        if not _NUMBER.fullmatch(step):
            raise _Refused(f"{item!r} is not standard cron; {cron_field.hint()}")
        if not 1 <= int(step) <= cron_field.high:
            raise _Refused(f"{item!r} has a step out of range 1-{cron_field.high}")
    if base == "*":
        return
    start, dash, end = base.partition("-")
    if slash and not dash:
        raise _Refused(f"{item!r}: a step follows * or a range, as in */5 or 0-30/5")
    first = _value(start, item, cron_field)
    if dash and first > _value(end, item, cron_field):
        raise _Refused(f"{item!r} is a range that goes backwards; write the smaller value first")


def _value(text: str, item: str, cron_field: _Field) -> int:
    if _NUMBER.fullmatch(text):
        number = int(text)
        if not cron_field.low <= number <= cron_field.high:
            raise _Refused(
                f"{item!r} is out of range {cron_field.low}-{cron_field.high}"
                + (f" (or {_name_range(cron_field)})" if cron_field.names else "")
            )
        return number
    named = cron_field.names.get(text.upper())
    if named is None:
        raise _Refused(f"{item!r} is not standard cron; {cron_field.hint()}")
    return named


def _name_range(cron_field: _Field) -> str:
    return f"{next(iter(cron_field.names))}-{next(reversed(cron_field.names))}"


def next_run_after(cron: str, timezone: str, moment: datetime) -> datetime:
    """The first slot strictly after `moment`, computed in the schedule's time zone, in UTC."""
    try:
        return _step(cron, timezone, moment, forward=True)
    except (CroniterBadDateError, CroniterBadCronError):
        raise BadInput("cron never matches a date", field="cron") from None


def latest_slot_before(cron: str, timezone: str, moment: datetime) -> datetime:
    """The last slot strictly before `moment` (pass the next slot: the latest one that is due)."""
    slot = _step(cron, timezone, moment, forward=False)
    # Next to a clock change croniter's backward step can skip a slot (half-hour zones): walk
    # forward, the direction slots are defined in, to the last one before `moment`.
    for _ in range(MAX_REPEATED_SLOTS):
        following = _step(cron, timezone, slot, forward=True)
        if following >= moment:
            break
        slot = following
    return slot


MAX_REPEATED_SLOTS = 24 * 60  # more than any repeated (fall-back) stretch can hold


def _step(cron: str, timezone: str, moment: datetime, *, forward: bool) -> datetime:
    """croniter's next or previous slot, leaving out the second occurrence of a wall time.

    When clocks fall back, an hour of wall times occurs twice; croniter yields both, and a slot
    at 02:30 would run twice that night. A wall time runs once, at its first occurrence. A wall
    time that does not exist (clocks go forward) is croniter's: the first time after the gap.
    """
    zone = ZoneInfo(timezone)
    found = moment
    iterator = croniter(cron, moment.astimezone(zone))
    for _ in range(MAX_REPEATED_SLOTS):
        found = iterator.get_next(datetime) if forward else iterator.get_prev(datetime)
        found = found.astimezone(UTC)
        if not _is_repeat(found, zone):
            break
    return found


def _is_repeat(moment: datetime, zone: ZoneInfo) -> bool:
    """Whether the local wall time at `moment` already happened an hour (or so) earlier."""
    local = moment.astimezone(zone)  # zoneinfo sets fold=1 on the second occurrence only
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()
