"""The exec driver: Docker Config/HostConfig -> OCI config.json, compared with dockerd's."""

from __future__ import annotations

from typing import Any

import pytest

from sampan import errdefs
from sampan.supervisor import defaults
from sampan.supervisor.bundle import (
    ContainerSpecInput,
    build_spec,
    container_env,
    resolve_user,
    tweak_capabilities,
)

CID = "3f2a" * 16
PASSWD = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n" \
    "www-data:x:33:33:www-data:/var/www:/bin/false\n"
GROUP = "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nvideo:x:44:www-data,daemon\n"
DEFAULT_14 = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
              "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
              "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def spec_for(config: dict[str, Any] | None = None, host: dict[str, Any] | None = None,
             **kwargs: Any) -> dict[str, Any]:
    return build_spec(ContainerSpecInput(
        id=CID, rootfs="/var/lib/sampan/rootfs/x/merged",
        config={"Cmd": ["echo", "hi"], "Hostname": CID[:12], **(config or {})},
        host_config={"NetworkMode": "none", **(host or {})},
        container_dir=f"/var/lib/sampan/containers/{CID}", passwd=PASSWD, group=GROUP,
        **kwargs))


def test_default_run_matches_dockerd_config_json() -> None:
    """RUNC_CALLS.md section 5: what dockerd 20.10 writes for a default `docker run`."""
    spec = spec_for()
    assert spec["ociVersion"] == "1.0.2-dev"
    assert spec["root"] == {"path": "/var/lib/sampan/rootfs/x/merged", "readonly": False}
    assert spec["hostname"] == CID[:12]
    process = spec["process"]
    assert process["terminal"] is False
    assert process["user"] == {"uid": 0, "gid": 0, "additionalGids": [0]}
    assert process["args"] == ["echo", "hi"]
    assert process["env"] == [defaults.DEFAULT_PATH_ENV, f"HOSTNAME={CID[:12]}"]
    assert process["cwd"] == "/"
    assert process["capabilities"] == {k: DEFAULT_14 for k in ("bounding", "effective",
                                                               "permitted")}
    assert process["oomScoreAdj"] == 0
    for absent in ("rlimits", "noNewPrivileges", "apparmorProfile", "consoleSize"):
        assert absent not in process
    mounts = [(m["destination"], m["type"]) for m in spec["mounts"]]
    assert mounts == [("/proc", "proc"), ("/dev", "tmpfs"), ("/dev/pts", "devpts"),
                      ("/sys", "sysfs"), ("/sys/fs/cgroup", "cgroup"), ("/dev/mqueue", "mqueue"),
                      ("/dev/shm", "tmpfs"), ("/etc/resolv.conf", "bind"),
                      ("/etc/hostname", "bind"), ("/etc/hosts", "bind")]
    by_destination = {m["destination"]: m for m in spec["mounts"]}
    assert by_destination["/dev"]["options"] == ["nosuid", "strictatime", "mode=755",
                                                 "size=65536k"]
    assert by_destination["/dev/pts"]["options"] == ["nosuid", "noexec", "newinstance",
                                                     "ptmxmode=0666", "mode=0620", "gid=5"]
    assert "ro" in by_destination["/sys"]["options"]
    assert set(by_destination["/sys/fs/cgroup"]["options"]) == {"ro", "nosuid", "noexec",
                                                                  "nodev"}
    assert {"mode=1777", "size=67108864"} <= set(by_destination["/dev/shm"]["options"])
    assert by_destination["/etc/hosts"] == {
        "destination": "/etc/hosts", "type": "bind",
        "source": f"/var/lib/sampan/containers/{CID}/hosts", "options": ["rbind", "rprivate"]}
    linux = spec["linux"]
    assert [n["type"] for n in linux["namespaces"]] == ["mount", "network", "uts", "pid", "ipc"]
    assert all("path" not in n for n in linux["namespaces"])
    assert linux["cgroupsPath"] == f"/sampan/{CID}"
    assert "devices" not in linux  # the runtime creates the default devices
    resources = linux["resources"]
    allowed = {(r["major"], r["minor"]) for r in resources["devices"] if r["allow"]}
    assert allowed == {(1, 3), (1, 5), (1, 8), (1, 9), (5, 0), (5, 1)}
    assert resources["devices"][0] == {"allow": False, "access": "rwm"}
    assert {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"} in \
        resources["devices"]
    assert resources["memory"] == {"disableOOMKiller": False}
    assert resources["cpu"] == {"shares": 0}
    assert resources["blockIO"] == {"weight": 0}
    assert linux["maskedPaths"] == ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                                    "/proc/latency_stats", "/proc/timer_list",
                                    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                                    "/sys/firmware"]
    assert linux["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                      "/proc/sysrq-trigger"]
    assert linux["sysctl"] == {"net.ipv4.ip_unprivileged_port_start": "0",
                               "net.ipv4.ping_group_range": "0 2147483647"}
    assert "seccomp" not in linux  # none given: unconfined


def test_seccomp_profile_is_used_unless_unconfined_or_privileged() -> None:
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}
    assert spec_for(seccomp=profile)["linux"]["seccomp"] == profile
    assert "seccomp" not in spec_for(host={"SecurityOpt": ["seccomp=unconfined"]},
                                     seccomp=profile)["linux"]
    assert "seccomp" not in spec_for(host={"Privileged": True}, seccomp=profile)["linux"]


