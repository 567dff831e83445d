"""Hierarchy detection, cgroupsPath resolution and manager state, against a fake cgroupfs."""

import pytest

from sampan import errdefs
from sampan.runtime.cgroups import detect_version, load_manager, open_manager
from sampan.runtime.cgroups.fake import HYBRID_MOUNTINFO, V2_MOUNTINFO, FakeCgroupFs
from sampan.runtime.cgroups.fs import parse_mountinfo, parse_proc_cgroup

V1_ONLY = "\n".join(
    line for line in HYBRID_MOUNTINFO.splitlines() if "cgroup2" not in line
)

# What a private mount namespace looks like after mounting tmpfs and then cgroup2 over
# /sys/fs/cgroup: the old lines stay in mountinfo but are hidden.
SHADOWED = (
    HYBRID_MOUNTINFO
    + "63 31 0:39 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw\n"
    + "64 63 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 none rw\n"
)

OWN_HYBRID = """\
9:name=systemd:/
8:pids:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
3:cpuset:/
5:devices:/
6:freezer:/
7:blkio:/
0::/user.slice
"""


def test_parse_mountinfo_reads_v1_controllers_and_the_unified_mount() -> None:
    mounts = parse_mountinfo(HYBRID_MOUNTINFO)
    by_point = {m.mountpoint: m for m in mounts}
    assert by_point["/sys/fs/cgroup/memory"].controllers == ("memory",)
    assert by_point["/sys/fs/cgroup/memory"].version == 1
    assert by_point["/sys/fs/cgroup/systemd"].controllers == ("name=systemd",)
    assert by_point["/sys/fs/cgroup/unified"].version == 2
    assert "/sys/fs/cgroup" not in by_point  # the tmpfs is not a cgroup mount


def test_parse_mountinfo_keeps_combined_controllers_and_drops_options() -> None:
    line = (
        "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,clone_children,cpu,cpuacct\n"
    )
    (mount,) = parse_mountinfo(line)
    assert mount.controllers == ("cpu", "cpuacct")
    assert mount.mountpoint == "/sys/fs/cgroup/cpu,cpuacct"


def test_parse_mountinfo_hides_mounts_stacked_over() -> None:
    mounts = parse_mountinfo(SHADOWED)
    assert [(m.mountpoint, m.version) for m in mounts] == [("/sys/fs/cgroup", 2)]


def test_parse_mountinfo_unescapes_octal_spaces() -> None:
    line = r"40 31 0:38 / /mnt/my\040cgroup rw - cgroup2 cgroup2 rw" + "\n"
    (mount,) = parse_mountinfo(line)
    assert mount.mountpoint == "/mnt/my cgroup"


def test_parse_proc_cgroup_keys_by_sorted_controllers() -> None:
    own = parse_proc_cgroup("4:memory:/a\n3:cpuacct,cpu:/b\n1:name=systemd:/c\n0::/d\n")
    assert own == {"memory": "/a", "cpu,cpuacct": "/b", "name=systemd": "/c", "": "/d"}


@pytest.mark.parametrize(
    ("mountinfo", "expected"),
    [(HYBRID_MOUNTINFO, "hybrid"), (V2_MOUNTINFO, "v2"), (V1_ONLY, "v1"), (SHADOWED, "v2")],
)
def test_detect_version(mountinfo: str, expected: str) -> None:
    assert detect_version(FakeCgroupFs(mountinfo)) == expected


def test_detect_version_without_cgroups_is_unavailable() -> None:
    with pytest.raises(errdefs.Unavailable, match="no cgroup hierarchy"):
        detect_version(FakeCgroupFs("23 1 0:21 / /sys rw - sysfs sysfs rw\n"))


def test_absolute_path_is_under_each_hierarchy_root() -> None:
    fs = FakeCgroupFs.hybrid(own_cgroup=OWN_HYBRID)
    state = open_manager("/docker/abc", "abc", fs=fs).to_state()
    assert state["version"] == "hybrid"
    assert state["paths"]["memory"] == "/sys/fs/cgroup/memory/docker/abc"
    assert state["paths"]["name=systemd"] == "/sys/fs/cgroup/systemd/docker/abc"
    assert state["unified"] == "/sys/fs/cgroup/unified/docker/abc"


def test_relative_path_is_under_our_own_cgroup_per_hierarchy() -> None:
    fs = FakeCgroupFs.hybrid(own_cgroup=OWN_HYBRID)
    state = open_manager("sampan/abc", "abc", fs=fs).to_state()
    assert state["paths"]["memory"] == "/sys/fs/cgroup/memory/process_api/abc/sampan/abc"
    assert state["paths"]["pids"] == "/sys/fs/cgroup/pids/sampan/abc"
    assert state["unified"] == "/sys/fs/cgroup/unified/user.slice/sampan/abc"


def test_no_path_defaults_to_the_container_id() -> None:
    state = open_manager(None, "c1", fs=FakeCgroupFs.v2()).to_state()
    assert state == {"version": "v2", "path": "/sys/fs/cgroup/c1", "root": "/sys/fs/cgroup"}
    assert open_manager("", "c1", fs=FakeCgroupFs.v2()).to_state() == state


def test_dot_dot_cannot_climb_out_of_the_hierarchy() -> None:
    state = open_manager("/../../etc/x", "c1", fs=FakeCgroupFs.v2()).to_state()
    assert state["path"] == "/sys/fs/cgroup/etc/x"


def test_systemd_form_is_rejected_clearly() -> None:
    with pytest.raises(errdefs.InvalidParameter, match="systemd cgroup driver is not supported"):
        open_manager("system.slice:docker:abc", "abc", fs=FakeCgroupFs.v2())


def test_mount_root_of_a_namespaced_mount_is_stripped() -> None:
    # Inside a container, the hierarchy's mount root is the container's own cgroup.
    info = "31 23 0:28 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    fs = FakeCgroupFs(info, own_cgroup="0::/docker/abc\n")
    state = open_manager("inner", "x", fs=fs).to_state()
    assert state["path"] == "/sys/fs/cgroup/inner"


@pytest.mark.parametrize("factory", [FakeCgroupFs.hybrid, FakeCgroupFs.v2])
def test_load_manager_is_the_inverse_of_to_state(factory: object) -> None:
    fs = factory()  # type: ignore[operator]
    manager = open_manager("/x/y", "y", fs=fs)
    loaded = load_manager(manager.to_state(), fs=fs)
    assert loaded.version == manager.version
    assert loaded.to_state() == manager.to_state()


def test_load_manager_v1_round_trip() -> None:
    fs = FakeCgroupFs(V1_ONLY)
    manager = open_manager("/x", "x", fs=fs)
    assert manager.version == "v1"
    assert load_manager(manager.to_state(), fs=fs).to_state() == manager.to_state()


def test_load_manager_rejects_garbage() -> None:
    with pytest.raises(errdefs.InvalidParameter):
        load_manager({"version": "v3"}, fs=FakeCgroupFs.v2())
    with pytest.raises(errdefs.InvalidParameter):
        load_manager({"version": "v2"}, fs=FakeCgroupFs.v2())
