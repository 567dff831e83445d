"""The cgroup manager where cgroup v2 is the only hierarchy.

Each test body runs in a forked child that has its own mount namespace: / made rprivate, the
host's /sys/fs/cgroup tree detached, a tmpfs mounted there and cgroup2 mounted on it, so the
manager detects "v2". The unified hierarchy is the host's (the kernel has only one), and on
this hybrid host the v1 hierarchies own cpu, memory, pids and io: the cgroup2 mount offers only
hugetlb (plus the core files: cgroup.freeze, cgroup.kill, cpu.stat). The memory/pids/cpu/io
file writes are covered by the unit tests on the fake fs.

The parent removes the test's cgroup through /sys/fs/cgroup/unified in a finalizer, pass or
fail; the mounts vanish with the child's mount namespace (and are unmounted before it exits).
"""

import os
import posixpath
import signal
import subprocess
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator

import pytest

from sampan import errdefs
from sampan.kernel import bpf
from sampan.kernel.mount import MNT_DETACH, MS_PRIVATE, MS_REC, mount, umount
from sampan.kernel.namespaces import CLONE_NEWNS, unshare
from sampan.runtime.cgroups import detect_version, open_manager
from sampan.runtime.cgroups.v2 import V2Manager

pytestmark = pytest.mark.privileged

