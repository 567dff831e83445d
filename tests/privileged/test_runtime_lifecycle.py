"""sampan-runc's lifecycle verbs on the real kernel, driven the way containerd's shim drives runc.

create -> created (pid file, init waiting on exec.fifo) -> start -> running -> kill -> stopped ->
delete; plus run/exec/ps/list/spec/features/--version and runc's error contract (exit 1, the
text on stderr and a JSON line in --log). Probes run inside the busybox rootfs and the tests
assert on what they print; the container's stdio goes to a file in the bundle, as a shim's
pipes would carry it (a pipe would keep `create` waiting for EOF until the container exits).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.runtime_harness import RUNTIME, RuntimeHarness, base_config, unique

pytestmark = pytest.mark.privileged


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def runtime_to_file(runtime: RuntimeHarness, out: Path,
                    *args: str) -> subprocess.CompletedProcess[bytes]:
    """sampan-runc with stdout+stderr appended to ``out``: what it leaves behind (an init, a
    detached exec) keeps these fds, and a pipe would not reach EOF until it exits."""
    argv = [RUNTIME, "--root", str(runtime.root), "--log", str(runtime.log), "--log-format",
            "json", *args]
    with open(out, "ab") as sink:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=sink,
                              stderr=subprocess.STDOUT, timeout=60)


def detached(runtime: RuntimeHarness, verb: str, bundle: Path, container_id: str,
             *flags: str) -> subprocess.CompletedProcess[bytes]:
    """`create`/`run --detach` with the container's stdout+stderr in <bundle>/out."""
    return runtime_to_file(runtime, bundle / "out", verb, *flags, "--bundle", str(bundle),
                           container_id)


def output(bundle: Path) -> str:
    return (bundle / "out").read_text(errors="replace")


def start_container(runtime: RuntimeHarness, args: list[str],
                    config: dict[str, Any] | None = None) -> tuple[str, Path, int]:
    """create + start a container running ``args``; return (id, bundle, host pid of init)."""
    bundle = runtime.bundle(config or base_config(args))
    container_id = unique("c")
    result = detached(runtime, "create", bundle, container_id,
                      "--pid-file", str(bundle / "init.pid"))
    assert result.returncode == 0, output(bundle)
    runtime.runtime("start", container_id, check=True)
    return container_id, bundle, int((bundle / "init.pid").read_text())


def host_cgroup_dirs(pid: int) -> list[Path]:
    """Every cgroup directory of ``pid`` on the host (v1 hierarchies and the unified one)."""
    dirs = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        name = controllers.replace("name=", "") if controllers else "unified"
        dirs.append(Path("/sys/fs/cgroup") / name / path.lstrip("/"))
    return dirs


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""  # gone meanwhile


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] not in (b"Z", b"X")


# --- create / start / state --------------------------------------------------------------


def test_create_leaves_init_waiting_then_start_makes_user_process_pid1(
        runtime: RuntimeHarness) -> None:
    probe = ("tr '\\0' ' ' < /proc/1/cmdline; echo; ps -o pid,comm; echo DONE-$((1+1)); "
             "exec sleep 1000")
    bundle = runtime.bundle(base_config(["sh", "-c", probe]))
    container_id = unique("c")
    result = detached(runtime, "create", bundle, container_id,
                      "--pid-file", str(bundle / "init.pid"))
    assert result.returncode == 0, output(bundle)

    raw_pid = (bundle / "init.pid").read_text()
    assert raw_pid.isdigit(), f"pid file must be decimal digits only, got {raw_pid!r}"
    pid = int(raw_pid)
    state = runtime.state(container_id)
    assert state["status"] == "created"
    assert state["pid"] == pid
    assert state["id"] == container_id
    assert state["bundle"] == str(bundle)
    assert alive(pid)
    assert output(bundle) == "", "the user process ran before start"

    runtime.runtime("start", container_id, check=True)
    text = wait_until(lambda: "DONE-2" in output(bundle) and output(bundle), "the probe's output")
    cmdline, _, ps_table = text.partition("\n")
    assert cmdline.strip() == f"sh -c {probe}"
    processes = [line.split() for line in ps_table.splitlines()[1:]
                 if line.strip() and line.split()[0].isdigit()]
    # only the user's process (pid 1, the shell) and the probe's own ps: no runtime left inside
    assert processes and processes[0] == ["1", "sh"], repr(text)
    assert {p[1] for p in processes[1:]} == {"ps"}, ps_table
    assert runtime.state(container_id)["status"] == "running"
    # the host sees the same process: the init became the user's process by execve
    wait_until(lambda: Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep\0"),
               "init to exec sleep")


