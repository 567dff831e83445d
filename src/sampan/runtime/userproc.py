"""The last steps before execve(2) of the user's process, shared by init and exec.

Order matters and follows what the kernel allows: rlimits and oom_score_adj while still
privileged; the bounding set is dropped, then PR_SET_KEEPCAPS keeps the permitted set across
setuid(2) (which otherwise clears it for a non-zero uid); the wanted sets are set afterwards;
no_new_privs and seccomp come last so that the filter cannot block our own setup calls.
"""


from __future__ import annotations

import os
import resource
import signal
import stat

from sampan import errdefs
from sampan.kernel import process as kproc
from sampan.kernel.capabilities import set_no_new_privs
from sampan.kernel.seccomp import load_filter
from sampan.runtime import capabilities

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_PR_SET_KEEPCAPS = 8
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": resource.RLIMIT_CPU,
    "RLIMIT_FSIZE": resource.RLIMIT_FSIZE,
    "RLIMIT_DATA": resource.RLIMIT_DATA,
    "RLIMIT_STACK": resource.RLIMIT_STACK,
    "RLIMIT_CORE": resource.RLIMIT_CORE,
    "RLIMIT_RSS": resource.RLIMIT_RSS,
    "RLIMIT_NPROC": resource.RLIMIT_NPROC,
    "RLIMIT_NOFILE": resource.RLIMIT_NOFILE,
    "RLIMIT_MEMLOCK": resource.RLIMIT_MEMLOCK,
    "RLIMIT_AS": resource.RLIMIT_AS,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": resource.RLIMIT_SIGPENDING,
    "RLIMIT_MSGQUEUE": resource.RLIMIT_MSGQUEUE,
    "RLIMIT_NICE": resource.RLIMIT_NICE,
    "RLIMIT_RTPRIO": resource.RLIMIT_RTPRIO,
    "RLIMIT_RTTIME": resource.RLIMIT_RTTIME,
}


class ExecNotFound(Exception):
    """The process's executable is missing (exit 127 for callers) or not executable (126)."""


def apply_rlimits(rlimits: list[dict[str, Any]]) -> None:
    for limit in rlimits:
        kind = RLIMITS[limit["type"]]
        try:
            resource.setrlimit(kind, (int(limit["soft"]), int(limit["hard"])))
        except (ValueError, OSError) as exc:
            raise PermissionError(
                1, f"setrlimit {limit['type']} soft={limit['soft']} hard={limit['hard']}: "
                f"{exc} (raising a hard limit needs CAP_SYS_RESOURCE)") from None


def write_oom_score_adj(value: int) -> None:
    with open("/proc/self/oom_score_adj", "w") as adj:
        adj.write(str(value))


def _home_of(uid: int) -> str:
    try:
        with open("/etc/passwd") as passwd:
            for line in passwd:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def build_env(env: list[str], uid: int) -> dict[str, str]:
    result: dict[str, str] = {}
    for entry in env:
        key, sep, value = entry.partition("=")
        if key and sep:
            result[key] = value
    if "HOME" not in result:
        result["HOME"] = _home_of(uid)
    return result


def find_executable(arg0: str, env: dict[str, str], cwd: str) -> str:
    """Resolve args[0] like exec.LookPath; the error text is what callers match on."""
    if "/" in arg0:
        path = arg0 if arg0.startswith("/") else os.path.join(cwd, arg0)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise ExecNotFound(
                f'exec: "{arg0}": stat {arg0}: no such file or directory') from None
        if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
            raise ExecNotFound(f'exec: "{arg0}": permission denied')
        return path
    for directory in env.get("PATH", DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", arg0)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
    raise ExecNotFound(f'exec: "{arg0}": executable file not found in $PATH')


def switch_user(user: dict[str, Any]) -> None:
    uid = int(user.get("uid", 0))
    gid = int(user.get("gid", 0))
    groups = [int(g) for g in user.get("additionalGids") or []]
    kproc.prctl(_PR_SET_KEEPCAPS, 1)
    try:
        os.setgroups(groups)
    except PermissionError:
        # in a user namespace whose setgroups file says "deny", only an empty list is refused
        # too; keep going only when no groups were asked for
        if groups:
            raise
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    kproc.prctl(_PR_SET_KEEPCAPS, 0)
    if "umask" in user and user["umask"] is not None:
        os.umask(int(user["umask"]))


def finalize_and_exec(process: dict[str, Any], seccomp_program: bytes | None,
                      seccomp_flags: int, executable: str, env: dict[str, str],
                      preserve_fds: int) -> None:
    """Drop privileges as configured and execve; returns only by raising."""
    caps = capabilities.parse_capabilities(process.get("capabilities"))
    no_new_privs = bool(process.get("noNewPrivileges"))
    if seccomp_program is not None and not no_new_privs:
        # without no_new_privs, installing a filter needs CAP_SYS_ADMIN in the effective set,
        # which setuid(2) to a non-root user clears: load it first, as runc does (the
        # profile must then allow the set*id/capset/prctl calls below, Docker's does)
        load_filter(seccomp_program, seccomp_flags)
    capabilities.drop_bounding(caps)
    switch_user(process.get("user") or {})
    os.chdir(process.get("cwd") or "/")
    capabilities.apply_capabilities(caps)
    if no_new_privs:
        set_no_new_privs()
    kproc.mark_fds_cloexec(3 + preserve_fds)
    reset_signals()
    if seccomp_program is not None and no_new_privs:
        load_filter(seccomp_program, seccomp_flags)
    os.execve(executable, list(process["args"]), env)


def reset_signals() -> None:
    """Ignored signals stay ignored across execve(2): give the container default dispositions
    (Python ignores SIGPIPE, and callers such as conmon start us with SIGPIPE ignored)."""
    for signum in range(1, signal.NSIG):
        if signum in (signal.SIGKILL, signal.SIGSTOP) or 32 <= signum <= 33:
            continue
        try:
            signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def validate_user_process(process: dict[str, Any]) -> None:
    if not process.get("args"):
        raise errdefs.InvalidParameter("process.args must not be empty")
