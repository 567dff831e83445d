"""``--since``/``--until`` values as Docker accepts them: durations relative to now
(``10m``, ``1h30m``), Unix seconds (``1700000000.5``), or RFC 3339 dates."""

from __future__ import annotations

import time
from datetime import UTC

from sampan.cli.errors import UsageError


def parse_timestamp(text: str, now: float | None = None) -> str:
    """The API's form: ``seconds[.nanoseconds]`` since the epoch, as a string."""
    now = time.time() if now is None else now
    text = text.strip()
    try:
        float(text)
        return text
    except ValueError:
        pass
    from sampan.cli.container_options import parse_duration

    try:
        nanos = parse_duration(text)
        return f"{now - nanos / 1e9:.9f}"
    except UsageError:
        pass
    from datetime import datetime

    candidate = text.replace("Z", "+00:00")
    for layout in (None, "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"):
        try:
            moment = (datetime.fromisoformat(candidate) if layout is None
                      else datetime.strptime(candidate, layout))
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.astimezone()
        return f"{moment.astimezone(UTC).timestamp():.9f}"
    raise UsageError(f"invalid value for timestamp: {text!r}")