def test_kill_works_on_a_created_container(runtime: RuntimeHarness) -> None:
    bundle = runtime.bundle(base_config(["echo", "never"]))
    container_id = unique("c")
    assert detached(runtime, "create", bundle, container_id).returncode == 0
    pid = runtime.state(container_id)["pid"]

    runtime.runtime("kill", container_id, "KILL", check=True)
    wait_until(lambda: runtime.state(container_id)["status"] == "stopped", "stopped")
    assert not alive(pid)
    runtime.runtime("delete", container_id, check=True)
    assert "never" not in output(bundle)


def test_delete_without_force_removes_a_created_container(runtime: RuntimeHarness) -> None:
    bundle = runtime.bundle(base_config(["echo", "never"]))
    container_id = unique("c")
    assert detached(runtime, "create", bundle, container_id).returncode == 0
    pid = runtime.state(container_id)["pid"]
    cgroups = [d for d in host_cgroup_dirs(pid) if runtime.cgroup_parent in str(d)]
    assert cgroups and all(d.is_dir() for d in cgroups)

    runtime.runtime("delete", container_id, check=True)
    assert not alive(pid)
    assert [d for d in cgroups if d.exists()] == []
    assert not (runtime.root / container_id).exists()
    assert "never" not in output(bundle)


def test_a_created_container_can_be_paused_resumed_then_started(
        runtime: RuntimeHarness) -> None:
    bundle = runtime.bundle(base_config(["sh", "-c", "echo started-ok; exec sleep 1000"]))
    container_id = unique("c")
    assert detached(runtime, "create", bundle, container_id).returncode == 0
    runtime.runtime("pause", container_id, check=True)
    assert runtime.state(container_id)["status"] == "paused"
    refused = runtime.runtime("start", container_id)
    assert refused.returncode == 1 and b"paused" in refused.stderr
    runtime.runtime("resume", container_id, check=True)
    assert runtime.state(container_id)["status"] == "created"
    runtime.runtime("start", container_id, check=True)
    assert runtime.state(container_id)["status"] == "running"
    wait_until(lambda: "started-ok" in output(bundle), "the user process to run")


def test_kill_takes_signal_names_and_numbers(runtime: RuntimeHarness) -> None:
    script = ("trap 'echo got-USR1' USR1; trap 'echo got-USR2' USR2; trap 'echo got-TERM' TERM;"
              " trap 'echo got-HUP' HUP; echo ready; while :; do sleep 0.05; done")
    container_id, bundle, pid = start_container(runtime, ["sh", "-c", script])
    wait_until(lambda: "ready" in output(bundle), "the traps to be set")
    for raw, expected in (("SIGUSR1", "got-USR1"), ("USR2", "got-USR2"), ("15", "got-TERM"),
                          ("hup", "got-HUP")):
        runtime.runtime("kill", container_id, raw, check=True)
        wait_until(lambda expected=expected: expected in output(bundle),
                   f"{expected} after kill {raw}")
    assert runtime.state(container_id)["status"] == "running"

    runtime.runtime("kill", container_id, "9", check=True)
    wait_until(lambda: not alive(pid), "init to die of SIGKILL")
    assert runtime.state(container_id)["status"] == "stopped"

    result = runtime.runtime("kill", container_id, "KILL")
    assert result.returncode == 1
    assert b"container not running" in result.stderr


def test_kill_rejects_an_unknown_signal(runtime: RuntimeHarness) -> None:
    container_id, _, pid = start_container(runtime, ["sleep", "1000"])
    result = runtime.runtime("kill", container_id, "SIGNOPE")
    assert result.returncode == 1
    assert b"SIGNOPE" in result.stderr
    assert alive(pid)


