"""Pay the cgroup migration lock's RCU grace period early, off the container's critical path.

Moving a task between cgroups (a write to ``cgroup.procs``) takes the kernel's
``cgroup_threadgroup_rwsem`` for writing. That percpu rwsem uses rcu_sync: when no writer has
been seen for a grace period, the next writer waits a full RCU grace period (10-20 ms measured
here) before it gets the lock; writers that follow within a grace period pass at once. So
``create`` starts, in a thread, a no-op migration of itself into the cgroup it is already in:
the grace period elapses while the runtime imports modules and reads config.json, and the
container's real migrations later find the fast path.
"""

import _thread


def _rewrite_own_cgroup() -> None:
    try:
        with open("/proc/self/cgroup") as own:
            for line in own:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controllers in ("pids", "", "memory", "cpu"):
                    base = "/sys/fs/cgroup" if controllers == "" else \
                        f"/sys/fs/cgroup/{controllers}"
                    procs = f"{base}{path.rstrip('/')}/cgroup.procs"
                    try:
                        with open(procs, "w") as out:
                            out.write("0")  # "0" = the writing task itself
                        return
                    except OSError:
                        continue
    except OSError:
        pass


def prime_migration_lock() -> None:
    """Start the no-op migration in the background; never raises."""
    try:
        _thread.start_new_thread(_rewrite_own_cgroup, ())
    except RuntimeError:
        pass
