"""Acceptance item 5: a batch of bad requests gets clear 4xx answers (Docker's status codes,
a JSON ``message`` naming the problem), and the daemon still works normally afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sampand_harness import Sampand, started_with_busybox

JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def sampand() -> Iterator[Sampand]:
    daemon = started_with_busybox()
    try:
        yield daemon
    finally:
        daemon.close()


def _create_body(**members: object) -> str:
    body: dict[str, object] = {"Image": "busybox", "Cmd": ["sleep", "1000"],
                               "HostConfig": {"NetworkMode": "none"}}
    body.update(members)
    return json.dumps(body)


def test_batch_of_bad_requests_then_daemon_works(sampand: Sampand) -> None:
    created = sampand.ok("create", "--name", "idle1", "--network", "none", "busybox",
                         "sleep", "1000").strip()
    running = sampand.run_d("--name", "busy1", "busybox", "sleep", "1000")
    sampand.seen.add(created)
    # (method, path, body, expected status, a piece of the message)
    cases: list[tuple[str, str, str | None, int, str]] = [
        # malformed JSON and wrong types
        ("POST", "/containers/create", "{not json", 400, "invalid"),
        ("POST", "/containers/create", "[1, 2]", 400, ""),
        ("POST", "/containers/create", json.dumps({"Image": 5}), 400, "Image"),
        ("POST", "/containers/create", _create_body(Env="A=1"), 400, "Env"),
        ("POST", "/containers/create", _create_body(HostConfig={"Memory": "lots"}), 400,
         "Memory"),
        ("POST", "/containers/create", _create_body(Tty="yes"), 400, "Tty"),
        ("POST", f"/containers/{running}/update", "{broken", 400, ""),
        ("POST", f"/containers/{running}/exec", json.dumps({"Cmd": 5}), 400, "Cmd"),
        ("POST", f"/containers/{running}/exec", json.dumps({"Cmd": []}), 400, ""),
        # unknown image
        ("POST", "/containers/create", _create_body(Image="nosuch"), 404,
         "No such image: nosuch:latest"),
        ("GET", "/images/nosuch:1/json", None, 404, "No such image: nosuch:1"),
        ("DELETE", "/images/nosuch:1", None, 404, "No such image: nosuch:1"),
        # invalid names
        ("POST", "/containers/create?name=w", _create_body(), 400, "Invalid container name"),
        ("POST", "/containers/create?name=a%2Fb", _create_body(), 400,
         "Invalid container name"),
        ("POST", "/containers/create?name=%C3%A9t%C3%A9", _create_body(), 400,
         "Invalid container name"),
        ("POST", f"/containers/{running}/rename?name=bad%20name", None, 400,
         "Invalid container name"),
        ("POST", "/containers/create?name=busy1", _create_body(), 409, "already in use"),
        # negative or absurd limits
        ("POST", "/containers/create", _create_body(HostConfig={"Memory": -5}), 400, ""),
        ("POST", "/containers/create", _create_body(HostConfig={"Memory": 1024}), 400,
         "Minimum memory limit"),
        ("POST", "/containers/create", _create_body(HostConfig={"CpuShares": -1}), 400, ""),
        ("POST", "/containers/create", _create_body(HostConfig={"NanoCpus": -1}), 400, ""),
        ("POST", "/containers/create",
         _create_body(HostConfig={"RestartPolicy": {"Name": "sometimes"}}), 400,
         "restart policy"),
        ("POST", f"/containers/{running}/update", json.dumps({"Memory": -5}), 400, ""),
        ("GET", "/containers/json?limit=-4", None, 400, ""),
        ("GET", "/containers/json?limit=abc", None, 400, ""),
        ("POST", f"/containers/{running}/resize?h=abc&w=10", None, 400, ""),
        # unknown ids
        ("GET", "/containers/nosuch/json", None, 404, "No such container: nosuch"),
        ("POST", "/containers/nosuch/start", None, 404, "No such container: nosuch"),
        ("DELETE", "/containers/nosuch", None, 404, "No such container: nosuch"),
        ("GET", "/exec/nosuch/json", None, 404, "nosuch"),
        ("POST", "/exec/nosuch/start", json.dumps({"Detach": True}), 404, "nosuch"),
        # wrong state
        ("POST", f"/containers/{created}/pause", None, 409, "is not running"),
        ("POST", f"/containers/{created}/kill", None, 409, "is not running"),
        ("POST", f"/containers/{created}/exec", json.dumps({"Cmd": ["true"]}), 409,
         "is not running"),
        ("POST", f"/containers/{running}/unpause", None, 409, "is not paused"),
        ("DELETE", f"/containers/{running}", None, 409, "running"),
        # bad parameters
        ("POST", f"/containers/{running}/kill?signal=NOSUCHSIG", None, 400, "signal"),
        ("POST", f"/containers/{running}/wait?condition=bogus", None, 400, "condition"),
        ("GET", "/containers/json?filters=%7Bbroken", None, 400, ""),
        ("GET", "/containers/json?filters=%7B%22nosuch%22%3A%5B%22x%22%5D%7D", None, 400,
         "nosuch"),
        ("GET", "/events?since=soon", None, 400, ""),
        ("GET", "/v9.99/version", None, 400, "version"),
        ("GET", "/v1.12/version", None, 400, "version"),
        ("GET", "/no/such/endpoint", None, 404, ""),
    ]
    failures = []
    for method, path, body, status, fragment in cases:
        got, reply = sampand.request(method, path, body,
                                     JSON_HEADERS if body is not None else None)
        message = ""
        if reply:
            try:
                message = json.loads(reply)["message"]
            except (ValueError, KeyError, TypeError):
                message = f"(not a JSON error: {reply[:200]!r})"
        if got != status or fragment not in message or (status != 404 and not message):
            failures.append(f"{method} {path} {body!r:.60}: {got} {message!r}, "
                            f"wanted {status} with {fragment!r}")
    assert not failures, "\n".join(failures)

    # nothing was half-made, the two containers are as they were, and it all still works
    names = sampand.ok("ps", "-a", "--format", "{{.Names}}").split()
    assert sorted(names) == ["busy1", "idle1"], names
    assert sampand.inspect("busy1")["State"]["Running"] is True
    assert sampand.ok("exec", "busy1", "echo", "fine") == "fine\n"
    assert sampand.ok("run", "--rm", "--network", "none", "busybox", "echo", "hi") == "hi\n"
    sampand.ok("rm", "-f", "busy1", "idle1")
