"""cgroup v2 conversions, file writes, controller enabling, freezer and stats on a fake fs."""

import signal

import pytest

from sampan import errdefs
from sampan.runtime.cgroups import open_manager
from sampan.runtime.cgroups.fake import FakeCgroupFs
from sampan.runtime.cgroups.v2 import (
    V2Manager,
    blkio_weight_to_io_weight,
    cpu_shares_to_weight,
    io_stats,
    swap_max,
)

C1 = "/sys/fs/cgroup/a/c1"


def v2_manager(controllers: tuple[str, ...] | None = None) -> tuple[V2Manager, FakeCgroupFs]:
    fs = FakeCgroupFs.v2() if controllers is None else FakeCgroupFs.v2(controllers)
    manager = open_manager("/a/c1", "c1", fs=fs)
    assert isinstance(manager, V2Manager)
    manager.create()
    fs.writes.clear()
    return manager, fs


@pytest.mark.parametrize(
    ("shares", "weight"), [(2, 1), (1024, 39), (262144, 10000), (1, 1), (10**7, 10000)]
)
def test_cpu_shares_to_weight(shares: int, weight: int) -> None:
    assert cpu_shares_to_weight(shares) == weight


@pytest.mark.parametrize(("blkio", "io"), [(10, 1), (500, 4950), (1000, 10000)])
def test_blkio_weight_to_io_weight(blkio: int, io: int) -> None:
    assert blkio_weight_to_io_weight(blkio) == io


def test_swap_max_is_memory_plus_swap_minus_memory() -> None:
    assert swap_max(300, 100) == "200"
    assert swap_max(100, 100) == "0"  # swap equal to memory: no swap at all
    assert swap_max(-1, None) == "max"
    with pytest.raises(errdefs.InvalidParameter, match="must not be below"):
        swap_max(50, 100)
    with pytest.raises(errdefs.InvalidParameter, match="needs a memory limit"):
        swap_max(50, None)


def test_create_enables_every_available_controller_in_each_ancestor() -> None:
    fs = FakeCgroupFs.v2(("cpu", "memory", "pids"))
    open_manager("/a/c1", "c1", fs=fs).create()
    assert fs.written("/sys/fs/cgroup/cgroup.subtree_control") == ["+cpu +memory +pids"]
    assert fs.written("/sys/fs/cgroup/a/cgroup.subtree_control") == ["+cpu +memory +pids"]
    assert fs.files[f"{C1}/cgroup.controllers"].split() == ["cpu", "memory", "pids"]
    assert f"{C1}/memory.max" in fs.files


def test_create_twice_writes_no_subtree_control_again() -> None:
    manager, fs = v2_manager()
    manager.create()
    assert not [p for p, _ in fs.writes if p.endswith("subtree_control")]


def test_apply_converts_oci_values_like_runc() -> None:
    manager, fs = v2_manager()
    manager.apply_resources(
        {
            "memory": {"limit": 100 << 20, "swap": 300 << 20, "reservation": 10 << 20,
                       "kernel": 1 << 20, "swappiness": 10, "disableOOMKiller": True},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0",
                    "idle": 1},
            "pids": {"limit": 64},
            "blockIO": {"weight": 500, "throttleWriteIOPSDevice": [{"major": 8, "minor": 0,
                                                                     "rate": 100}]},
        }
    )  # fmt: skip
    assert fs.written(f"{C1}/memory.max") == [str(100 << 20)]
    assert fs.written(f"{C1}/memory.swap.max") == [str(200 << 20)]
    assert fs.written(f"{C1}/memory.low") == [str(10 << 20)]
    assert fs.written(f"{C1}/cpu.weight") == ["39"]
    assert fs.written(f"{C1}/cpu.max") == ["50000 100000"]
    assert fs.written(f"{C1}/cpu.idle") == ["1"]
    assert fs.written(f"{C1}/cpuset.cpus") == ["0-1"]
    assert fs.written(f"{C1}/cpuset.mems") == ["0"]
    assert fs.written(f"{C1}/pids.max") == ["64"]
    assert fs.written(f"{C1}/io.weight") == ["4950"]
    assert fs.written(f"{C1}/io.max") == ["8:0 wiops=100"]
    # v2 has no kernel memory, swappiness or OOM-killer knobs: nothing else was written
    assert len(fs.writes) == 11


