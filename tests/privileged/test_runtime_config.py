"""config.json features seen from inside the container: sysctl, hostname/domainname, rlimits,
oomScoreAdj, user/env/cwd, devices, mounts (bind ro/rw, tmpfs options, propagation, symlinked
destinations), inherited fds, signal dispositions, --preserve-fds, --no-pivot, personality,
and the debian rootfs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.runtime_harness import RUNTIME, RuntimeHarness, base_config, cached_rootfs, unique


def out(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode(errors="replace")


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode(errors="replace")


def sh(script: str) -> dict[str, Any]:
    return base_config(["sh", "-c", script])


def run_bundle(runtime: RuntimeHarness, bundle: Path, *flags: str,
               **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return runtime.runtime("run", *flags, "--bundle", str(bundle), unique("c"), **kwargs)


def wrapped_argv(runtime: RuntimeHarness, *args: str) -> list[str]:
    return [RUNTIME, "--root", str(runtime.root), "--log", str(runtime.log), "--log-format",
            "json", *args]


# --- kernel settings -------------------------------------------------------------------------

def test_sysctl_in_new_network_and_ipc_namespaces(runtime: RuntimeHarness) -> None:
    config = sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax")
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.msgmax": "4242"}
    with open("/proc/sys/net/ipv4/ip_forward") as forward:
        host_forward = forward.read()
    with open("/proc/sys/kernel/msgmax") as msgmax:
        host_msgmax = msgmax.read()
    result = runtime.run(config)
    assert result.returncode == 0, err(result)
    assert out(result).split() == ["1", "4242"]
    with open("/proc/sys/net/ipv4/ip_forward") as forward:
        assert forward.read() == host_forward
    with open("/proc/sys/kernel/msgmax") as msgmax:
        assert msgmax.read() == host_msgmax


def test_hostname_and_domainname(runtime: RuntimeHarness) -> None:
    config = sh("hostname; cat /proc/sys/kernel/domainname")
    config["hostname"] = "box-one"
    config["domainname"] = "example.test"
    result = runtime.run(config)
    assert result.returncode == 0, err(result)
    assert out(result).split() == ["box-one", "example.test"]
    assert os.uname().nodename != "box-one"


def test_rlimits(runtime: RuntimeHarness) -> None:
    config = sh("ulimit -n; ulimit -Hn; ulimit -c; grep 'Max processes' /proc/self/limits")
    config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_NPROC", "soft": 333, "hard": 444},
    ]
    result = runtime.run(config)
    assert result.returncode == 0, err(result)
    lines = out(result).splitlines()
    assert lines[:3] == ["512", "1024", "0"]
    assert lines[3].split()[2:4] == ["333", "444"]


def test_oom_score_adj(runtime: RuntimeHarness) -> None:
    config = sh("cat /proc/self/oom_score_adj")
    config["process"]["oomScoreAdj"] = 567
    result = runtime.run(config)
    assert out(result).strip() == "567", err(result)


def test_personality_linux32(runtime: RuntimeHarness) -> None:
    config = sh("uname -m")
    config["linux"]["personality"] = {"domain": "LINUX32"}
    result = runtime.run(config)
    assert result.returncode == 0, err(result)
    assert re.fullmatch(r"i[3-6]86", out(result).strip())


def test_user_env_cwd_umask(runtime: RuntimeHarness) -> None:
    config = sh("id; pwd; umask; echo HOME=$HOME GREETING=$GREETING; "
                "touch /tmp/umask-probe; stat -c %a /tmp/umask-probe")
    config["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20],
                                 "umask": 0o027}
    config["process"]["env"].append("GREETING=hello world")
    config["process"]["cwd"] = "/tmp"
    result = runtime.run(config)
    assert result.returncode == 0, err(result)
    lines = out(result).splitlines()
    assert lines[0].startswith("uid=1000") and "gid=1001" in lines[0]
    assert "groups=10" in lines[0] and "20" in lines[0]
    assert lines[1] == "/tmp"
    assert lines[2] == "0027"
    assert lines[3] == "HOME=/ GREETING=hello world"  # HOME from /etc/passwd, else /
    assert lines[4] == "640"


def test_home_comes_from_etc_passwd(runtime: RuntimeHarness) -> None:
    config = sh("echo $HOME")
    result = runtime.run(config)
    assert out(result).strip() == "/root"


# --- devices ---------------------------------------------------------------------------------

def test_default_and_configured_devices(runtime: RuntimeHarness) -> None:
    config = sh("ls -ln /dev /dev/pts; for l in fd stdin stdout stderr ptmx; do "
                "readlink /dev/$l; done; echo data > /dev/sampan-null && echo write=ok; "
                "head -c 4 /dev/zero | wc -c; ls /dev/fd/")
    config["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666},
        {"path": "/dev/sampan-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640,
         "uid": 1, "gid": 2},
    ]
    for kind in ("bounding", "effective", "permitted"):  # to write the 0640 node of uid 1
        config["process"]["capabilities"][kind].append("CAP_DAC_OVERRIDE")
    config["linux"]["resources"]["devices"] += [
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]
    result = runtime.run(config)
    assert result.returncode == 0, err(result)
    listing: dict[str, list[str]] = {}
    for line in out(result).splitlines():
        fields = line.split()
        if len(fields) >= 9 and fields[0][0] in "cdl":
            listing[fields[-3] if fields[0][0] == "l" else fields[-1]] = fields
    expected = {"null": "1, 3", "zero": "1, 5", "full": "1, 7", "random": "1, 8",
                "urandom": "1, 9", "tty": "5, 0", "fuse": "10, 229", "sampan-null": "1, 3"}
    for name, numbers in expected.items():
        assert name in listing, f"/dev/{name} missing: {out(result)}"
        fields = listing[name]
        assert fields[0][0] == "c", name
        assert f"{fields[4]} {fields[5]}" == numbers, name
    assert listing["null"][0] == "crw-rw-rw-"
    assert listing["sampan-null"][0] == "crw-r-----"
    assert listing["sampan-null"][2:4] == ["1", "2"]
    assert listing["fuse"][0] == "crw-rw-rw-"
    for directory in ("pts", "shm", "mqueue"):
        assert listing[directory][0][0] == "d", directory
    assert "/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\n" in out(result)
    assert re.search(r"^(/dev/)?pts/ptmx$", out(result), re.M)
    assert "write=ok" in out(result)
    assert "\n4\n" in out(result)


# --- mounts ----------------------------------------------------------------------------------

@pytest.fixture
def host_dir(runtime: RuntimeHarness) -> Path:
    directory = runtime.dir / unique("hostdir")
    directory.mkdir()
    (directory / "from-host").write_text("host data\n")
    return directory


def test_bind_mounts_ro_and_rw(runtime: RuntimeHarness, host_dir: Path) -> None:
    single_file = runtime.dir / "single-file"
    single_file.write_text("one file\n")
    config = sh("cat /rw/from-host /ro/from-host /etc/single; "
                "echo inside > /rw/from-container && echo rw=ok; "
                "echo inside > /ro/nope; echo ro=$?; "
                "echo more >> /etc/single; echo file=$?; "
                "grep -E ' /(rw|ro|etc/single) ' /proc/self/mountinfo")
    config["mounts"] += [
        {"destination": "/rw", "type": "bind", "source": str(host_dir),
         "options": ["rbind", "rw"]},
        {"destination": "/ro", "type": "bind", "source": str(host_dir),
         "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]},
        {"destination": "/etc/single", "type": "bind", "source": str(single_file),
         "options": ["bind", "ro"]},
    ]
    result = runtime.run(config)
    assert result.returncode == 0, err(result)
    text = out(result)
    assert text.count("host data") == 2
    assert "one file" in text
    assert "rw=ok" in text and "ro=1" in text and "file=1" in text
    assert (host_dir / "from-container").read_text() == "inside\n"
    assert not (host_dir / "nope").exists()
    assert single_file.read_text() == "one file\n"
    mountinfo = {line.split()[4]: line.split()[5] for line in text.splitlines()
                 if line.count(" - ") == 1}
    assert mountinfo["/rw"].startswith("rw")
    assert set(mountinfo["/ro"].split(",")) >= {"ro", "nosuid", "nodev", "noexec"}
    assert mountinfo["/etc/single"].startswith("ro")


def test_noexec_bind_mount_refuses_exec(runtime: RuntimeHarness, host_dir: Path) -> None:
    shutil.copy(cached_rootfs("busybox") / "bin" / "busybox", host_dir / "busybox")
    config = sh("/exec/busybox true && echo exec=ok; /noexec/busybox true; echo noexec=$?")
    config["mounts"] += [
        {"destination": "/exec", "type": "bind", "source": str(host_dir), "options": ["rbind"]},
        {"destination": "/noexec", "type": "bind", "source": str(host_dir),
         "options": ["rbind", "noexec"]},
    ]
    result = runtime.run(config)
    assert "exec=ok" in out(result), err(result)
    assert "noexec=126" in out(result)


def test_tmpfs_options(runtime: RuntimeHarness) -> None:
    config = sh("stat -c '%a %u %g' /scratch; grep ' /scratch ' /proc/self/mounts; "
                "dd if=/dev/zero of=/scratch/big bs=1024 count=2048 2>&1; echo dd=$?")
    config["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "nodev", "noexec", "mode=1770", "size=1m",
                                         "uid=5", "gid=6"]})
    config["process"]["user"] = {"uid": 5, "gid": 6}
    result = runtime.run(config)
    assert result.returncode == 0, err(result)
    lines = out(result).splitlines()
    assert lines[0] == "1770 5 6"
    options = set(lines[1].split()[3].split(","))
    assert {"nosuid", "nodev", "noexec", "size=1024k", "mode=1770", "uid=5", "gid=6"} <= options
    assert "No space left on device" in out(result)
    assert "dd=1" in out(result)


@pytest.fixture
def shared_host_dir(runtime: RuntimeHarness) -> Iterator[Path]:
    """A host directory that is a shared mount point, so mounts under it propagate."""
    directory = runtime.dir / unique("shared")
    directory.mkdir()
    subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(directory)], check=True)
        (directory / "sub").mkdir()
        yield directory
    finally:
        subprocess.run(["umount", "-R", str(directory)], check=False)


def test_mount_propagation_rslave_and_rprivate(runtime: RuntimeHarness,
                                               shared_host_dir: Path) -> None:
    config = base_config(["sleep", "60"])
    config["mounts"] += [
        {"destination": "/slave", "type": "bind", "source": str(shared_host_dir),
         "options": ["rbind", "rslave"]},
        {"destination": "/private", "type": "bind", "source": str(shared_host_dir),
         "options": ["rbind", "rprivate"]},
    ]
    bundle = runtime.bundle(config)
    container_id = unique("c")
    with open(runtime.dir / "detached.out", "wb") as sink:
        started = subprocess.run(
            wrapped_argv(runtime, "run", "--detach", "--bundle", str(bundle), container_id),
            stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, timeout=30)
    assert started.returncode == 0, (runtime.dir / "detached.out").read_text()
    try:
        # a mount made on the host after the container started
        subprocess.run(["mount", "-t", "tmpfs", "late", str(shared_host_dir / "sub")],
                       check=True)
        (shared_host_dir / "sub" / "late-file").write_text("late\n")
        result = runtime.runtime("exec", container_id, "sh", "-c",
                                 "ls /slave/sub; echo ---; ls /private/sub",
                                 stdin=subprocess.DEVNULL)
        assert result.returncode == 0, err(result)
        slave, private = out(result).split("---")
        assert "late-file" in slave
        assert "late-file" not in private
    finally:
        runtime.runtime("delete", "--force", container_id)


def test_symlinked_mount_destination_stays_inside_the_rootfs(runtime: RuntimeHarness) -> None:
    absolute_target = f"/tmp/{unique('sampan-test-escape')}"
    relative_target = f"/tmp/{unique('sampan-test-escape')}"
    config = sh(f"echo in > /etc/evil/x && echo tmpfs=ok; ls {absolute_target}; "
                f"ls /etc/evil2; grep -c ' {absolute_target} ' /proc/self/mountinfo")
    config["mounts"] += [
        {"destination": "/etc/evil", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/etc/evil2", "type": "bind", "source": "/etc",
         "options": ["rbind", "ro"]},
    ]
    bundle = runtime.bundle(config)
    os.symlink(f"/../../../../..{absolute_target}", bundle / "rootfs" / "etc" / "evil")
    os.symlink(f"../../../../../../../..{relative_target}", bundle / "rootfs" / "etc" / "evil2")
    try:
        result = run_bundle(runtime, bundle)
        assert result.returncode == 0, err(result)
        assert "tmpfs=ok" in out(result)
        assert "x" in out(result).splitlines()[1]
        assert "hostname" in out(result)  # /etc of the host, bound at the resolved path
        assert not os.path.lexists(absolute_target)
        assert not os.path.lexists(relative_target)
        assert (bundle / "rootfs" / absolute_target.lstrip("/")).is_dir()
        assert (bundle / "rootfs" / relative_target.lstrip("/")).is_dir()
    finally:
        for target in (absolute_target, relative_target):
            if os.path.isdir(target):
                subprocess.run(["umount", "-R", target], check=False)
                shutil.rmtree(target, ignore_errors=True)


# --- process environment: fds and signals ----------------------------------------------

def test_no_inherited_fd_reaches_the_container(runtime: RuntimeHarness) -> None:
    # "; true": sh must stay pid 1 (busybox execs a last lone command in place)
    bundle = runtime.bundle(sh("ls /proc/$$/fd; true"))
    with open(runtime.dir / "leak-probe", "w") as extra:
        result = runtime.runtime("run", "--bundle", str(bundle), unique("c"),
                                 stdin=subprocess.DEVNULL, pass_fds=(extra.fileno(),))
    assert result.returncode == 0, err(result)
    assert out(result).split() == ["0", "1", "2"]


def test_preserve_fds_passes_fd_3(runtime: RuntimeHarness) -> None:
    payload = runtime.dir / "payload"
    payload.write_text("through fd 3\n")
    bundle = runtime.bundle(sh("cat <&3; ls /proc/$$/fd; true"))
    argv = wrapped_argv(runtime, "run", "--preserve-fds", "1", "--bundle", str(bundle),
                        unique("c"))
    result = subprocess.run(["sh", "-c", 'exec 3<"$0"; exec "$@"', str(payload), *argv],
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert result.returncode == 0, err(result)
    lines = out(result).splitlines()
    assert lines[0] == "through fd 3"
    assert lines[1:] == ["0", "1", "2", "3"]


def test_signal_dispositions_are_reset_when_the_runtime_ignores_sigpipe(
        runtime: RuntimeHarness) -> None:
    bundle = runtime.bundle(base_config(["cat", "/proc/1/status"]))
    argv = wrapped_argv(runtime, "run", "--bundle", str(bundle), unique("c"))
    # `trap '' PIPE HUP`: SIG_IGN survives execve, as when conmon or a shell starts us
    result = subprocess.run(["sh", "-c", "trap '' PIPE HUP; exec \"$@\"", "sh", *argv],
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert result.returncode == 0, err(result)
    fields = dict(line.split(":\t", 1) for line in out(result).splitlines() if ":\t" in line)
    assert fields["SigIgn"] == "0000000000000000"
    assert fields["SigBlk"] == "0000000000000000"
    assert fields["Name"] == "cat"  # pid 1 is the user's process


# --- root switching and rootfs flavours -------------------------------------------------

def test_no_pivot(runtime: RuntimeHarness) -> None:
    bundle = runtime.bundle(sh("ls /; ls /work 2>&1; echo work=$?; cat /proc/1/cmdline"))
    result = run_bundle(runtime, bundle, "--no-pivot")
    assert result.returncode == 0, err(result)
    entries = out(result).split()
    assert {"bin", "etc", "proc", "dev"} <= set(entries)
    assert "work=1" in out(result)  # the host's tree is out of reach


def test_debian_rootfs_runs_bash(runtime: RuntimeHarness) -> None:
    config = base_config(["bash", "-c", "cat /etc/debian_version; echo $BASH_VERSION; "
                                        "id -un"])
    # the session's unpacked debian tree itself, read-only: no 80 MB copy per test
    config["root"] = {"path": str(cached_rootfs("debian")), "readonly": True}
    config["linux"]["cgroupsPath"] = f"/{runtime.cgroup_parent}/debian"
    bundle = runtime.dir / unique("debian-bundle")
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(config))
    result = run_bundle(runtime, bundle)
    assert result.returncode == 0, err(result)
    lines = out(result).splitlines()
    assert lines[0].startswith("12")
    assert lines[1].startswith("5.")
    assert lines[2] == "root"


def test_cgroup_namespace_shows_its_own_root(runtime: RuntimeHarness) -> None:
    config = sh("cat /proc/self/cgroup")
    config["linux"]["namespaces"].append({"type": "cgroup"})
    result = runtime.run(config)
    assert result.returncode == 0, err(result)
    for line in out(result).splitlines():
        assert line.endswith(":/"), line


def test_pid_namespace_init_is_the_user_process(runtime: RuntimeHarness) -> None:
    result = runtime.run(base_config(["ps", "-o", "pid,comm"]))
    assert result.returncode == 0, err(result)
    rows = [line.split() for line in out(result).splitlines()[1:]]
    assert rows == [["1", "ps"]]
