"""cgroup v1 (and hybrid) resource writes, update semantics, freezer and stats on a fake fs."""

import signal

import pytest

from sampan import errdefs
from sampan.runtime.cgroups import files, open_manager
from sampan.runtime.cgroups.fake import HYBRID_MOUNTINFO, FakeCgroupFs
from sampan.runtime.cgroups.hybrid import HybridManager
from sampan.runtime.cgroups.v1 import V1Manager, blkio_entries, cpu_stats

V1_ONLY = "\n".join(line for line in HYBRID_MOUNTINFO.splitlines() if "cgroup2" not in line)
MEM = "/sys/fs/cgroup/memory/c1"
CPU = "/sys/fs/cgroup/cpu/c1"


def v1_manager() -> tuple[V1Manager, FakeCgroupFs]:
    fs = FakeCgroupFs(V1_ONLY)
    manager = open_manager("/c1", "c1", fs=fs)
    assert isinstance(manager, V1Manager)
    manager.create()
    fs.writes.clear()
    return manager, fs


def test_create_makes_a_directory_in_every_hierarchy_with_parents() -> None:
    fs = FakeCgroupFs(V1_ONLY)
    manager = open_manager("/a/b", "b", fs=fs)
    manager.create()
    manager.create()  # idempotent
    for hierarchy in ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                      "systemd"):  # fmt: skip
        assert f"/sys/fs/cgroup/{hierarchy}/a/b" in fs.dirs


def test_create_copies_cpuset_cpus_and_mems_down_from_the_parent() -> None:
    fs = FakeCgroupFs(V1_ONLY)
    fs.set_file("/sys/fs/cgroup/cpuset/cpuset.cpus", "0-1\n")
    fs.set_file("/sys/fs/cgroup/cpuset/cpuset.mems", "0\n")
    open_manager("/a/b", "b", fs=fs).create()
    assert fs.files["/sys/fs/cgroup/cpuset/a/cpuset.cpus"] == "0-1\n"
    assert fs.files["/sys/fs/cgroup/cpuset/a/b/cpuset.cpus"] == "0-1\n"
    assert fs.files["/sys/fs/cgroup/cpuset/a/b/cpuset.mems"] == "0\n"


def test_add_process_writes_the_pid_into_every_hierarchy() -> None:
    manager, fs = v1_manager()
    manager.add_process(4242)
    procs = [path for path, data in fs.writes if data == "4242"]
    assert len(procs) == 9
    assert all(path.endswith("/c1/cgroup.procs") for path in procs)


def test_nothing_requested_writes_nothing() -> None:
    manager, fs = v1_manager()
    manager.apply_resources({"memory": {"limit": 0, "swap": None}, "cpu": {}, "pids": {"limit": 0}})
    manager.apply_resources({})
    assert fs.writes == []


def test_apply_writes_each_requested_resource() -> None:
    manager, fs = v1_manager()
    manager.apply_resources(
        {
            "memory": {"limit": 100 << 20, "reservation": 50 << 20, "swappiness": 0,
                       "disableOOMKiller": True},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 32},
            "blockIO": {"weight": 300, "throttleReadBpsDevice": [{"major": 8, "minor": 0,
                                                                   "rate": 1048576}]},
        }
    )  # fmt: skip
    assert fs.written(f"{MEM}/memory.limit_in_bytes") == [str(100 << 20)]
    assert fs.written(f"{MEM}/memory.soft_limit_in_bytes") == [str(50 << 20)]
    assert fs.written(f"{MEM}/memory.swappiness") == ["0"]
    assert fs.written(f"{MEM}/memory.oom_control") == ["1"]
    assert fs.written(f"{CPU}/cpu.shares") == ["512"]
    assert fs.written(f"{CPU}/cpu.cfs_quota_us") == ["50000"]
    assert fs.written("/sys/fs/cgroup/cpuset/c1/cpuset.cpus") == ["0"]
    assert fs.written("/sys/fs/cgroup/pids/c1/pids.max") == ["32"]
    # no CFQ blkio.weight on this kernel: BFQ's file takes the weight
    assert fs.written("/sys/fs/cgroup/blkio/c1/blkio.bfq.weight") == ["300"]
    assert fs.written("/sys/fs/cgroup/blkio/c1/blkio.throttle.read_bps_device") == ["8:0 1048576"]
    # the period is written before the quota it is checked against
    paths = [p for p, _ in fs.writes]
    assert paths.index(f"{CPU}/cpu.cfs_period_us") < paths.index(f"{CPU}/cpu.cfs_quota_us")