def test_memory_limit_minus_one_is_max() -> None:
    manager, fs = v2_manager()
    manager.apply_resources({"memory": {"limit": -1, "swap": -1}, "pids": {"limit": -1}})
    assert fs.written(f"{C1}/memory.max") == ["max"]
    assert fs.written(f"{C1}/memory.swap.max") == ["max"]
    assert fs.written(f"{C1}/pids.max") == ["max"]


def test_bfq_weight_takes_the_blkio_scale() -> None:
    manager, fs = v2_manager()
    fs.set_file(f"{C1}/io.bfq.weight", "default 100\n")
    manager.apply_resources(
        {"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}]}}
    )
    assert fs.written(f"{C1}/io.bfq.weight") == ["500", "8:0 200"]


def test_throttle_rate_zero_removes_the_limit() -> None:
    manager, fs = v2_manager()
    manager.apply_resources({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}})
    assert fs.written(f"{C1}/io.max") == ["8:0 rbps=max"]


def test_update_quota_alone_keeps_the_period() -> None:
    manager, fs = v2_manager()
    manager.update({"cpu": {"quota": 20000}})
    assert fs.writes == [(f"{C1}/cpu.max", "20000")]


def test_update_period_alone_keeps_the_quota_in_force() -> None:
    manager, fs = v2_manager()
    fs.set_file(f"{C1}/cpu.max", "30000 100000\n")
    manager.update({"cpu": {"period": 50000}})
    assert fs.writes == [(f"{C1}/cpu.max", "30000 50000")]


def test_update_swap_alone_uses_the_memory_limit_in_force() -> None:
    manager, fs = v2_manager()
    fs.set_file(f"{C1}/memory.max", str(100 << 20))
    manager.update({"memory": {"swap": 150 << 20}})
    assert fs.writes == [(f"{C1}/memory.swap.max", str(50 << 20))]


def test_update_with_zero_and_null_changes_nothing() -> None:
    manager, fs = v2_manager()
    manager.update({"memory": {"limit": 0, "swap": None}, "cpu": {"shares": 0}, "pids": {}})
    assert fs.writes == []


def test_missing_controller_is_unavailable_naming_it_and_the_path() -> None:
    manager, _ = v2_manager(("hugetlb",))
    with pytest.raises(errdefs.Unavailable) as info:
        manager.apply_resources({"memory": {"limit": 1 << 30}})
    assert "memory" in str(info.value)
    assert C1 in str(info.value)
    assert "available: hugetlb" in str(info.value)


def test_missing_controller_is_fine_when_nothing_is_requested() -> None:
    manager, fs = v2_manager(("hugetlb",))
    manager.apply_resources({"memory": {"limit": 0}, "cpu": {"shares": None}, "pids": {}})
    assert fs.writes == []


def test_realtime_cpu_is_unavailable_on_v2() -> None:
    manager, _ = v2_manager()
    with pytest.raises(errdefs.Unavailable, match="realtime"):
        manager.apply_resources({"cpu": {"realtimeRuntime": 1000}})


def test_hugetlb_limits() -> None:
    manager, fs = v2_manager()
    manager.apply_resources({"hugepageLimits": [{"pageSize": "2MB", "limit": 8 << 20}]})
    assert fs.written(f"{C1}/hugetlb.2MB.max") == [str(8 << 20)]
    with pytest.raises(errdefs.InvalidParameter, match="pageSize"):
        manager.apply_resources({"hugepageLimits": [{"pageSize": "../x", "limit": 1}]})


def test_unified_keys_are_written_as_given() -> None:
    manager, fs = v2_manager()
    manager.apply_resources({"unified": {"memory.max": "1G", "pids.max": "5"}})
    assert fs.written(f"{C1}/memory.max") == ["1G"]
    assert fs.written(f"{C1}/pids.max") == ["5"]
    with pytest.raises(errdefs.InvalidParameter):
        manager.apply_resources({"unified": {"../escape": "1"}})


def test_unified_key_of_a_missing_controller_is_unavailable() -> None:
    manager, _ = v2_manager(("pids",))
    with pytest.raises(errdefs.Unavailable, match="memory"):
        manager.apply_resources({"unified": {"memory.high": "1G"}})


def test_device_rules_attach_a_program() -> None:
    manager, fs = v2_manager()
    manager.apply_resources({"devices": [{"allow": False, "access": "rwm"}]})
    assert C1 in fs.device_programs
    assert len(fs.device_programs[C1]) % 8 == 0


