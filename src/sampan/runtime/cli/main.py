"""sampan-runc: an OCI runtime with runc's command line.

Start-up time is a product feature here: this module imports only what every verb needs and
loads the verb's module on demand.
"""

import importlib
import sys

from sampan import __version__, errdefs
from sampan.runtime.cli import flags
from sampan.runtime.cli.context import Context
from sampan.runtime.state import DEFAULT_ROOT, OCI_VERSION

VERBS = ("create", "start", "run", "state", "kill", "delete", "exec", "ps", "list", "pause",
         "resume", "update", "events", "spec", "features")

GLOBAL_FLAGS: flags.FlagSpec = {
    "root": (True, ()),
    "log": (True, ()),
    "log-format": (True, ()),
    "debug": (False, ()),
    "systemd-cgroup": (False, ()),
    "criu": (True, ()),
    "rootless": (True, ()),
    "version": (False, ("v",)),
    "help": (False, ("h",)),
}

USAGE = f"""usage: sampan-runc [global flags] <command> [flags] <id> ...

An OCI runtime (runtime-spec {OCI_VERSION}) with runc's command line.

commands: {", ".join(VERBS)}
global flags: --root DIR (default {DEFAULT_ROOT}), --log FILE, --log-format text|json,
              --debug, --version
"""


def version_text() -> str:
    return (f"sampan-runc version {__version__}\ncommit: sampan-{__version__}\n"
            f"spec: {OCI_VERSION}\n")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    ctx = Context(DEFAULT_ROOT, None, "text", False)
    try:
        values, rest = flags.parse(args, GLOBAL_FLAGS, "sampan-runc")
        ctx = Context(values.get("root") or DEFAULT_ROOT, values.get("log"),
                      values.get("log-format") or "text", bool(values.get("debug")))
        if values.get("version"):
            sys.stdout.write(version_text())
            return 0
        if values.get("help") or not rest:
            sys.stdout.write(USAGE)
            return 0 if values.get("help") else 1
        if values.get("systemd-cgroup"):
            raise errdefs.NotImplementedFeature(
                "the systemd cgroup driver is not supported by sampan-runc; "
                "use the cgroupfs driver")
        verb = rest[0]
        if verb not in VERBS:
            raise errdefs.InvalidParameter(f"no such command: {verb}")
        module = importlib.import_module(f"sampan.runtime.cli.{verb}")
        verb_values, positionals = flags.parse(rest[1:], module.FLAGS, verb)
        code: int = module.run(ctx, verb_values, positionals)
        return code
    except errdefs.SampanError as exc:
        ctx.error(str(exc))
        return 1
    except OSError as exc:
        ctx.error(f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        try:
            sys.stdout.flush()
        except OSError:
            pass

