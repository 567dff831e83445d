"""``sampan`` entry point: global options, command lookup, error reporting.

Global options are read by hand (no argparse until a command is known) so ``sampan
--version`` costs nothing; the command's module is imported and its parser built only
then. Exit statuses: the command's own, 1 for daemon errors, 125 for usage errors.
"""

from __future__ import annotations

import os
import sys

from sampan.cli.command_table import GROUPS, TOP_LEVEL, group_summary, module_for
from sampan.cli.errors import StatusError, UsageError

VERSION = "0.1.0"

_USAGE = """Usage:  sampan [OPTIONS] COMMAND

A docker-compatible client for the sampan container engine

Common Commands:
  run         Create and run a new container from an image
  exec        Execute a command in a running container
  ps          List containers
  build       (not yet: issue 8)
  pull        Download an image from a registry
  push        Upload an image to a registry
  images      List images
  login       Authenticate to a registry
  logout      Log out from a registry
  version     Show the sampan version information
  info        Display system-wide information

Management Commands:
  container   Manage containers
  image       Manage images
  network     Manage networks
  system      Manage sampan
  volume      Manage volumes

Commands:
  attach, commit, cp, create, diff, events, export, history, import, inspect, kill, load,
  logs, pause, port, rename, restart, rm, rmi, save, start, stats, stop, tag, top, unpause,
  update, wait

Global Options:
      --config string      Location of client config files (default "~/.sampan")
  -D, --debug              Enable debug mode
  -H, --host string        Daemon socket to connect to (env SAMPAN_HOST,
                           default "unix:///run/sampan.sock")
  -l, --log-level string   Set the logging level (accepted, unused)
  -v, --version            Print version information and quit

Run 'sampan COMMAND --help' for more information on a command.
"""


def _not_running_hint(host: str) -> str:
    return (f"Cannot connect to the sampan daemon at {host}. Is sampand running? "
            f"Start it with: sudo sampand -H {host}")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    host = os.environ.get("SAMPAN_HOST", "")
    config_dir = ""
    debug = False
    while args and args[0].startswith("-") and args[0] != "-":
        option = args.pop(0)
        name, has_value, value = option.partition("=")
        if name in ("-H", "--host", "-l", "--log-level", "--config", "-c", "--context"):
            if not has_value:
                if not args:
                    sys.stderr.write(f"flag needs an argument: {name}\n"
                                     "See 'sampan --help'.\n")
                    return 125
                value = args.pop(0)
            if name in ("-H", "--host"):
                host = value
            elif name == "--config":
                config_dir = value
        elif option.startswith("-H") and len(option) > 2:
            host = option[2:]
        elif option in ("-D", "--debug"):
            debug = True
        elif option in ("-v", "--version"):
            sys.stdout.write(f"Sampan version {VERSION}, build python\n")
            return 0
        elif option in ("-h", "--help"):
            sys.stdout.write(_USAGE)
            return 0
        else:
            sys.stderr.write(f"unknown flag: {option}\nSee 'sampan --help'.\n")
            return 125
    if not args:
        sys.stdout.write(_USAGE)
        return 0
    command = args.pop(0)
    prog = f"sampan {command}"
    if command in GROUPS:
        if not args or args[0] in ("-h", "--help", "help"):
            sys.stdout.write(group_summary(command))
            return 0
        sub = args.pop(0)
        module_name = GROUPS[command].get(sub)
        if module_name is None:
            sys.stderr.write(f"sampan: '{command} {sub}' is not a sampan command.\n"
                             f"See 'sampan {command} --help'\n")
            return 1
        prog = f"sampan {command} {sub}"
    elif command in TOP_LEVEL:
        module_name = TOP_LEVEL[command]
    elif command == "help":
        sys.stdout.write(_USAGE)
        return 0
    else:
        sys.stderr.write(f"sampan: '{command}' is not a sampan command.\n"
                         "See 'sampan --help'\n")
        return 1
    return _run_command(prog, module_name, args, host, config_dir, debug)


def _run_command(prog: str, module_name: str, args: list[str], host: str, config_dir: str,
                 debug: bool) -> int:
    from sampan.cli.context import Context, default_config_dir
    from sampan.client.errors import DaemonError, DaemonUnreachable
    from sampan.client.hosts import parse_host

    try:
        address = parse_host(host)
    except ValueError as error:
        sys.stderr.write(f"{error}\n")
        return 125
    ctx = Context(address, config_dir or default_config_dir(), debug=debug)
    module = module_for(module_name)
    try:
        namespace = module.parse(prog, args)
        status: int = module.run(ctx, namespace)
        sys.stdout.flush()
        return status
    except UsageError as error:
        sys.stderr.write(f"{error.message}\n")
        return error.status
    except StatusError as error:
        if error.message:
            sys.stdout.flush()
            sys.stderr.write(f"{error.message}\n")
        return error.status
    except DaemonUnreachable as error:
        sys.stderr.write(_not_running_hint(error.host) + f" ({error.reason})\n")
        return 1
    except DaemonError as error:
        sys.stdout.flush()
        sys.stderr.write(f"Error response from daemon: {error.message}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``sampan logs x | head``): quiet, as docker is.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 0
    except Exception as error:
        from sampan.cli.gotemplate import TemplateError

        if isinstance(error, TemplateError):
            sys.stderr.write(f"{error}\n")
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
