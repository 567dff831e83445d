"""Docker's time formats: RFC 3339 with nanoseconds, Go's zero time, ``since``/``until``
query values and the human durations of ``docker ps``.

Times are carried as integer nanoseconds since the epoch (``time.time_ns()``); 0 means "never"
(Go's zero ``time.Time``, printed ``0001-01-01T00:00:00Z``).
"""

from __future__ import annotations

import calendar
import re
import time

from sampan import errdefs
from sampan.types.humanize import human_duration as human_duration  # one copy for both

ZERO_TIME = "0001-01-01T00:00:00Z"

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)


def _date_part(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))


def rfc3339_nano(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: trailing zeros of the fraction dropped; 0 -> zero time."""
    if ns <= 0:
        return ZERO_TIME
    fraction = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return _date_part(ns) + (f".{fraction}" if fraction else "") + "Z"


def rfc3339_nano_fixed(ns: int) -> str:
    """The fixed-width form (always 9 digits) that ``docker logs -t`` prints."""
    return f"{_date_part(ns)}.{ns % 1_000_000_000:09d}Z"


def parse_rfc3339(text: str) -> int:
    """Nanoseconds of an RFC 3339 timestamp (json-file ``time``); ``InvalidParameter`` if not."""
    match = _RFC3339.match(text)
    if match is None:
        raise errdefs.InvalidParameter(f"invalid timestamp {text!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = (match.group(7) or "").ljust(9, "0")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    zone = match.group(8)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 1_000_000_000 + int(fraction)


def parse_api_timestamp(value: str | float | int | None) -> int:
    """A ``since``/``until`` value as the CLI sends it (``1795934573`` or
    ``1795934573.000000001``, seconds since the epoch) or an RFC 3339 string; returns
    nanoseconds, 0 when empty."""
    if value is None or value == "":
        return 0
    if isinstance(value, (int, float)):
        return int(value * 1_000_000_000)
    text = value.strip()
    if "T" in text:
        return parse_rfc3339(text)
    seconds, _, fraction = text.partition(".")
    try:
        whole = int(seconds)
        nanos = int(fraction.ljust(9, "0")[:9]) if fraction else 0
    except ValueError as exc:
        raise errdefs.InvalidParameter(f"invalid timestamp {value!r}") from exc
    return whole * 1_000_000_000 + (nanos if whole >= 0 else -nanos)
