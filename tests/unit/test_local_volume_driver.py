"""The local volume driver: option checks, the mount plans for type/device/o, and the
on-disk layout (a recording fake stands in for mount(2))."""

from __future__ import annotations

from pathlib import Path

import pytest

from sampan import errdefs
from sampan.drivers.volume.local import (
    MS_BIND,
    MS_REC,
    MS_REMOUNT,
    LocalDriver,
    MountCall,
    VolumeRecord,
    check_name,
    check_options,
    plan_mount,
)


class RecordingCalls:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None:
        self.calls.append(("mount", source, target, fstype, str(flags), data))

    def umount(self, target: str, flags: int = 0) -> None:
        self.calls.append(("umount", target))


def test_plans_for_the_local_driver_options() -> None:
    assert plan_mount({}) == []
    assert plan_mount({"type": "tmpfs", "device": "tmpfs", "o": "size=64m,uid=1000,noexec"}) == [
        MountCall("tmpfs", "tmpfs", 0x8, "size=64m,uid=1000")]
    assert plan_mount({"type": "none", "device": "/srv/x", "o": "rbind,ro"}) == [
        MountCall("/srv/x", "none", MS_BIND | MS_REC, ""),
        MountCall("", "none", MS_BIND | MS_REMOUNT | 0x1, "")]
    assert plan_mount({"type": "ext4", "device": "/dev/sdz1"}) == [
        MountCall("/dev/sdz1", "ext4", 0, "")]


@pytest.mark.parametrize("options", [{"size": "1"}, {"device": "x"}, {"type": "tmpfs"},
                                     {"o": "size=1m"}])
def test_bad_options_are_refused(options: dict[str, str]) -> None:
    with pytest.raises(errdefs.InvalidParameter):
        check_options(options)


@pytest.mark.parametrize("name", ["a", "-x", "a/b", "a b", ".."])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(errdefs.InvalidParameter, match="includes invalid characters"):
        check_name(name)


def test_create_load_remove_and_half_made_leftovers(tmp_path: Path) -> None:
    calls = RecordingCalls()
    driver = LocalDriver(str(tmp_path), calls)
    record = VolumeRecord(name="v1", created_at=1, labels={"a": "b"})
    driver.create(record)
    assert Path(driver.data_path("v1")).is_dir()
    (tmp_path / "half" / "_data").mkdir(parents=True)  # a crash before volume.json
    assert driver.load() == [record]
    assert not (tmp_path / "half").exists()
    (Path(driver.data_path("v1")) / "f").write_bytes(b"12345")
    assert driver.size("v1") == 5
    assert driver.mount(record) == driver.data_path("v1") and calls.calls == []
    driver.remove(record)
    assert not (tmp_path / "v1").exists() and driver.load() == []