def test_pids_limit_minus_one_is_max() -> None:
    manager, fs = v1_manager()
    manager.apply_resources({"pids": {"limit": -1}})
    assert fs.written("/sys/fs/cgroup/pids/c1/pids.max") == ["max"]


def test_swap_is_raised_first_when_the_new_swap_is_above_the_current_limit() -> None:
    manager, fs = v1_manager()
    fs.set_file(f"{MEM}/memory.limit_in_bytes", str(100 << 20))
    manager.update({"memory": {"limit": 300 << 20, "swap": 600 << 20}})
    assert [p.rsplit("/", 1)[1] for p, _ in fs.writes] == [
        "memory.memsw.limit_in_bytes",
        "memory.limit_in_bytes",
    ]


def test_limit_is_lowered_first_when_the_new_swap_is_below_the_current_limit() -> None:
    manager, fs = v1_manager()
    fs.set_file(f"{MEM}/memory.limit_in_bytes", str(500 << 20))
    manager.update({"memory": {"limit": 100 << 20, "swap": 200 << 20}})
    assert [p.rsplit("/", 1)[1] for p, _ in fs.writes] == [
        "memory.limit_in_bytes",
        "memory.memsw.limit_in_bytes",
    ]


def test_unlimited_memory_also_lifts_the_swap_limit() -> None:
    manager, fs = v1_manager()
    manager.update({"memory": {"limit": -1}})
    assert fs.written(f"{MEM}/memory.memsw.limit_in_bytes") == ["-1"]
    assert fs.written(f"{MEM}/memory.limit_in_bytes") == ["-1"]


def test_update_with_zero_leaves_other_values_unchanged() -> None:
    manager, fs = v1_manager()
    manager.update({"cpu": {"shares": 0, "quota": 20000, "period": 0}, "memory": {"limit": 0},
                    "pids": {"limit": 0}})  # fmt: skip
    assert fs.writes == [(f"{CPU}/cpu.cfs_quota_us", "20000")]


def test_device_rules_become_deny_and_allow_lines_in_order() -> None:
    manager, fs = v1_manager()
    manager.apply_resources(
        {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rw"},
                {"allow": False, "type": "b", "major": 8, "access": "mw"},
            ]
        }
    )
    assert fs.writes == [
        ("/sys/fs/cgroup/devices/c1/devices.deny", "a"),
        ("/sys/fs/cgroup/devices/c1/devices.allow", "c 1:3 rwm"),
        ("/sys/fs/cgroup/devices/c1/devices.allow", "c 136:* rw"),
        ("/sys/fs/cgroup/devices/c1/devices.deny", "b 8:* wm"),
    ]


def test_bad_device_access_is_invalid() -> None:
    manager, _ = v1_manager()
    with pytest.raises(errdefs.InvalidParameter, match="access"):
        manager.apply_resources({"devices": [{"allow": True, "access": "rwx"}]})


