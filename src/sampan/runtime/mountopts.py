"""OCI mount options -> mount(2) flags, propagation flags and filesystem data."""


from __future__ import annotations

import collections

from sampan.kernel import mount as m

# option -> (clear the flag instead of setting it, flag)
_FLAGS: dict[str, tuple[bool, int]] = {
    "async": (True, m.MS_SYNCHRONOUS),
    "atime": (True, m.MS_NOATIME),
    "bind": (False, m.MS_BIND),
    "defaults": (False, 0),
    "dev": (True, m.MS_NODEV),
    "diratime": (True, m.MS_NODIRATIME),
    "dirsync": (False, m.MS_DIRSYNC),
    "exec": (True, m.MS_NOEXEC),
    "mand": (False, m.MS_MANDLOCK),
    "noatime": (False, m.MS_NOATIME),
    "nodev": (False, m.MS_NODEV),
    "nodiratime": (False, m.MS_NODIRATIME),
    "noexec": (False, m.MS_NOEXEC),
    "nomand": (True, m.MS_MANDLOCK),
    "norelatime": (True, m.MS_RELATIME),
    "nostrictatime": (True, m.MS_STRICTATIME),
    "nosuid": (False, m.MS_NOSUID),
    "nosymfollow": (False, m.MS_NOSYMFOLLOW),
    "rbind": (False, m.MS_BIND | m.MS_REC),
    "relatime": (False, m.MS_RELATIME),
    "remount": (False, m.MS_REMOUNT),
    "ro": (False, m.MS_RDONLY),
    "rw": (True, m.MS_RDONLY),
    "strictatime": (False, m.MS_STRICTATIME),
    "suid": (True, m.MS_NOSUID),
    "sync": (False, m.MS_SYNCHRONOUS),
}

_PROPAGATION: dict[str, int] = {
    "private": m.MS_PRIVATE,
    "rprivate": m.MS_PRIVATE | m.MS_REC,
    "shared": m.MS_SHARED,
    "rshared": m.MS_SHARED | m.MS_REC,
    "slave": m.MS_SLAVE,
    "rslave": m.MS_SLAVE | m.MS_REC,
    "unbindable": m.MS_UNBINDABLE,
    "runbindable": m.MS_UNBINDABLE | m.MS_REC,
}

# options some callers send that only matter to other runtimes
_IGNORED = {"tmpcopyup", "idmap", "ridmap", "copy-symlink"}


# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple

    class MountOptions(NamedTuple):
        flags: int
        propagation: list[int]
        data: str
else:
    MountOptions = collections.namedtuple("MountOptions", "flags propagation data")


def parse(options: list[str]) -> MountOptions:
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    for option in options:
        if option in _FLAGS:
            clear, flag = _FLAGS[option]
            flags = flags & ~flag if clear else flags | flag
        elif option in _PROPAGATION:
            propagation.append(_PROPAGATION[option])
        elif option in _IGNORED:
            continue
        else:
            data.append(option)
    return MountOptions(flags, propagation, ",".join(data))


def propagation_flag(name: str) -> int:
    """rootfsPropagation value -> flags; KeyError for an unknown name."""
    return _PROPAGATION[name]
