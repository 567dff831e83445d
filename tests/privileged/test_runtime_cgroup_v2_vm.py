"""sampan-runc's resource tests on a REAL pure cgroup v2 host: a qemu VM (issue 2, item 3).

This host is hybrid, so its cgroup2 offers only hugetlb (test_runtime_cgroup_v2.py tests what
that allows). Here a VM boots Debian's kernel with ``cgroup_no_v1=all`` and no init system, so
cgroup2 at /sys/fs/cgroup owns cpu, memory, pids, io, cpuset and hugetlb; its root is this
host's / over 9p (read-only), so it runs this checkout (tests/vm/boot.py). Inside it
tests/vm/guest_resource_checks.py drives bin/sampan-runc through the same resource scenarios
as test_runtime_resources.py (OOM kill reported by ``events``, pids cap, cpu/io/memory files,
``update``, pause/resume, ``events --stats``, eBPF device rules, delete) and prints one JSON
line per check; each becomes one test here.

The VM boots once per module. It needs qemu-system-x86 and the kernel unpacked by
scripts/fetch-vm-kernel (scripts/install does both); without them these tests fail. Software
emulation (TCG) is used unless the CPU exposes vmx/svm; the run takes about two minutes here.
SAMPAN_VM_TIMEOUT (seconds) bounds it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.vm import boot
from tests.vm.guest_resource_checks import CHECK_NAMES

pytestmark = pytest.mark.privileged

VM_TIMEOUT = float(os.environ.get("SAMPAN_VM_TIMEOUT", "360"))


@dataclass
class GuestRun:
    result: boot.VmResult
    checks: dict[str, dict[str, Any]]  # check name -> its JSON line
    guest: dict[str, Any]  # the guest's first line: kernel, python, uptime at start
    cleanup: dict[str, Any]

    def diagnostics(self) -> str:
        return (f"qemu exit {self.result.returncode} after {self.result.seconds:.0f}s "
                f"(accel {self.result.accel})\n--- guest output ---\n"
                f"{self.result.output[-6000:]}\n--- console (tail) ---\n"
                f"{self.result.console[-3000:]}")


def parse(result: boot.VmResult) -> GuestRun:
    checks: dict[str, dict[str, Any]] = {}
    guest: dict[str, Any] = {}
    cleanup: dict[str, Any] = {}
    for line in result.lines:
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a kernel message cut into the line; the check then reads as missing
        if "check" in record:
            checks[record["check"]] = record
        elif "guest" in record:
            guest = record["guest"]
        elif "cleanup" in record:
            cleanup = record
    return GuestRun(result, checks, guest, cleanup)


@pytest.fixture(scope="module")
def guest_run() -> Iterator[GuestRun]:
    workdir = Path(tempfile.mkdtemp(prefix="sampan-test-vm-"))
    vm: boot.Vm | None = None
    try:
        vm = boot.boot(boot.guest_checks_command(), workdir)
        run = parse(vm.wait(timeout=VM_TIMEOUT))
        print(f"\nsampan VM: accel {run.result.accel}, guest kernel {run.guest.get('kernel')}, "
              f"driver started {run.guest.get('uptime')}s after kernel start, "
              f"total {run.result.seconds:.1f}s")
        yield run
    finally:
        if vm is not None:
            vm.kill()  # by pid; a no-op when qemu has powered off
        shutil.rmtree(workdir, ignore_errors=True)


def test_vm_boots_pure_cgroup_v2_and_the_guest_driver_finishes(guest_run: GuestRun) -> None:
    assert boot.DONE in guest_run.result.lines, guest_run.diagnostics()
    assert "SAMPAN-VM-EXIT 0" in guest_run.result.lines, guest_run.diagnostics()
    assert guest_run.result.returncode == 0, guest_run.diagnostics()  # powered off cleanly
    unknown = set(guest_run.checks) - set(CHECK_NAMES)
    assert not unknown, f"checks this test does not know: {unknown}"


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_guest_check(guest_run: GuestRun, name: str) -> None:
    record = guest_run.checks.get(name)
    assert record is not None, f"check {name} reported nothing\n{guest_run.diagnostics()}"
    assert record["ok"] is True, f"{name}: {record['detail']}"


def test_guest_cleanup_leaves_no_container_cgroups(guest_run: GuestRun) -> None:
    assert guest_run.cleanup == {"cleanup": "ok", "container_cgroups_left": []}, \
        guest_run.diagnostics()


# --- the VM plumbing itself (no VM needed) --------------------------------------------------


def test_initramfs_holds_init_busybox_and_the_9p_modules_in_load_order(
        tmp_path: Path) -> None:
    kernel = boot.find_kernel()
    target = tmp_path / "initramfs.cpio"
    boot.build_initramfs(target, kernel, ["/usr/bin/true"])
    data = target.read_bytes()
    names = []
    offset = 0
    while True:
        assert data[offset:offset + 6] == b"070701"
        size, name_size = int(data[offset + 54:offset + 62], 16), \
            int(data[offset + 94:offset + 102], 16)
        name = data[offset + 110:offset + 110 + name_size - 1].decode()
        if name == "TRAILER!!!":
            break
        names.append(name)
        offset += 110 + name_size
        offset += -offset % 4
        if name == "modules/order":
            order = data[offset:offset + size].decode().split()
        offset += size + (-size % 4)
    assert {"init", "bin/busybox", "guest.env", "modules/order"} <= set(names)
    # every dependency is loaded before its user
    assert order.index("virtio.ko") < order.index("virtio_pci.ko")
    assert order.index("9pnet.ko") < order.index("9pnet_virtio.ko") < order.index("9p.ko")
    assert order.index("netfs.ko") < order.index("9p.ko")
    assert {f"modules/{m}" for m in order} <= set(names)
