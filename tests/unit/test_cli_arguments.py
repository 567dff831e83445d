"""Command-line parsing: docker's flag semantics and the create body ``run`` sends."""

from __future__ import annotations

import pytest

from sampan.cli.arguments import new_parser, split_at_command
from sampan.cli.commands.container import exec_, run
from sampan.cli.container_options import create_body, parse_duration, parse_publish
from sampan.cli.errors import UsageError
from sampan.cli.streams import DetachMatcher, parse_detach_keys


def test_options_stop_at_the_image_so_the_command_keeps_its_flags() -> None:
    args = run.parse("sampan run", ["-it", "--rm", "-e", "A=1", "busybox", "ls", "-l", "-e"])
    assert (args.interactive, args.tty, args.rm, args.env) == (True, True, True, ["A=1"])
    assert (args.image, args.command) == ("busybox", ["ls", "-l", "-e"])


def test_h_is_hostname_for_run_and_exec_needs_a_command() -> None:
    assert run.parse("sampan run", ["-h", "box", "busybox"]).hostname == "box"
    with pytest.raises(UsageError) as raised:
        exec_.parse("sampan exec", ["c1"])
    assert raised.value.status == 125


def test_unknown_flag_is_a_usage_error_with_status_125() -> None:
    parser = new_parser("sampan x", "", "")
    with pytest.raises(UsageError) as raised:
        parser.parse_args(["--nope"])
    assert raised.value.status == 125 and "See 'sampan x --help'." in raised.value.message


def test_split_handles_clustered_and_attached_values() -> None:
    parser = new_parser("p", "", "")
    parser.add_argument("-e", action="append")
    parser.add_argument("-i", action="store_true")
    assert split_at_command(parser, ["-ie", "X=1", "img", "-e"], 1) == (
        ["-ie", "X=1", "img"], ["-e"])
    assert split_at_command(parser, ["-eX=1", "--", "img", "a"], 1) == (
        ["-eX=1", "img"], ["a"])


def test_create_body_carries_docker_fields() -> None:
    args = run.parse("sampan run", [
        "-d", "--name", "w", "-p", "127.0.0.1:8080:80", "-p", "53/udp", "-v", "/h:/c:ro",
        "-v", "/anon", "-m", "64m", "--cpus", "1.5", "--restart", "on-failure:3",
        "--health-cmd", "true", "--health-interval", "1m30s", "--entrypoint", "",
        "busybox", "sleep", "1"])
    body = create_body(args, args.image, args.command)
    host = body["HostConfig"]
    assert body["Cmd"] == ["sleep", "1"] and body["Entrypoint"] == [""]
    assert body["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert host["PortBindings"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "8080"}]
    assert host["Binds"] == ["/h:/c:ro"] and body["Volumes"] == {"/anon": {}}
    assert (host["Memory"], host["NanoCpus"]) == (64 << 20, 1_500_000_000)
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert body["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 90 * 10**9}
    assert body["AttachStdout"] is False and host["NetworkMode"] == "default"


def test_publish_ranges_and_durations() -> None:
    exposed, bindings = parse_publish(["8000-8001:80-81"])
    assert bindings["81/tcp"] == [{"HostIp": "", "HostPort": "8001"}] and len(exposed) == 2
    assert parse_duration("500ms") == 500_000_000
    with pytest.raises(UsageError):
        parse_duration("5 minutes")


def test_detach_keys_parse_and_match_across_reads() -> None:
    keys = parse_detach_keys("ctrl-p,ctrl-q")
    assert keys == b"\x10\x11"
    matcher = DetachMatcher(keys)
    assert matcher.feed(b"ab\x10") == (b"ab", False)
    assert matcher.feed(b"\x11") == (b"", True)
    assert matcher.feed(b"\x10x") == (b"\x10x", False)
    with pytest.raises(ValueError):
        parse_detach_keys("ctrl-1")
