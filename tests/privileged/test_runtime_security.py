"""sampan-runc's security features on the real kernel, seen by a probe inside the container.

seccomp (errnoRet, argument conditions, with and without no_new_privs, as a non-root user),
the five capability sets, no_new_privs, masked and read-only paths, a read-only root, a user
namespace with uid/gid mappings, joining an existing network namespace by path, and the six
kinds of OCI hooks (state on stdin, namespace they run in, timeout, failure).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.runtime_harness import RUNTIME, RuntimeHarness, base_config, unique

CAP_NUMBERS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_KILL": 5, "CAP_SETGID": 6,
               "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10,
               "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21,
               "CAP_AUDIT_WRITE": 29}


def mask(*names: str) -> str:
    value = 0
    for name in names:
        value |= 1 << CAP_NUMBERS[name]
    return f"{value:016x}"


def status_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def probe(runtime: RuntimeHarness, script: str,
          **changes: Any) -> subprocess.CompletedProcess[bytes]:
    """Run ``sh -c script`` in a container made from base_config plus ``changes``
    (keyword ``process__user`` sets config["process"]["user"]; ``root`` sets config["root"])."""
    config = base_config(["sh", "-c", script])
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            config.setdefault(section, {})[field] = value
        else:
            config[section] = value
    return runtime.run(config)


def out(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode(errors="replace")


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode(errors="replace")


def leaving_container_behind(runtime: RuntimeHarness, *args: str,
                             timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    """sampan-runc with stdout/stderr in files: a created or detached container keeps the
    stdio it inherited, so pipes would not reach EOF until it exits."""
    outputs = runtime.dir / unique("out")
    with open(f"{outputs}.out", "wb+") as stdout, open(f"{outputs}.err", "wb+") as stderr:
        completed = subprocess.run(
            [RUNTIME, "--root", str(runtime.root), "--log", str(runtime.log),
             "--log-format", "json", *args],
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, timeout=timeout)
        stdout.seek(0)
        stderr.seek(0)
        return subprocess.CompletedProcess(completed.args, completed.returncode,
                                           stdout.read(), stderr.read())


# --- seccomp ---------------------------------------------------------------------------------

def deny_mkdir(errno_ret: int | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [rule]}


MKDIR_PROBE = ("mkdir /tmp/denied; echo mkdir=$?; touch /tmp/allowed && echo touch=ok; "
               "grep Seccomp: /proc/self/status")


@pytest.mark.parametrize("no_new_privs", [True, False])
def test_seccomp_returns_the_configured_errno(runtime: RuntimeHarness,
                                              no_new_privs: bool) -> None:
    result = probe(runtime, MKDIR_PROBE, linux__seccomp=deny_mkdir(38),
                   process__noNewPrivileges=no_new_privs)
    assert result.returncode == 0, err(result)
    assert "Function not implemented" in err(result)  # ENOSYS = 38
    assert "mkdir=1" in out(result)
    assert "touch=ok" in out(result)
    assert re.search(r"Seccomp:\s+2", out(result))


def test_seccomp_errno_ret_42_and_default_eperm(runtime: RuntimeHarness) -> None:
    result = probe(runtime, MKDIR_PROBE, linux__seccomp=deny_mkdir(42))
    assert "No message of desired type" in err(result)  # ENOMSG = 42
    result = probe(runtime, MKDIR_PROBE, linux__seccomp=deny_mkdir(None))
    assert "Operation not permitted" in err(result)  # no errnoRet: EPERM
    assert "mkdir=1" in out(result)


def test_seccomp_loads_for_a_non_root_user_without_no_new_privs(
        runtime: RuntimeHarness) -> None:
    # without no_new_privs the filter needs CAP_SYS_ADMIN: it must be loaded before
    # setuid(1000) clears the capabilities
    result = probe(runtime, MKDIR_PROBE + "; id -u; grep NoNewPrivs /proc/self/status",
                   linux__seccomp=deny_mkdir(38), process__noNewPrivileges=False,
                   process__user={"uid": 1000, "gid": 1000})
    assert result.returncode == 0, err(result)
    assert "Function not implemented" in err(result)
    assert "1000" in out(result).split()
    assert re.search(r"NoNewPrivs:\s+0", out(result))
    assert re.search(r"Seccomp:\s+2", out(result))


def test_seccomp_argument_conditions(runtime: RuntimeHarness) -> None:
    """Deny only the umask(2) call whose mask is 077; other values go through."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "args": [{"index": 0, "value": 0o77, "op": "SCMP_CMP_EQ"}]}]}
    # busybox's umask builtin: an EPERM'd umask(2) returns -1, the next call shows the
    # mask unchanged
    result = probe(runtime, "umask 022; umask 077; umask; umask 027; umask",
                   linux__seccomp=profile)
    assert result.returncode == 0, err(result)
    assert out(result).split() == ["0022", "0027"]


