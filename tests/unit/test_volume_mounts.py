"""Mount points from create requests (``daemon/mounts.py``): Docker's ``-v`` and ``--mount``
rules, precedence, and what inspect and the OCI spec get."""

from __future__ import annotations

import pytest

from sampan import errdefs
from sampan.daemon.mounts import (
    BIND,
    TMPFS,
    VOLUME,
    MountPoint,
    mounts_json,
    oci_mounts,
    parse_bind,
    parse_mount,
    plan_mount_points,
)


def test_bind_spec_forms() -> None:
    point = parse_bind("/host/dir:/ctr:ro,rshared")
    assert (point.type, point.source, point.destination, point.rw, point.propagation) == (
        BIND, "/host/dir", "/ctr", False, "rshared")
    assert point.create_source
    point = parse_bind("/host:/ctr")
    assert point.rw and point.propagation == "rprivate" and point.mode == ""


def test_volume_spec_forms() -> None:
    named = parse_bind("data:/var/lib/data:nocopy")
    assert (named.type, named.name, named.copy_data, named.anonymous) == (
        VOLUME, "data", False, False)
    assert parse_bind("data:/d").mode == "z" and parse_bind("data:/d").copy_data
    anonymous = parse_bind("/only/destination:ro")
    assert anonymous.type == VOLUME and anonymous.anonymous and not anonymous.rw
    assert anonymous.destination == "/only/destination"


@pytest.mark.parametrize("spec", [
    "/a:/", "a:relative", "/a:/b:ro,rw", "/a:/b:nocopy", "vol:/b:rshared", "/a:/b:bogus",
    "bad name:/x", "/a:/b:c:d",
])
def test_bad_bind_specs_are_invalid(spec: str) -> None:
    with pytest.raises(errdefs.InvalidParameter):
        parse_bind(spec)


def test_mount_bind_needs_an_existing_source_unless_asked_to_create() -> None:
    mount = {"Type": "bind", "Source": "/nope", "Target": "/x"}
    with pytest.raises(errdefs.InvalidParameter, match="bind source path does not exist"):
        parse_mount(mount, lambda path: False)
    created = parse_mount({**mount, "BindOptions": {"CreateMountpoint": True}}, lambda p: False)
    assert created.create_source
    ok = parse_mount({**mount, "ReadOnly": True, "BindOptions": {"Propagation": "rslave"}},
                     lambda path: True)
    assert (ok.rw, ok.propagation) == (False, "rslave")


def test_mount_volume_and_tmpfs_options() -> None:
    volume = parse_mount({"Type": "volume", "Source": "vv", "Target": "/v", "VolumeOptions": {
        "NoCopy": True, "Labels": {"a": "b"},
        "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}}}}, lambda p: True)
    assert (volume.name, volume.copy_data, volume.volume_labels, volume.volume_options) == (
        "vv", False, {"a": "b"}, {"type": "tmpfs"})
    tmpfs = parse_mount({"Type": "tmpfs", "Target": "/t",
                         "TmpfsOptions": {"SizeBytes": 1024, "Mode": 0o1770}}, lambda p: True)
    assert (tmpfs.type, tmpfs.tmpfs_size, tmpfs.tmpfs_mode) == (TMPFS, 1024, 0o1770)
    with pytest.raises(errdefs.InvalidParameter, match="Source must not be specified"):
        parse_mount({"Type": "tmpfs", "Source": "x", "Target": "/t"}, lambda p: True)
    with pytest.raises(errdefs.InvalidParameter, match="BindOptions must not be specified"):
        parse_mount({"Type": "volume", "Target": "/t", "BindOptions": {"Propagation": "shared"}},
                    lambda p: True)
    with pytest.raises(errdefs.InvalidParameter, match="mount type unknown"):
        parse_mount({"Type": "npipe", "Target": "/t"}, lambda p: True)


def test_plan_precedence_volumes_from_then_user_then_image_volumes() -> None:
    shared = MountPoint(type=VOLUME, destination="/shared", name="s", source="/v/s/_data",
                        driver="local", rw=True, anonymous=True, copy_data=True)
    over = MountPoint(type=VOLUME, destination="/over", name="o", source="/v/o/_data")

    def volumes_from(ref: str) -> list[MountPoint]:
        assert ref == "other"
        return [shared, over, MountPoint(type=TMPFS, destination="/tmpfs")]

    points = plan_mount_points(
        {"Volumes": {"/image": {}, "/over": {}, "/t": {}}},
        {"VolumesFrom": ["other:ro"], "Binds": ["/h:/over"], "Tmpfs": {"/t": ""}},
        volumes_from, lambda p: True)
    by_destination = {p.destination: p for p in points}
    assert set(by_destination) == {"/shared", "/over", "/image"}
    assert not by_destination["/shared"].rw and not by_destination["/shared"].copy_data
    assert by_destination["/over"].type == BIND
    image = by_destination["/image"]
    assert image.anonymous and image.copy_data and image.driver == "local" and not image.name


def test_duplicate_destinations_are_refused() -> None:
    with pytest.raises(errdefs.InvalidParameter, match="Duplicate mount point"):
        plan_mount_points({}, {"Binds": ["/a:/x"], "Mounts": [
            {"Type": "volume", "Target": "/x"}]}, lambda r: [], lambda p: True)


def test_inspect_and_oci_shapes() -> None:
    points = [MountPoint(type=VOLUME, destination="/v", name="n", source="/vol/n/_data",
                         driver="local", mode="z").to_json(),
              MountPoint(type=BIND, destination="/b", source="/h", rw=False, mode="ro",
                         propagation="rprivate").to_json(),
              MountPoint(type=TMPFS, destination="/t", tmpfs_size=4096).to_json()]
    assert mounts_json(points) == [
        {"Type": "volume", "Name": "n", "Source": "/vol/n/_data", "Destination": "/v",
         "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""},
        {"Type": "bind", "Source": "/h", "Destination": "/b", "Mode": "ro", "RW": False,
         "Propagation": "rprivate"},
        {"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "", "RW": True,
         "Propagation": ""}]
    assert oci_mounts(points) == [
        {"destination": "/v", "type": "bind", "source": "/vol/n/_data",
         "options": ["rbind", "rw", "rprivate"]},
        {"destination": "/b", "type": "bind", "source": "/h",
         "options": ["rbind", "ro", "rprivate"]},
        {"destination": "/t", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "noexec", "size=4096", "rw"]}]