HOST_UNIFIED = "/sys/fs/cgroup/unified"
CGROUP = "/sys/fs/cgroup"


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def run_in_private_v2(body: Callable[[], None]) -> None:
    """Run ``body`` in a forked child that sees cgroup2 alone at /sys/fs/cgroup."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        status = 1
        try:
            os.close(reader)
            unshare(CLONE_NEWNS)
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            umount(CGROUP, MNT_DETACH)  # the hybrid tree (tmpfs + v1 mounts + unified)
            mount("tmpfs", CGROUP, "tmpfs", 0, "mode=755")
            mount("cgroup2", CGROUP, "cgroup2")
            try:
                body()
            finally:
                umount(CGROUP, MNT_DETACH)
                umount(CGROUP, MNT_DETACH)
            status = 0
        except BaseException:
            os.write(writer, traceback.format_exc().encode())
        finally:
            os.close(writer)
            os._exit(status)
    os.close(writer)
    with os.fdopen(reader, "rb") as f:
        report = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        pytest.fail(f"in the private cgroup2 namespace:\n{report}", pytrace=False)


@pytest.fixture
def name() -> Iterator[str]:
    """A unique cgroup name; whatever the child left behind is killed and removed."""
    cgroup_name = f"sampan-test-{uuid.uuid4().hex[:10]}"
    yield cgroup_name
    directory = posixpath.join(HOST_UNIFIED, cgroup_name)
    if not os.path.isdir(directory):
        return
    if os.path.exists(posixpath.join(directory, "cgroup.kill")):
        with open(posixpath.join(directory, "cgroup.kill"), "w") as f:
            f.write("1")
    for root, _, _ in sorted(os.walk(directory), key=lambda w: -len(w[0])):
        for _ in range(100):
            try:
                os.rmdir(root)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


def joined(manager: V2Manager) -> Callable[[], None]:
    return lambda: manager.add_process(os.getpid())


def new_manager(cgroup_name: str) -> V2Manager:
    manager = open_manager(f"/{cgroup_name}", cgroup_name)
    assert isinstance(manager, V2Manager)
    assert manager.path == posixpath.join(CGROUP, cgroup_name)
    manager.create()
    return manager


def test_mounted_cgroup2_alone_offers_only_hugetlb(name: str) -> None:
    def body() -> None:
        assert detect_version() == "v2"
        # the kernel binds each controller to one hierarchy: v1 holds the rest here
        assert read(f"{CGROUP}/cgroup.controllers").split() == ["hugetlb"]

    run_in_private_v2(body)


def test_create_add_process_pids_and_destroy(name: str) -> None:
    def body() -> None:
        manager = new_manager(name)
        assert manager.to_state()["version"] == "v2"
        proc = subprocess.Popen(["sleep", "100"], preexec_fn=joined(manager))
        try:
            assert manager.pids() == [proc.pid]
            assert f"0::/{name}" in read(f"/proc/{proc.pid}/cgroup").splitlines()
            child = posixpath.join(manager.path, "inner")
            os.mkdir(child)
            with open(posixpath.join(child, "cgroup.procs"), "w") as f:
                f.write(str(proc.pid))
            assert manager.pids() == [proc.pid]  # found recursively
        finally:
            proc.kill()
            proc.wait()
        manager.destroy()
        assert not os.path.exists(manager.path)
        assert not os.path.exists(posixpath.join(manager.path, "inner"))

    run_in_private_v2(body)


def test_freeze_and_thaw_through_cgroup_freeze(name: str) -> None:
    def body() -> None:
        manager = new_manager(name)
        proc = subprocess.Popen(["sleep", "100"], preexec_fn=joined(manager))
        try:
            manager.freeze()
            assert manager.is_frozen()
            assert "frozen 1" in read(f"{manager.path}/cgroup.events").splitlines()
            assert load(manager).is_frozen()
            manager.thaw()
            assert not manager.is_frozen()
            assert "frozen 0" in read(f"{manager.path}/cgroup.events").splitlines()
        finally:
            proc.kill()
            proc.wait()
            manager.destroy()

    run_in_private_v2(body)


def load(manager: V2Manager) -> V2Manager:
    from sampan.runtime.cgroups import load_manager

    loaded = load_manager(manager.to_state())
    assert isinstance(loaded, V2Manager)
    return loaded


def test_kill_all(name: str) -> None:
    def body() -> None:
        manager = new_manager(name)
        procs = [subprocess.Popen(["sleep", "100"], preexec_fn=joined(manager)) for _ in range(2)]
        try:
            manager.kill_all(signal.SIGTERM)  # freeze, signal each, thaw
            assert [p.wait(timeout=30) for p in procs] == [-signal.SIGTERM] * 2
            procs = [subprocess.Popen(["sleep", "100"], preexec_fn=joined(manager))]
            manager.kill_all(signal.SIGKILL)  # cgroup.kill
            assert procs[0].wait(timeout=30) == -signal.SIGKILL
            assert not manager.is_frozen()
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            manager.destroy()

    run_in_private_v2(body)


def test_hugetlb_limits(name: str) -> None:
    def body() -> None:
        manager = new_manager(name)
        try:
            # create() enabled hugetlb for the new cgroup from the root
            assert "hugetlb" in read(f"{CGROUP}/cgroup.subtree_control").split()
            manager.apply_resources(
                {
                    "hugepageLimits": [
                        {"pageSize": "2MB", "limit": 4 << 20},
                        {"pageSize": "1GB", "limit": 1 << 30},
                    ]
                }
            )
            assert read(f"{manager.path}/hugetlb.2MB.max") == str(4 << 20)
            assert read(f"{manager.path}/hugetlb.1GB.max") == str(1 << 30)
            manager.update({"hugepageLimits": [{"pageSize": "2MB", "limit": -1}]})
            assert read(f"{manager.path}/hugetlb.2MB.max") == "max"
            stats = manager.stats()
            assert stats["hugetlb"]["2MB"] == {"usage": 0, "max": 0, "failcnt": 0}
            assert "cpu" in stats  # cpu.stat is a core file
            assert "memory" not in stats and "pids" not in stats  # no controller: left out
        finally:
            manager.destroy()

    run_in_private_v2(body)


def test_missing_controllers_give_clear_errors(name: str) -> None:
    def body() -> None:
        manager = new_manager(name)
        try:
            for resources, controller in (
                ({"memory": {"limit": 64 << 20}}, "memory"),
                ({"pids": {"limit": 10}}, "pids"),
                ({"cpu": {"shares": 512}}, "cpu"),
            ):
                with pytest.raises(errdefs.Unavailable) as info:
                    manager.apply_resources(resources)
                message = str(info.value)
                assert f"cgroup controller {controller} is not available" in message
                assert manager.path in message
            # not requested: nothing to complain about
            manager.apply_resources({"memory": {"limit": 0}, "pids": {"limit": 0}})
            assert manager.oom_kill_count() == 0
        finally:
            manager.destroy()

    run_in_private_v2(body)


DEVICE_SCRIPT = """
cat ./null && echo null-open
head -c 4 ./zero | wc -c
mknod ./made c 1 3 || echo mknod-denied
"""


def test_device_filter_program_denies_and_allows(name: str) -> None:
    def body() -> None:
        manager = new_manager(name)
        scratch = tempfile.mkdtemp(prefix="sampan-test-dev-")
        # a fresh tmpfs: device nodes work there whatever /tmp's mount options are
        mount("tmpfs", scratch, "tmpfs", 0, "mode=755")
        try:
            os.mknod(f"{scratch}/null", 0o666 | 0o020000, os.makedev(1, 3))
            os.mknod(f"{scratch}/zero", 0o666 | 0o020000, os.makedev(1, 5))
            rules = [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rw"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "r"},
            ]
            manager.apply_resources({"devices": rules})
            manager.apply_resources({"devices": rules})  # replaces, does not stack
            fd = os.open(manager.path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                assert len(bpf.prog_query_device(fd)) == 1
            finally:
                os.close(fd)
            # stdio is opened before the process joins the cgroup; the script opens devices
            proc = subprocess.run(
                ["sh", "-c", DEVICE_SCRIPT],
                cwd=scratch,
                preexec_fn=joined(manager),
                capture_output=True,
                text=True,
                timeout=30,
            )
            out = proc.stdout.split()
            assert "null-open" not in out  # c 1:3 read is denied by the last rule
            assert "Operation not permitted" in proc.stderr
            assert "4" in out  # c 1:5 read is allowed
            assert "mknod-denied" in out
            assert not os.path.exists(f"{scratch}/made")
            # outside the cgroup the same node opens fine
            with open(f"{scratch}/null") as null:
                assert null.read() == ""
        finally:
            umount(scratch, MNT_DETACH)
            os.rmdir(scratch)
            manager.destroy()

    run_in_private_v2(body)