def test_seccomp_kill_process_action(runtime: RuntimeHarness) -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["sethostname"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    result = probe(runtime, "echo before; hostname other; echo after=$?",
                   linux__seccomp=profile)
    assert "before" in out(result)
    assert "after=159" in out(result)  # hostname killed by SIGSYS (31): 128 + 31


# --- capabilities ----------------------------------------------------------------------------

def test_capability_sets_are_exactly_as_requested_for_root(runtime: RuntimeHarness) -> None:
    caps = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN", "CAP_SETPCAP", "CAP_NET_RAW"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"],
        "inheritable": ["CAP_KILL", "CAP_NET_RAW"],
        "ambient": ["CAP_KILL"],
    }
    result = probe(runtime, "cat /proc/self/status", process__capabilities=caps,
                   process__noNewPrivileges=False)
    assert result.returncode == 0, err(result)
    fields = status_fields(out(result))
    assert fields["CapBnd"] == mask(*caps["bounding"])
    assert fields["CapInh"] == mask(*caps["inheritable"])
    assert fields["CapAmb"] == mask("CAP_KILL")
    # root execs a file without file capabilities: P' = (P(inh) & F(inh)) | (F(perm) & bnd)
    # with F all ones for uid 0, so permitted and effective become the bounding set
    assert fields["CapPrm"] == mask(*caps["bounding"])
    assert fields["CapEff"] == mask(*caps["bounding"])
    assert fields["NoNewPrivs"] == "0"


def test_capability_sets_for_a_non_root_user_come_from_ambient(
        runtime: RuntimeHarness) -> None:
    caps = {
        "bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_NET_RAW"],
        "effective": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "permitted": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }
    result = probe(runtime, "id -u; cat /proc/self/status", process__capabilities=caps,
                   process__user={"uid": 1000, "gid": 1000, "additionalGids": [5, 7]})
    assert result.returncode == 0, err(result)
    fields = status_fields(out(result))
    assert out(result).split()[0] == "1000"
    assert fields["Uid"].split() == ["1000"] * 4
    assert fields["Gid"].split() == ["1000"] * 4
    assert fields["Groups"].split() == ["5", "7"]
    assert fields["CapBnd"] == mask("CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_NET_RAW")
    assert fields["CapInh"] == mask("CAP_NET_BIND_SERVICE", "CAP_KILL")
    assert fields["CapAmb"] == mask("CAP_NET_BIND_SERVICE")
    # a non-root execve keeps only the ambient set in permitted and effective
    assert fields["CapPrm"] == mask("CAP_NET_BIND_SERVICE")
    assert fields["CapEff"] == mask("CAP_NET_BIND_SERVICE")
    assert fields["NoNewPrivs"] == "1"


def test_no_capabilities_object_drops_every_capability(runtime: RuntimeHarness) -> None:
    config = base_config(["cat", "/proc/self/status"])
    del config["process"]["capabilities"]
    result = runtime.run(config)
    assert result.returncode == 0, err(result)
    fields = status_fields(out(result))
    for key in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert fields[key] == "0" * 16, key


def test_dropped_capability_is_enforced(runtime: RuntimeHarness) -> None:
    """Without CAP_CHOWN root cannot chown a file it does not own... to someone else."""
    result = probe(runtime, "touch /tmp/f; chown 1234 /tmp/f; echo chown=$?; "
                   "ls -ln /tmp/f")
    assert "chown=1" in out(result)
    assert "Operation not permitted" in err(result)


# --- masked and read-only paths, read-only root -----------------------------------------

