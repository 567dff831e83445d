"""``sampan-runc --standby``: the real launcher, started ahead of need, then given its command
line and stdio over fd 0; it must behave as ``sampan-runc <arguments>`` would."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "bin" / "sampan-runc"


def _standby() -> tuple[subprocess.Popen[bytes], socket.socket]:
    ours, theirs = socket.socketpair()
    process = subprocess.Popen([str(LAUNCHER), "--standby"], stdin=theirs.fileno(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    theirs.close()
    return process, ours


def _call(arguments: list[str]) -> tuple[int, bytes, bytes]:
    process, control = _standby()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        socket.send_fds(control, ["\0".join(arguments).encode()], [devnull, out_w, err_w])
        control.close()
        os.close(out_w)
        os.close(err_w)
        code = process.wait(30)
        with os.fdopen(out_r, "rb") as out, os.fdopen(err_r, "rb") as err:
            return code, out.read(), err.read()
    finally:
        os.close(devnull)
        if process.poll() is None:
            process.kill()
            process.wait()


def test_standby_runs_the_command_line_it_is_given() -> None:
    code, out, _ = _call(["--version"])
    assert code == 0
    assert out.startswith(b"sampan-runc version ")


def test_standby_reports_errors_like_a_fresh_runtime() -> None:
    with tempfile.TemporaryDirectory(prefix="sampan-test-standby-") as root:
        log = os.path.join(root, "runtime.log")
        code, _, _ = _call(["--root", root, "--log", log, "--log-format", "json", "state",
                            "sampan-test-no-such-container"])
        assert code == 1
        with open(log) as handle:
            text = handle.read()
        assert '"level": "error"' in text or '"level":"error"' in text, text
        assert "does not exist" in text  # runc's words


def test_standby_exits_when_its_caller_goes_away() -> None:
    process, control = _standby()
    control.close()
    assert process.wait(30) == 0