def test_tty_adds_term_and_console_size() -> None:
    process = spec_for({"Tty": True}, {"ConsoleSize": [40, 120]})["process"]
    assert process["terminal"] is True
    assert "TERM=xterm" in process["env"]
    assert process["consoleSize"] == {"height": 40, "width": 120}


def test_container_env_replaces_defaults_and_keeps_order() -> None:
    env = container_env("h", False, ["PATH=/bin", "A=1", "HOSTNAME=x", "A=2"])
    assert env == ["PATH=/bin", "HOSTNAME=x", "A=2"]


def test_entrypoint_and_cmd_make_args_and_none_is_an_error() -> None:
    assert spec_for({"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["ls"]})["process"]["args"] == [
        "/bin/sh", "-c", "ls"]
    with pytest.raises(errdefs.InvalidParameter, match="no command"):
        spec_for({"Cmd": None})


@pytest.mark.parametrize(("user", "expected"), [
    ("", {"uid": 0, "gid": 0, "additionalGids": [0]}),
    ("www-data", {"uid": 33, "gid": 33, "additionalGids": [33, 44]}),
    ("33", {"uid": 33, "gid": 33, "additionalGids": [33, 44]}),
    ("daemon:video", {"uid": 1, "gid": 44, "additionalGids": [44]}),
    ("1000", {"uid": 1000, "gid": 0, "additionalGids": [0]}),
    ("1000:1000", {"uid": 1000, "gid": 1000, "additionalGids": []}),
])
def test_user_is_resolved_in_the_image_files(user: str, expected: dict[str, Any]) -> None:
    assert resolve_user(user, PASSWD, GROUP) == expected


def test_unknown_user_and_group_are_errors_and_group_add_appends() -> None:
    with pytest.raises(errdefs.InvalidParameter, match="unable to find user nobody"):
        resolve_user("nobody", PASSWD, GROUP)
    with pytest.raises(errdefs.InvalidParameter, match="unable to find group nogroup"):
        resolve_user("root:nogroup", PASSWD, GROUP)
    assert resolve_user("", PASSWD, GROUP, ["video", 500])["additionalGids"] == [0, 44, 500]
    assert resolve_user("", None, None) == {"uid": 0, "gid": 0, "additionalGids": [0]}


def test_cap_add_and_drop() -> None:
    assert tweak_capabilities(["net_admin"], ["CAP_MKNOD", "chown"]) == [
        c for c in DEFAULT_14 if c not in ("CAP_MKNOD", "CAP_CHOWN")] + ["CAP_NET_ADMIN"]
    assert tweak_capabilities(["CHOWN"], ["ALL"]) == ["CAP_CHOWN"]
    assert tweak_capabilities(["ALL"], []) == list(defaults.ALL_CAPABILITIES)
    with pytest.raises(errdefs.InvalidParameter, match="unknown capability"):
        tweak_capabilities(["CAP_FLY"], [])


def test_privileged_gets_host_caps_devices_and_no_confinement() -> None:
    host_devices = [{"path": "/dev/loop0", "type": "b", "major": 7, "minor": 0,
                     "fileMode": 0o660, "uid": 0, "gid": 6}]
    spec = spec_for(host={"Privileged": True}, host_capabilities=["CAP_SYS_ADMIN", "CAP_KILL"],
                    host_devices=host_devices)
    assert spec["process"]["capabilities"]["bounding"] == ["CAP_KILL", "CAP_SYS_ADMIN"]
    linux = spec["linux"]
    assert "maskedPaths" not in linux and "readonlyPaths" not in linux
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert linux["devices"] == [{"path": "/dev/loop0", "type": "b", "major": 7, "minor": 0,
                                 "fileMode": 0o660, "uid": 0, "gid": 6}]
    sys_mount = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sys_mount["options"]


def test_resources_from_host_config() -> None:
    resources = spec_for(host={
        "Memory": 64 << 20, "MemoryReservation": 32 << 20, "NanoCpus": 500_000_000,
        "CpuShares": 512, "CpusetCpus": "0", "PidsLimit": 50, "BlkioWeight": 300,
        "OomKillDisable": True})["linux"]["resources"]
    assert resources["memory"] == {"limit": 64 << 20, "reservation": 32 << 20,
                                   "swap": 128 << 20, "disableOOMKiller": True}
    assert resources["cpu"] == {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"}
    assert resources["pids"] == {"limit": 50}
    assert resources["blockIO"] == {"weight": 300}
    unlimited = spec_for(host={"Memory": 64 << 20, "MemorySwap": -1})["linux"]["resources"]
    assert unlimited["memory"]["swap"] == -1
    with pytest.raises(errdefs.InvalidParameter, match="memoryswap"):
        spec_for(host={"Memory": 64 << 20, "MemorySwap": 32 << 20})
    with pytest.raises(errdefs.InvalidParameter, match="Nano CPUs"):
        spec_for(host={"NanoCpus": 1_000_000_000, "CpuQuota": 50000})
    with pytest.raises(errdefs.InvalidParameter):
        spec_for(host={"Memory": -1})
    with pytest.raises(errdefs.InvalidParameter):
        spec_for(host={"Memory": "lots"})


def test_process_options_from_host_config() -> None:
    spec = spec_for({"WorkingDir": "/srv", "User": "www-data", "Domainname": "example.org"},
                    {"OomScoreAdj": 500, "SecurityOpt": ["no-new-privileges"],
                     "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
                     "ReadonlyRootfs": True, "Sysctls": {"net.core.somaxconn": "1024"}})
    process = spec["process"]
    assert process["cwd"] == "/srv"
    assert process["user"]["uid"] == 33
    assert process["oomScoreAdj"] == 500
    assert process["noNewPrivileges"] is True
    assert process["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024}]
    assert spec["root"]["readonly"] is True
    assert spec["domainname"] == "example.org"
    assert spec["linux"]["sysctl"]["net.core.somaxconn"] == "1024"
    with pytest.raises(errdefs.InvalidParameter, match="ulimit"):
        spec_for(host={"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]})
    with pytest.raises(errdefs.InvalidParameter, match="security-opt"):
        spec_for(host={"SecurityOpt": ["bogus"]})
    with pytest.raises(errdefs.NotImplementedFeature):
        spec_for(host={"Init": True})


def test_host_namespaces_and_shared_ones() -> None:
    spec = spec_for(host={"NetworkMode": "host", "PidMode": "host", "IpcMode": "host",
                          "UTSMode": "host"})
    assert [n["type"] for n in spec["linux"]["namespaces"]] == ["mount"]
    assert "hostname" not in spec  # the host's UTS namespace keeps its name
    assert "sysctl" not in spec["linux"]  # network sysctls belong to the host then
    shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
    assert shm["type"] == "bind" and shm["source"] == "/dev/shm"
    joined = spec_for(host={"IpcMode": "container:abc"},
                      namespace_paths={"ipc": "/proc/42/ns/ipc"})
    assert {"type": "ipc", "path": "/proc/42/ns/ipc"} in joined["linux"]["namespaces"]
    with pytest.raises(errdefs.InvalidParameter):
        spec_for(host={"PidMode": "container:abc"})
    with pytest.raises(errdefs.NotImplementedFeature):
        spec_for(host={"UsernsMode": "private"})


def test_tmpfs_binds_and_devices() -> None:
    spec = spec_for(host={
        "Tmpfs": {"/run": "exec,size=1m", "/dev/shm": "size=2m"},
        "Binds": ["/srv/data:/data:ro"], "ShmSize": 1 << 20,
        "Devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse",
                     "CgroupPermissions": "rw"}],
    }, host_devices=[{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}])
    by_destination = {m["destination"]: m for m in spec["mounts"]}
    assert by_destination["/run"]["options"] == ["nosuid", "nodev", "size=1m"]
    assert by_destination["/dev/shm"]["options"] == ["noexec", "nosuid", "nodev", "size=2m"]
    assert by_destination["/data"] == {"destination": "/data", "type": "bind",
                                       "source": "/srv/data", "options": ["rbind", "ro",
                                                                          "rprivate"]}
    assert spec["linux"]["devices"] == [{"path": "/dev/fuse", "type": "c", "major": 10,
                                         "minor": 229}]
    assert spec["linux"]["resources"]["devices"][-1] == {
        "allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}
    with pytest.raises(errdefs.InvalidParameter, match="custom device"):
        spec_for(host={"Devices": [{"PathOnHost": "/dev/nope"}]})


def test_build_spec_does_not_alias_its_defaults() -> None:
    first = spec_for()
    first["mounts"][0]["options"].append("mutated")
    first["linux"]["resources"]["devices"][0]["access"] = "r"
    second = spec_for()
    assert "mutated" not in second["mounts"][0]["options"]
    assert second["linux"]["resources"]["devices"][0]["access"] == "rwm"