def test_masked_paths_hide_files_and_directories(runtime: RuntimeHarness) -> None:
    config = base_config(["sh", "-c",
                          "echo timer_list=$(wc -c < /proc/timer_list); ls -A /proc/acpi | wc -l; "
                          "cat /secret-file; echo file=$?; ls -A /secret-dir; "
                          "echo x > /secret-dir/y; echo write=$?"])
    config["linux"]["maskedPaths"] += ["/secret-file", "/secret-dir", "/does-not-exist"]
    bundle = runtime.bundle(config)
    (bundle / "rootfs" / "secret-file").write_text("password\n")
    (bundle / "rootfs" / "secret-dir").mkdir()
    (bundle / "rootfs" / "secret-dir" / "key").write_text("private key\n")
    result = runtime.runtime("run", "--bundle", str(bundle), unique("c"),
                             stdin=subprocess.DEVNULL)
    assert result.returncode == 0, err(result)
    lines = out(result).split("\n")
    with open("/proc/timer_list") as host_timer_list:
        assert host_timer_list.read()  # not masked on the host
    assert lines[0] == "timer_list=0"
    assert lines[1] == "0"  # /proc/acpi: an empty directory
    assert "password" not in out(result)
    assert "file=0" in out(result)  # /dev/null over the file: reads as empty
    assert "key" not in out(result)
    assert "write=1" in out(result)  # the empty tmpfs over a directory is read-only
    assert "Read-only file system" in err(result)


def test_readonly_paths_refuse_writes(runtime: RuntimeHarness) -> None:
    config = base_config(["sh", "-c",
                          "echo 1 > /proc/sys/vm/drop_caches; echo sys=$?; "
                          "touch /ro-dir/new; echo dir=$?; cat /ro-dir/old; "
                          "touch /tmp/rw; echo tmp=$?"])
    config["linux"]["readonlyPaths"] += ["/ro-dir"]
    bundle = runtime.bundle(config)
    (bundle / "rootfs" / "ro-dir").mkdir()
    (bundle / "rootfs" / "ro-dir" / "old").write_text("readable\n")
    result = runtime.runtime("run", "--bundle", str(bundle), unique("c"),
                             stdin=subprocess.DEVNULL)
    assert result.returncode == 0, err(result)
    assert "sys=1" in out(result)
    assert "dir=1" in out(result)
    assert "readable" in out(result)
    assert "tmp=0" in out(result)
    assert err(result).count("Read-only file system") == 2
    assert not (bundle / "rootfs" / "ro-dir" / "new").exists()


def test_readonly_root(runtime: RuntimeHarness) -> None:
    result = probe(runtime, "touch /newfile; echo root=$?; touch /dev/shm/x; echo shm=$?; "
                   "grep ' / ' /proc/self/mounts", root={"path": "rootfs", "readonly": True})
    assert result.returncode == 0, err(result)
    assert "root=1" in out(result)
    assert "shm=0" in out(result)
    assert "Read-only file system" in err(result)
    root_line = [line for line in out(result).splitlines() if " / " in line][-1]
    assert " ro," in root_line or root_line.split()[3].startswith("ro")


def test_no_new_privileges_flag(runtime: RuntimeHarness) -> None:
    on = probe(runtime, "grep NoNewPrivs /proc/self/status", process__noNewPrivileges=True)
    off = probe(runtime, "grep NoNewPrivs /proc/self/status", process__noNewPrivileges=False)
    assert re.search(r"NoNewPrivs:\s+1", out(on))
    assert re.search(r"NoNewPrivs:\s+0", out(off))


# --- user namespace --------------------------------------------------------------------------

HOST_BASE = 100000


def _shift_ownership(root: Path, offset: int) -> None:
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files, ""]:
            path = os.path.join(directory, name) if name else directory
            st = os.lstat(path)
            os.lchown(path, st.st_uid + offset, st.st_gid + offset)


def test_user_namespace_with_mappings(runtime: RuntimeHarness) -> None:
    config = base_config(["sh", "-c",
                          "cat /proc/self/uid_map /proc/self/gid_map; id; "
                          "touch /tmp/made-inside; chown 5:6 /tmp/made-inside; "
                          "mkdir /tmp/dir1000 && chown 1000:1000 /tmp/dir1000; "
                          "grep CapEff /proc/self/status"])
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
    config["process"]["capabilities"] = {k: ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"]
                                         for k in ("bounding", "effective", "permitted")}
    bundle = runtime.bundle(config)
    _shift_ownership(bundle / "rootfs", HOST_BASE)
    runtime.dir.chmod(0o711)  # the mapped root must be able to reach its bundle
    os.chown(bundle, HOST_BASE, HOST_BASE)
    result = runtime.runtime("run", "--bundle", str(bundle), unique("c"),
                             stdin=subprocess.DEVNULL)
    assert result.returncode == 0, err(result)
    lines = [line.split() for line in out(result).splitlines()]
    assert lines[0] == ["0", str(HOST_BASE), "65536"]
    assert lines[1] == ["0", str(HOST_BASE), "65536"]
    assert "uid=0(root) gid=0(root)" in out(result)
    made = (bundle / "rootfs" / "tmp" / "made-inside").stat()
    assert (made.st_uid, made.st_gid) == (HOST_BASE + 5, HOST_BASE + 6)
    inner = (bundle / "rootfs" / "tmp" / "dir1000").stat()
    assert (inner.st_uid, inner.st_gid) == (HOST_BASE + 1000, HOST_BASE + 1000)


