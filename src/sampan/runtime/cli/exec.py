"""exec [flags] <id> <command> [args...] or exec --process FILE <id>."""


from __future__ import annotations

import json
import sys

from sampan import errdefs
from sampan.runtime import foreground
from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec, int_flag, need_id
from sampan.runtime.container import Container
from sampan.runtime.execute import exec_process

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS: FlagSpec = {
    "process": (True, ("p",)),
    "tty": (False, ("t",)),
    "cwd": (True, ()),
    "env": (True, ("e",)),
    "user": (True, ("u",)),
    "additional-gids": (True, ("g",)),
    "cap": (True, ("c",)),
    "detach": (False, ("d",)),
    "pid-file": (True, ()),
    "console-socket": (True, ()),
    "no-new-privs": (False, ()),
    "preserve-fds": (True, ()),
    "apparmor": (True, ()),
    "process-label": (True, ()),
    "ignore-paused": (False, ()),
    "cgroup": (True, ()),
}


def _user_from(raw: str) -> dict[str, Any]:
    uid, _, gid = raw.partition(":")
    try:
        return {"uid": int(uid), "gid": int(gid) if gid else 0}
    except ValueError:
        raise errdefs.InvalidParameter(
            f"invalid --user {raw!r}: only numeric uid[:gid] is supported") from None


def build_process(container: Container, values: dict[str, Any],
                  command: list[str]) -> dict[str, Any]:
    """The process to run: --process FILE as given, or the container's process + flags."""
    if values.get("process"):
        path = values["process"]
        try:
            with open(path) as src:
                process: dict[str, Any] = json.load(src)
        except (OSError, ValueError) as exc:
            raise errdefs.InvalidParameter(f"cannot read process file {path}: {exc}") from None
        return process
    if not command:
        raise errdefs.InvalidParameter("exec: no command given")
    base = dict(container.config.get("process") or {})
    base.pop("consoleSize", None)
    process = {**base, "args": command, "terminal": bool(values.get("tty"))}
    process["env"] = list(base.get("env") or []) + list(values.get("env") or [])
    if values.get("cwd"):
        process["cwd"] = values["cwd"]
    if values.get("user"):
        process["user"] = _user_from(values["user"])
    if values.get("additional-gids"):
        user = dict(process.get("user") or {})
        user["additionalGids"] = [int(g) for g in values["additional-gids"]]
        process["user"] = user
    if values.get("cap"):
        caps = {k: list(v) for k, v in (base.get("capabilities") or {}).items()}
        for name in values["cap"]:
            for kind in ("bounding", "effective", "permitted", "ambient", "inheritable"):
                caps.setdefault(kind, [])
                if name not in caps[kind]:
                    caps[kind].append(name)
        process["capabilities"] = caps
    if values.get("no-new-privs"):
        process["noNewPrivileges"] = True
    return process


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    container_id = need_id(positionals, "exec")
    container = Container(ctx.root, container_id)
    process = build_process(container, values, positionals[1:])
    detach = bool(values.get("detach"))
    if not detach:
        foreground.become_subreaper()
    started = exec_process(
        ctx.root, container_id, process, pid_file=values.get("pid-file"),
        console_socket=values.get("console-socket"),
        preserve_fds=int_flag(values, "preserve-fds"), foreground_tty=not detach,
    )
    if detach:
        return 0
    sys.stdout.flush()
    return foreground.wait_for(started.pid, started.pty_master)
