"""OCI hooks: each runs with the container's state JSON on stdin, argv[0] = args[0].

dockerd's libnetwork-setkey prestart hook dispatches on argv[0], so ``path`` is what is
executed and ``args`` (including args[0]) is the argv it sees.
"""


from __future__ import annotations

import json

from sampan import errdefs

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")


def load_runner(hooks: dict[str, Any] | None, kind: str) -> None:
    """Import what running hooks of ``kind`` needs now: startContainer hooks run after
    pivot_root, where the host's Python library can no longer be imported from."""
    if (hooks or {}).get(kind):
        import subprocess  # noqa: F401


def run_hooks(hooks: dict[str, Any] | None, kind: str, state: dict[str, Any],
              cwd: str | None = None) -> None:
    """Run every hook of ``kind`` in order; the first failure raises errdefs.System."""
    entries = (hooks or {}).get(kind) or []
    if not entries:
        return
    import subprocess  # only containers with hooks pay for it

    payload = json.dumps(state).encode()
    for index, hook in enumerate(entries):
        path = hook["path"]
        args = list(hook.get("args") or [path])
        env = None
        if hook.get("env") is not None:
            env = dict(item.split("=", 1) for item in hook["env"] if "=" in item)
        timeout = hook.get("timeout")
        try:
            completed = subprocess.run(
                args, executable=path, input=payload, env=env, cwd=cwd,
                capture_output=True, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            raise errdefs.System(
                f"{kind} hook #{index} ({path}) did not finish within {timeout}s") from None
        except OSError as exc:
            raise errdefs.System(f"{kind} hook #{index} ({path}): {exc.strerror}") from None
        if completed.returncode != 0:
            output = (completed.stderr or completed.stdout).decode(errors="replace").strip()
            raise errdefs.System(
                f"{kind} hook #{index} ({path}) exited with status {completed.returncode}"
                + (f": {output}" if output else ""))
