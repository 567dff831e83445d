"""Acceptance item 6: the README's set-up-and-run section works as written. sampand is
started the way the README says (``bash scripts/run-sampand``; a private socket and roots
through the script's environment variables) and every documented ``docker -H ...`` command
runs against it, pointed at that socket."""

from __future__ import annotations

import re
import shlex
import subprocess

from sampand_harness import REPO, SHARED_IMAGES, Sampand

README_SOCKET = "unix:///run/sampan.sock"


def _section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:end if end >= 0 else len(text)]


def _code_lines(section: str) -> list[str]:
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL):
        lines.extend(line.strip() for line in block.splitlines() if line.strip())
    return lines


class ReadmeSampand(Sampand):
    """sampand started by ``scripts/run-sampand`` (the README's run command)."""

    def argv(self) -> list[str]:
        return ["bash", str(REPO / "scripts" / "run-sampand"), "--log-level", "debug",
                "--bridge", "none", "--cgroup-parent", self.cgroup_parent]


def test_readme_run_command_and_docker_commands() -> None:
    section = _section((REPO / "README.md").read_text(), "## Set up and run")
    lines = _code_lines(section)
    assert lines[0] == "bash scripts/install && bash scripts/run-sampand", lines
    docker_lines = [line for line in lines if line.startswith(f"docker -H {README_SOCKET} ")]
    assert any(" load -i ../shared/images/busybox.tar" in line for line in docker_lines)
    assert any(line.endswith(" run --rm --network none busybox echo hi")
               for line in docker_lines)

    daemon = ReadmeSampand()
    daemon.daemon_env = {"SAMPAN_HOST": f"unix://{daemon.socket_path}",
                         "SAMPAN_DATA_ROOT": str(daemon.root / "data"),
                         "SAMPAN_EXEC_ROOT": str(daemon.root / "exec")}
    with daemon:
        outputs = []
        for line in docker_lines:
            argv = shlex.split(line.replace(README_SOCKET, f"unix://{daemon.socket_path}"))
            argv = [arg.replace("../shared/images", str(SHARED_IMAGES)) for arg in argv]
            result = subprocess.run(argv, env=daemon.env, capture_output=True, timeout=120,
                                    cwd=REPO, check=False)
            assert result.returncode == 0, (line, result.stderr.decode(), daemon.log_tail())
            outputs.append(result.stdout.decode())
            if " run -d " in line:
                daemon.seen.add(result.stdout.decode().strip())
        by_line = dict(zip(docker_lines, outputs, strict=True))
        echo = next(line for line in docker_lines if line.endswith("echo hi"))
        assert by_line[echo] == "hi\n"
        assert "busybox:latest" in next(out for line, out in by_line.items() if " load " in line)
        # run-sampand passed the socket and roots on: nothing went to the default places
        assert (daemon.root / "data" / "state.db").exists()
        assert (daemon.root / "exec" / "supervisor.sock").exists()
