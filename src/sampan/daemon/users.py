"""Resolving Docker's ``User`` ("name", "uid", "name:group", "uid:gid") against the
container's /etc/passwd and /etc/group (pure parsing; the caller reads the files)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sampan import errdefs


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)


def _entries(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines()
            if line and not line.startswith("#")]


def resolve_user(user: str, passwd: str, group: str) -> ResolvedUser:
    name, _, group_name = user.partition(":")
    uid, gid = 0, 0
    home_user: str | None = None
    if name:
        if name.isdigit():
            uid = int(name)
            for entry in _entries(passwd):
                if len(entry) > 3 and entry[2] == name:
                    gid = int(entry[3])
                    home_user = entry[0]
                    break
        else:
            for entry in _entries(passwd):
                if entry[0] == name and len(entry) > 3:
                    uid, gid, home_user = int(entry[2]), int(entry[3]), name
                    break
            else:
                raise errdefs.InvalidParameter(
                    f"unable to find user {name}: no matching entries in passwd file")
    if group_name:
        if group_name.isdigit():
            gid = int(group_name)
        else:
            for entry in _entries(group):
                if entry[0] == group_name and len(entry) > 2:
                    gid = int(entry[2])
                    break
            else:
                raise errdefs.InvalidParameter(
                    f"unable to find group {group_name}: no matching entries in group file")
    extra: list[int] = []
    if home_user is not None:
        for entry in _entries(group):
            if len(entry) > 3 and home_user in entry[3].split(",") and int(entry[2]) != gid:
                extra.append(int(entry[2]))
    return ResolvedUser(uid, gid, extra)
