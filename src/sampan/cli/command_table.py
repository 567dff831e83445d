"""Which module runs which command: top-level verbs and the management groups.

Values are module paths under ``sampan.cli.commands``; each module has ``SUMMARY``,
``parse(prog, argv)`` and ``run(ctx, args) -> int``.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing costs 8 ms of start-up: imported for the type checker only
if TYPE_CHECKING:
    from typing import Any, Protocol

    class CommandModule(Protocol):
        SUMMARY: str

        def parse(self, prog: str, argv: list[str]) -> Any: ...

        def run(self, ctx: Any, args: Any) -> int: ...

TOP_LEVEL = {
    "run": "container.run", "create": "container.create", "start": "container.start",
    "stop": "container.stop", "restart": "container.restart", "kill": "container.kill",
    "rm": "container.rm", "ps": "container.ls", "logs": "container.logs",
    "exec": "container.exec_", "attach": "container.attach", "inspect": "system.inspect",
    "top": "container.top", "stats": "container.stats", "wait": "container.wait",
    "pause": "container.pause", "unpause": "container.unpause",
    "rename": "container.rename", "update": "container.update", "port": "container.port",
    "cp": "container.cp", "diff": "container.diff", "export": "container.export",
    "commit": "container.commit",
    "images": "image.ls", "pull": "image.pull", "push": "image.push", "tag": "image.tag",
    "rmi": "image.rm", "save": "image.save", "load": "image.load",
    "import": "image.import_", "history": "image.history",
    "login": "registry.login", "logout": "registry.logout",
    "version": "system.version", "info": "system.info", "events": "system.events",
}

GROUPS: dict[str, dict[str, str]] = {
    "container": {
        "attach": "container.attach", "commit": "container.commit", "cp": "container.cp",
        "create": "container.create", "diff": "container.diff", "exec": "container.exec_",
        "export": "container.export", "inspect": "container.inspect",
        "kill": "container.kill", "logs": "container.logs", "ls": "container.ls",
        "list": "container.ls", "ps": "container.ls", "pause": "container.pause",
        "port": "container.port", "prune": "container.prune", "rename": "container.rename",
        "restart": "container.restart", "rm": "container.rm", "remove": "container.rm",
        "run": "container.run", "start": "container.start", "stats": "container.stats",
        "stop": "container.stop", "top": "container.top", "unpause": "container.unpause",
        "update": "container.update", "wait": "container.wait",
    },
    "image": {
        "history": "image.history", "import": "image.import_", "inspect": "image.inspect",
        "load": "image.load", "ls": "image.ls", "list": "image.ls", "prune": "image.prune",
        "pull": "image.pull", "push": "image.push", "rm": "image.rm", "remove": "image.rm",
        "save": "image.save", "tag": "image.tag",
    },
    "network": {
        "connect": "network.connect", "create": "network.create",
        "disconnect": "network.disconnect", "inspect": "network.inspect",
        "ls": "network.ls", "list": "network.ls", "prune": "network.prune",
        "rm": "network.rm", "remove": "network.rm",
    },
    "volume": {
        "create": "volume.create", "inspect": "volume.inspect", "ls": "volume.ls",
        "list": "volume.ls", "prune": "volume.prune", "rm": "volume.rm",
        "remove": "volume.rm",
    },
    "system": {
        "df": "system.df", "events": "system.events", "info": "system.info",
        "prune": "system.prune",
    },
}


def module_for(name: str) -> CommandModule:
    module: CommandModule = importlib.import_module(
        f"sampan.cli.commands.{name}")
    return module


def group_summary(group: str) -> str:
    lines = [f"Usage:  sampan {group} COMMAND", "", "Commands:"]
    seen: set[str] = set()
    for verb, name in sorted(GROUPS[group].items()):
        if name in seen:
            continue
        seen.add(name)
        lines.append(f"  {verb:<11} {module_for(name).SUMMARY}")
    lines += ["", f"Run 'sampan {group} COMMAND --help' for more information on a command.", ""]
    return "\n".join(lines)
