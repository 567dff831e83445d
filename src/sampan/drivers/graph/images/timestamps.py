"""RFC 3339 timestamps with nanoseconds, as Go's ``time.Time`` marshals them.

Image configs carry ``created`` as e.g. ``2026-11-29T05:14:09.338187221Z`` (trailing zeros of
the fraction dropped, ``Z`` for UTC). Docker's API shows the Unix seconds in image lists and
the string itself in ``inspect``; the zero time is ``0001-01-01T00:00:00Z``.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

ZERO_TIME = "0001-01-01T00:00:00Z"

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def format_ns(unix_ns: int) -> str:
    """Go's RFC3339Nano for a UTC instant given in nanoseconds since the epoch."""
    seconds, nanos = divmod(unix_ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        base += "." + f"{nanos:09d}".rstrip("0")
    return base + "Z"


def now() -> str:
    return format_ns(time.time_ns())


def parse_ns(text: str | None) -> int | None:
    """Nanoseconds since the epoch for an RFC 3339 string, ``None`` if absent or malformed."""
    if not text:
        return None
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = (match.group(7) or "").ljust(9, "0")
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    offset = 0
    if match.group(9):
        sign = 1 if match.group(9) == "+" else -1
        offset = sign * (int(match.group(10)) * 3600 + int(match.group(11)) * 60)
    whole = int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) - offset
    return whole * 1_000_000_000 + int(fraction or "0")


def parse_filter_time(text: str, now_ns: int | None = None) -> int:
    """A ``until``/``since`` filter value: Unix seconds (``1700000000[.5]``), RFC 3339, or a
    Go duration relative to now (``10m``, ``1h30m``, ``24h``). Returns nanoseconds."""
    current = time.time_ns() if now_ns is None else now_ns
    if re.fullmatch(r"\d+(\.\d+)?", text):
        whole, _, frac = text.partition(".")
        return int(whole) * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])
    parsed = parse_ns(text)
    if parsed is not None:
        return parsed
    if re.fullmatch(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+", text):
        units = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9,
                 "m": 60 * 10**9, "h": 3600 * 10**9}
        total = 0.0
        for number, _, unit in re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", text):
            total += float(number) * units[unit]
        return current - int(total)
    from sampan import errdefs

    raise errdefs.InvalidParameter(f"invalid time value: {text!r}")