def test_user_namespace_root_is_not_host_root(runtime: RuntimeHarness) -> None:
    """A file owned by host root stays out of reach of the container's root."""
    config = base_config(["sh", "-c", "cat /host-only; echo cat=$?; ls -ln /host-only"])
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
    config["process"]["capabilities"] = {k: ["CAP_DAC_OVERRIDE", "CAP_FOWNER"]
                                         for k in ("bounding", "effective", "permitted")}
    bundle = runtime.bundle(config)
    _shift_ownership(bundle / "rootfs", HOST_BASE)
    runtime.dir.chmod(0o711)  # the mapped root must be able to reach its bundle
    secret = bundle / "rootfs" / "host-only"
    secret.write_text("host secret\n")
    os.chown(secret, 0, 0)
    secret.chmod(0o600)
    result = runtime.runtime("run", "--bundle", str(bundle), unique("c"),
                             stdin=subprocess.DEVNULL)
    assert result.returncode == 0, err(result)
    assert "host secret" not in out(result)
    assert "cat=1" in out(result)
    # an unmapped owner shows as the overflow ids
    assert re.search(r"\s65534\s+65534\s", out(result))


# --- joining a network namespace by path -------------------------------------------------

@pytest.fixture
def netns() -> Iterator[str]:
    name = unique("sampan-test-ns")
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        # a marker only this namespace has (names are per namespace: no clash)
        subprocess.run(["ip", "-n", name, "link", "add", "sampmark0", "type", "veth", "peer",
                        "name", "sampmark1"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_join_network_namespace_by_path(runtime: RuntimeHarness, netns: str) -> None:
    path = f"/run/netns/{netns}"
    config = base_config(["sh", "-c", "readlink /proc/self/ns/net; cat /proc/self/net/dev"])
    config["linux"]["namespaces"] = [
        {"type": "network", "path": path} if n["type"] == "network" else n
        for n in config["linux"]["namespaces"]
    ]
    result = runtime.run(config)
    assert result.returncode == 0, err(result)
    lines = out(result).splitlines()
    assert lines[0] == f"net:[{os.stat(path).st_ino}]"
    assert lines[0] != os.readlink("/proc/self/ns/net")
    assert "sampmark0" in out(result)
    # the namespace outlives the container (it was joined, not created)
    assert os.path.exists(path)


def test_join_network_namespace_exec_sees_it_too(runtime: RuntimeHarness, netns: str) -> None:
    path = f"/run/netns/{netns}"
    config = base_config(["sleep", "30"])
    config["linux"]["namespaces"] = [
        {"type": "network", "path": path} if n["type"] == "network" else n
        for n in config["linux"]["namespaces"]
    ]
    bundle = runtime.bundle(config)
    container_id = unique("c")
    started = leaving_container_behind(runtime, "run", "--detach", "--bundle", str(bundle),
                                       container_id)
    assert started.returncode == 0, err(started)
    result = runtime.runtime("exec", container_id, "readlink", "/proc/self/ns/net",
                             stdin=subprocess.DEVNULL)
    assert result.returncode == 0, err(result)
    assert out(result).strip() == f"net:[{os.stat(path).st_ino}]"
    runtime.runtime("delete", "--force", container_id, check=True)


# --- hooks -----------------------------------------------------------------------------------

# Run as `python3 -I -S -c HOOK_SCRIPT <kind>` with argv[0] = "argv0-<kind>": appends what the
# hook saw (its argv[0], env, mount namespace and stdin) as a JSON line to $HOOK_LOG.
HOOK_SCRIPT = """
import json, os, sys
state = json.loads(sys.stdin.read())
with open(os.environ["HOOK_LOG"], "a") as log:
    log.write(json.dumps({"kind": sys.argv[1], "argv0": sys.orig_argv[0], "state": state,
                         "env": os.environ.get("HOOK_ENV"),
                         "mnt": os.readlink("/proc/self/ns/mnt")}) + "\\n")
"""


def _hook(kind: str, log: str, **extra: Any) -> dict[str, Any]:
    return {"path": sys.executable,
            "args": [f"argv0-{kind}", "-I", "-S", "-c", HOOK_SCRIPT, kind],
            "env": [f"HOOK_LOG={log}", f"HOOK_ENV={kind}-env"], **extra}


def _parse_hook_log(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_hooks_run_in_order_with_the_state_on_stdin(runtime: RuntimeHarness) -> None:
    log = runtime.dir / "hooks.log"
    config = base_config(["sh", "-c", "cat /hooks-inside.log 2>/dev/null; echo main-ran"])
    hooks = {kind: [_hook(kind, str(log))]
             for kind in ("prestart", "createRuntime", "createContainer", "poststart",
                          "poststop")}
    # startContainer runs in the container after pivot_root: its path resolves there
    hooks["startContainer"] = [{"path": "/bin/sh",
                                "args": ["sh", "-c",
                                         "{ echo \"hook startContainer "
                                         "mnt=$(readlink /proc/self/ns/mnt)\"; "
                                         "echo \"state=$(cat)\"; } >> /hooks-inside.log",
                                         "startContainer"]}]
    config["hooks"] = hooks
    bundle = runtime.bundle(config)
    container_id = unique("c")
    result = leaving_container_behind(runtime, "create", "--bundle", str(bundle), container_id)
    assert result.returncode == 0, err(result)
    init_pid = runtime.state(container_id)["pid"]
    container_mnt = os.readlink(f"/proc/{init_pid}/ns/mnt")
    host_mnt = os.readlink("/proc/self/ns/mnt")
    entries = _parse_hook_log(log.read_text())
    assert [e["kind"] for e in entries] == ["prestart", "createRuntime", "createContainer"]
    runtime.runtime("start", container_id, check=True)
    for _ in range(200):
        if runtime.state(container_id)["status"] == "stopped":
            break
        subprocess.run(["sleep", "0.02"])
    runtime.runtime("delete", container_id, check=True)
    entries = _parse_hook_log(log.read_text())
    assert [e["kind"] for e in entries] == ["prestart", "createRuntime", "createContainer",
                                          "poststart", "poststop"]
    by_kind = {e["kind"]: e for e in entries}
    for kind, entry in by_kind.items():
        assert entry["argv0"] == f"argv0-{kind}"
        assert entry["env"] == f"{kind}-env"
        state = entry["state"]
        assert state["id"] == container_id
        assert state["ociVersion"]
        assert state["bundle"] == str(bundle)
        assert state["pid"] == init_pid or kind == "poststop"
    assert by_kind["prestart"]["state"]["status"] == "creating"
    assert by_kind["createContainer"]["state"]["status"] == "creating"
    assert by_kind["poststart"]["state"]["status"] == "running"
    assert by_kind["poststop"]["state"]["status"] == "stopped"
    # runtime namespace for prestart/createRuntime/poststart/poststop, container's for
    # createContainer
    for kind in ("prestart", "createRuntime", "poststart", "poststop"):
        assert by_kind[kind]["mnt"] == host_mnt, kind
    assert by_kind["createContainer"]["mnt"] == container_mnt
    inside = (bundle / "rootfs" / "hooks-inside.log").read_text()
    assert f"mnt={container_mnt}" in inside
    start_state = json.loads(inside.split("state=", 1)[1].splitlines()[0])
    assert start_state["id"] == container_id
    assert start_state["pid"] == init_pid


def test_hook_timeout_fails_create_and_leaves_nothing(runtime: RuntimeHarness) -> None:
    config = base_config(["true"])
    config["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"],
                                     "timeout": 1}]}
    bundle = runtime.bundle(config)
    container_id = unique("c")
    result = leaving_container_behind(runtime, "create", "--bundle", str(bundle),
                                      container_id, timeout=20)
    assert result.returncode != 0
    assert "prestart" in err(result)
    assert "did not finish within 1s" in err(result)
    _assert_nothing_left(runtime, bundle, container_id)