def test_kill_all_signals_every_process_of_the_container(runtime: RuntimeHarness) -> None:
    container_id, bundle, pid = start_container(
        runtime, ["sh", "-c", "sleep 1001 & sleep 1002 & echo spawned; wait"])
    wait_until(lambda: "spawned" in output(bundle), "the children")
    pids = wait_until(lambda: (lambda p: len(p) == 3 and p)(json.loads(
        runtime.runtime("ps", "--format", "json", container_id, check=True).stdout)),
        "three processes in the container")
    assert pid in pids

    runtime.runtime("kill", "--all", container_id, "KILL", check=True)
    wait_until(lambda: not any(alive(p) for p in pids), "every process to die")
    assert runtime.state(container_id)["status"] == "stopped"


def test_kill_all_with_term_reaches_children_as_well(runtime: RuntimeHarness) -> None:
    # pid 1 of a namespace ignores signals it has no handler for; its children do not
    container_id, bundle, _ = start_container(
        runtime, ["sh", "-c", "trap 'echo init-got-TERM' TERM; sleep 1001 & echo spawned; "
                  "while :; do sleep 0.05; done"])
    wait_until(lambda: "spawned" in output(bundle), "the child")
    pids = json.loads(runtime.runtime("ps", "--format", "json", container_id, check=True).stdout)
    sleeper = next(p for p in pids
                   if cmdline(p) == b"sleep\x001001\x00")

    runtime.runtime("kill", "--all", container_id, "TERM", check=True)
    wait_until(lambda: not alive(sleeper), "the child to die of SIGTERM")
    wait_until(lambda: "init-got-TERM" in output(bundle), "the init's TERM trap")


# --- delete --------------------------------------------------------------------------------


def test_delete_refuses_a_running_container_without_force(runtime: RuntimeHarness) -> None:
    container_id, _, pid = start_container(runtime, ["sleep", "1000"])
    result = runtime.runtime("delete", container_id)
    assert result.returncode == 1
    assert b"not stopped" in result.stderr and b"running" in result.stderr
    assert alive(pid)
    assert runtime.state(container_id)["status"] == "running"


def test_delete_force_kills_and_removes_cgroups_and_state(runtime: RuntimeHarness) -> None:
    container_id, _, pid = start_container(runtime, ["sh", "-c", "sleep 1001 & exec sleep 1002"])
    cgroups = [d for d in host_cgroup_dirs(pid) if runtime.cgroup_parent in str(d)]
    assert len(cgroups) >= 2 and all(d.is_dir() for d in cgroups), cgroups

    runtime.runtime("delete", "--force", container_id, check=True)
    assert not alive(pid)
    assert [d for d in cgroups if d.exists()] == []
    assert not (runtime.root / container_id).exists()
    result = runtime.runtime("state", container_id)
    assert result.returncode == 1 and b"does not exist" in result.stderr


def test_delete_force_of_an_unknown_id_is_silent(runtime: RuntimeHarness) -> None:
    result = runtime.runtime("delete", "--force", unique("nothing"))
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


def test_delete_of_a_stopped_container_needs_no_force(runtime: RuntimeHarness) -> None:
    container_id, _, _ = start_container(runtime, ["true"])
    wait_until(lambda: runtime.state(container_id)["status"] == "stopped", "stopped")
    assert runtime.state(container_id)["pid"] == 0
    runtime.runtime("delete", container_id, check=True)
    assert runtime.runtime("list", "--format", "json", check=True).stdout.strip() in (
        b"null", b"[]")


def test_delete_kills_what_outlives_an_init_without_its_own_pid_namespace(
        runtime: RuntimeHarness) -> None:
    config = base_config(["sh", "-c", "sleep 1007 & while [ ! -e /tmp/go ]; do sleep 0.02; done"])
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                     if n["type"] != "pid"]
    container_id, bundle, pid = start_container(runtime, [], config)
    cgroups = [d for d in host_cgroup_dirs(pid) if runtime.cgroup_parent in str(d)]
    (bundle / "rootfs" / "tmp" / "go").touch()
    wait_until(lambda: not alive(pid), "the init to exit")
    leftovers = [int(p) for p in (cgroups[0] / "cgroup.procs").read_text().split()]
    assert [cmdline(p) for p in leftovers] == [b"sleep\x001007\x00"]
    assert runtime.state(container_id)["status"] == "stopped"

    runtime.runtime("delete", container_id, check=True)
    assert not any(alive(p) for p in leftovers)
    assert [d for d in cgroups if d.exists()] == []
    assert not (runtime.root / container_id).exists()


