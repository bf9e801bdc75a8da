"""The forms of the cluster format's text values: names (satellites, clusters, secrets), cron
expressions and durations, as patterns (which ``exosphere schema`` also writes) and the checks a
pattern cannot make (a name's length, a cron that never fires)."""

from __future__ import annotations

import datetime
import re

from croniter import CroniterBadDateError, croniter

MAX_NAME = 100  # a satellite's or a cluster part's name: it names folders and Dagster steps
# \Z, not $: "a\n" (a block scalar's last line break) must not pass for "a"
_NAME = rf"[a-z0-9][a-z0-9_-]{{0,{MAX_NAME - 1}}}"
IDENTIFIER_RE = re.compile(rf"^{_NAME}\Z")
SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*\Z")
USES_RE = re.compile(rf"^satellite/{_NAME}/[a-z0-9][a-z0-9_.-]{{0,{MAX_NAME - 1}}}\Z")
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*\Z")
CLUSTER_ID_RE = re.compile(rf"^(cluster/)?{_NAME}/{_NAME}\Z")
# what a schedule takes, as far as a pattern can say: 5 fields, or a macro
CRON_PATTERN = (
    r"^\s*(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|@(YEARLY|ANNUALLY|MONTHLY|WEEKLY|DAILY|MIDNIGHT|HOURLY)"
    r"|[0-9A-Za-z*/,?#-]+(\s+[0-9A-Za-z*/,?#-]+){4})\s*$"
)


def json_pattern(pattern: re.Pattern[str]) -> str:
    """A Python pattern as JSON Schema (ECMA-262) writes it: no \\Z there, and no line-break $."""
    return pattern.pattern.replace(r"\Z", "$")


def check_name_lengths(parts: list[str]) -> None:
    for part in parts:
        if len(part) > MAX_NAME:
            raise ValueError(
                f"a name of at most {MAX_NAME} characters (it names folders and Dagster steps), "
                f"found {len(part)}: {part[:20]}..."
            )


def checked_cron(value: str) -> str:
    """``value`` when a schedule can take it: five fields (or a macro) that fire some day."""
    if not croniter.is_valid(value):
        raise ValueError(f"expected a cron expression like '0 0 * * *', found {value!r}")
    if len(croniter.expand(value)[0]) != 5:  # what Dagster's schedules take
        raise ValueError(
            f"expected five cron fields (minute hour day month weekday), found {value!r}: "
            "schedules do not take seconds or years"
        )
    try:
        croniter(value, datetime.datetime(2026, 1, 1)).get_next(datetime.datetime)
    except CroniterBadDateError:
        raise ValueError(
            f"{value!r} never fires (no such day, like the 30th of February)"
        ) from None
    return value
