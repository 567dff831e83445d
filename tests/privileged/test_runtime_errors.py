"""A config with an error in each section: a clear message naming the field or the setup step,
a non-zero exit, a JSON error line in --log, never a hang, and nothing left behind (no state
dir, no cgroup dir, no process)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.runtime_harness import RUNTIME, RuntimeHarness, base_config, unique

Config = dict[str, Any]


def _set(path: str, value: Any) -> Callable[[Config], None]:
    def change(config: Config) -> None:
        *parents, last = path.split(".")
        target = config
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value

    return change


def _append(path: str, value: Any) -> Callable[[Config], None]:
    def change(config: Config) -> None:
        *parents, last = path.split(".")
        target = config
        for key in parents:
            target = target.setdefault(key, {})
        target.setdefault(last, []).append(value)

    return change


def _without_args(config: Config) -> None:
    del config["process"]["args"]


def _rlimit_above_hard(config: Config) -> None:
    # raising a hard limit needs CAP_SYS_RESOURCE, which this host does not give
    with open("/proc/self/limits") as limits:
        line = next(line for line in limits if line.startswith("Max open files"))
    hard = int(line.split()[4])
    config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": hard + 1000, "hard": hard + 1000}]


NONEXISTENT_SOURCE = f"/nonexistent-{unique('src')}"

# (id, change to base_config, [substrings the message must contain])
CASES: list[tuple[str, Callable[[Config], None], list[str]]] = [
    ("no-args", _without_args, ["process.args"]),
    ("empty-args", _set("process.args", []), ["process.args"]),
    ("relative-cwd", _set("process.cwd", "tmp"), ["process.cwd", "absolute"]),
    ("missing-cwd", _set("process.cwd", "/no/such/dir"),
     ["cwd", "/no/such/dir", "no such file or directory"]),
    ("unknown-rlimit", _set("process.rlimits", [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]),
     ["rlimit", "RLIMIT_BOGUS"]),
    ("rlimit-above-hard", _rlimit_above_hard, ["rlimit", "RLIMIT_NOFILE"]),
    ("unknown-capability", _set("process.capabilities", {"bounding": ["CAP_BOGUS"]}),
     ["capabilities", "CAP_BOGUS"]),
    ("apparmor", _set("process.apparmorProfile", "docker-default"),
     ["apparmorProfile", "AppArmor"]),
    ("missing-bind-source",
     _append("mounts", {"destination": "/mnt/data", "type": "bind",
                        "source": NONEXISTENT_SOURCE, "options": ["rbind"]}),
     ["mount", NONEXISTENT_SOURCE, "/mnt/data", "No such file or directory"]),
    ("missing-bind-source-first",  # fails at once, racing the runtime's cgroup step
     _set("mounts", [{"destination": "/mnt/data", "type": "bind",
                      "source": NONEXISTENT_SOURCE, "options": ["rbind"]}]),
     ["mount", NONEXISTENT_SOURCE, "/mnt/data", "No such file or directory"]),
    ("relative-mount-destination",
     _append("mounts", {"destination": "mnt", "type": "tmpfs", "source": "tmpfs"}),
     ["mounts[", "destination"]),
    ("unknown-fstype",
     _append("mounts", {"destination": "/mnt", "type": "nosuchfs", "source": "none"}),
     ["mount", "nosuchfs", "/mnt"]),
    ("unknown-namespace", _append("linux.namespaces", {"type": "bogus"}),
     ["namespace", "bogus"]),
    ("missing-namespace-path",
     _set("linux.namespaces", [{"type": "mount"}, {"type": "network",
                                                   "path": "/run/netns/does-not-exist"}]),
     ["network", "/run/netns/does-not-exist"]),
    ("not-a-namespace-path",
     _set("linux.namespaces", [{"type": "mount"}, {"type": "network", "path": "/etc/hostname"}]),
     ["network", "/etc/hostname"]),
    ("bad-device-type",
     _append("linux.devices", {"path": "/dev/weird", "type": "x", "major": 1, "minor": 3}),
     ["linux.devices", "type"]),
    ("bad-sysctl-key", _set("linux.sysctl", {"../../etc/passwd": "1"}), ["sysctl"]),
    ("unknown-sysctl", _set("linux.sysctl", {"net.ipv4.no_such_knob": "1"}),
     ["sysctl", "net.ipv4.no_such_knob"]),
    ("bad-seccomp-action",
     _set("linux.seccomp", {"defaultAction": "SCMP_ACT_BOGUS", "syscalls": []}),
     ["seccomp", "SCMP_ACT_BOGUS"]),
    ("bad-seccomp-syscall-action",
     _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOPE"}]}),
     ["seccomp", "SCMP_ACT_NOPE"]),
    ("missing-executable", _set("process.args", ["/nonexistent"]),
     ["/nonexistent", "no such file or directory"]),
    ("not-executable", _set("process.args", ["/etc/passwd"]),
     ["/etc/passwd", "permission denied"]),
    ("not-in-path", _set("process.args", ["no-such-command"]),
     ["no-such-command", "executable file not found in $PATH"]),
    ("unknown-hook-kind", _set("hooks", {"preStart": [{"path": "/bin/true"}]}),
     ["hooks", "preStart"]),
    ("relative-hook-path", _set("hooks", {"prestart": [{"path": "true"}]}),
     ["hooks.prestart[0].path"]),
    ("missing-hook-binary", _set("hooks", {"prestart": [{"path": "/no/such/hook"}]}),
     ["prestart", "/no/such/hook"]),
    ("missing-root", _set("root.path", "no-such-rootfs"), ["root.path", "no-such-rootfs"]),
    ("no-mount-namespace", _set("linux.namespaces", [{"type": "pid"}]),
     ["mount namespace"]),
    ("bad-rootfs-propagation", _set("linux.rootfsPropagation", "sideways"),
     ["rootfsPropagation", "sideways"]),
    ("uid-mappings-without-userns",
     _set("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]),
     ["uidMappings", "user namespace"]),
    ("bad-memory-limit", _set("linux.resources.memory", {"limit": "lots"}), ["memory"]),
]


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if text.encode() in cmdline.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _create(runtime: RuntimeHarness, bundle: Path, container_id: str,
            verb: str = "create") -> subprocess.CompletedProcess[bytes]:
    """stdout/stderr in files: a wrongly surviving init would hold pipes open."""
    with open(runtime.dir / f"{container_id}.out", "wb+") as stdout, \
            open(runtime.dir / f"{container_id}.err", "wb+") as stderr:
        completed = subprocess.run(
            [RUNTIME, "--root", str(runtime.root), "--log", str(runtime.log), "--log-format",
             "json", verb, "--bundle", str(bundle), container_id],
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, timeout=30)
        stdout.seek(0)
        stderr.seek(0)
        return subprocess.CompletedProcess(completed.args, completed.returncode,
                                           stdout.read(), stderr.read())


def _assert_nothing_left(runtime: RuntimeHarness, bundle: Path, container_id: str) -> None:
    assert not (runtime.root / container_id).exists(), "state dir left behind"
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        leftover = hierarchy / runtime.cgroup_parent / bundle.name
        assert not leftover.exists(), f"cgroup left behind: {leftover}"
    assert _processes_mentioning(container_id) == [], "process left behind"


def _assert_reported(runtime: RuntimeHarness, result: subprocess.CompletedProcess[bytes],
                     expected: list[str]) -> None:
    message = result.stderr.decode(errors="replace")
    assert result.returncode != 0
    for text in expected:
        assert text in message, f"{text!r} not in {message!r}"
    assert "EOF" not in message
    assert "Traceback" not in message
    records = [json.loads(line) for line in runtime.log.read_text().splitlines()]
    errors = [r for r in records if r["level"] == "error"]
    assert errors, records
    for text in expected:
        assert text in errors[-1]["msg"]


@pytest.mark.parametrize("change,expected", [(c, e) for _, c, e in CASES],
                         ids=[case_id for case_id, _, _ in CASES])
def test_config_error_is_reported_and_leaves_nothing(
        runtime: RuntimeHarness, change: Callable[[Config], None], expected: list[str]) -> None:
    config = base_config(["sh", "-c", "echo should-not-run"])
    change(config)
    bundle = runtime.bundle(config)
    container_id = unique("c")
    result = _create(runtime, bundle, container_id)
    _assert_reported(runtime, result, expected)
    _assert_nothing_left(runtime, bundle, container_id)


@pytest.mark.parametrize("case_id", ["missing-executable", "missing-bind-source",
                                     "unknown-sysctl"])
def test_run_reports_the_same_errors(runtime: RuntimeHarness, case_id: str) -> None:
    _, change, expected = next(case for case in CASES if case[0] == case_id)
    config = base_config(["sh", "-c", "echo should-not-run"])
    change(config)
    bundle = runtime.bundle(config)
    container_id = unique("c")
    result = _create(runtime, bundle, container_id, verb="run")
    _assert_reported(runtime, result, expected)
    assert b"should-not-run" not in result.stdout
    _assert_nothing_left(runtime, bundle, container_id)


def test_missing_config_json(runtime: RuntimeHarness) -> None:
    bundle = runtime.dir / unique("empty-bundle")
    bundle.mkdir()
    container_id = unique("c")
    result = _create(runtime, bundle, container_id)
    _assert_reported(runtime, result, ["config.json", str(bundle)])
    assert not (runtime.root / container_id).exists()


def test_invalid_json(runtime: RuntimeHarness) -> None:
    bundle = runtime.bundle(base_config(["true"]))
    (bundle / "config.json").write_text('{"ociVersion": "1.1.0", "process": ')
    container_id = unique("c")
    result = _create(runtime, bundle, container_id)
    _assert_reported(runtime, result, ["config.json", "JSON"])
    _assert_nothing_left(runtime, bundle, container_id)


def test_duplicate_container_id_is_refused(runtime: RuntimeHarness) -> None:
    bundle = runtime.bundle(base_config(["true"]))
    container_id = unique("c")
    first = _create(runtime, bundle, container_id)
    assert first.returncode == 0, first.stderr
    second = _create(runtime, bundle, container_id)
    _assert_reported(runtime, second, ["container with id exists", container_id])
    assert runtime.state(container_id)["status"] == "created"


def test_exec_errors_are_reported(runtime: RuntimeHarness) -> None:
    bundle = runtime.bundle(base_config(["sleep", "30"]))
    container_id = unique("c")
    created = _create(runtime, bundle, container_id)
    assert created.returncode == 0, created.stderr
    cases = [
        (["no-such-command"], "executable file not found in $PATH"),
        (["/etc/passwd"], "permission denied"),
        (["--cwd", "/no/such/dir", "true"], "/no/such/dir"),
    ]
    for args, expected in cases:
        result = runtime.runtime("exec", *args[:-1], container_id, args[-1], timeout=30,
                                 stdin=subprocess.DEVNULL)
        message = result.stderr.decode()
        assert result.returncode != 0
        assert expected in message, message
        assert "EOF" not in message
    assert runtime.state(container_id)["status"] == "created"


def test_child_error_survives_an_unread_reply() -> None:
    """The init may fail and exit while the runtime's reply (CGROUP_DONE) sits unread in its
    socket: the kernel then reports ECONNRESET once, ahead of the ERROR the child sent. The
    runtime must still read that ERROR, and find it when its own reply fails."""
    from sampan.runtime import protocol

    parent, child = protocol.channel()
    try:
        protocol.send(child, protocol.ERROR, step="check cwd /x", message="no such file")
        protocol.send(parent, protocol.CGROUP_DONE)  # never read by the child
        child.close()
        message, _ = protocol.receive(parent)
        assert message == {"kind": protocol.ERROR, "step": "check cwd /x",
                           "message": "no such file"}
    finally:
        parent.close()

    parent, child = protocol.channel()
    try:
        protocol.send(child, protocol.INIT_PID, pid=42)
        protocol.send(child, protocol.ERROR, step="find the executable", message="not found")
        child.close()
        with pytest.raises(OSError):
            protocol.send(parent, protocol.CGROUP_DONE)
        queued = protocol.queued_error(parent)
        assert queued is not None and queued["step"] == "find the executable"
        assert protocol.queued_error(parent) is None  # drained, and never blocks
    finally:
        parent.close()
