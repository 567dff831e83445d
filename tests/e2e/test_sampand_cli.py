"""Acceptance item 1: the docker CLI against a real sampand (what ``test_sampand_core`` does
not already cover): logs, exec -t, kill -s, restart, rename, update, top, stats, wait, events,
``run -it`` through a pty, and the image and file commands."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import tarfile
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sampand_harness import BUSYBOX, Sampand, started_with_busybox


@pytest.fixture(scope="module")
def sampand() -> Iterator[Sampand]:
    daemon = started_with_busybox()
    try:
        yield daemon
    finally:
        daemon.close()


# ---------------------------------------------------------------- logs

def test_logs_follow_timestamps_tail_since(sampand: Sampand) -> None:
    cid = sampand.run_d("--name", "logs1", "busybox", "sh", "-c",
                        "for i in 1 2 3 4 5; do echo line$i; done; sleep 1; echo late; "
                        "echo err >&2; sleep 1000")
    sampand.wait_for("five lines", lambda: "line5" in sampand.ok("logs", cid))
    assert sampand.ok("logs", "--tail", "2", "logs1").splitlines() == ["line4", "line5"]
    stamped = sampand.ok("logs", "-t", "logs1").splitlines()
    assert len(stamped) >= 5
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line1", stamped[0]), stamped
    # -f: follows until we stop it, printing what is written later
    follower = subprocess.Popen(["docker", "logs", "-f", "--tail", "1", "logs1"],
                                env=sampand.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    try:
        assert follower.stdout is not None and follower.stderr is not None
        first = follower.stdout.readline()
        assert first in (b"line5\n", b"late\n")
        if first == b"line5\n":
            assert follower.stdout.readline() == b"late\n"
        assert follower.stderr.readline() == b"err\n"
        assert follower.poll() is None  # still following a running container
    finally:
        follower.kill()
        follower.wait()
    # since: a point after the first five lines, before "late"
    late_stamp = next(line for line in sampand.ok("logs", "-t", "logs1").splitlines()
                      if line.endswith(" late"))
    since = late_stamp.split()[0]
    assert sampand.ok("logs", "--since", since, "logs1") == "late\n"
    result = sampand.docker("logs", "--since", since, "logs1")
    assert result.stderr == b"err\n"
    sampand.ok("rm", "-f", "logs1")


# ---------------------------------------------------------------- running containers

def test_exec_tty_kill_signal_restart_rename_update(sampand: Sampand) -> None:
    cid = sampand.run_d("--name", "ops1", "busybox", "sh", "-c",
                        "trap 'echo got-usr1' USR1; while true; do sleep 0.1; done")
    # exec -t: a terminal (tty answers), exit code kept
    tty = sampand.ok("exec", "-t", "ops1", "tty")
    assert tty.strip().startswith("/dev/pts/"), tty
    assert sampand.docker("exec", "-t", "ops1", "sh", "-c", "exit 4").returncode == 4
    # kill -s USR1: the trap runs, the container keeps running
    sampand.ok("kill", "-s", "USR1", "ops1")
    sampand.wait_for("the USR1 trap", lambda: "got-usr1" in sampand.ok("logs", "ops1"))
    assert sampand.inspect("ops1")["State"]["Running"] is True
    # restart: a new process
    pid_before = sampand.inspect("ops1")["State"]["Pid"]
    sampand.ok("restart", "-t", "1", "ops1")
    state = sampand.inspect("ops1")["State"]
    assert state["Running"] is True and state["Pid"] != pid_before
    # rename
    sampand.ok("rename", "ops1", "ops2")
    assert sampand.inspect(cid)["Name"] == "/ops2"
    assert sampand.docker("inspect", "ops1").returncode != 0
    # update --memory: recorded and applied to the cgroup
    sampand.ok("update", "--memory", "64m", "--memory-swap", "128m", "ops2")
    assert sampand.inspect("ops2")["HostConfig"]["Memory"] == 64 * 1024 * 1024
    limit = Path(f"/sys/fs/cgroup/memory/{sampand.cgroup_parent}/{cid}/memory.limit_in_bytes")
    assert int(limit.read_text()) == 64 * 1024 * 1024
    sampand.ok("rm", "-f", "ops2")


def test_top_stats_wait(sampand: Sampand) -> None:
    sampand.run_d("--name", "top1", "busybox", "sleep", "1000")
    top = sampand.ok("top", "top1").splitlines()
    assert "PID" in top[0] and "CMD" in top[0]
    assert any("sleep 1000" in line for line in top[1:]), top
    stats = sampand.ok("stats", "--no-stream", "--format",
                       "{{.Name}} {{.MemUsage}} {{.PIDs}}", "top1").strip()
    name, *rest = stats.split()
    assert name == "top1" and rest[-1] == "1", stats
    assert "MiB" in stats or "KiB" in stats
    # wait: blocks until the exit, prints the code
    waiter = subprocess.Popen(["docker", "wait", "top1"], env=sampand.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    assert waiter.poll() is None
    sampand.ok("kill", "-s", "TERM", "top1")  # pid 1 ignores TERM without a handler
    sampand.ok("kill", "top1")
    out, err = waiter.communicate(timeout=20)
    assert out == b"137\n", err
    # wait on a stopped container returns at once
    assert sampand.ok("wait", "top1") == "137\n"
    sampand.ok("rm", "top1")


def test_events_while_commands_run(sampand: Sampand) -> None:
    since = str(int(time.time()) - 1)
    watcher = subprocess.Popen(
        ["docker", "events", "--since", since, "--format",
         "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}", "--filter", "container=ev1"],
        env=sampand.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        sampand.run_d("--name", "ev1", "busybox", "sleep", "1000")
        sampand.ok("pause", "ev1")
        sampand.ok("unpause", "ev1")
        sampand.ok("stop", "-t", "0", "ev1")
        sampand.ok("rm", "ev1")
        wanted = ["create", "start", "pause", "unpause", "kill", "die", "stop", "destroy"]
        seen: list[str] = []
        assert watcher.stdout is not None
        fd = watcher.stdout.fileno()
        buffered = b""
        deadline = time.monotonic() + 20
        while not set(wanted) <= set(seen):
            assert time.monotonic() < deadline, seen
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            buffered += os.read(fd, 65536)
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                kind, action, name = line.decode().split()[:3]
                assert kind == "container" and name == "ev1", line
                seen.append(action.rstrip(":"))
        order = [a for a in seen if a in ("create", "start", "die", "destroy")]
        assert order == ["create", "start", "die", "destroy"], seen
    finally:
        watcher.kill()
        watcher.wait()


# ---------------------------------------------------------------- run -it through a pty

class Terminal:
    """The docker CLI on a pty of ours: what a user's terminal does."""

    def __init__(self, env: dict[str, str], argv: list[str], rows: int, cols: int) -> None:
        self.master, slave = pty.openpty()
        self.resize(rows, cols)

        def controlling_tty() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen(argv, env={**env, "TERM": "xterm"}, stdin=slave,
                                        stdout=slave, stderr=slave, start_new_session=True,
                                        preexec_fn=controlling_tty)
        os.close(slave)
        self.output = b""

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: bytes, timeout: float = 20) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.output)
            if found:
                self.output = self.output[found.end():]
                return found
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} in {self.output!r}"
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:  # EIO: the CLI exited and closed the slave
                    assert re.search(pattern, self.output), (pattern, self.output)

    def close(self) -> int:
        try:
            return self.process.wait(20)
        finally:
            os.close(self.master)