def test_failing_prestart_hook_fails_create_and_leaves_nothing(
        runtime: RuntimeHarness) -> None:
    config = base_config(["true"])
    config["hooks"] = {"prestart": [{"path": "/bin/sh",
                                     "args": ["sh", "-c", "echo network setup broke >&2; "
                                              "exit 3"]}]}
    bundle = runtime.bundle(config)
    container_id = unique("c")
    result = leaving_container_behind(runtime, "create", "--bundle", str(bundle),
                                      container_id, timeout=20)
    assert result.returncode != 0
    message = err(result)
    assert "prestart hook" in message
    assert "exited with status 3" in message
    assert "network setup broke" in message
    last = json.loads(runtime.log.read_text().splitlines()[-1])
    assert last["level"] == "error" and "prestart" in last["msg"]
    _assert_nothing_left(runtime, bundle, container_id)


def test_failing_poststop_hook_only_warns(runtime: RuntimeHarness) -> None:
    config = base_config(["true"])
    config["hooks"] = {"poststop": [{"path": "/bin/false"}]}
    result = runtime.run(config)
    assert result.returncode == 0, err(result)
    assert "poststop" in err(result)


def _assert_nothing_left(runtime: RuntimeHarness, bundle: Path, container_id: str) -> None:
    assert not (runtime.root / container_id).exists()
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        assert not (hierarchy / runtime.cgroup_parent / bundle.name).exists(), hierarchy
    assert _processes_mentioning(container_id) == []


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if text.encode() in cmdline.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def test_start_container_hook_alone_runs_inside_the_container(runtime: RuntimeHarness) -> None:
    """The startContainer hook runs after pivot_root, where the host's Python library is out
    of reach: it must work even when no earlier hook ran in the init."""
    config = base_config(["cat", "/started"])
    config["hooks"] = {"startContainer": [
        {"path": "/bin/sh",
         "args": ["sh", "-c", "cat > /started; echo >> /started; hostname >> /started"]}]}
    result = runtime.run(config)
    assert result.returncode == 0, err(result)
    lines = out(result).splitlines()
    assert json.loads(lines[0])["id"]
    assert lines[1] == "sampan"  # in the container's uts namespace


