"""The supervisor driven over its socket with real busybox containers (sampan-runc, runc)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.privileged.supervisor_harness import SupervisorHarness, read_all, read_until, run

from sampan import errdefs
from sampan.supervisor.client import SupervisorClient

pytestmark = pytest.mark.privileged


@pytest.fixture
def supervisor() -> Iterator[SupervisorHarness]:
    harness = SupervisorHarness()
    try:
        yield harness
    finally:
        harness.cleanup()


def test_output_goes_to_the_json_log_and_the_exit_code_to_wait_and_events(
        supervisor: SupervisorHarness) -> None:
    async def scenario() -> None:
        client = await supervisor.client()
        events = client.events()
        first_event = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.05)  # the subscription is sent before the task exits
        cid = await supervisor.create(client, ["sh", "-c", "echo hi; echo oops >&2; exit 3"])
        assert (await client.list())[0]["status"] == "created"
        await client.start(cid)
        info = await client.wait(cid)
        assert info.exit_code == 3
        assert not info.oom_killed
        event = await asyncio.wait_for(first_event, 10)
        assert event["event"] == "exit" and event["id"] == cid and event["exit_code"] == 3
        lines = supervisor.log_lines(cid)
        assert [(r["log"], r["stream"]) for r in lines] == [("hi\n", "stdout"),
                                                             ("oops\n", "stderr")]
        assert all(r["time"].endswith("Z") for r in lines)
        [task] = await client.list()
        assert task["status"] == "stopped" and task["exit_code"] == 3
        await client.delete(cid)
        assert await client.list() == []
        await events.aclose()
        await client.close()

    run(scenario)


def test_attach_with_stdin_and_half_close_ends_the_process(
        supervisor: SupervisorHarness) -> None:
    async def scenario() -> None:
        client = await supervisor.client()
        cid = await supervisor.create(client, ["cat"], open_stdin=True)
        reader, writer = await client.attach(cid, stdin=True)
        await client.start(cid)
        writer.write(b"hello\nworld\n")
        await writer.drain()
        writer.write_eof()
        streams = await read_all(reader)
        assert streams == {1: b"hello\nworld\n"}
        assert (await client.wait(cid)).exit_code == 0
        writer.close()
        await client.delete(cid)
        await client.close()

    run(scenario)


def test_tty_task_gets_a_pty_that_resizes_and_takes_input(supervisor: SupervisorHarness) -> None:
    async def scenario() -> None:
        client = await supervisor.client()
        cid = await supervisor.create(
            client, ["sh", "-c", "stty size; read line; echo got:$line; exit 4"],
            tty=True, open_stdin=True)
        await client.resize(cid, 33, 111)
        reader, writer = await client.attach(cid, stdin=True)
        await client.start(cid)
        seen = await read_until(reader, b"33 111")
        writer.write(b"abc\n")
        await writer.drain()
        seen += b"".join((await read_all(reader)).values())
        assert b"got:abc" in seen
        assert (await client.wait(cid)).exit_code == 4
        logged = "".join(r["log"] for r in supervisor.log_lines(cid))
        assert "33 111" in logged and "got:abc" in logged
        assert {r["stream"] for r in supervisor.log_lines(cid)} == {"stdout"}
        writer.close()
        await client.delete(cid)
        await client.close()

    run(scenario)


def test_exec_output_exit_code_and_tty(supervisor: SupervisorHarness) -> None:
    async def scenario() -> None:
        client = await supervisor.client()
        cid = await supervisor.create(client, ["sleep", "1000"])
        await client.start(cid)
        process = {"args": ["sh", "-c", "echo out; echo err >&2; exit 7"],
                   "env": ["PATH=/bin:/usr/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}}
        await client.exec(cid, "e1", process)
        await asyncio.sleep(0.2)  # output produced before the attach is kept for it
        reader, writer = await client.attach(cid, exec_id="e1")
        assert await read_all(reader) == {1: b"out\n", 2: b"err\n"}
        info = await client.wait(cid, exec_id="e1")
        assert info.exit_code == 7 and info.exec_id == "e1"
        writer.close()
        tty_process = dict(process, args=["sh", "-c", "tty; exit 5"])
        await client.exec(cid, "e2", tty_process, terminal=True)
        reader, writer = await client.attach(cid, exec_id="e2")
        output = b"".join((await read_all(reader)).values())
        assert b"/dev/pts/" in output
        assert (await client.wait(cid, exec_id="e2")).exit_code == 5
        writer.close()
        with pytest.raises(errdefs.Conflict):
            await client.exec(cid, "e1", process)
        await client.exec(cid, "e3", dict(process, args=["true"]), detach=True)
        assert (await client.wait(cid, exec_id="e3")).exit_code == 0
        assert supervisor.log_lines(cid) == []  # exec output is not the container's log
        await client.kill(cid, "SIGKILL")
        assert (await client.wait(cid)).exit_code == 137
        await client.delete(cid)
        await client.close()

    run(scenario)


def test_kill_pause_resume_pids_state_and_errors(supervisor: SupervisorHarness) -> None:
    async def scenario() -> None:
        client = await supervisor.client()
        # pid 1 of a pid namespace ignores signals it has no handler for: trap TERM
        cid = await supervisor.create(
            client, ["sh", "-c", "trap 'exit 42' TERM; while true; do usleep 20000; done"])
        with pytest.raises(errdefs.NotFound):
            await client.start("sampan-test-no-such-task")
        pid = await client.start(cid)
        with pytest.raises(errdefs.Conflict):
            await client.start(cid)
        assert pid in await client.pids(cid)
        assert (await client.state(cid))["status"] == "running"
        await client.pause(cid)
        assert (await client.list())[0]["status"] == "paused"
        await client.resume(cid)
        await client.update(cid, {"pids": {"limit": 50}})
        with pytest.raises(errdefs.Conflict):
            await client.delete(cid)
        await client.kill(cid, "SIGTERM")
        assert (await client.wait(cid)).exit_code == 42
        with pytest.raises(errdefs.Conflict):
            await client.kill(cid, 9)
        with pytest.raises(errdefs.InvalidParameter):
            await client.kill(cid, "SIGNOPE")
        await client.delete(cid)
        with pytest.raises(errdefs.NotFound):
            await client.wait(cid)
        await client.close()

    run(scenario)


def test_failed_create_reports_the_runtime_error(supervisor: SupervisorHarness) -> None:
    async def scenario() -> None:
        client = await supervisor.client()
        with pytest.raises(errdefs.System, match="nonexistent"):
            await supervisor.create(client, ["/nonexistent"])
        assert await client.list() == []
        await client.close()

    run(scenario)


def test_tasks_outlive_the_client_and_a_new_client_lists_attaches_and_waits(
        supervisor: SupervisorHarness) -> None:
    async def first() -> str:
        client = await supervisor.client()
        cid = await supervisor.create(
            client, ["sh", "-c", "i=0; while [ $i -lt 400 ]; do echo line$i; i=$((i+1)); "
                     "usleep 5000; done; read x; exit 9"], open_stdin=True)
        reader, writer = await client.attach(cid, stdin=True)
        await client.start(cid)
        await read_until(reader, b"line3")
        writer.transport.abort()  # the client vanishes mid-stream
        await client.close()
        return cid

    cid = run(first)

    # a client killed -9 in the middle of an attach stream
    script = textwrap.dedent(f"""
        import asyncio, sys
        sys.path[:0] = {[str(Path.cwd()), str(Path.cwd() / 'src')]!r}
        from sampan.supervisor.client import SupervisorClient, read_frame
        async def main():
            client = await SupervisorClient.connect({supervisor.exec_root!r})
            reader, _ = await client.attach({cid!r})
            await read_frame(reader)
            print("attached", flush=True)
            await asyncio.sleep(100)
        asyncio.run(main())
    """)
    victim = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert victim.stdout is not None
        assert victim.stdout.readline() == b"attached\n"
    finally:
        victim.kill()
        victim.wait()

    async def second() -> None:
        client = await supervisor.client()
        [task] = await client.list()
        assert task["id"] == cid and task["status"] == "running"
        reader, writer = await client.attach(cid, stdin=True)
        await read_until(reader, b"line399")
        writer.write(b"bye\n")
        await writer.drain()
        assert (await client.wait(cid)).exit_code == 9
        writer.close()
        await client.close()

    run(second)
    assert supervisor.supervisor_alive()
    logged = [r["log"] for r in supervisor.log_lines(cid)]
    assert logged == [f"line{i}\n" for i in range(400)]  # nothing lost, nothing doubled


def test_json_log_rotates_at_max_size(supervisor: SupervisorHarness) -> None:
    async def scenario() -> None:
        client = await supervisor.client()
        cid = await supervisor.create(
            client, ["sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); done"],
            log_max_size=4096, log_max_files=3)
        await client.start(cid)
        assert (await client.wait(cid)).exit_code == 0
        await client.delete(cid)
        await client.close()
        log = Path(supervisor.log_path(cid))
        files = [Path(f"{log}.2"), Path(f"{log}.1"), log]
        assert all(f.exists() for f in files)
        assert not Path(f"{log}.3").exists()
        assert all(f.stat().st_size <= 4096 for f in files)
        kept = [json.loads(line)["log"] for f in files for line in f.read_text().splitlines()]
        numbers = [int(entry[4:]) for entry in kept]
        assert numbers == list(range(numbers[0], 300))  # the newest lines, in order
        assert numbers[0] > 0

    run(scenario)


def test_twenty_containers_at_once_and_the_supervisor_stays_small(
        supervisor: SupervisorHarness) -> None:
    async def scenario() -> None:
        client = await supervisor.client()
        idle = supervisor.pss_kib()
        ids = await asyncio.gather(*(supervisor.create(client, ["sh", "-c", "echo up; sleep 1000"])
                                     for _ in range(20)))
        await asyncio.gather(*(client.start(cid) for cid in ids))
        tasks = await client.list()
        assert sorted(t["id"] for t in tasks) == sorted(ids)
        assert {t["status"] for t in tasks} == {"running"}
        busy = supervisor.pss_kib()
        print(f"supervisor PSS: idle {idle} KiB, with 20 containers {busy} KiB "
              f"({(busy - idle) / 20:.1f} KiB each)")
        # `start` returns once the init may exec, not once `sh` has echoed: wait for the
        # output before the SIGKILL, or a fast kill races the echo
        deadline = asyncio.get_running_loop().time() + 30
        while not all(supervisor.log_lines(cid) for cid in ids):
            assert asyncio.get_running_loop().time() < deadline, "no output from some containers"
            await asyncio.sleep(0.05)
        await asyncio.gather(*(client.kill(cid, 9) for cid in ids))
        infos = await asyncio.gather(*(client.wait(cid) for cid in ids))
        assert {i.exit_code for i in infos} == {137}
        await asyncio.gather(*(client.delete(cid) for cid in ids))
        for cid in ids:
            assert [r["log"] for r in supervisor.log_lines(cid)] == ["up\n"]
        await client.close()

    run(scenario)


def test_oom_kill_is_reported(supervisor: SupervisorHarness) -> None:
    async def scenario() -> None:
        client = await supervisor.client()
        limit = 16 << 20
        cid = await supervisor.create(
            client, ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
            host_config={"Memory": limit, "MemorySwap": limit})
        events = client.events()
        oom_event = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.05)
        await client.start(cid)
        info = await client.wait(cid)
        assert info.exit_code == 137
        assert info.oom_killed
        assert (await asyncio.wait_for(oom_event, 10)) == {"event": "oom", "id": cid}
        await events.aclose()
        await client.delete(cid)
        await client.close()

    run(scenario)


def test_runc_can_be_the_runtime(supervisor: SupervisorHarness) -> None:
    async def scenario() -> None:
        client = await supervisor.client()
        cid = await supervisor.create(client, ["sh", "-c", "echo from-runc; exit 2"],
                                      runtime="runc")
        await client.start(cid)
        assert (await client.wait(cid)).exit_code == 2
        assert [r["log"] for r in supervisor.log_lines(cid)] == ["from-runc\n"]
        await client.delete(cid)
        await client.close()

    run(scenario)


def test_a_restarted_supervisor_knows_the_tasks_of_the_previous_one(
        supervisor: SupervisorHarness) -> None:
    async def before() -> str:
        client = await supervisor.client()
        cid = await supervisor.create(client, ["sleep", "1000"])
        await client.start(cid)
        await client.close()
        return cid

    cid = run(before)
    supervisor.stop_supervisor(signal.SIGKILL)
    assert not supervisor.supervisor_alive()

    async def after() -> None:
        client = await supervisor.client()  # starts a new supervisor
        [task] = await client.list()
        assert task["id"] == cid and task["status"] == "running" and not task["stdio"]
        with pytest.raises(errdefs.Unavailable):
            await client.attach(cid)
        await client.kill(cid, 9)
        info = await client.wait(cid)
        assert info.exit_code == 255  # not our child any more: the code is unknown
        await client.delete(cid)
        await client.close()

    run(after)


def test_client_starts_the_supervisor_once(supervisor: SupervisorHarness) -> None:
    async def scenario() -> None:
        clients = await asyncio.gather(*(SupervisorClient.connect(supervisor.exec_root)
                                         for _ in range(3)))
        pids = {(await c.ping())["pid"] for c in clients}
        assert len(pids) == 1
        assert pids == {supervisor.supervisor_pid()}
        for c in clients:
            await c.close()

    run(scenario)
    assert os.path.exists(os.path.join(supervisor.exec_root, "supervisor.sock"))
