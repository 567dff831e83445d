"""The parts of issue 4's surface the other e2e files do not reach: ``ps`` filters, ``/events``
since/until/filters and the lifecycle actions, ``logs --until``, streamed stats with precpu,
attach with logs replay and several attachers at once, the wait conditions, exec resize,
``search``, and the daemon's own configuration (``--config-file`` daemon.json keys,
``--add-runtime``/``--default-runtime`` with runc and crun by name, the json-file size cap)."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from sampand_harness import BUSYBOX, Sampand, started_with_busybox

NONE = ("--network", "none")


@pytest.fixture(scope="module")
def sampand() -> Iterator[Sampand]:
    daemon = started_with_busybox()
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture(scope="module")
def client(sampand: Sampand) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=f"unix://{sampand.socket_path}", version="auto")
    try:
        yield client
    finally:
        client.close()


def _ids(sampand: Sampand, *filters: str) -> set[str]:
    args = [arg for f in filters for arg in ("-f", f)]
    return set(sampand.ok("ps", "-a", "-q", "--no-trunc", "-f", "name=flt-", *args).split())


def _exited(sampand: Sampand, ref: str) -> None:
    sampand.wait_for(f"{ref} to exit", lambda: sampand.inspect(ref)["State"]["Status"] ==
                     "exited")


def test_ps_filters(sampand: Sampand) -> None:
    a = sampand.run_d("--name", "flt-a", "--label", "tier=web", "busybox", "sleep", "1000")
    time.sleep(0.01)
    b = sampand.run_d("--name", "flt-b", "--label", "tier=db", "busybox", "sh", "-c", "exit 3")
    time.sleep(0.01)
    c = sampand.ok("create", "--name", "flt-c", *NONE, "busybox", "true").strip()
    sampand.seen.add(c)
    _exited(sampand, b)
    assert _ids(sampand) == {a, b, c}
    assert _ids(sampand, "status=running") == {a}
    assert _ids(sampand, "status=exited") == {b}
    assert _ids(sampand, "status=created") == {c}
    assert _ids(sampand, "status=created", "status=exited") == {b, c}
    assert _ids(sampand, "label=tier=web") == {a}
    assert _ids(sampand, "label=tier") == {a, b}
    assert _ids(sampand, "exited=3") == {b}
    assert _ids(sampand, "exited=0") == set()
    assert _ids(sampand, f"id={a[:12]}") == {a}
    # values of one key are alternatives: name=flt-b adds nothing to name=flt-
    assert set(sampand.ok("ps", "-aq", "--no-trunc", "-f", "name=flt-b").split()) == {b}
    assert _ids(sampand, "ancestor=busybox") == {a, b, c}
    assert _ids(sampand, "ancestor=busybox:latest") == {a, b, c}
    assert _ids(sampand, "before=flt-b") == {a}
    assert _ids(sampand, "since=flt-a") == {b, c}
    assert _ids(sampand, "health=none") == {a, b, c}
    # without -a only running ones, unless a filter asks for stopped ones (Docker's rule)
    running = set(sampand.ok("ps", "-q", "--no-trunc", "-f", "name=flt-").split())
    assert running == {a}
    # limit: the newest n after filtering; size: SizeRw and SizeRootFs
    assert set(sampand.ok("ps", "-a", "-q", "--no-trunc", "-n", "2", "-f", "name=flt-")
               .split()) == {b, c}
    sized = json.loads(sampand.ok("ps", "-a", "-s", "-f", "name=flt-a", "--format",
                                  "{{json .}}"))
    assert "virtual" in sized["Size"], sized
    bad = sampand.docker("ps", "-a", "-f", "status=bogus")
    assert bad.returncode != 0 and b"status=bogus" in bad.stderr
    bad = sampand.docker("ps", "-a", "-f", "colour=red")
    assert bad.returncode != 0 and b"colour" in bad.stderr
    sampand.ok("rm", "-f", a, b, c)


def test_events_since_until_filters_and_lifecycle_actions(sampand: Sampand) -> None:
    since = f"{time.time() - 0.5:.3f}"
    cid = sampand.ok("create", "--name", "ev1", *NONE, "busybox", "sleep", "1000").strip()
    sampand.seen.add(cid)
    sampand.ok("start", "ev1")
    sampand.ok("pause", "ev1")
    sampand.ok("unpause", "ev1")
    sampand.ok("rename", "ev1", "ev2")
    sampand.ok("update", "--cpu-shares", "512", "ev2")
    sampand.ok("exec", "ev2", "true")
    sampand.ok("stop", "-t", "1", "ev2")  # sleep as pid 1 ignores SIGTERM: SIGKILL follows
    sampand.ok("rm", "ev2")
    other = sampand.ok("run", "--name", "ev-att", *NONE, "busybox", "echo", "x")
    assert other == "x\n"
    sampand.ok("rm", "ev-att")
    time.sleep(0.05)
    until = f"{time.time():.3f}"

    def actions(*filters: str) -> list[str]:
        args = [arg for f in filters for arg in ("--filter", f)]
        # --until in the past: the command replays and ends by itself
        out = sampand.ok("events", "--since", since, "--until", until, *args, "--format",
                         "{{.Type}} {{.Action}}", timeout=30)
        return out.splitlines()

    lines = actions(f"container={cid}")
    assert all(line.startswith("container ") for line in lines), lines
    seen = [line.split(" ", 1)[1] for line in lines]
    wanted = ["create", "start", "pause", "unpause", "rename", "update", "exec_create: true",
              "exec_start: true", "exec_die", "kill", "die", "stop", "destroy"]
    for action in wanted:
        assert action in seen, (action, seen)
    ordered = [a for a in seen if a in wanted]
    assert ordered.index("create") < ordered.index("start") < ordered.index("pause") < \
        ordered.index("die") < ordered.index("stop") < ordered.index("destroy")
    assert actions(f"container={cid}", "event=die") == ["container die"]
    assert actions("container=ev-att", "event=attach") == ["container attach"]
    # by name: the name an event carries (a rename event carries the new one)
    assert "container create" in actions("container=ev1", "type=container")
    assert "container rename" in actions("container=ev2", "type=container")
    assert actions(f"container={cid}", "type=image") == []
    # kill events carry the signal: SIGTERM first, then SIGKILL after the timeout
    signals = sampand.ok("events", "--since", since, "--until", until, "--filter",
                         f"container={cid}", "--filter", "event=kill", "--format",
                         "{{.Actor.Attributes.signal}}").split()
    assert signals == ["15", "9"], signals
    # an --until in the future ends the stream when that time comes
    started = time.monotonic()
    sampand.ok("events", "--until", f"{time.time() + 1.5:.3f}", timeout=30)
    assert time.monotonic() - started >= 1.0
    bad = sampand.docker("events", "--since", since, "--until", until, "--filter", "colour=x")
    assert bad.returncode != 0


def test_logs_until(sampand: Sampand) -> None:
    cid = sampand.run_d("busybox", "sh", "-c", "echo one; sleep 1; echo two")
    _exited(sampand, cid)
    stamped = sampand.ok("logs", "-t", cid).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two"]
    second = stamped[1].split(" ")[0]
    # both ends inclusive (moby's json-file reader); a millisecond earlier leaves "two" out
    # (the API carries the bounds as float seconds, widened to the microsecond)
    assert sampand.ok("logs", "--until", second, cid) == "one\ntwo\n"
    assert sampand.ok("logs", "--since", second, cid) == "two\n"
    earlier = _unix_nanos(second) - 1_000_000
    assert sampand.ok("logs", "--until", f"{earlier // 10**9}.{earlier % 10**9:09d}",
                      cid) == "one\n"
    sampand.ok("rm", cid)


def _unix_nanos(rfc3339: str) -> int:
    """``2026-01-02T03:04:05.123456789Z`` as nanoseconds since the epoch."""
    import calendar

    whole, _, fraction = rfc3339.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 10**9 + int((fraction or "0").ljust(9, "0")[:9])


def test_stats_stream_fills_precpu(sampand: Sampand, client: docker.DockerClient) -> None:
    cid = sampand.run_d("busybox", "sh", "-c", "while true; do i=0; while [ $i -lt 2000 ]; do "
                        "i=$((i+1)); done; sleep 0.05; done")
    stream = client.api.stats(cid, stream=True, decode=True)
    try:
        first, second = next(stream), next(stream)
    finally:
        stream.close()
    assert second["precpu_stats"]["cpu_usage"]["total_usage"] == \
        first["cpu_stats"]["cpu_usage"]["total_usage"]
    assert second["precpu_stats"]["system_cpu_usage"] == first["cpu_stats"]["system_cpu_usage"]
    assert second["cpu_stats"]["cpu_usage"]["total_usage"] > \
        first["cpu_stats"]["cpu_usage"]["total_usage"]
    assert second["cpu_stats"]["system_cpu_usage"] > first["cpu_stats"]["system_cpu_usage"]
    assert second["memory_stats"]["usage"] > 0 and second["pids_stats"]["current"] >= 1
    one_shot = client.api.stats(cid, stream=False)
    assert one_shot["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    sampand.ok("rm", "-f", cid)


def _collect(stream: Any, into: queue.Queue[bytes]) -> None:
    try:
        for chunk in stream:
            into.put(chunk)
    except Exception:  # the stream ends when the test closes it
        pass


def _until(chunks: queue.Queue[bytes], text: bytes, timeout: float = 20) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while text not in got:
        got += chunks.get(timeout=max(0.1, deadline - time.monotonic()))
    return got


def test_attach_replays_logs_and_serves_several_attachers(
        sampand: Sampand, client: docker.DockerClient) -> None:
    cid = sampand.run_d("busybox", "sh", "-c", "echo early; while true; do if [ -f /tmp/go ];"
                        " then echo late; rm /tmp/go; fi; sleep 0.05; done")
    sampand.wait_for("early", lambda: "early" in sampand.ok("logs", cid))
    # logs=1 stream=0: what was written so far, then the answer ends
    replay = client.api.attach(cid, stdout=True, stderr=True, stream=False, logs=True)
    assert replay == b"early\n"
    streams = [client.api.attach(cid, stdout=True, stderr=True, stream=True, logs=logs)
               for logs in (False, True)]
    queues: list[queue.Queue[bytes]] = [queue.Queue(), queue.Queue()]
    threads = [threading.Thread(target=_collect, args=(s, q), daemon=True)
               for s, q in zip(streams, queues, strict=True)]
    for thread in threads:
        thread.start()
    assert _until(queues[1], b"early\n").startswith(b"early\n")  # replayed, then live
    time.sleep(0.3)  # both attached before the line is written
    sampand.ok("exec", cid, "touch", "/tmp/go")
    assert b"late\n" in _until(queues[0], b"late\n")
    assert b"late\n" in _until(queues[1], b"late\n")
    sampand.ok("rm", "-f", cid)
    for thread in threads:
        thread.join(20)
        assert not thread.is_alive()  # the container's end ends every attacher


def test_wait_conditions(sampand: Sampand, client: docker.DockerClient) -> None:
    cid = sampand.run_d("busybox", "sleep", "1000")
    results: dict[str, Any] = {}

    def wait(condition: str) -> None:
        try:
            results[condition] = client.api.wait(cid, condition=condition, timeout=60)
        except Exception as exc:  # reported by the assertions below
            results[condition] = exc

    waiters = [threading.Thread(target=wait, args=(c,)) for c in ("next-exit", "removed")]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.5)
    assert results == {}  # both wait for the container
    sampand.ok("kill", cid)
    waiters[0].join(30)
    assert results["next-exit"]["StatusCode"] == 137, results
    assert "removed" not in results  # still there, only exited
    assert client.api.wait(cid, condition="not-running", timeout=10)["StatusCode"] == 137
    sampand.ok("rm", cid)
    waiters[1].join(30)
    assert results["removed"]["StatusCode"] == 137, results
    bad = sampand.request("POST", f"/containers/{cid[:12]}/wait?condition=bogus")
    assert bad[0] in (400, 404)


def test_exec_resize(sampand: Sampand, client: docker.DockerClient) -> None:
    cid = sampand.run_d("busybox", "sleep", "1000")
    exec_id = client.api.exec_create(cid, ["sh", "-c", "sleep 1; stty size"], tty=True)["Id"]
    sock = client.api.exec_start(exec_id, tty=True, socket=True)
    try:
        client.api.exec_resize(exec_id, height=33, width=101)
        raw = getattr(sock, "_sock", sock)
        raw.settimeout(20)
        output = b""
        while chunk := raw.recv(4096):
            output += chunk
    finally:
        sock.close()
    assert b"33 101" in output, output
    assert client.api.exec_inspect(exec_id)["ExitCode"] == 0
    status, body = sampand.request("POST", f"/exec/{exec_id}/resize?h=10&w=10")
    assert status == 409 and b"not running" in body, (status, body)
    sampand.ok("rm", "-f", cid)


def test_search_answers_a_clear_error(sampand: Sampand) -> None:
    result = sampand.docker("search", "busybox")
    assert result.returncode != 0
    assert b"not supported" in result.stderr, result.stderr


def test_default_json_file_log_is_capped(sampand: Sampand) -> None:
    # 21 MB on one line: the supervisor writes it as 16 KiB partial entries; the default cap
    # (20 MiB a file) must rotate the log instead of letting it grow.
    cid = sampand.run_d("busybox", "sh", "-c", "head -c 21000000 /dev/zero | tr '\\0' x")
    _exited(sampand, cid)
    log_path = Path(sampand.inspect(cid)["LogPath"])
    assert log_path.stat().st_size <= 20 * 1024 * 1024
    assert Path(f"{log_path}.1").exists()
    sampand.ok("rm", cid)


# ---------------------------------------------------------------- the daemon's own settings


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sampand]:
    directory = tmp_path_factory.mktemp("config")
    config = directory / "daemon.json"
    config.write_text(json.dumps({
        "default-runtime": "runc",
        "runtimes": {"runc-by-path": {"path": "/usr/sbin/runc"}},
        "log-opts": {"max-size": "1k", "max-file": "2"},
    }))
    daemon = Sampand(extra_args=("--config-file", str(config), "--add-runtime",
                                 f"sampan2={Path(__file__).resolve().parents[2]}/bin/"
                                 "sampan-runc"))
    daemon.__enter__()
    try:
        daemon.ok("load", "-i", str(BUSYBOX))
        yield daemon
    finally:
        daemon.close()


def test_config_file_and_runtimes_by_name(configured: Sampand) -> None:
    info = json.loads(configured.ok("info", "--format", "{{json .}}"))
    assert info["DefaultRuntime"] == "runc"
    assert {"crun", "runc", "runc-by-path", "sampan2", "sampan-runc"} <= set(info["Runtimes"])
    for runtime in (None, "runc-by-path", "sampan2", "sampan-runc"):
        flags = ("--runtime", runtime) if runtime else ()
        cid = configured.run_d(*flags, "busybox", "sleep", "1000")
        used = runtime or "runc"
        assert configured.inspect(cid)["HostConfig"]["Runtime"] == used
        # the runtime's own state lives under <exec-root>/runtime/<name>/<id>
        state = configured.root / "exec" / "runtime" / used / cid
        assert state.is_dir(), sorted(p.name for p in state.parent.parent.iterdir())
        assert configured.ok("exec", cid, "echo", "in", used) == f"in {used}\n"
        configured.ok("rm", "-f", cid)
    # crun by name: it runs the container, or (on this hybrid-cgroup host, which crun
    # refuses) its own error comes back
    crun = configured.docker("run", "--rm", *NONE, "--runtime", "crun", "busybox", "echo",
                             "hi")
    assert (crun.returncode, crun.stdout) == (0, b"hi\n") or (
        crun.returncode == 125 and b"cgroups in hybrid mode not supported" in crun.stderr), crun
    # --rm: a container whose start failed is removed (the CLI waits for that)
    assert configured.ok("ps", "-aq") == ""
    bad = configured.docker("run", "--rm", *NONE, "--runtime", "nope", "busybox", "true")
    assert bad.returncode != 0 and b"nope" in bad.stderr


def test_config_file_log_opts_are_the_default(configured: Sampand) -> None:
    cid = configured.run_d("busybox", "sh", "-c",
                           "i=0; while [ $i -lt 100 ]; do echo line-$i; i=$((i+1)); done")
    _exited(configured, cid)
    container = configured.inspect(cid)
    assert container["HostConfig"]["LogConfig"] == {
        "Type": "json-file", "Config": {"max-size": "1k", "max-file": "2"}}
    log_path = Path(container["LogPath"])
    assert log_path.stat().st_size <= 1024
    assert Path(f"{log_path}.1").exists() and not Path(f"{log_path}.2").exists()
    # a container's own options win over the daemon's
    own = configured.run_d("--log-opt", "max-size=10m", "busybox", "true")
    assert configured.inspect(own)["HostConfig"]["LogConfig"]["Config"] == {
        "max-size": "10m", "max-file": "2"}
    configured.ok("rm", "-f", cid, own)


def test_bad_daemon_settings_are_refused(tmp_path: Path) -> None:
    import subprocess
    import sys

    from sampand_harness import REPO
    for args in (("--log-opt", "max-size=lots"), ("--log-driver", "syslog"),
                 ("--default-runtime", "nope")):
        process = subprocess.run(
            [sys.executable, "-m", "sampan.cmd.sampand", "-H", f"unix://{tmp_path}/s.sock",
             "--data-root", str(tmp_path / "data"), "--exec-root", str(tmp_path / "exec"),
             "--pidfile", str(tmp_path / "p.pid"), "--bridge", "none", *args],
            capture_output=True, timeout=60, cwd=REPO, check=False,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(REPO / "src")})
        assert process.returncode != 0, args
        assert process.stderr, args
