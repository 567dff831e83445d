"""A container's mount points from its create request (pure logic).

Docker's sources of mounts, in the order it applies them (later ones win on the same
destination, except that ``Binds`` and ``Mounts`` may not name the same one):

1. ``HostConfig.VolumesFrom`` (``ctr[:ro|rw]``): the volume and bind mounts of another
   container;
2. ``HostConfig.Binds`` (``-v``): ``/host:/ctr[:mode]`` bind mounts, ``name:/ctr[:mode]``
   named volumes (the CLI puts a lone ``-v /ctr`` into ``Config.Volumes`` instead);
3. ``HostConfig.Mounts`` (``--mount``): type bind, volume or tmpfs with Docker's options;
4. ``Config.Volumes`` (the image's ``VOLUME`` and the CLI's ``-v /ctr``): an anonymous
   volume for every destination not mounted yet.

Modes of ``-v`` (moby volume/mounts/linux_parser.go): ``ro``/``rw``, SELinux ``z``/``Z``
(accepted; there is no SELinux here), propagation ``[r]shared|[r]slave|[r]private`` (binds
only), ``nocopy`` (volumes only), and the ignored consistency words; each kind at most once.
A volume mount point starts with ``copy_data``: when the volume is empty at the container's
start, the image's content at the destination is copied into it (``nocopy`` opts out).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sampan import errdefs
from sampan.drivers.volume.local import check_name

VOLUME = "volume"
BIND = "bind"
TMPFS = "tmpfs"

DEFAULT_PROPAGATION = "rprivate"
TMPFS_DEFAULT_OPTIONS = ("nosuid", "nodev", "noexec")
_PROPAGATIONS = frozenset({"shared", "rshared", "slave", "rslave", "private", "rprivate"})
_MODE_KINDS: dict[str, frozenset[str]] = {
    "rw": frozenset({"rw", "ro"}),
    "label": frozenset({"z", "Z"}),
    "propagation": _PROPAGATIONS,
    "copy": frozenset({"nocopy"}),
    "consistency": frozenset({"consistent", "cached", "delegated"}),
}


@dataclass
class MountPoint:
    """One mount of a container, as stored with it (Docker's ``MountPoint``)."""

    type: str  # volume | bind | tmpfs
    destination: str
    source: str = ""  # host path: the bind's source, the volume's data directory
    name: str = ""  # volume name ("" until an anonymous volume is named)
    driver: str = ""
    mode: str = ""  # as the user wrote it (inspect shows it)
    rw: bool = True
    propagation: str = ""
    copy_data: bool = False
    anonymous: bool = False
    create_source: bool = False  # ``-v /missing:/x`` makes /missing at start
    volume_options: dict[str, str] = field(default_factory=dict)
    volume_labels: dict[str, str] = field(default_factory=dict)
    tmpfs_size: int = 0
    tmpfs_mode: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MountPoint:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def clean_destination(path: str, spec: str) -> str:
    if not path.startswith("/"):
        raise errdefs.InvalidParameter(
            f"invalid mount config: invalid mount path: '{path}' mount path must be absolute")
    cleaned = os.path.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if cleaned == "/":
        raise errdefs.InvalidParameter(
            f"invalid specification: destination can't be '/' in '{spec}'")
    return cleaned


def _parse_mode(mode: str, spec: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for word in mode.split(","):
        kind = next((k for k, words in _MODE_KINDS.items() if word in words), None)
        if kind is None or kind in found:
            raise errdefs.InvalidParameter(f"invalid mode: {mode}")
        found[kind] = word
    return found


def _is_mode(text: str) -> bool:
    try:
        _parse_mode(text, text)
    except errdefs.InvalidParameter:
        return False
    return True


def parse_bind(spec: str) -> MountPoint:
    """One ``HostConfig.Binds`` entry (``docker run -v``)."""
    parts = spec.split(":")
    if len(parts) == 2 and parts[0].startswith("/") and _is_mode(parts[1]) \
            and not parts[1].startswith("/"):
        parts = ["", *parts]  # "/ctr:ro": an anonymous volume with a mode
    if len(parts) == 1:
        parts = ["", parts[0]]
    if len(parts) not in (2, 3) or not parts[1]:
        raise errdefs.InvalidParameter(f"invalid volume specification: '{spec}'")
    source, destination = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    modes = _parse_mode(mode, spec) if mode else {}
    destination = clean_destination(destination, spec)
    rw = modes.get("rw", "rw") == "rw"
    if source.startswith("/"):
        if "copy" in modes:
            raise errdefs.InvalidParameter(f"invalid mode: {mode}")
        return MountPoint(type=BIND, destination=destination, source=os.path.normpath(source),
                          mode=mode, rw=rw,
                          propagation=modes.get("propagation", DEFAULT_PROPAGATION),
                          create_source=True)
    if "propagation" in modes:
        raise errdefs.InvalidParameter(f"invalid mode: {mode}")
    if source:
        check_name(source)
    return MountPoint(type=VOLUME, destination=destination, name=source,
                      mode=mode or "z", rw=rw, copy_data="copy" not in modes,
                      anonymous=not source)


def _field_error(kind: str, message: str) -> errdefs.InvalidParameter:
    return errdefs.InvalidParameter(f'invalid mount config for type "{kind}": {message}')


def parse_mount(mount: Mapping[str, Any], path_exists: Callable[[str], bool]) -> MountPoint:
    """One ``HostConfig.Mounts`` entry (``docker run --mount``)."""
    kind = str(mount.get("Type") or "")
    target = str(mount.get("Target") or "")
    source = str(mount.get("Source") or "")
    if kind not in (VOLUME, BIND, TMPFS):
        raise _field_error(kind, "mount type unknown")
    if not target:
        raise _field_error(kind, "field Target must not be empty")
    destination = clean_destination(target, target)
    read_only = bool(mount.get("ReadOnly"))
    for option_kind in (BIND, VOLUME, TMPFS):
        key = {"bind": "BindOptions", "volume": "VolumeOptions", "tmpfs": "TmpfsOptions"}[
            option_kind]
        if option_kind != kind and mount.get(key):
            raise _field_error(kind, f"field {key} must not be specified")
    if kind == BIND:
        options = mount.get("BindOptions") or {}
        if not source:
            raise _field_error(kind, "field Source must not be empty")
        if not source.startswith("/"):
            raise _field_error(kind, f"invalid mount path: '{source}' mount path must be "
                               "absolute")
        create = bool(options.get("CreateMountpoint"))
        if not create and not path_exists(source):
            raise _field_error(kind, f"bind source path does not exist: {source}")
        propagation = str(options.get("Propagation") or DEFAULT_PROPAGATION)
        if propagation not in _PROPAGATIONS:
            raise _field_error(kind, f"invalid propagation mode: {propagation}")
        return MountPoint(type=BIND, destination=destination, source=os.path.normpath(source),
                          rw=not read_only, propagation=propagation, create_source=create)
    if kind == TMPFS:
        options = mount.get("TmpfsOptions") or {}
        if source:
            raise _field_error(kind, "field Source must not be specified")
        size = int(options.get("SizeBytes") or 0)
        if size < 0:
            raise _field_error(kind, f"invalid tmpfs size: {size}")
        return MountPoint(type=TMPFS, destination=destination, rw=not read_only,
                          tmpfs_size=size, tmpfs_mode=int(options.get("Mode") or 0))
    options = mount.get("VolumeOptions") or {}
    if source:
        check_name(source)
    driver_config = options.get("DriverConfig") or {}
    driver = str(driver_config.get("Name") or "")
    return MountPoint(type=VOLUME, destination=destination, name=source, driver=driver,
                      rw=not read_only, copy_data=not options.get("NoCopy"),
                      anonymous=not source,
                      volume_options={str(k): str(v) for k, v in
                                      (driver_config.get("Options") or {}).items()},
                      volume_labels={str(k): str(v) for k, v in
                                     (options.get("Labels") or {}).items()})


def parse_volumes_from(spec: str) -> tuple[str, str]:
    """``ctr[:ro|rw]`` -> (container, mode or "")."""
    name, _, mode = spec.partition(":")
    if not name:
        raise errdefs.InvalidParameter(f"invalid volumes-from specification: '{spec}'")
    if mode not in ("", "ro", "rw"):
        raise errdefs.InvalidParameter(f"invalid mode for volumes-from: {mode}")
    return name, mode


def plan_mount_points(
    config: Mapping[str, Any],
    host_config: Mapping[str, Any],
    volumes_from: Callable[[str], Sequence[MountPoint]],
    path_exists: Callable[[str], bool],
) -> list[MountPoint]:
    """Every mount point of a new container, in Docker's precedence (see the module doc).
    Volumes are not created here: anonymous ones still have no ``name``."""
    points: dict[str, MountPoint] = {}
    for spec in host_config.get("VolumesFrom") or []:
        name, mode = parse_volumes_from(str(spec))
        for point in volumes_from(name):
            if point.type == TMPFS:
                continue
            copy = MountPoint.from_json(point.to_json())
            copy.copy_data = False
            copy.create_source = False
            if mode:
                copy.rw = mode == "rw"
                copy.mode = mode
            points[copy.destination] = copy
    user: dict[str, MountPoint] = {}
    for spec in host_config.get("Binds") or []:
        point = parse_bind(str(spec))
        if point.destination in user:
            raise errdefs.InvalidParameter(f"Duplicate mount point: {point.destination}")
        user[point.destination] = point
    for mount in host_config.get("Mounts") or []:
        if not isinstance(mount, Mapping):
            raise errdefs.InvalidParameter("invalid mount config: expected an object")
        point = parse_mount(mount, path_exists)
        if point.destination in user:
            raise errdefs.InvalidParameter(f"Duplicate mount point: {point.destination}")
        user[point.destination] = point
    tmpfs = {clean_destination(str(d), str(d)) for d in (host_config.get("Tmpfs") or {})}
    for destination in tmpfs & set(user):
        raise errdefs.InvalidParameter(f"Duplicate mount point: {destination}")
    points.update(user)
    for destination in config.get("Volumes") or {}:
        cleaned = clean_destination(str(destination), str(destination))
        if cleaned in points or cleaned in tmpfs:
            continue
        points[cleaned] = MountPoint(type=VOLUME, destination=cleaned, copy_data=True,
                                     anonymous=True)
    volume_driver = str(host_config.get("VolumeDriver") or "")
    for point in points.values():
        if point.type == VOLUME and not point.driver:
            point.driver = volume_driver or "local"
    return list(points.values())


def mounts_json(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``Mounts`` of container inspect and list (Docker's ``MountPoint`` JSON)."""
    result = []
    for data in points:
        point = MountPoint.from_json(data)
        entry: dict[str, Any] = {"Type": point.type}
        if point.type == VOLUME:
            entry["Name"] = point.name
        entry["Source"] = point.source
        entry["Destination"] = point.destination
        if point.type == VOLUME:
            entry["Driver"] = point.driver
        entry["Mode"] = point.mode
        entry["RW"] = point.rw
        entry["Propagation"] = point.propagation
        result.append(entry)
    return result


def oci_mounts(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The OCI ``mounts`` entries for a container's mount points (binds of the volumes'
    data directories and of host paths; tmpfs), for the exec driver."""
    result = []
    for data in points:
        point = MountPoint.from_json(data)
        if point.type == TMPFS:
            options = list(TMPFS_DEFAULT_OPTIONS)
            if point.tmpfs_size:
                options.append(f"size={point.tmpfs_size}")
            if point.tmpfs_mode:
                options.append(f"mode={point.tmpfs_mode:o}")
            options.append("rw" if point.rw else "ro")
            result.append({"destination": point.destination, "type": "tmpfs",
                           "source": "tmpfs", "options": options})
            continue
        options = ["rbind", "rw" if point.rw else "ro",
                   point.propagation or DEFAULT_PROPAGATION]
        result.append({"destination": point.destination, "type": "bind",
                       "source": point.source, "options": options})
    return result