def test_run_it_resize_detach_and_reattach(sampand: Sampand) -> None:
    term = Terminal(sampand.env, ["docker", "run", "-it", "--name", "tty1", "--network", "none",
                                  "busybox", "sh"], rows=30, cols=100)
    try:
        term.expect(rb"# ")
        term.send(b"stty size\r")
        term.expect(rb"30 100\r\n")
        term.resize(40, 120)
        term.process.send_signal(signal.SIGWINCH)  # the CLI then POSTs /resize
        for _ in range(50):  # until the resize has landed (asynchronous to our typing)
            term.send(b"stty size\r")
            if term.expect(rb"(\d+ \d+)\r\n").group(1) == b"40 120":
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the terminal size never became 40 120")
        term.send(b"\x10\x11")  # ctrl-p ctrl-q: the daemon ends the attach, the CLI exits
        assert term.close() == 0
    finally:
        if term.process.poll() is None:
            term.process.kill()
    sampand.seen.add(sampand.inspect("tty1")["Id"])
    assert sampand.inspect("tty1")["State"]["Running"] is True
    again = Terminal(sampand.env, ["docker", "attach", "tty1"], rows=30, cols=100)
    try:
        again.send(b"echo re-$((40+2))\r")
        again.expect(rb"re-42")
        again.send(b"exit 5\r")
        assert again.close() == 5
    finally:
        if again.process.poll() is None:
            again.process.kill()
    assert sampand.inspect("tty1")["State"]["ExitCode"] == 5
    sampand.ok("rm", "tty1")


