"""Running the ``sampan`` CLI (``bin/sampan``) against a test sampand."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from sampand_harness import REPO, Sampand

SAMPAN = REPO / "bin" / "sampan"


def sampan(daemon: Sampand, *args: str, input: bytes | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    env = {**daemon.env, "SAMPAN_HOST": f"unix://{daemon.socket_path}",
           "SAMPAN_CONFIG": str(Path(daemon.root) / "sampan-cli")}
    return subprocess.run([str(SAMPAN), *args], env=env, input=input, capture_output=True,
                          timeout=timeout, check=False)


def sampan_ok(daemon: Sampand, *args: str, input: bytes | None = None) -> str:
    result = sampan(daemon, *args, input=input)
    assert result.returncode == 0, (
        f"sampan {' '.join(args)} failed ({result.returncode}): "
        f"{result.stderr.decode(errors='replace')}\n{daemon.log_tail()}")
    return result.stdout.decode()


def api(daemon: Sampand, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    status, raw = daemon.request(method, path, None if body is None else json.dumps(body),
                                 {"Content-Type": "application/json"} if body else None)
    try:
        return status, json.loads(raw) if raw.strip() else None
    except ValueError:
        return status, raw
