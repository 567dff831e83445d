"""Compiled profiles loaded into real processes: each test forks a child that installs the
filter, tries syscalls and reports through a pipe; the parent asserts."""

import ctypes
import errno
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sampan.kernel import capabilities as kcaps
from sampan.kernel.seccomp import (
    SECCOMP_FILTER_FLAG_LOG,
    SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    SECCOMP_FILTER_FLAG_TSYNC,
    load_filter,
)
from sampan.runtime.seccomp import compile_profile, default_profile

pytestmark = pytest.mark.privileged

LIBC = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUTS = 0x04000000
SIGCHLD = 17
SYS_CLONE = 56  # x86_64
SYS_CLONE3 = 435
AF_INET, AF_INET6, AF_UNIX, SOCK_STREAM = 2, 10, 1, 1
O_WRONLY = 1
O_ACCMODE = 3


@pytest.fixture
def workdir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix=f"sampan-test-{uuid.uuid4().hex[:8]}-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_in_child(work: Callable[[], Any]) -> Any:
    """Run ``work`` in a forked child and return its JSON-able result (or fail with the
    child's exception)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_fd)
            try:
                report: dict[str, Any] = {"ok": work()}
            except BaseException as exc:
                report = {"error": f"{type(exc).__name__}: {exc}"}
            data = json.dumps(report).encode()
            while data:
                data = data[os.write(write_fd, data) :]
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child died: status {status:#x}, {data!r}"
    report = json.loads(data)
    assert "error" not in report, report["error"]
    return report["ok"]


def errno_of(call: Callable[[], object]) -> int:
    """0 if ``call`` succeeds, else the errno it failed with."""
    try:
        call()
    except OSError as exc:
        return exc.errno or -1
    return 0


def raw_errno(result: int) -> int:
    return ctypes.get_errno() if result == -1 else 0


def status_field(name: str) -> str:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key == name:
                return value.strip()
    raise AssertionError(f"{name} not in /proc/self/status")


def test_denied_syscall_fails_with_exactly_the_configured_errno(workdir: str) -> None:
    compiled = compile_profile(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"},  # no errnoRet: EPERM
            ],
        },
        None,
    )
    target = os.path.join(workdir, "denied")

    def child() -> dict[str, int]:
        load_filter(compiled.program, compiled.flags)
        return {
            "mkdir": errno_of(lambda: os.mkdir(target)),
            "getcwd": errno_of(os.getcwd),
            "listdir": errno_of(lambda: os.listdir(workdir)),
            "write": errno_of(lambda: open(os.path.join(workdir, "file"), "w").close()),
            "filters": int(status_field("Seccomp_filters")),
        }

    result = run_in_child(child)
    assert result == {"mkdir": 42, "getcwd": errno.EPERM, "listdir": 0, "write": 0, "filters": 1}
    assert not os.path.exists(target)
    assert os.path.exists(os.path.join(workdir, "file"))


def test_argument_filters_compare_the_named_argument(workdir: str) -> None:
    compiled = compile_profile(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {
                    "names": ["personality"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": errno.EACCES,
                    "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_NE"}],
                },
                {
                    "names": ["socket"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": errno.EAFNOSUPPORT,
                    "args": [{"index": 0, "value": AF_INET, "op": "SCMP_CMP_EQ"}],
                },
                {
                    "names": ["openat"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": errno.EROFS,
                    # openat(dirfd, path, flags): write-only opens, by the access mode bits
                    "args": [
                        {
                            "index": 2,
                            "value": O_ACCMODE,
                            "valueTwo": O_WRONLY,
                            "op": "SCMP_CMP_MASKED_EQ",
                        }
                    ],
                },
            ],
        },
        None,
    )
    existing = os.path.join(workdir, "existing")
    with open(existing, "w") as file:
        file.write("x")

    def child() -> dict[str, int]:
        load_filter(compiled.program, compiled.flags)
        LIBC.personality.argtypes = [ctypes.c_ulong]
        return {
            "personality_query": raw_errno(LIBC.personality(0xFFFFFFFF)),
            "personality_linux32": raw_errno(LIBC.personality(0x0008)),
            "socket_inet": raw_errno(LIBC.socket(AF_INET, SOCK_STREAM, 0)),
            "socket_inet6": raw_errno(LIBC.socket(AF_INET6, SOCK_STREAM, 0)),
            "socket_unix": raw_errno(LIBC.socket(AF_UNIX, SOCK_STREAM, 0)),
            "open_read": errno_of(lambda: open(existing).close()),
            "open_write": errno_of(lambda: os.open(existing, os.O_WRONLY)),
            "open_readwrite": errno_of(lambda: os.close(os.open(existing, os.O_RDWR))),
        }

    assert run_in_child(child) == {
        "personality_query": 0,
        "personality_linux32": errno.EACCES,
        "socket_inet": errno.EAFNOSUPPORT,
        "socket_inet6": 0,
        "socket_unix": 0,
        "open_read": 0,
        "open_write": errno.EROFS,
        "open_readwrite": 0,
    }


def test_docker_default_profile_lets_a_shell_run() -> None:
    compiled = compile_profile(default_profile(), None)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_fd)
            os.dup2(write_fd, 1)
            load_filter(compiled.program, compiled.flags)
            script = "echo hello; ls / >/dev/null; cat /proc/self/status | grep '^Seccomp:'"
            os.execv("/bin/sh", ["sh", "-c", script])
        finally:
            os._exit(127)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        output = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output
    assert output.split("\n")[0] == "hello"
    assert "Seccomp:\t2" in output  # SECCOMP_MODE_FILTER

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            load_filter(compiled.program, compiled.flags)
            os.execv("/bin/sh", ["sh", "-c", "true"])
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_docker_default_profile_denies_namespaces_mount_and_clone3() -> None:
    compiled = compile_profile(default_profile(), None)

    def child() -> dict[str, int]:
        load_filter(compiled.program, compiled.flags)
        LIBC.syscall.restype = ctypes.c_long
        results = {
            "unshare": raw_errno(LIBC.unshare(CLONE_NEWUTS)),
            "mount": raw_errno(LIBC.mount(b"none", b"/mnt", b"tmpfs", 0, None)),
            "clone3": raw_errno(LIBC.syscall(ctypes.c_long(SYS_CLONE3), None, ctypes.c_size_t(0))),
            "kexec_load": raw_errno(LIBC.syscall(ctypes.c_long(246), 0, 0, None, 0)),
            # newer than any syscall the profile names: ENOSYS, so a C library falls back
            "newer_than_profile": raw_errno(LIBC.syscall(ctypes.c_long(1000))),
        }
        # clone with a namespace flag: denied by the MASKED_EQ rule. Should it pass, the
        # new process leaves at once.
        pid = LIBC.syscall(ctypes.c_long(SYS_CLONE), ctypes.c_ulong(CLONE_NEWUTS | SIGCHLD), 0, 0,
                           0, 0)
        if pid == 0:
            os._exit(0)
        results["clone_newuts"] = raw_errno(pid)
        if pid > 0:
            os.waitpid(pid, 0)
        # A plain fork (clone without namespace flags) still works.
        forked = os.fork()
        if forked == 0:
            os._exit(7)
        _, status = os.waitpid(forked, 0)
        results["fork_exit"] = os.waitstatus_to_exitcode(status)
        return results

    assert run_in_child(child) == {
        "unshare": errno.EPERM,
        "mount": errno.EPERM,
        "clone3": errno.ENOSYS,
        "kexec_load": errno.EPERM,
        "newer_than_profile": errno.ENOSYS,
        "clone_newuts": errno.EPERM,
        "fork_exit": 7,
    }


def _thread_mkdir_errno_after_load(program: bytes, flags: int, target: str) -> int:
    """Start a thread, load the filter from the main thread, then let the thread mkdir."""
    loaded = threading.Event()
    outcome: list[int] = []

    def thread() -> None:
        loaded.wait()
        outcome.append(errno_of(lambda: os.mkdir(target)))

    worker = threading.Thread(target=thread)
    worker.start()
    try:
        load_filter(program, flags)
    finally:
        loaded.set()
        worker.join()
    return outcome[0]


def test_tsync_flag_puts_every_thread_under_the_filter(workdir: str) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}],
    }
    compiled = compile_profile(profile, None)
    assert compiled.flags == SECCOMP_FILTER_FLAG_TSYNC
    synced = os.path.join(workdir, "synced")
    unsynced = os.path.join(workdir, "unsynced")

    assert run_in_child(
        lambda: _thread_mkdir_errno_after_load(compiled.program, compiled.flags, synced)
    ) == 42
    assert run_in_child(lambda: _thread_mkdir_errno_after_load(compiled.program, 0, unsynced)) == 0
    assert not os.path.exists(synced)
    assert os.path.isdir(unsynced)


def test_log_and_spec_allow_flags_reach_the_kernel() -> None:
    compiled = compile_profile(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}],
        },
        None,
    )
    assert compiled.flags == SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW

    def child() -> dict[str, int]:
        load_filter(compiled.program, compiled.flags)
        return {"getcwd": errno_of(os.getcwd), "filters": int(status_field("Seccomp_filters"))}

    assert run_in_child(child) == {"getcwd": 42, "filters": 1}


def test_load_errors_are_oserrors_naming_seccomp() -> None:
    compiled = compile_profile({"defaultAction": "SCMP_ACT_ALLOW"}, None)

    def child() -> dict[str, Any]:
        outcomes: dict[str, Any] = {}
        for case, call in {
            "bad_flag": lambda: load_filter(compiled.program, 1 << 30),
            "misaligned": lambda: load_filter(compiled.program[:-3]),
            "empty": lambda: load_filter(b""),
        }.items():
            try:
                call()
                outcomes[case] = "loaded"
            except OSError as exc:
                outcomes[case] = [exc.errno, str(exc)]
        # Without CAP_SYS_ADMIN and without no_new_privs the kernel refuses a filter.
        effective, permitted, inheritable = kcaps.capget()
        kcaps.capset(effective & ~(1 << 21), permitted & ~(1 << 21), inheritable)
        try:
            load_filter(compiled.program)
            outcomes["unprivileged"] = "loaded"
        except OSError as exc:
            outcomes["unprivileged"] = [exc.errno, str(exc)]
        kcaps.set_no_new_privs()
        load_filter(compiled.program)
        outcomes["with_no_new_privs"] = int(status_field("Seccomp_filters"))
        return outcomes

    outcomes = run_in_child(child)
    for case in ("bad_flag", "misaligned", "empty", "unprivileged"):
        assert isinstance(outcomes[case], list), (case, outcomes[case])
        assert "seccomp" in outcomes[case][1], outcomes[case]
    assert outcomes["bad_flag"][0] == errno.EINVAL
    assert outcomes["misaligned"][0] == errno.EINVAL
    assert outcomes["empty"][0] == errno.EINVAL
    assert outcomes["unprivileged"][0] == errno.EACCES
    assert outcomes["with_no_new_privs"] == 1


def test_cache_hit_returns_identical_bytes_that_load(workdir: str) -> None:
    cache_dir = os.path.join(workdir, "seccomp-cache")
    cold = compile_profile(default_profile(), cache_dir)
    warm = compile_profile(default_profile(), cache_dir)
    assert warm == cold
    assert len(os.listdir(cache_dir)) == 1

    def child() -> int:
        load_filter(warm.program, warm.flags)
        return raw_errno(LIBC.unshare(CLONE_NEWUTS))

    assert run_in_child(child) == errno.EPERM