# --- exec'd processes get the same confinement ------------------------------------------

def _detached(runtime: RuntimeHarness, config: dict[str, Any]) -> tuple[str, Path]:
    bundle = runtime.bundle(config)
    container_id = unique("c")
    started = leaving_container_behind(runtime, "run", "--detach", "--bundle", str(bundle),
                                       container_id)
    assert started.returncode == 0, err(started)
    return container_id, bundle


def test_exec_gets_the_seccomp_filter_and_capabilities(runtime: RuntimeHarness) -> None:
    config = base_config(["sleep", "60"])
    config["linux"]["seccomp"] = deny_mkdir(38)
    container_id, _ = _detached(runtime, config)
    result = runtime.runtime("exec", container_id, "sh", "-c", MKDIR_PROBE + "; "
                             "grep -E 'CapEff|NoNewPrivs' /proc/self/status",
                             stdin=subprocess.DEVNULL)
    assert result.returncode == 0, err(result)
    assert "Function not implemented" in err(result)
    fields = status_fields(out(result))
    assert fields["CapEff"] == mask("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert fields["NoNewPrivs"] == "1"
    added = runtime.runtime("exec", "--cap", "CAP_NET_ADMIN", "--user", "1000:1000",
                            container_id, "grep", "-E", "Cap(Eff|Amb)|Uid", "/proc/self/status",
                            stdin=subprocess.DEVNULL)
    assert added.returncode == 0, err(added)
    fields = status_fields(out(added))
    assert fields["Uid"].split()[0] == "1000"
    # --cap puts the capability in every set, ambient included: it survives the non-root exec
    assert fields["CapAmb"] == mask("CAP_NET_ADMIN")
    assert fields["CapEff"] == mask("CAP_NET_ADMIN")


def test_exec_joins_the_user_namespace(runtime: RuntimeHarness) -> None:
    config = base_config(["sleep", "60"])
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
    runtime.dir.chmod(0o711)
    bundle = runtime.bundle(config)
    _shift_ownership(bundle / "rootfs", HOST_BASE)
    container_id = unique("c")
    started = leaving_container_behind(runtime, "run", "--detach", "--bundle", str(bundle),
                                       container_id)
    assert started.returncode == 0, err(started)
    result = runtime.runtime("exec", container_id, "sh", "-c",
                             "cat /proc/self/uid_map; id -u; touch /tmp/by-exec",
                             stdin=subprocess.DEVNULL)
    assert result.returncode == 0, err(result)
    assert out(result).split() == ["0", str(HOST_BASE), "65536", "0"]
    assert (bundle / "rootfs" / "tmp" / "by-exec").stat().st_uid == HOST_BASE
