"""The json-file log reader, the event bus and its filters, ps filters, top, health
results and the state store."""

import asyncio
import json
import os
from pathlib import Path

import pytest

from sampan import errdefs
from sampan.daemon.events import EventBus, make_event, matches
from sampan.daemon.health import health_command, record_result
from sampan.daemon.list_filters import matcher
from sampan.daemon.logs import LogQuery, follow_log, read_existing
from sampan.daemon.model import EXITED, RUNNING, Container, ContainerState, HealthState
from sampan.daemon.store import ContainerStore
from sampan.daemon.top import filter_ps_output

S = 1_000_000_000


def line(text: str, stream: str, second: int) -> str:
    return json.dumps({"log": text, "stream": stream,
                       "time": f"2026-11-29T06:43:{second:02d}.000000001Z"}) + "\n"


@pytest.fixture
def log_file(tmp_path: Path) -> str:
    path = tmp_path / "c-json.log"
    (tmp_path / "c-json.log.1").write_text(line("old\n", "stdout", 1))
    path.write_text(line("a\n", "stdout", 2) + line("b\n", "stderr", 3) + line("c\n", "stdout", 4)
                    + '{"log": "torn')
    return str(path)


def test_reader_reads_rotated_files_first_and_skips_torn_line(log_file: str) -> None:
    records, (_, offset) = read_existing(log_file, LogQuery())
    assert [r.data for r in records] == [b"old\n", b"a\n", b"b\n", b"c\n"]
    assert [r.stream for r in records] == [1, 1, 2, 1]
    assert offset < os.path.getsize(log_file)  # stops before the incomplete line


def test_reader_tail_streams_and_since(log_file: str) -> None:
    assert [r.data for r in read_existing(log_file, LogQuery(tail=2))[0]] == [b"b\n", b"c\n"]
    assert read_existing(log_file, LogQuery(tail=0))[0] == []
    only_out = read_existing(log_file, LogQuery(stderr=False))[0]
    assert b"b\n" not in [r.data for r in only_out]
    since = read_existing(log_file, LogQuery(since_ns=only_out[1].time_ns + 1))[0]
    assert [r.data for r in since] == [b"b\n", b"c\n"]
    until = read_existing(log_file, LogQuery(until_ns=only_out[1].time_ns))[0]
    assert [r.data for r in until] == [b"old\n", b"a\n"]


def test_timestamps_are_prepended_fixed_width(log_file: str) -> None:
    query = LogQuery(timestamps=True)
    record = read_existing(log_file, query)[0][1]
    assert query.entry(record) == (1, b"2026-11-29T06:43:02.000000001Z a\n")


def test_follow_picks_up_new_lines_and_ends_when_stopped(log_file: str) -> None:
    running = [True]

    async def scenario() -> list[bytes]:
        _, position = read_existing(log_file, LogQuery())
        got: list[bytes] = []

        async def consume() -> None:
            async for record in follow_log(log_file, LogQuery(), lambda: running[0], position):
                got.append(record.data)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        with open(log_file, "a") as handle:
            handle.write('", "stream": "stdout", "time": "2026-11-29T06:43:05Z"}\n')
            handle.write(line("d\n", "stdout", 6))
        await asyncio.sleep(0.2)
        running[0] = False
        await asyncio.wait_for(task, 5)
        return got

    assert asyncio.run(scenario()) == [b"torn", b"d\n"]


def test_event_shape_has_legacy_fields_for_containers() -> None:
    event = make_event("container", "die", "abc", {"image": "busybox", "exitCode": "0"}, 5 * S)
    assert event["status"] == "die" and event["id"] == "abc" and event["from"] == "busybox"
    assert event["Actor"] == {"ID": "abc", "Attributes": {"image": "busybox", "exitCode": "0"}}
    assert (event["time"], event["timeNano"], event["scope"]) == (5, 5 * S, "local")
    assert "status" not in make_event("network", "connect", "n", {})


def test_event_filters() -> None:
    event = make_event("container", "exec_create: echo hi", "abc123",
                       {"image": "busybox", "name": "w1", "com.x": "y"})
    assert matches(event, {"type": ["container"], "event": ["exec_create"]})
    assert matches(event, {"container": ["w1"]}) and matches(event, {"container": ["abc"]})
    assert not matches(event, {"container": ["other"]})
    assert matches(event, {"image": ["busybox"]}) and matches(event, {"label": ["com.x=y"]})
    assert not matches(event, {"label": ["com.x=z"]})
    assert not matches(event, {"type": ["image"]})


