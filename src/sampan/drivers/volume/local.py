"""Docker's ``local`` volume driver: one directory per volume under ``<data-root>/volumes``.

Layout (Docker's)::

    <root>/<name>/_data          the data; containers bind-mount this directory
    <root>/<name>/volume.json    name, labels, driver options, creation time, anonymous flag

``volume.json`` is written (temp + rename) after ``_data`` exists, so a crash leaves either no
volume or a complete one; :meth:`LocalDriver.load` removes half-made directories.

With the options ``type``, ``device`` and ``o`` (``docker volume create --opt``) the volume is
a mount made on ``_data`` when the first running container needs it and undone when the last
one stops, as Docker's local driver does: ``type=tmpfs device=tmpfs o=size=64m``,
``type=none device=/srv/x o=bind``, ``type=ext4 device=/dev/sdb1``. The mounts are *planned*
by :func:`plan_mount` (pure) and made by the injected ``calls``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Protocol

from sampan import errdefs

DRIVER_NAME = "local"
VALID_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
OPTION_KEYS = ("type", "device", "o")
_META = "volume.json"
_DATA = "_data"

MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 2

# mount(8) option words that are flags, not filesystem data (mount(2) "mountflags")
_FLAG_WORDS: dict[str, tuple[int, bool]] = {
    "ro": (0x1, True), "rw": (0x1, False),
    "nosuid": (0x2, True), "suid": (0x2, False),
    "nodev": (0x4, True), "dev": (0x4, False),
    "noexec": (0x8, True), "exec": (0x8, False),
    "sync": (0x10, True), "async": (0x10, False),
    "dirsync": (0x80, True),
    "noatime": (0x400, True), "atime": (0x400, False),
    "nodiratime": (0x800, True), "diratime": (0x800, False),
    "relatime": (0x200000, True), "norelatime": (0x200000, False),
    "strictatime": (0x1000000, True),
}


class MountCalls(Protocol):
    def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None: ...
    def umount(self, target: str, flags: int = 0) -> None: ...


@dataclass(frozen=True)
class MountCall:
    """One mount(2) call of a plan."""

    source: str
    fstype: str
    flags: int
    data: str


@dataclass
class VolumeRecord:
    name: str
    created_at: int  # ns since the epoch
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False
    driver: str = DRIVER_NAME


def check_name(name: str) -> None:
    if not VALID_NAME.match(name):
        raise errdefs.InvalidParameter(
            f'"{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path")


def check_options(options: Mapping[str, str]) -> None:
    for key in options:
        if key not in OPTION_KEYS:
            raise errdefs.InvalidParameter(f'invalid option key: "{key}"')
    if options.get("device") and not options.get("type"):
        raise errdefs.InvalidParameter('missing required option: "type"')
    if options.get("type") and not options.get("device"):
        raise errdefs.InvalidParameter('missing required option: "device"')
    if options.get("o") and not options.get("type"):
        raise errdefs.InvalidParameter('missing required option: "type"')


def plan_mount(options: Mapping[str, str]) -> list[MountCall]:
    """The mount(2) calls that make a volume with these options (none for a plain directory).

    ``o`` is split as mount(8) does: flag words become mount flags, the rest is the
    filesystem's data. ``bind``/``rbind`` in ``o`` bind-mount ``device``; a read-only bind
    needs a second, remounting call (mount(2) ignores MS_RDONLY with a new MS_BIND).
    """
    if not options.get("type"):
        return []
    flags = 0
    data: list[str] = []
    bind = False
    recursive = False
    for word in filter(None, (w.strip() for w in options.get("o", "").split(","))):
        if word in ("bind", "rbind"):
            bind = True
            recursive = recursive or word == "rbind"
        elif word in _FLAG_WORDS:
            bit, on = _FLAG_WORDS[word]
            flags = flags | bit if on else flags & ~bit
        else:
            data.append(word)
    device = options["device"]
    if bind:
        calls = [MountCall(device, "none", MS_BIND | (MS_REC if recursive else 0), "")]
        if flags:
            calls.append(MountCall("", "none", MS_BIND | MS_REMOUNT | flags, ""))
        return calls
    return [MountCall(device, options["type"], flags, ",".join(data))]


def is_mounted(target: str, mountinfo: str = "/proc/self/mountinfo") -> bool:
    target = os.path.realpath(target)
    try:
        with open(mountinfo) as handle:
            return any(line.split(" ")[4].replace("\\040", " ") == target for line in handle)
    except FileNotFoundError:
        return False


class LocalDriver:
    name = DRIVER_NAME

    def __init__(self, root: str, calls: MountCalls) -> None:
        self.root = root
        self._calls = calls
        os.makedirs(root, mode=0o701, exist_ok=True)

    def data_path(self, name: str) -> str:
        return os.path.join(self.root, name, _DATA)

    def load(self) -> list[VolumeRecord]:
        """Every complete volume; half-made directories (a crash during create) go."""
        found = []
        for name in sorted(os.listdir(self.root)):
            directory = os.path.join(self.root, name)
            try:
                with open(os.path.join(directory, _META)) as handle:
                    found.append(VolumeRecord(**json.load(handle)))
            except FileNotFoundError:
                if not is_mounted(os.path.join(directory, _DATA)):
                    shutil.rmtree(directory, ignore_errors=True)
            except (OSError, ValueError, TypeError):
                continue
        return found

    def create(self, record: VolumeRecord) -> None:
        check_name(record.name)
        check_options(record.options)
        directory = os.path.join(self.root, record.name)
        os.makedirs(os.path.join(directory, _DATA), mode=0o755, exist_ok=True)
        temp = os.path.join(directory, _META + ".tmp")
        with open(temp, "w") as handle:
            json.dump(asdict(record), handle)
        os.rename(temp, os.path.join(directory, _META))

    def mount(self, record: VolumeRecord) -> str:
        """Make the volume's mount if it has one and it is not there yet; the data path."""
        target = self.data_path(record.name)
        plan = plan_mount(record.options)
        if plan and not is_mounted(target):
            for call in plan:
                try:
                    self._calls.mount(call.source or target, target, call.fstype, call.flags,
                                      call.data)
                except OSError as exc:
                    with contextlib.suppress(OSError):
                        if is_mounted(target):
                            self._calls.umount(target, MNT_DETACH)
                    raise errdefs.System(
                        f"error while mounting volume '{target}': {exc}") from exc
        return target

    def unmount(self, record: VolumeRecord) -> None:
        target = self.data_path(record.name)
        if not plan_mount(record.options):
            return
        while is_mounted(target):
            self._calls.umount(target, MNT_DETACH)

    def remove(self, record: VolumeRecord) -> None:
        """Unmount if mounted, then delete: never delete through a mount (a bind of a host
        directory would lose the host's files)."""
        target = self.data_path(record.name)
        while is_mounted(target):
            self._calls.umount(target, MNT_DETACH)
        directory = os.path.join(self.root, record.name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, _META))
        shutil.rmtree(directory, ignore_errors=True)

    def size(self, name: str) -> int:
        """Bytes of the files in the volume (``system df``); -1 when unknown."""
        total = 0
        try:
            for _, _, files, dir_fd in os.fwalk(self.data_path(name)):
                for file in files:
                    with contextlib.suppress(OSError):
                        total += os.lstat(file, dir_fd=dir_fd).st_size
        except OSError:
            return -1
        return total
