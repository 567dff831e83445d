"""dockerd 20.10 drives sampan-runc through containerd's shim, exactly as it drives runc.

containerd-shim-runc-v2 calls the runtime with runc's command line (create, start, state,
exec, kill, delete, pause, resume, update, events --stats), so these tests prove that a real
caller can use ``sampan-runc`` in runc's place. Every container gets ``--runtime sampan``
and ``--network none``; the stack (see ``dockerd_harness``) is private to this module.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dockerd_harness import EngineStack, cgroup_dirs_of, docker_cli

RUN = ("run", "--runtime", "sampan", "--network", "none")
MiB = 1024 * 1024


def _name() -> str:
    return "sampan-test-" + uuid.uuid4().hex[:10]


def _state(stack: EngineStack, name: str) -> dict[str, object]:
    state = stack.inspect(name)["State"]
    assert isinstance(state, dict)
    return state


def _pid(stack: EngineStack, name: str) -> int:
    pid = _state(stack, name)["Pid"]
    assert isinstance(pid, int) and pid > 0, f"{name} has no pid: {pid}"
    return pid


def _read(path: Path) -> str:
    return path.read_text().strip()


def _start_sleeper(stack: EngineStack, *flags: str) -> str:
    name = _name()
    stack.docker_ok(*RUN, "-d", "--name", name, *flags, "busybox", "sleep", "100")
    return name


def test_run_rm_echo_prints_output_and_exits_zero(dockerd_with_sampan: EngineStack) -> None:
    result = dockerd_with_sampan.docker(*RUN, "--rm", "busybox", "echo", "hi from sampan")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi from sampan\n"


def test_run_preserves_non_zero_exit_code(dockerd_with_sampan: EngineStack) -> None:
    result = dockerd_with_sampan.docker(*RUN, "--rm", "busybox", "sh", "-c", "echo out; exit 3")
    assert result.returncode == 3, result.stderr
    assert result.stdout == "out\n"


def test_run_of_missing_binary_fails_with_127_and_names_it(
    dockerd_with_sampan: EngineStack,
) -> None:
    result = dockerd_with_sampan.docker(*RUN, "--rm", "busybox", "/nonexistent")
    # dockerd turns a create error mentioning "no such file or directory" (or "executable
    # file not found") into 127, as runc's `exec: "/nonexistent": stat ...` message does.
    assert result.returncode == 127, (result.returncode, result.stderr)
    assert "/nonexistent" in result.stderr
    assert "no such file or directory" in result.stderr.lower()


def test_detached_container_exec_stop_and_kill(dockerd_with_sampan: EngineStack) -> None:
    stack = dockerd_with_sampan
    name = _start_sleeper(stack)
    assert _state(stack, name)["Status"] == "running"
    _pid(stack, name)

    echoed = stack.docker("exec", name, "echo", "inside")
    assert (echoed.returncode, echoed.stdout) == (0, "inside\n"), echoed.stderr
    failed = stack.docker("exec", name, "sh", "-c", "echo err >&2; exit 5")
    assert failed.returncode == 5
    assert "err" in failed.stderr
    # The exec'd process shares the container's pid namespace: sleep is pid 1 there.
    ps = stack.docker_ok("exec", name, "cat", "/proc/1/cmdline")
    assert ps.split("\0")[:2] == ["sleep", "100"]

    # sleep as pid 1 has no SIGTERM handler, so the kernel ignores SIGTERM: stop must
    # escalate to SIGKILL after the timeout.
    stack.docker_ok("stop", "-t", "1", name)
    state = _state(stack, name)
    assert (state["Status"], state["ExitCode"]) == ("exited", 137)

    stack.docker_ok("start", name)
    assert _state(stack, name)["Status"] == "running"
    stack.docker_ok("kill", name)
    state = _state(stack, name)
    assert (state["Status"], state["ExitCode"]) == ("exited", 137)
    stack.docker_ok("rm", name)


def test_kill_with_signal_reaches_the_container_process(dockerd_with_sampan: EngineStack) -> None:
    stack = dockerd_with_sampan
    name = _name()
    script = "trap 'echo got-usr1; exit 7' USR1; while :; do sleep 0.1; done"
    stack.docker_ok(*RUN, "-d", "--name", name, "busybox", "sh", "-c", script)
    stack.docker_ok("kill", "-s", "USR1", name)
    exit_code = stack.docker_ok("wait", name).strip()
    assert exit_code == "7"
    assert "got-usr1" in stack.docker_ok("logs", name)
    stack.docker_ok("rm", name)


def _pty_session(
    stack: EngineStack, docker_args: list[str], lines: list[bytes], timeout: float
) -> tuple[int, bytes]:
    """Run the docker CLI on a fresh pty, type ``lines``, return (exit code, screen)."""
    master, slave = os.openpty()
    process = subprocess.Popen(
        [docker_cli(), *docker_args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**stack.dockerd.env(), "TERM": "dumb"},
        start_new_session=True,
    )
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + timeout
    pending = list(lines)
    prompt_seen_at = 0
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the other side of the pty is gone
                    break
                if not chunk:
                    break
                screen += chunk
            # Type the next line once the shell shows a new prompt ("# " for root).
            if pending and screen.count(b"# ") > prompt_seen_at:
                prompt_seen_at = screen.count(b"# ")
                os.write(master, pending.pop(0))
            if process.poll() is not None and not ready:
                break
        code = process.wait(max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return code, screen


def test_run_interactive_tty_through_a_pty(dockerd_with_sampan: EngineStack) -> None:
    stack = dockerd_with_sampan
    docker_args = [*RUN, "-it", "--rm", "--name", _name(), "busybox", "sh"]
    lines = [b"tty; echo $((6*7))\r", b"exit\r"]
    code, screen = _pty_session(stack, docker_args, lines, timeout=30)
    text = screen.decode(errors="replace")
    assert code == 0, text
    # The shell computed the value (the typed line echoes "$((6*7))", never a bare 42).
    assert re.search(r"^42\r?$", text, re.MULTILINE), text
    # Inside, stdin is a real terminal of the container's own devpts.
    assert re.search(r"^/dev/(pts/\d+|console)\r?$", text, re.MULTILINE), text


def test_exec_interactive_tty_through_a_pty(dockerd_with_sampan: EngineStack) -> None:
    stack = dockerd_with_sampan
    name = _start_sleeper(stack)
    lines = [b"tty; echo $((6*7)); exit 4\r"]
    code, screen = _pty_session(stack, ["exec", "-it", name, "sh"], lines, timeout=30)
    text = screen.decode(errors="replace")
    assert code == 4, text
    assert re.search(r"^42\r?$", text, re.MULTILINE), text
    assert re.search(r"^/dev/pts/\d+\r?$", text, re.MULTILINE), text
    stack.docker_ok("rm", "-f", name)


def test_top_lists_the_container_processes(dockerd_with_sampan: EngineStack) -> None:
    stack = dockerd_with_sampan
    name = _start_sleeper(stack)
    # dockerd asks the runtime (`ps --format json`) for the host pids, then runs ps on them.
    table = stack.docker_ok("top", name, "-o", "pid,args")
    rows = [line.split(None, 1) for line in table.strip().splitlines()[1:]]
    assert [args for _pid, args in rows] == ["sleep 100"], table
    assert int(rows[0][0]) == _pid(stack, name)
    stack.docker_ok("rm", "-f", name)


def test_memory_limit_is_applied_and_visible_inside(dockerd_with_sampan: EngineStack) -> None:
    stack = dockerd_with_sampan
    name = _start_sleeper(stack, "--memory", "64m")
    memory = cgroup_dirs_of(_pid(stack, name))
    if "memory" in memory:
        assert int(_read(memory["memory"] / "memory.limit_in_bytes")) == 64 * MiB
    else:
        assert int(_read(memory[""] / "memory.max")) == 64 * MiB
    inside = stack.docker_ok(
        "exec",
        name,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
        " || cat /sys/fs/cgroup/memory.max",
    )
    assert int(inside.strip()) == 64 * MiB
    stack.docker_ok("rm", "-f", name)


def test_pids_limit_caps_a_fork_loop(dockerd_with_sampan: EngineStack) -> None:
    stack = dockerd_with_sampan
    name = _start_sleeper(stack, "--pids-limit", "20")
    pids_dir = cgroup_dirs_of(_pid(stack, name))["pids"]
    assert _read(pids_dir / "pids.max") == "20"
    loop = "i=0; while [ $i -lt 40 ]; do sleep 100 & i=$((i+1)); done; echo unreachable"
    result = stack.docker("exec", name, "sh", "-c", loop)
    # busybox sh gives up at the first failed fork(2) (EAGAIN from the pids controller).
    assert result.returncode != 0
    assert "unreachable" not in result.stdout
    assert "can't fork" in result.stderr, result.stderr
    current = int(_read(pids_dir / "pids.current"))
    assert 2 <= current <= 20
    in_cgroup = [p for p in _read(pids_dir / "cgroup.procs").split() if p]
    assert 2 <= len(in_cgroup) <= 20
    stack.docker_ok("rm", "-f", name)


def test_pause_and_unpause_change_state(dockerd_with_sampan: EngineStack) -> None:
    stack = dockerd_with_sampan
    name = _start_sleeper(stack)
    cgroups = cgroup_dirs_of(_pid(stack, name))
    stack.docker_ok("pause", name)
    state = _state(stack, name)
    assert (state["Status"], state["Paused"]) == ("paused", True)
    if "freezer" in cgroups:
        assert _read(cgroups["freezer"] / "freezer.state") == "FROZEN"
    else:
        assert _read(cgroups[""] / "cgroup.freeze") == "1"
    stack.docker_ok("unpause", name)
    state = _state(stack, name)
    assert (state["Status"], state["Paused"]) == ("running", False)
    assert stack.docker_ok("exec", name, "echo", "thawed") == "thawed\n"
    stack.docker_ok("rm", "-f", name)


def test_update_changes_limits_of_a_running_container(dockerd_with_sampan: EngineStack) -> None:
    stack = dockerd_with_sampan
    name = _start_sleeper(stack, "--memory", "64m", "--pids-limit", "20")
    cgroups = cgroup_dirs_of(_pid(stack, name))
    stack.docker_ok(
        "update",
        "--memory", "96m",
        "--memory-swap", "192m",
        "--cpus", "0.5",
        "--pids-limit", "30",
        name,
    )  # fmt: skip
    if "memory" in cgroups:  # cgroup v1 (this host is hybrid: v1 controllers)
        assert int(_read(cgroups["memory"] / "memory.limit_in_bytes")) == 96 * MiB
        quota = int(_read(cgroups["cpu"] / "cpu.cfs_quota_us"))
        period = int(_read(cgroups["cpu"] / "cpu.cfs_period_us"))
        assert quota * 2 == period, (quota, period)
        assert _read(cgroups["pids"] / "pids.max") == "30"
    else:
        assert int(_read(cgroups[""] / "memory.max")) == 96 * MiB
        quota_text, period_text = _read(cgroups[""] / "cpu.max").split()
        assert int(quota_text) * 2 == int(period_text)
        assert _read(cgroups[""] / "pids.max") == "30"
    host_config = stack.inspect(name)["HostConfig"]
    assert isinstance(host_config, dict)
    assert host_config["Memory"] == 96 * MiB
    assert host_config["NanoCpus"] == 500_000_000
    stack.docker_ok("rm", "-f", name)


def _bytes(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)\s*([KMGT]?i?B)", text.strip())
    assert match, f"not a size: {text!r}"
    scale = {"B": 1, "KiB": 1024, "MiB": MiB, "GiB": 1024 * MiB, "kB": 1000, "MB": 1e6}
    return float(match.group(1)) * scale.get(match.group(2), 1)


def test_stats_no_stream_reports_numbers(dockerd_with_sampan: EngineStack) -> None:
    stack = dockerd_with_sampan
    name = _start_sleeper(stack, "--memory", "64m")
    # No runtime call: the shim reads the init process's cgroup files itself.
    row = stack.docker_ok("stats", "--no-stream", "--format", "{{json .}}", name)
    stats = json.loads(row)
    used, limit = (part.strip() for part in stats["MemUsage"].split("/"))
    assert _bytes(limit) == 64 * MiB, stats
    assert _bytes(used) > 0, stats
    assert int(stats["PIDs"]) >= 1, stats
    assert float(stats["CPUPerc"].rstrip("%")) >= 0.0, stats
    stack.docker_ok("rm", "-f", name)


@pytest.fixture(autouse=True)
def _no_container_left(dockerd_with_sampan: EngineStack) -> Iterator[None]:
    """A test that fails half-way leaves containers: remove them before the next test."""
    yield
    leftover = dockerd_with_sampan.docker_ok("ps", "-aq").split()
    if leftover:
        dockerd_with_sampan.docker("rm", "-f", *leftover)
