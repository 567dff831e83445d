"""Write fast launchers (``python3 -I -S``) for the engine's commands into a bin directory.

``python3 -I -S`` skips the site module and user paths (10 ms instead of 40 ms to start here),
so the launcher puts the directory that holds the ``sampan`` package on ``sys.path`` itself.
"""

import argparse
import os
import sys

import sampan

COMMANDS = {"sampan": "sampan.cli.main",
            "sampan-runc": "sampan.runtime.cli.main",
            "sampan-supervisor": "sampan.supervisor.server.main",
            "sampand": "sampan.cmd.sampand"}
# Long-running commands that import from site-packages (h11): launched with site imports.
SITE_COMMANDS = frozenset({"sampand"})

TEMPLATE = """#!{python} -IS
# written by sampan.cmd.install_launchers: -I -S skips site imports (start-up time)
import sys
sys.path.insert(0, {path!r})
{prelude}from {module} import main
sys.exit(main())
"""

# Work a command starts before its imports (see sampan/runtime/cgroup_prime.py).
PRELUDES = {
    "sampan-runc": (
        'if sys.argv[1:] == ["--standby"]:  # started ahead of need: runtime/standby.py\n'
        "    from sampan.runtime.standby import serve\n"
        "    sys.exit(serve())\n"
        'if {"run", "create", "exec"} & set(sys.argv[1:6]):\n'
        "    from sampan.runtime.cgroup_prime import prime_migration_lock\n"
        "    prime_migration_lock()\n"
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bindir", default="/usr/local/bin")
    args = parser.parse_args()
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(sampan.__file__)))
    python = os.path.realpath(sys.executable)
    for name, module in COMMANDS.items():
        target = os.path.join(args.bindir, name)
        temp = target + ".tmp"
        with open(temp, "w") as out:
            text = TEMPLATE.format(python=python, path=package_parent, module=module,
                                   prelude=PRELUDES.get(name, ""))
            if name in SITE_COMMANDS:
                text = text.replace(" -IS\n", " -I\n", 1)
            out.write(text)
        os.chmod(temp, 0o755)
        os.rename(temp, target)
        print(f"installed {target}")


if __name__ == "__main__":
    main()
