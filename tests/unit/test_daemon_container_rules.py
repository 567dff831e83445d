"""Names, the lifecycle state machine, create-time config merging and validation, restart
policies and signal names."""

import random
import signal

import pytest

from sampan import errdefs
from sampan.daemon import lifecycle
from sampan.daemon.create_config import (
    check_host_config,
    command_of,
    merge_image_config,
    parse_log_size,
)
from sampan.daemon.model import CREATED, EXITED, PAUSED, RUNNING, Container, ContainerState
from sampan.daemon.names import generate_name, normalize_name
from sampan.daemon.restart import Backoff, should_restart, start_on_daemon_start
from sampan.daemon.signals import parse_signal

RUNTIMES = {"sampan-runc": "/bin/true"}


def make(status: str) -> Container:
    return Container(id="a" * 64, name="/w1", created=1, image="busybox", image_id="sha256:x",
                     path="sh", args=[], config={}, host_config={},
                     state=ContainerState(status=status, started_at=1 if status != CREATED
                                          else 0))


def test_names_follow_dockers_rule() -> None:
    assert normalize_name("w1") == "/w1"
    assert normalize_name("/a.b-c_d") == "/a.b-c_d"
    for bad in ("w", "-x", "a b", "x/y", ""):
        with pytest.raises(errdefs.InvalidParameter, match="Invalid container name"):
            normalize_name(bad)


def test_generated_names_are_valid_and_vary_after_a_collision() -> None:
    rng = random.Random(1)
    first = generate_name(rng)
    assert normalize_name(first) == first
    assert generate_name(rng, retry=1)[-1].isdigit()


@pytest.mark.parametrize(("check", "status", "error"), [
    (lifecycle.check_start, RUNNING, errdefs.NotModified),
    (lifecycle.check_start, PAUSED, errdefs.Conflict),
    (lifecycle.check_stop, EXITED, errdefs.NotModified),
    (lifecycle.check_stop, CREATED, errdefs.NotModified),
    (lifecycle.check_kill, EXITED, errdefs.Conflict),
    (lifecycle.check_pause, EXITED, errdefs.Conflict),
    (lifecycle.check_pause, PAUSED, errdefs.Conflict),
    (lifecycle.check_unpause, RUNNING, errdefs.Conflict),
    (lifecycle.check_exec, PAUSED, errdefs.Conflict),
    (lifecycle.check_exec, EXITED, errdefs.Conflict),
])
def test_illegal_moves_are_refused(check, status, error) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error):
        check(make(status))


@pytest.mark.parametrize(("check", "status"), [
    (lifecycle.check_start, CREATED), (lifecycle.check_start, EXITED),
    (lifecycle.check_stop, RUNNING), (lifecycle.check_kill, PAUSED),
    (lifecycle.check_pause, RUNNING), (lifecycle.check_unpause, PAUSED),
    (lifecycle.check_exec, RUNNING),
])
def test_legal_moves_pass(check, status) -> None:  # type: ignore[no-untyped-def]
    check(make(status))


def test_remove_of_running_container_needs_force() -> None:
    with pytest.raises(errdefs.Conflict, match="container is running"):
        lifecycle.check_remove(make(RUNNING), force=False)
    lifecycle.check_remove(make(RUNNING), force=True)
    lifecycle.check_remove(make(EXITED), force=False)


def test_image_config_fills_what_the_user_left_empty() -> None:
    image = {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/w",
             "Labels": {"x": "1"}, "User": "nobody", "StopSignal": "SIGQUIT"}
    merged = merge_image_config({"Env": ["A=2", "B=3"], "Labels": {"y": "2"}}, image)
    assert merged["Env"] == ["PATH=/bin", "A=2", "B=3"]
    assert merged["Cmd"] == ["sh"]
    assert merged["WorkingDir"] == "/w"
    assert merged["Labels"] == {"x": "1", "y": "2"}
    assert merged["User"] == "nobody"
    assert merged["StopSignal"] == "SIGQUIT"


def test_user_entrypoint_drops_image_cmd() -> None:
    image = {"Entrypoint": ["/init"], "Cmd": ["serve"]}
    merged = merge_image_config({"Entrypoint": ["echo"], "Cmd": None}, image)
    assert command_of(merged) == ("echo", [])
    merged = merge_image_config({"Cmd": ["x"]}, image)
    assert command_of(merged) == ("/init", ["x"])


def test_no_command_is_invalid() -> None:
    with pytest.raises(errdefs.InvalidParameter, match="no command"):
        command_of(merge_image_config({}, {}))


def test_missing_path_gets_dockers_default() -> None:
    assert merge_image_config({}, {})["Env"][0].startswith("PATH=/usr/local/sbin")


def test_host_config_defaults() -> None:
    hc = check_host_config({}, RUNTIMES, "sampan-runc")
    assert hc["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert hc["ShmSize"] == 64 * 1024 * 1024
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert hc["Runtime"] == "sampan-runc"


@pytest.mark.parametrize("host_config", [
    {"Memory": -1},
    {"Memory": 1024},
    {"RestartPolicy": {"Name": "sometimes"}},
    {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}},
    {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}},
    {"AutoRemove": True, "RestartPolicy": {"Name": "always"}},
    {"LogConfig": {"Type": "syslog"}},
    {"Runtime": "nope"},
    {"NanoCpus": 1000, "CpuQuota": 5000},
    {"MemorySwap": 100 * 1024 * 1024},
])
def test_bad_host_config_is_invalid(host_config: dict[str, object]) -> None:
    with pytest.raises(errdefs.InvalidParameter):
        check_host_config(host_config, RUNTIMES, "sampan-runc")


def test_log_sizes() -> None:
    assert parse_log_size("10m") == 10 * 1024 * 1024
    assert parse_log_size("512k") == 512 * 1024
    assert parse_log_size("100") == 100
    with pytest.raises(errdefs.InvalidParameter):
        parse_log_size("ten")


def test_restart_policies() -> None:
    assert not should_restart({"Name": "no"}, 1, 0, False)
    assert should_restart({"Name": "always"}, 0, 5, False)
    assert not should_restart({"Name": "always"}, 0, 5, True)
    assert should_restart({"Name": "on-failure", "MaximumRetryCount": 2}, 1, 1, False)
    assert not should_restart({"Name": "on-failure", "MaximumRetryCount": 2}, 1, 2, False)
    assert not should_restart({"Name": "on-failure"}, 0, 0, False)
    assert start_on_daemon_start({"Name": "always"}, True)
    assert not start_on_daemon_start({"Name": "unless-stopped"}, True)


def test_restart_delay_doubles_and_resets_after_a_long_run() -> None:
    backoff = Backoff()
    assert [backoff.next_delay(0.1) for _ in range(4)] == [0.1, 0.2, 0.4, 0.8]
    assert backoff.next_delay(30.0) == 0.1
    for _ in range(20):
        backoff.next_delay(0.1)
    assert backoff.delay == 60.0


def test_signal_names() -> None:
    assert parse_signal("SIGTERM") == signal.SIGTERM
    assert parse_signal("term") == signal.SIGTERM
    assert parse_signal("9") == 9
    assert parse_signal(None) == signal.SIGKILL
    assert parse_signal("SIGRTMIN+1") == signal.SIGRTMIN + 1
    for bad in ("SIGNOPE", "0", "999"):
        with pytest.raises(errdefs.InvalidParameter):
            parse_signal(bad)