# ---------------------------------------------------------------- images and files

def test_save_tag_images_history_rmi(sampand: Sampand, tmp_path: Path) -> None:
    sampand.ok("tag", "busybox", "example.test/mine:v1")
    listed = sampand.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert "busybox:latest" in listed and "example.test/mine:v1" in listed
    history = sampand.ok("history", "--format", "{{.Comment}}", "busybox").splitlines()
    assert history == ["busybox-static 1.35 fixture (make_fixtures.sh)"], history
    archive = tmp_path / "saved.tar"
    sampand.ok("save", "-o", str(archive), "example.test/mine:v1")
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["example.test/mine:v1"]
    assert sampand.ok("rmi", "example.test/mine:v1").startswith("Untagged: example.test/mine:v1")
    assert "example.test/mine:v1" not in sampand.ok("images", "--format",
                                                   "{{.Repository}}:{{.Tag}}")
    # load what was saved: the tag comes back
    sampand.ok("load", "-i", str(archive))
    assert "example.test/mine:v1" in sampand.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    sampand.ok("rmi", "example.test/mine:v1")


def test_commit_diff_export_import(sampand: Sampand, tmp_path: Path) -> None:
    cid = sampand.ok("run", "--name", "files1", "--network", "none", "busybox", "sh", "-c",
                     "echo data > /made.txt && rm /bin/vi").strip()
    sampand.seen.add(sampand.inspect("files1")["Id"])
    assert cid == ""
    diff = sampand.ok("diff", "files1").splitlines()
    assert "A /made.txt" in diff and "D /bin/vi" in diff, diff
    sampand.ok("commit", "-c", "CMD cat /made.txt", "files1", "committed:1")
    assert len(sampand.ok("history", "-q", "committed:1").splitlines()) == 2
    assert sampand.ok("run", "--rm", "--network", "none", "committed:1") == "data\n"
    exported = tmp_path / "export.tar"
    sampand.ok("export", "-o", str(exported), "files1")
    with tarfile.open(exported) as tar:
        names = set(tar.getnames())
    assert {"made.txt", "bin/sh"} <= {n.lstrip("./") for n in names}
    assert "bin/vi" not in {n.lstrip("./") for n in names}
    imported = sampand.ok("import", "-c", "CMD [\"/bin/cat\", \"/made.txt\"]", str(exported),
                          "imported:1").strip()
    assert imported.startswith("sha256:")
    assert sampand.ok("run", "--rm", "--network", "none", "imported:1") == "data\n"
    sampand.ok("rm", "files1")
    sampand.ok("rmi", "committed:1", "imported:1")


def test_system_df_and_prunes(sampand: Sampand) -> None:
    sampand.ok("create", "--name", "prune1", "--network", "none", "busybox", "true")
    sampand.seen.add(sampand.inspect("prune1")["Id"])
    df = sampand.ok("system", "df", "--format", "{{.Type}} {{.TotalCount}}").splitlines()
    counts = dict(line.rsplit(" ", 1) for line in df)
    assert int(counts["Images"]) >= 1 and int(counts["Containers"]) >= 1, df
    pruned = sampand.ok("container", "prune", "-f")
    assert "Deleted Containers:" in pruned
    assert sampand.docker("inspect", "prune1").returncode != 0
    # an untagged image (a commit without a name) is dangling: image prune removes it
    sampand.ok("create", "--name", "prune2", "--network", "none", "busybox", "true")
    dangling = sampand.ok("commit", "prune2").strip()
    sampand.ok("rm", "prune2")
    assert dangling in sampand.ok("images", "-q", "--no-trunc", "--filter", "dangling=true")
    pruned_images = sampand.ok("image", "prune", "-f")
    assert dangling in pruned_images, pruned_images
    assert sampand.ok("images", "-q", "--filter", "dangling=true") == ""
    assert "busybox" in sampand.ok("images")


def test_load_shows_loaded_image(sampand: Sampand) -> None:
    out = sampand.ok("load", "-i", str(BUSYBOX))
    assert "busybox:latest" in out