def test_bus_replays_history_and_streams_live_until() -> None:
    async def scenario() -> list[str]:
        bus = EventBus()
        bus.publish("container", "create", "a", {})
        start = bus._history[0]["timeNano"]
        seen: list[str] = []

        async def consume() -> None:
            async for event in bus.subscribe(start, 0, {}):
                seen.append(event["Action"])
                if len(seen) == 2:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        bus.publish("container", "start", "a", {})
        await asyncio.wait_for(task, 5)
        return seen

    assert asyncio.run(scenario()) == ["create", "start"]


def test_bus_refuses_unknown_filter() -> None:
    async def scenario() -> None:
        async for _ in EventBus().subscribe(0, 1, {"bogus": ["x"]}):
            pass

    with pytest.raises(errdefs.InvalidParameter, match="invalid filter 'bogus'"):
        asyncio.run(scenario())


def container(cid: str, name: str, status: str, created: int, **labels: str) -> Container:
    return Container(id=cid, name=name, created=created, image="busybox",
                     image_id="sha256:b", path="sh", args=[], config={"Labels": labels},
                     host_config={"NetworkMode": "none"},
                     state=ContainerState(status=status, started_at=1, exit_code=0))


def test_ps_filters() -> None:
    items = [container("aa1", "/web", RUNNING, 1, app="x"),
             container("bb2", "/db", EXITED, 2),
             container("cc3", "/web2", EXITED, 3)]
    by_id = {c.id: c for c in items}

    def pick(filters: dict[str, list[str]]) -> list[str]:
        keep = matcher(filters, lambda ref: by_id[ref], lambda c, ref: c.image == ref)
        return [c.id for c in items if keep(c)]

    assert pick({"status": ["exited"]}) == ["bb2", "cc3"]
    assert pick({"name": ["web"]}) == ["aa1", "cc3"]
    assert pick({"label": ["app=x"]}) == ["aa1"]
    assert pick({"id": ["bb"]}) == ["bb2"]
    assert pick({"since": ["aa1"]}) == ["bb2", "cc3"]
    assert pick({"before": ["cc3"]}) == ["aa1", "bb2"]
    assert pick({"exited": ["0"]}) == ["bb2", "cc3"]
    assert pick({"ancestor": ["busybox"]}) == ["aa1", "bb2", "cc3"]
    assert pick({"network": ["none"]}) == ["aa1", "bb2", "cc3"]
    with pytest.raises(errdefs.InvalidParameter):
        pick({"status": ["sleeping"]})
    with pytest.raises(errdefs.InvalidParameter):
        pick({"colour": ["red"]})


def test_top_keeps_the_containers_processes() -> None:
    output = ("UID PID PPID C STIME TTY TIME CMD\n"
              "root 10 1 0 06:43 ? 00:00:00 sh -c while true; do echo; done\n"
              "root 11 10 0 06:43 ? 00:00:00 sleep 1\n"
              "root 99 1 0 06:43 ? 00:00:00 other\n")
    top = filter_ps_output(output, {10, 11})
    assert top["Titles"][1] == "PID"
    assert [p[1] for p in top["Processes"]] == ["10", "11"]
    assert top["Processes"][0][-1] == "sh -c while true; do echo; done"


def test_health_results() -> None:
    assert health_command(["CMD-SHELL", "exit 1"]) == ["/bin/sh", "-c", "exit 1"]
    assert health_command(["CMD", "true"]) == ["true"]
    assert health_command(["NONE"]) is None
    health = HealthState()
    record_result(health, 1, b"no", 0, 1, retries=2, in_start_period=True)
    assert (health.status, health.failing_streak) == ("starting", 0)
    record_result(health, 1, b"no", 0, 1, retries=2, in_start_period=False)
    record_result(health, 1, b"no", 0, 1, retries=2, in_start_period=False)
    assert (health.status, health.failing_streak) == ("unhealthy", 2)
    record_result(health, 0, b"ok", 0, 1, retries=2, in_start_period=False)
    assert (health.status, health.failing_streak) == ("healthy", 0)
    for _ in range(10):
        record_result(health, 0, b"ok", 0, 1, retries=2, in_start_period=False)
    assert len(health.log) == 5


def test_store_keeps_names_unique_and_survives_reopen(tmp_path: Path) -> None:
    store = ContainerStore(str(tmp_path / "state.db"))
    first = container("a" * 64, "/one", RUNNING, 1)
    store.insert(first)
    with pytest.raises(errdefs.Conflict):
        store.insert(container("b" * 64, "/one", EXITED, 2))
    first.name = "/renamed"
    first.state.health = HealthState("healthy")
    store.save(first)
    store.close()
    loaded = ContainerStore(str(tmp_path / "state.db")).load_all()
    assert [(c.id, c.name) for c in loaded] == [("a" * 64, "/renamed")]
    assert loaded[0].state.health == HealthState("healthy")