def test_kill_all_after_the_init_exited_reaches_its_children(runtime: RuntimeHarness) -> None:
    # containerd's shim sends `kill --all <id> 9` once an init without its own pid namespace
    # exits (`docker run --pid host`), to stop what it left behind
    config = base_config(["sh", "-c", "sleep 1008 & while [ ! -e /tmp/go ]; do sleep 0.02; done"])
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                     if n["type"] != "pid"]
    container_id, bundle, pid = start_container(runtime, [], config)
    cgroup = next(d for d in host_cgroup_dirs(pid) if runtime.cgroup_parent in str(d))
    (bundle / "rootfs" / "tmp" / "go").touch()
    wait_until(lambda: not alive(pid), "the init to exit")
    leftovers = [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
    assert [cmdline(p) for p in leftovers] == [b"sleep\x001008\x00"]

    runtime.runtime("kill", "--all", container_id, "9", check=True)
    wait_until(lambda: not any(alive(p) for p in leftovers), "the children to die")
    refused = runtime.runtime("kill", container_id, "9")  # the init alone: not running
    assert refused.returncode == 1 and b"container not running" in refused.stderr


@pytest.mark.parametrize("verb", [("state",), ("kill",), ("kill", "--all"), ("pause",),
                                  ("delete",), ("ps",), ("events", "--stats")])
def test_unknown_id_is_reported_on_stderr_and_in_the_json_log(
        runtime: RuntimeHarness, verb: tuple[str, ...]) -> None:
    missing = unique("missing")
    args = [*verb, missing] + (["KILL"] if verb[0] == "kill" else [])
    result = runtime.runtime(*args)
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode().strip() == "container does not exist"
    lines = [json.loads(line) for line in runtime.log.read_text().splitlines()]
    assert lines[-1]["level"] == "error"
    assert lines[-1]["msg"] == "container does not exist"
    assert lines[-1]["time"].endswith("Z")


# --- run -----------------------------------------------------------------------------------


def test_run_returns_the_container_exit_code(runtime: RuntimeHarness) -> None:
    result = runtime.run(base_config(["sh", "-c", "echo out; echo err >&2; exit 7"]))
    assert result.returncode == 7
    assert result.stdout == b"out\n"
    assert result.stderr == b"err\n"


def test_run_returns_128_plus_signal_when_the_container_is_killed(
        runtime: RuntimeHarness) -> None:
    bundle = runtime.bundle(base_config(["sh", "-c", "echo up; exec sleep 1000"]))
    container_id = unique("c")
    argv = [RUNTIME, "--root", str(runtime.root), "--log", str(runtime.log), "--log-format",
            "json", "run", "--bundle", str(bundle), container_id]
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as run:
        try:
            assert run.stdout is not None
            assert run.stdout.readline() == b"up\n"
            runtime.runtime("kill", container_id, "KILL", check=True)
            assert run.wait(timeout=30) == 128 + signal.SIGKILL
        finally:
            if run.poll() is None:
                run.kill()
    # the foreground run deletes the container when it ends
    assert not (runtime.root / container_id).exists()


def test_run_detach_leaves_the_container_running(runtime: RuntimeHarness) -> None:
    bundle = runtime.bundle(base_config(["sh", "-c", "echo detached-ok; exec sleep 1000"]))
    container_id = unique("c")
    result = detached(runtime, "run", bundle, container_id, "--detach",
                      "--pid-file", str(bundle / "init.pid"))
    assert result.returncode == 0, output(bundle)
    assert runtime.state(container_id)["status"] == "running"
    assert runtime.state(container_id)["pid"] == int((bundle / "init.pid").read_text())
    wait_until(lambda: "detached-ok" in output(bundle), "the container's output")


# --- ps / list -----------------------------------------------------------------------------


def test_ps_json_lists_the_host_pids_of_the_container(runtime: RuntimeHarness) -> None:
    container_id, bundle, pid = start_container(
        runtime, ["sh", "-c", "sleep 1001 & sleep 1002 & echo spawned; wait"])
    wait_until(lambda: "spawned" in output(bundle), "the children")
    result = runtime.runtime("ps", "--format", "json", container_id, check=True)
    assert result.stderr == b""
    pids = json.loads(result.stdout)
    commands = sorted(Path(f"/proc/{p}/cmdline").read_bytes() for p in pids)
    assert pid in pids
    assert commands == sorted([Path(f"/proc/{pid}/cmdline").read_bytes(),
                               b"sleep\x001001\x00", b"sleep\x001002\x00"])


def test_ps_table_shows_the_container_processes(runtime: RuntimeHarness) -> None:
    container_id, _, pid = start_container(runtime, ["sleep", "1003"])
    result = runtime.runtime("ps", container_id, check=True)
    lines = result.stdout.decode().splitlines()
    assert "PID" in lines[0].split()
    column = lines[0].split().index("PID")
    assert [int(line.split()[column]) for line in lines[1:]] == [pid]


def test_list_json_shows_every_container_with_its_status(runtime: RuntimeHarness) -> None:
    running, _, running_pid = start_container(runtime, ["sleep", "1000"])
    bundle = runtime.bundle(base_config(["true"]))
    created = unique("c")
    assert detached(runtime, "create", bundle, created).returncode == 0

    listing = json.loads(runtime.runtime("list", "--format", "json", check=True).stdout)
    by_id = {entry["id"]: entry for entry in listing}
    assert set(by_id) == {running, created}
    assert by_id[running]["status"] == "running"
    assert by_id[running]["pid"] == running_pid
    assert by_id[created]["status"] == "created"
    assert by_id[created]["bundle"] == str(bundle)

    quiet = runtime.runtime("list", "-q", check=True).stdout.decode().split()
    assert sorted(quiet) == sorted([running, created])


# --- exec ----------------------------------------------------------------------------------


@pytest.fixture
def sleeper(runtime: RuntimeHarness) -> tuple[str, Path, int]:
    return start_container(runtime, ["sleep", "1000"])


def test_exec_runs_in_the_container_and_returns_its_output_and_exit_code(
        runtime: RuntimeHarness, sleeper: tuple[str, Path, int]) -> None:
    container_id, _, pid = sleeper
    result = runtime.runtime("exec", container_id, "sh", "-c",
                             "hostname; readlink /proc/1/exe; cat /proc/1/cmdline; exit 3",
                             stdin=subprocess.DEVNULL)
    assert result.returncode == 3, result.stderr
    hostname, exe, cmdline = result.stdout.decode().split("\n", 2)
    assert hostname == "sampan"
    assert exe == "/bin/busybox"  # sleep is a busybox applet
    assert cmdline == "sleep\x001000\x00"
    # the exec'd process joined the container's pid namespace
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")


def test_exec_env_cwd_and_user(runtime: RuntimeHarness,
                               sleeper: tuple[str, Path, int]) -> None:
    container_id, _, _ = sleeper
    result = runtime.runtime("exec", "--env", "PROBE=one", "-e", "OTHER=two", "--cwd", "/etc",
                             "--user", "1000:1000", container_id, "sh", "-c",
                             "echo $PROBE $OTHER; pwd; id -u; id -g; "
                             "grep -E '^(Uid|Gid):' /proc/self/status",
                             stdin=subprocess.DEVNULL, check=True)
    lines = result.stdout.decode().splitlines()
    assert lines[:4] == ["one two", "/etc", "1000", "1000"]
    assert lines[4].split()[1:] == ["1000"] * 4
    assert lines[5].split()[1:] == ["1000"] * 4


def test_exec_detach_writes_the_pid_file_and_leaves_the_process(
        runtime: RuntimeHarness, sleeper: tuple[str, Path, int]) -> None:
    container_id, bundle, _ = sleeper
    pid_file = bundle / "exec.pid"
    result = runtime_to_file(runtime, bundle / "exec.out", "exec", "--detach", "--pid-file",
                             str(pid_file), container_id, "sleep", "1004")
    assert result.returncode == 0, (bundle / "exec.out").read_text()
    raw = pid_file.read_text()
    assert raw.isdigit(), raw
    pid = int(raw)
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x001004\x00"
    pids = json.loads(runtime.runtime("ps", "--format", "json", container_id, check=True).stdout)
    assert pid in pids


def test_exec_process_file_as_containerd_sends_it(runtime: RuntimeHarness,
                                                  sleeper: tuple[str, Path, int]) -> None:
    container_id, bundle, _ = sleeper
    process = {
        "terminal": False, "user": {"uid": 33, "gid": 33, "additionalGids": [44]},
        "args": ["sh", "-c", "echo $FROM_FILE; pwd; id -u; id -G; exit 5"],
        "env": ["PATH=/bin:/usr/bin", "FROM_FILE=yes"], "cwd": "/tmp",
        "capabilities": {k: ["CAP_KILL"] for k in ("bounding", "effective", "permitted")},
        "noNewPrivileges": True,
    }
    path = bundle / "process.json"
    path.write_text(json.dumps(process))
    result = runtime.runtime("exec", "--process", str(path), container_id,
                             stdin=subprocess.DEVNULL)
    assert result.returncode == 5, result.stderr
    assert result.stdout.decode().splitlines() == ["yes", "/tmp", "33", "33 44"]


def test_exec_in_a_stopped_container_is_refused(runtime: RuntimeHarness) -> None:
    container_id, _, pid = start_container(runtime, ["true"])
    wait_until(lambda: not alive(pid), "the container to stop")
    result = runtime.runtime("exec", container_id, "true", stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert b"stopped" in result.stderr


# --- spec / features / version / flags --------------------------------------------------------


def test_spec_writes_a_config_that_runs(runtime: RuntimeHarness) -> None:
    bundle = runtime.bundle(base_config(["true"]))
    (bundle / "config.json").unlink()
    runtime.runtime("spec", "--bundle", str(bundle), check=True)
    config = json.loads((bundle / "config.json").read_text())
    assert config["ociVersion"] == "1.1.0"
    assert config["process"]["terminal"] is True
    assert config["root"] == {"path": "rootfs", "readonly": True}
    # only the command and the cgroup (for this test's cleanup) are changed
    config["process"]["args"] = ["sh", "-c", "echo spec-ok; tty"]
    config["linux"]["cgroupsPath"] = f"/{runtime.cgroup_parent}/{bundle.name}"
    (bundle / "config.json").write_text(json.dumps(config))
    result = runtime.runtime("run", "--bundle", str(bundle), unique("c"),
                             stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.replace(b"\r\n", b"\n") == b"spec-ok\n/dev/pts/0\n"

    again = runtime.runtime("spec", "--bundle", str(bundle))
    assert again.returncode == 1 and b"exists" in again.stderr


def test_features_reports_what_the_runtime_supports(runtime: RuntimeHarness) -> None:
    result = runtime.runtime("features", check=True)
    features = json.loads(result.stdout)
    assert features["ociVersionMax"] == "1.1.0"
    assert {"prestart", "createRuntime", "poststop"} <= set(features["hooks"])
    linux = features["linux"]
    assert {"pid", "network", "mount", "user", "cgroup", "ipc", "uts"} <= set(
        linux["namespaces"])
    assert "CAP_SYS_ADMIN" in linux["capabilities"]
    assert linux["cgroup"]["v1"] and linux["cgroup"]["v2"]
    assert linux["cgroup"]["systemd"] is False
    assert "SCMP_ACT_ERRNO" in linux["seccomp"]["actions"]


def test_version_prints_runc_style_lines(runtime: RuntimeHarness) -> None:
    result = runtime.runtime("--version", check=True)
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("sampan-runc version ")
    assert any(line.startswith("commit: ") for line in lines)
    assert "spec: 1.1.0" in lines


def test_systemd_cgroup_is_a_clear_not_supported_error(runtime: RuntimeHarness) -> None:
    bundle = runtime.bundle(base_config(["true"]))
    result = runtime.runtime("--systemd-cgroup", "create", "--bundle", str(bundle), unique("c"),
                             stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert b"systemd" in result.stderr and b"not supported" in result.stderr
    assert "not supported" in json.loads(runtime.log.read_text().splitlines()[-1])["msg"]
    assert runtime.runtime("list", "-q", check=True).stdout == b""