def test_requesting_a_missing_controller_names_it() -> None:
    manager, _ = v1_manager()  # no hugetlb hierarchy in this layout
    with pytest.raises(errdefs.Unavailable, match="hugetlb"):
        manager.apply_resources({"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}]})


def test_missing_file_for_a_requested_knob_is_unavailable() -> None:
    manager, fs = v1_manager()
    del fs.files[f"{MEM}/memory.memsw.limit_in_bytes"]  # no swap accounting
    with pytest.raises(errdefs.Unavailable, match=r"memory\.memsw\.limit_in_bytes"):
        manager.apply_resources({"memory": {"swap": 200 << 20}})


def test_unified_resources_need_v2() -> None:
    manager, _ = v1_manager()
    with pytest.raises(errdefs.Unavailable, match="cgroup v2"):
        manager.apply_resources({"unified": {"memory.high": "1G"}})


def test_wrong_types_are_invalid_parameters() -> None:
    manager, _ = v1_manager()
    with pytest.raises(errdefs.InvalidParameter, match=r"memory\.limit"):
        manager.apply_resources({"memory": {"limit": "lots"}})
    with pytest.raises(errdefs.InvalidParameter, match="swappiness"):
        manager.apply_resources({"memory": {"swappiness": 101}})


def test_freeze_waits_for_frozen_and_thaw_undoes_it() -> None:
    manager, fs = v1_manager()
    assert not manager.is_frozen()
    manager.freeze()
    assert manager.is_frozen()
    manager.thaw()
    assert not manager.is_frozen()
    assert fs.written("/sys/fs/cgroup/freezer/c1/freezer.state") == ["FROZEN", "THAWED"]


def test_pids_and_kill_all_cover_child_cgroups() -> None:
    manager, fs = v1_manager()
    manager.add_process(10)
    fs.mkdir("/sys/fs/cgroup/pids/c1/sub")
    fs.write("/sys/fs/cgroup/pids/c1/sub/cgroup.procs", "11")
    assert sorted(manager.pids()) == [10, 11]
    fs.writes.clear()
    manager.kill_all(signal.SIGTERM)
    assert sorted(fs.killed) == [(10, signal.SIGTERM), (11, signal.SIGTERM)]
    # frozen around the signals so nothing forks past us, thawed afterwards
    assert fs.written("/sys/fs/cgroup/freezer/c1/freezer.state") == ["FROZEN", "THAWED"]


def test_kill_all_leaves_a_paused_container_paused() -> None:
    manager, fs = v1_manager()
    manager.add_process(10)
    manager.freeze()
    manager.kill_all(signal.SIGKILL)
    assert fs.killed == [(10, signal.SIGKILL)]
    assert manager.is_frozen()


def test_kill_all_ignores_processes_that_already_exited() -> None:
    manager, fs = v1_manager()
    manager.add_process(10)
    manager.add_process(11)
    fs.alive = {11}
    manager.kill_all(signal.SIGKILL)
    assert fs.killed == [(11, signal.SIGKILL)]


def test_oom_kill_count_reads_oom_control() -> None:
    manager, fs = v1_manager()
    fs.set_file(f"{MEM}/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    assert manager.oom_kill_count() == 3


def test_destroy_removes_children_first_and_ignores_absent_dirs() -> None:
    manager, fs = v1_manager()
    fs.mkdir(f"{MEM}/child")
    manager.destroy()
    assert not any(d.endswith("/c1") or "/c1/" in d for d in fs.dirs)
    manager.destroy()  # already gone: no error


def test_destroy_of_a_busy_cgroup_is_a_conflict() -> None:
    manager, fs = v1_manager()
    manager.add_process(10)
    with pytest.raises(errdefs.Conflict, match="still in it"):
        files.remove_tree(fs, MEM, timeout=0.01)


def test_stats_from_v1_files() -> None:
    manager, fs = v1_manager()
    fs.set_files(
        "/sys/fs/cgroup/cpuacct/c1",
        {
            "cpuacct.usage": "5000\n",
            "cpuacct.usage_percpu": "3000 2000 \n",
            "cpuacct.usage_all": "cpu user system\n0 2000 1000\n1 1500 500\n",
            "cpuacct.stat": "user 3\nsystem 1\n",
        },
    )
    fs.set_file(f"{CPU}/cpu.stat", "nr_periods 10\nnr_throttled 2\nthrottled_time 999\n")
    fs.set_files(
        MEM,
        {
            "memory.usage_in_bytes": "4096\n",
            "memory.max_usage_in_bytes": "8192\n",
            "memory.failcnt": "1\n",
            "memory.stat": "cache 10\ntotal_cache 20\nrss 30\n",
        },
    )
    fs.set_files("/sys/fs/cgroup/pids/c1", {"pids.current": "3\n", "pids.max": "max\n"})
    fs.set_file(
        "/sys/fs/cgroup/blkio/c1/blkio.throttle.io_service_bytes_recursive",
        "8:0 Read 4096\n8:0 Write 512\nTotal 4608\n",
    )
    stats = manager.stats()
    usage = stats["cpu"]["usage"]
    assert usage["total"] == 5000
    assert usage["percpu"] == [3000, 2000]
    assert usage["percpu_user"] == [2000, 1500]
    assert usage["percpu_kernel"] == [1000, 500]
    assert usage["user"] > usage["kernel"] > 0
    throttling = {"periods": 10, "throttledPeriods": 2, "throttledTime": 999}
    assert stats["cpu"]["throttling"] == throttling
    memory = stats["memory"]
    assert memory["usage"] == {"limit": 9223372036854771712, "usage": 4096, "max": 8192,
                               "failcnt": 1}  # fmt: skip
    assert memory["raw"] == {"cache": 10, "total_cache": 20, "rss": 30}
    assert memory["cache"] == 20
    assert stats["pids"] == {"current": 3, "limit": 0}
    assert stats["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 4096},
        {"major": 8, "minor": 0, "op": "Write", "value": 512},
    ]
    assert "hugetlb" not in stats  # no hugetlb hierarchy: left out, no crash


def test_cpu_stats_convert_ticks_to_nanoseconds() -> None:
    import os

    hz = os.sysconf("SC_CLK_TCK")
    stats = cpu_stats({"cpuacct.stat": f"user {hz}\nsystem {2 * hz}\n"}, None)
    assert stats["usage"]["user"] == 1_000_000_000
    assert stats["usage"]["kernel"] == 2_000_000_000


def test_blkio_entries_skip_the_total_line() -> None:
    assert blkio_entries("Total 0\n") == []


def test_stats_with_no_controllers_is_empty() -> None:
    fs = FakeCgroupFs("41 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n")
    manager = open_manager("/c1", "c1", fs=fs)
    manager.create()
    assert manager.stats() == {}
    assert manager.oom_kill_count() == 0


# --- hybrid -------------------------------------------------------------------------------


def hybrid_manager() -> tuple[HybridManager, FakeCgroupFs]:
    fs = FakeCgroupFs.hybrid()
    manager = open_manager("/c1", "c1", fs=fs)
    assert isinstance(manager, HybridManager)
    manager.create()
    fs.writes.clear()
    return manager, fs


def test_hybrid_also_puts_the_process_in_the_unified_hierarchy() -> None:
    manager, fs = hybrid_manager()
    manager.add_process(77)
    assert fs.written("/sys/fs/cgroup/unified/c1/cgroup.procs") == ["77"]
    assert fs.written("/sys/fs/cgroup/memory/c1/cgroup.procs") == ["77"]


def test_hybrid_create_does_not_touch_unified_subtree_control() -> None:
    fs = FakeCgroupFs.hybrid()
    open_manager("/c1", "c1", fs=fs).create()
    assert not [p for p, _ in fs.writes if p.endswith("cgroup.subtree_control")]


def test_hybrid_serves_hugetlb_from_the_unified_hierarchy_when_v1_lacks_it() -> None:
    manager, fs = hybrid_manager()
    manager.apply_resources(
        {"memory": {"limit": 1 << 30}, "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]}
    )
    assert fs.written("/sys/fs/cgroup/unified/cgroup.subtree_control") == ["+hugetlb"]
    assert fs.written("/sys/fs/cgroup/unified/c1/hugetlb.2MB.max") == [str(4 << 20)]
    assert fs.written(f"{MEM}/memory.limit_in_bytes") == [str(1 << 30)]
    assert manager.stats()["hugetlb"] == {"2MB": {"usage": 0, "max": 0, "failcnt": 0}}


def test_hybrid_uses_v1_hugetlb_when_mounted() -> None:
    fs = FakeCgroupFs.hybrid(with_hugetlb_v1=True)
    manager = open_manager("/c1", "c1", fs=fs)
    manager.create()
    manager.apply_resources({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
    assert fs.written("/sys/fs/cgroup/hugetlb/c1/hugetlb.2MB.limit_in_bytes") == [str(4 << 20)]


def test_hybrid_destroy_removes_both() -> None:
    manager, fs = hybrid_manager()
    manager.destroy()
    assert not any(d.endswith("/c1") for d in fs.dirs)
