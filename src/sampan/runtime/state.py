"""A container's state on disk under ``<root>/<id>/`` and its status as the OCI spec defines it.

``state.json`` is written atomically (temp file + rename). The status is never stored: it is
derived from the kernel each time (is init alive, is it the same process, does the exec FIFO
still exist, is the cgroup frozen), so a crashed runtime cannot leave a stale status behind.
"""


from __future__ import annotations

import json
import os
import time

from sampan import errdefs

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.1.0"
STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
DEFAULT_ROOT = "/run/sampan-runc"

CREATING = "creating"
CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
STOPPED = "stopped"

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def validate_id(container_id: str) -> None:
    """runc's rule, ^[\\w+-.]+$, without importing re (start-up time)."""
    if (not container_id or not _ID_CHARS.issuperset(container_id)
            or container_id in (".", "..")):
        raise errdefs.InvalidParameter(f"invalid container id format: {container_id!r}")


def container_dir(root: str, container_id: str) -> str:
    validate_id(container_id)
    return os.path.join(root, container_id)


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None for a dead or zombie process.

    Stored with the pid so that a recycled pid is never mistaken for our init.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name is in parentheses and may itself contain spaces or parentheses
    fields = raw[raw.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def save(root: str, state: dict[str, Any]) -> None:
    directory = container_dir(root, state["id"])
    temp = os.path.join(directory, f".{STATE_FILE}.tmp")
    with open(temp, "w") as out:
        json.dump(state, out)
    os.rename(temp, os.path.join(directory, STATE_FILE))


def load(root: str, container_id: str) -> dict[str, Any]:
    path = os.path.join(container_dir(root, container_id), STATE_FILE)
    try:
        with open(path) as src:
            state: dict[str, Any] = json.load(src)
    except FileNotFoundError:
        raise errdefs.NotFound("container does not exist") from None
    except ValueError as exc:
        raise errdefs.System(f"corrupt state of container {container_id}: {exc}") from None
    return state


def exists(root: str, container_id: str) -> bool:
    return os.path.exists(os.path.join(container_dir(root, container_id), STATE_FILE))


def list_ids(root: str) -> list[str]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [name for name in names if os.path.exists(os.path.join(root, name, STATE_FILE))]


def init_alive(state: dict[str, Any]) -> bool:
    pid = state.get("pid", 0)
    return bool(pid) and process_start_time(pid) == state.get("pid_start")


def status_of(root: str, state: dict[str, Any], frozen: bool | None = None) -> str:
    """created | running | paused | stopped, from the kernel's point of view."""
    if not init_alive(state):
        return STOPPED
    if os.path.exists(os.path.join(root, state["id"], EXEC_FIFO)):
        return CREATED
    if frozen:
        return PAUSED
    return RUNNING


def oci_state(state: dict[str, Any], status: str) -> dict[str, Any]:
    """The state object of the OCI runtime spec (what `state` prints and hooks read)."""
    return {
        "ociVersion": OCI_VERSION,
        "id": state["id"],
        "pid": state["pid"] if status != STOPPED else 0,
        "status": status,
        "bundle": state["bundle"],
        "rootfs": state["rootfs"],
        "created": state["created"],
        "owner": state.get("owner", ""),
        "annotations": state.get("annotations") or {},
    }


def rfc3339_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"


def remove_container_dir(root: str, container_id: str) -> None:
    """Remove ``<root>/<id>`` (a few flat files; shutil costs 4 ms to import on this path)."""
    directory = container_dir(root, container_id)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        path = os.path.join(directory, name)
        try:
            os.unlink(path)
        except IsADirectoryError:
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass
