"""Keep the cgroup migration lock on its fast path while a container is being set up.

Moving a task between cgroups (a write to ``cgroup.procs``) and making a cgroup directory take
the kernel's ``cgroup_threadgroup_rwsem`` / ``cgroup_mutex``. The rwsem is a percpu rwsem built
on rcu_sync: when no writer has been seen for a grace period, the next writer first waits a full
RCU grace period (8-13 ms measured here) and everyone queued behind ``cgroup_mutex`` waits with
it; writers that follow within a grace period pass at once. So the runtime starts, before its
own imports, a thread that keeps doing no-op migrations (the process into the cgroup it is
already in) every few milliseconds: the grace period elapses during the imports, and the
container's real mkdir and migrations find the fast path. The thread stops when told, or after
a short deadline.
"""

import _thread
import sys
import time

_INTERVAL = 0.003
_DEADLINE = 0.25
_stop = False
_until = 0.0  # the migrations go on until then (monotonic clock)
_running = False


def _own_procs_file() -> str | None:
    try:
        with open("/proc/self/cgroup") as own:
            for line in own:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controllers in ("pids", "", "memory", "cpu"):
                    base = "/sys/fs/cgroup" if controllers == "" else \
                        f"/sys/fs/cgroup/{controllers}"
                    return f"{base}{path.rstrip('/')}/cgroup.procs"
    except OSError:
        pass
    return None


def _keep_writing(procs: str, switch_interval: float) -> None:
    global _running
    # the first write is what starts the grace period: issue it now, then let the imports
    # have the interpreter again (see prime_migration_lock)
    sys.setswitchinterval(switch_interval)
    try:
        while not _stop and time.monotonic() < _until:
            try:
                with open(procs, "w") as out:
                    out.write("0")  # "0" = the writing task itself
            except OSError:
                return
            time.sleep(_INTERVAL)
    finally:
        _running = False


def prime_migration_lock() -> None:
    """Start the no-op migrations in the background, or extend the running ones' deadline
    (the runtime fork server primes on every request); never raises."""
    global _stop, _until, _running
    _stop = False
    _until = time.monotonic() + _DEADLINE
    if _running:
        return
    procs = _own_procs_file()
    if procs is None:
        return
    _running = True
    # A new thread waits for the GIL until the main thread, busy importing, is forced to
    # drop it (every 5 ms): shorten that interval until the thread has issued its first write
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    try:
        _thread.start_new_thread(_keep_writing, (procs, switch_interval))
    except RuntimeError:
        sys.setswitchinterval(switch_interval)
        _running = False


def release_migration_lock() -> None:
    """The container is in its cgroup: stop the background migrations."""
    global _stop
    _stop = True
