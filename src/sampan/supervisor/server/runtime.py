"""Running the OCI runtime (sampan-runc, runc, crun) as a program, without blocking the loop.

Each call is spawned with ``posix_spawn`` (no fork of the supervisor's memory) with the stdio
the caller chooses; the loop's reaper hands the exit status back and the call completes when
the process has exited and its captured output (if any) has ended. Errors are read as runc
writes them: the last ``level: error`` line the call appended to ``--log``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections.abc import Callable
from typing import Any

# The runtime gets the supervisor's environment minus what must not leak into containers'
# runtimes (containerd strips NOTIFY_SOCKET the same way).
_ENV_DROP = ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID")


def default_runtime_path() -> str:
    """``sampan-runc``: the launcher beside this program's own, the repository's ``bin/``,
    or the first on PATH."""
    here = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else ""
    candidates = [os.path.join(here, "sampan-runc")] if here else []
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__))))))
    candidates.append(os.path.join(package_root, "bin", "sampan-runc"))
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("sampan-runc") or "sampan-runc"


def resolve_runtime(runtime: str | None) -> str:
    """A runtime name (``runc``) or path to the path to execute."""
    if not runtime or runtime == "sampan-runc":
        return default_runtime_path()
    if os.sep in runtime:
        return runtime
    return shutil.which(runtime) or runtime


def runtime_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def global_args(runtime: str, root: str, log: str) -> list[str]:
    return [resolve_runtime(runtime), "--root", root, "--log", log, "--log-format", "json"]


def spawn(argv: list[str], stdin: int, stdout: int, stderr: int) -> int:
    """Start ``argv`` with the given fds as 0, 1, 2 (every other fd of ours is close-on-exec)
    and default signal dispositions (Python ignores SIGPIPE; the runtime must not)."""
    return os.posix_spawn(
        argv[0], argv, runtime_env(),
        file_actions=[(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1),
                      (os.POSIX_SPAWN_DUP2, stderr, 2)],
        setsigdef=(signal.SIGPIPE, signal.SIGCHLD, signal.SIGTERM, signal.SIGINT),
        setsigmask=(),
    )


def log_offset(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def last_error(log_path: str, offset: int) -> str | None:
    """The msg of the last ``level: error`` line written to the runtime's log after ``offset``."""
    try:
        with open(log_path, "rb") as file:
            file.seek(offset)
            data = file.read()
    except OSError:
        return None
    message = None
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("level") == "error":
            message = str(record.get("msg", ""))
    return message


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


class RuntimeCall:
    """One runtime invocation in flight: done when reaped and its captured output ended."""

    def __init__(self, verb: str, argv: list[str], log_path: str,
                 on_done: Callable[[RuntimeCall], None]) -> None:
        self.verb = verb
        self.argv = argv
        self.log_path = log_path
        self.on_done = on_done
        self.pid = 0
        self.status: int | None = None
        self.output = bytearray()
        self.capture_fd = -1
        self.log_start = log_offset(log_path)
        self.context: dict[str, Any] = {}

    @property
    def ok(self) -> bool:
        return self.status is not None and os.WIFEXITED(self.status) and \
            os.WEXITSTATUS(self.status) == 0

    def error_text(self) -> str:
        """What went wrong, as the runtime said it."""
        message = last_error(self.log_path, self.log_start)
        if message:
            return message
        text = self.output.decode(errors="replace").strip()
        if text:
            return text.splitlines()[-1]
        return f"{os.path.basename(self.argv[0])} {self.verb} did not terminate " \
            f"successfully: {describe_status(self.status or 0)}"

    def finished(self) -> bool:
        return self.status is not None and self.capture_fd < 0
