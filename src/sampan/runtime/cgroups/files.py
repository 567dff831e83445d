"""cgroupfs reads and writes with errors the engine understands, and the waits they need."""

import errno
import posixpath
import time
from collections.abc import Callable

from sampan import errdefs
from sampan.runtime.cgroups.fs import CgroupFs
from sampan.runtime.cgroups.plan import Write


def os_error(exc: OSError, action: str, path: str) -> errdefs.SampanError:
    """Translate an OSError from cgroupfs into the engine's error taxonomy."""
    reason = exc.strerror or str(exc)
    message = f"{action} {path}: {reason.lower()}"
    if exc.errno in (errno.EINVAL, errno.ERANGE, errno.EOVERFLOW):
        return errdefs.InvalidParameter(message)
    if exc.errno == errno.ENOENT:
        return errdefs.NotFound(message)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return errdefs.Forbidden(message)
    if exc.errno == errno.EBUSY:
        return errdefs.Conflict(message)
    return errdefs.System(message)


def write(fs: CgroupFs, path: str, value: str) -> None:
    try:
        fs.write(path, value)
    except OSError as exc:
        raise os_error(exc, f"cannot write {value!r} to", path) from exc


def read(fs: CgroupFs, path: str) -> str:
    try:
        return fs.read(path)
    except OSError as exc:
        raise os_error(exc, "cannot read", path) from exc


def read_optional(fs: CgroupFs, path: str) -> str | None:
    """The file's text, or None if the file does not exist (controller or kernel lacks it)."""
    try:
        return fs.read(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_error(exc, "cannot read", path) from exc


def perform(fs: CgroupFs, directory: str, step: Write) -> None:
    """Do one planned write in ``directory`` (the step's controller is known to be there)."""
    if len(step.files) == 1 and not step.optional:
        path = posixpath.join(directory, step.files[0])
        try:
            fs.write(path, step.value)
        except FileNotFoundError as exc:
            if not fs.exists(directory):
                raise errdefs.NotFound(f"cgroup {directory} does not exist") from exc
            raise errdefs.Unavailable(
                f"cgroup {step.controller} has no {step.files[0]} in {directory}"
            ) from exc
        except OSError as exc:
            raise os_error(exc, f"cannot write {step.value!r} to", path) from exc
        return
    for name in step.files:
        path = posixpath.join(directory, name)
        if fs.exists(path):
            write(fs, path, step.value)
            return
    if not step.optional:
        raise errdefs.Unavailable(
            f"cgroup {step.controller} has none of {', '.join(step.files)} in {directory}"
        )


def make_dirs(fs: CgroupFs, path: str, created: list[str]) -> None:
    """``mkdir -p`` through ``fs``, appending each directory it made to ``created`` (top first)."""
    try:
        fs.mkdir(path)
    except FileExistsError:
        return
    except FileNotFoundError:
        parent = posixpath.dirname(path)
        if parent == path:
            raise
        make_dirs(fs, parent, created)
        try:
            fs.mkdir(path)
        except FileExistsError:
            return
        except OSError as exc:
            raise os_error(exc, "cannot create cgroup", path) from exc
    except OSError as exc:
        raise os_error(exc, "cannot create cgroup", path) from exc
    created.append(path)


def pids_under(fs: CgroupFs, directory: str) -> list[int]:
    """Every pid in ``cgroup.procs`` of ``directory`` and of all its descendants."""
    pids: list[int] = []
    stack = [directory]
    while stack:
        current = stack.pop()
        try:
            procs = fs.read(posixpath.join(current, "cgroup.procs"))
            children = fs.subdirs(current)
        except FileNotFoundError:
            continue  # removed while we walked
        except OSError as exc:
            raise os_error(exc, "cannot list processes of", current) from exc
        pids.extend(int(p) for p in procs.split())
        stack.extend(posixpath.join(current, c) for c in children)
    return pids


def remove_tree(fs: CgroupFs, directory: str, timeout: float = 2.0) -> None:
    """Remove a cgroup and its children, deepest first.

    rmdir(2) on a cgroup fails with EBUSY while it still has member processes; processes that
    were just killed leave it a moment later, so EBUSY is retried until ``timeout``.
    """
    try:
        children = fs.subdirs(directory)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise os_error(exc, "cannot list", directory) from exc
    for child in children:
        remove_tree(fs, posixpath.join(directory, child), timeout)
    delay = 0.005
    deadline = time.monotonic() + timeout
    while True:
        try:
            fs.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                if exc.errno == errno.EBUSY:
                    raise errdefs.Conflict(
                        f"cannot remove cgroup {directory}: processes are still in it"
                    ) from exc
                raise os_error(exc, "cannot remove cgroup", directory) from exc
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def wait_until(done: Callable[[], bool], timeout: float) -> bool:
    """Poll ``done`` with a growing sleep until it is true (True) or ``timeout`` passes (False)."""
    delay = 0.001
    deadline = time.monotonic() + timeout
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def parse_flat_keyed(content: str) -> dict[str, int]:
    """Parse ``key value`` lines (memory.stat, cpu.stat, memory.events) into ints."""
    result: dict[str, int] = {}
    for line in content.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                result[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return result


def parse_uint(content: str | None, unlimited: int = 0) -> int:
    """Parse a single-value file; ``max`` (v2 for "no limit") becomes ``unlimited``."""
    if content is None:
        return 0
    value = content.strip()
    if value == "max":
        return unlimited
    try:
        return int(value)
    except ValueError:
        return 0
