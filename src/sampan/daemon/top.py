"""``docker top``: the host's ``ps`` output, kept to the container's processes (pure parse)."""

from __future__ import annotations

from typing import Any

from sampan import errdefs


def filter_ps_output(output: str, pids: set[int]) -> dict[str, Any]:
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise errdefs.System("ps printed nothing")
    titles = lines[0].split()
    try:
        pid_column = titles.index("PID")
    except ValueError as exc:
        raise errdefs.InvalidParameter("couldn't find PID field in ps output") from exc
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) <= pid_column:
            continue
        try:
            pid = int(fields[pid_column])
        except ValueError:
            continue
        if pid in pids:
            processes.append(fields)
    return {"Titles": titles, "Processes": processes}