def test_no_device_rules_attach_nothing() -> None:
    manager, fs = v2_manager()
    manager.apply_resources({"devices": []})
    assert fs.device_programs == {}


def test_freeze_writes_cgroup_freeze_and_waits_for_the_event() -> None:
    manager, fs = v2_manager()
    manager.freeze()
    assert manager.is_frozen()
    assert "frozen 1" in fs.files[f"{C1}/cgroup.events"]
    manager.thaw()
    assert not manager.is_frozen()
    assert fs.written(f"{C1}/cgroup.freeze") == ["1", "0"]


def test_kill_all_with_sigkill_uses_cgroup_kill() -> None:
    manager, fs = v2_manager()
    manager.add_process(5)
    manager.kill_all(signal.SIGKILL)
    assert fs.written(f"{C1}/cgroup.kill") == ["1"]


def test_kill_all_with_another_signal_signals_each_process_while_frozen() -> None:
    manager, fs = v2_manager()
    manager.add_process(5)
    manager.add_process(6)
    manager.kill_all(signal.SIGTERM)
    assert sorted(fs.killed) == [(5, signal.SIGTERM), (6, signal.SIGTERM)]
    assert fs.written(f"{C1}/cgroup.freeze") == ["1", "0"]


def test_oom_kill_count_reads_memory_events() -> None:
    manager, fs = v2_manager()
    fs.set_file(f"{C1}/memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n")
    assert manager.oom_kill_count() == 2


def test_stats_from_v2_files() -> None:
    manager, fs = v2_manager()
    fs.set_files(
        C1,
        {
            "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\n"
            "nr_throttled 1\nthrottled_usec 20\n",
            "memory.current": "4096\n",
            "memory.max": str(1 << 20) + "\n",
            "memory.swap.max": "0\n",
            "memory.swap.current": "0\n",
            "memory.events": "max 3\noom_kill 0\n",
            "memory.stat": "anon 100\nfile 200\n",
            "pids.current": "2\n",
            "pids.max": "10\n",
            "io.stat": "8:0 rbytes=4096 wbytes=512 rios=2 wios=1 dbytes=0 dios=0\n",
            "hugetlb.2MB.current": "2097152\n",
        },
    )
    stats = manager.stats()
    assert stats["cpu"]["usage"]["total"] == 1_500_000
    assert stats["cpu"]["usage"]["user"] == 1_000_000
    assert stats["cpu"]["usage"]["kernel"] == 500_000
    assert stats["cpu"]["throttling"] == {"periods": 4, "throttledPeriods": 1,
                                          "throttledTime": 20_000}  # fmt: skip
    assert stats["memory"]["usage"] == {"limit": 1 << 20, "usage": 4096, "max": 0, "failcnt": 3}
    assert stats["memory"]["swap"]["limit"] == 1 << 20  # memory+swap, as v1 reports it
    assert stats["memory"]["swap"]["usage"] == 4096
    assert stats["memory"]["raw"] == {"anon": 100, "file": 200}
    assert stats["pids"] == {"current": 2, "limit": 10}
    assert stats["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 4096},
        {"major": 8, "minor": 0, "op": "Write", "value": 512},
    ]
    assert stats["blkio"]["ioServicedRecursive"][0]["value"] == 2
    assert stats["hugetlb"]["2MB"]["usage"] == 2097152


def test_stats_leave_out_missing_controllers() -> None:
    manager, _ = v2_manager(("hugetlb",))
    stats = manager.stats()
    assert set(stats) == {"cpu", "hugetlb"}  # cpu.stat is a core file
    assert manager.oom_kill_count() == 0


def test_unlimited_memory_reports_max_uint64() -> None:
    manager, _ = v2_manager()
    assert manager.stats()["memory"]["usage"]["limit"] == 2**64 - 1


def test_io_stats_ignores_garbage() -> None:
    assert io_stats("garbage\n\n") == {"ioServiceBytesRecursive": [], "ioServicedRecursive": []}


def test_destroy_removes_the_tree() -> None:
    manager, fs = v2_manager()
    fs.mkdir(f"{C1}/sub")
    manager.destroy()
    assert C1 not in fs.dirs
    assert f"{C1}/sub" not in fs.dirs
    assert "/sys/fs/cgroup/a" in fs.dirs  # parents stay
