"""Live restore's reconciliation of ``state.db`` with the supervisor's tasks, including a
sampand that died between the runtime's create and start (fake supervisor, no root)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sampan.daemon.containers import ContainerService
from sampan.daemon.events import EventBus
from sampan.daemon.model import CREATED, EXITED, RUNNING, Container, ContainerState
from sampan.daemon.paths import DaemonPaths
from sampan.daemon.rootfs import RootfsMounter
from sampan.daemon.store import ContainerStore


class FakeSupervisor:
    def __init__(self, tasks: list[dict[str, Any]], start_fails: bool = False) -> None:
        self.tasks = tasks
        self.start_fails = start_fails
        self.calls: list[tuple[str, str]] = []

    async def list(self) -> list[dict[str, Any]]:
        return self.tasks

    async def start(self, id: str) -> int:
        self.calls.append(("start", id))
        if self.start_fails:
            from sampan import errdefs
            raise errdefs.System("runtime start: boom")
        return 42

    async def delete(self, id: str, *, force: bool = False) -> Any:
        self.calls.append(("delete", id))
        return None

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected supervisor call {name}")


class NoMounts:
    def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None:
        raise AssertionError("no mount expected")

    def umount(self, target: str, flags: int = 0) -> None:
        raise AssertionError("nothing is mounted")


class Layers:
    driver_name = "vfs"


def _container(cid: str, name: str, status: str) -> Container:
    return Container(id=cid, name=name, created=1, image="busybox", image_id="sha256:x",
                     path="sleep", args=["1"], config={},
                     host_config={"RestartPolicy": {"Name": "no"}, "LogConfig": {
                         "Type": "json-file", "Config": {}}},
                     state=ContainerState(status=status, pid=42 if status == RUNNING else 0,
                                          started_at=5 if status == RUNNING else 0))


def _service(tmp_path: Path, supervisor: FakeSupervisor,
             containers: list[Container]) -> tuple[ContainerService, EventBus]:
    paths = DaemonPaths(str(tmp_path / "data"), str(tmp_path / "exec"))
    (tmp_path / "data").mkdir()
    store = ContainerStore(paths.state_db)
    for container in containers:
        store.insert(container)
    events = EventBus()
    service = ContainerService(
        paths=paths, store=store, images=None, layers=Layers(),  # type: ignore[arg-type]
        supervisor=supervisor,  # type: ignore[arg-type]
        events=events, mounter=RootfsMounter(NoMounts()), build_spec=lambda c, r, p: {},
        runtimes={"sampan-runc": "/bin/true"}, default_runtime="sampan-runc")
    return service, events


def test_task_created_but_not_started_is_started(tmp_path: Path) -> None:
    cid = "a" * 64
    supervisor = FakeSupervisor([{"id": cid, "status": "created", "pid": 42}])
    service, _ = _service(tmp_path, supervisor, [_container(cid, "/c1", RUNNING)])
    asyncio.run(service.restore())
    assert supervisor.calls == [("start", cid)]
    assert service.get(cid).state.status == RUNNING
    assert service.get(cid).state.pid == 42


def test_start_that_cannot_be_resumed_ends_as_exited(tmp_path: Path) -> None:
    cid = "b" * 64
    supervisor = FakeSupervisor([{"id": cid, "status": "created", "pid": 42}],
                                start_fails=True)
    service, _ = _service(tmp_path, supervisor, [_container(cid, "/c2", RUNNING)])
    asyncio.run(service.restore())
    state = service.get(cid).state
    assert state.status == EXITED and state.pid == 0
    assert ("delete", cid) in supervisor.calls


def test_task_of_a_container_still_created_is_discarded(tmp_path: Path) -> None:
    cid, orphan = "c" * 64, "d" * 64
    supervisor = FakeSupervisor([{"id": cid, "status": "created", "pid": 42},
                                 {"id": orphan, "status": "running", "pid": 43}])
    service, _ = _service(tmp_path, supervisor, [_container(cid, "/c3", CREATED)])
    asyncio.run(service.restore())
    assert sorted(supervisor.calls) == sorted([("delete", cid), ("delete", orphan)])
    assert service.get(cid).state.status == CREATED


def test_running_container_whose_task_vanished_is_exited(tmp_path: Path) -> None:
    cid = "e" * 64
    supervisor = FakeSupervisor([])
    service, _ = _service(tmp_path, supervisor, [_container(cid, "/c4", RUNNING)])
    asyncio.run(service.restore())
    assert service.get(cid).state.status == EXITED
