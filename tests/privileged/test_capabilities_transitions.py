"""Capability sets on the real kernel: a forked child goes through the runtime's order
(drop bounding, keepcaps, setuid, apply) and reports /proc/self/status."""

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from sampan.kernel import capabilities as kcaps
from sampan.runtime.capabilities import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    apply_capabilities,
    drop_bounding,
    mask_of,
    parse_capabilities,
)

pytestmark = pytest.mark.privileged

UID = GID = 1000
DEFAULT_MASK = mask_of(ALL_CAPABILITIES[name] for name in DEFAULT_CAPABILITIES)
NET_BIND = 1 << ALL_CAPABILITIES["CAP_NET_BIND_SERVICE"]
KILL = 1 << ALL_CAPABILITIES["CAP_KILL"]
CAP_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def run_in_child(work: Callable[[], Any]) -> Any:
    """Run ``work`` in a forked child; return its JSON-able result or fail with its error."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_fd)
            try:
                report: dict[str, Any] = {"ok": work()}
            except BaseException as exc:
                report = {"error": f"{type(exc).__name__}: {exc}"}
            data = json.dumps(report).encode()
            while data:
                data = data[os.write(write_fd, data) :]
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child died: status {status:#x}, {data!r}"
    report = json.loads(data)
    assert "error" not in report, report["error"]
    return report["ok"]


def parse_status(text: str) -> dict[str, int]:
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in CAP_FIELDS:
            fields[key] = int(value.strip(), 16)
        elif key == "Uid":
            fields["Uid"] = int(value.split()[0])
    return fields


def read_status() -> dict[str, int]:
    with open("/proc/self/status", encoding="ascii") as status:
        return parse_status(status.read())


def become_user(spec: dict[str, Any]) -> dict[str, list[str]]:
    """The runtime init's order, up to (not including) seccomp and execve."""
    caps = parse_capabilities(spec)
    skipped_bounding = drop_bounding(caps)
    kcaps.set_keepcaps(True)
    os.setgroups([])
    os.setgid(GID)
    os.setuid(UID)
    kcaps.set_keepcaps(False)
    skipped = apply_capabilities(caps)
    return {"bounding": skipped_bounding, "sets": skipped}


def test_child_reaches_exactly_the_requested_sets_as_uid_1000() -> None:
    default = list(DEFAULT_CAPABILITIES)
    spec = {
        "bounding": [*default, "CAP_SYS_RESOURCE"],  # not in this host's bounding set
        "effective": default,
        "permitted": default,
        "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }

    def child() -> dict[str, Any]:
        skipped = become_user(spec)
        return {"skipped": skipped, "status": read_status()}

    host_bounding = read_status()["CapBnd"]
    result = run_in_child(child)
    expected_skip = [] if host_bounding >> ALL_CAPABILITIES["CAP_SYS_RESOURCE"] & 1 else [
        "CAP_SYS_RESOURCE"
    ]
    assert result["skipped"] == {"bounding": expected_skip, "sets": []}
    assert result["status"] == {
        "Uid": UID,
        "CapInh": NET_BIND | KILL,
        "CapPrm": DEFAULT_MASK,
        "CapEff": DEFAULT_MASK,
        "CapBnd": DEFAULT_MASK,
        "CapAmb": NET_BIND,
    }


def test_ambient_capabilities_survive_execve_as_uid_1000() -> None:
    spec = {
        "bounding": list(DEFAULT_CAPABILITIES),
        "effective": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "permitted": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_fd)
            os.dup2(write_fd, 1)
            become_user(spec)
            os.execv("/bin/cat", ["cat", "/proc/self/status"])
        finally:
            os._exit(127)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        output = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output
    # execve of a file without capabilities by a non-root user: permitted and effective
    # become the ambient set; inheritable and bounding carry over.
    assert parse_status(output) == {
        "Uid": UID,
        "CapInh": NET_BIND | KILL,
        "CapPrm": NET_BIND,
        "CapEff": NET_BIND,
        "CapBnd": DEFAULT_MASK,
        "CapAmb": NET_BIND,
    }


def test_without_ambient_capabilities_execve_as_uid_1000_has_none() -> None:
    spec = {
        "bounding": list(DEFAULT_CAPABILITIES),
        "effective": list(DEFAULT_CAPABILITIES),
        "permitted": list(DEFAULT_CAPABILITIES),
    }
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_fd)
            os.dup2(write_fd, 1)
            become_user(spec)
            os.execv("/bin/cat", ["cat", "/proc/self/status"])
        finally:
            os._exit(127)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        output = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output
    fields = parse_status(output)
    assert (fields["CapPrm"], fields["CapEff"], fields["CapAmb"]) == (0, 0, 0)
    assert fields["CapBnd"] == DEFAULT_MASK


def test_root_asking_for_every_capability_gets_what_it_has_and_a_list_of_the_rest() -> None:
    every = list(ALL_CAPABILITIES)
    spec = {name: every for name in ("bounding", "effective", "permitted", "inheritable")}

    def child() -> dict[str, Any]:
        before = read_status()
        skipped_bounding = drop_bounding(parse_capabilities(spec))
        skipped = apply_capabilities(parse_capabilities(spec))
        return {"before": before, "after": read_status(), "skipped": [skipped_bounding, skipped]}

    result = run_in_child(child)
    have = result["before"]["CapBnd"]
    missing = [name for name, number in ALL_CAPABILITIES.items() if not have >> number & 1]
    assert result["skipped"] == [missing, missing]
    assert result["after"]["CapBnd"] == have
    assert result["after"]["CapPrm"] == result["before"]["CapPrm"]
    assert result["after"]["CapInh"] == have


def test_dropping_the_bounding_set_needs_only_present_capabilities() -> None:
    spec = {"bounding": ["CAP_CHOWN", "CAP_SETPCAP"], "effective": [], "permitted": []}

    def child() -> dict[str, Any]:
        caps = parse_capabilities(spec)
        first = drop_bounding(caps)
        second = drop_bounding(caps)  # nothing left to drop: no error
        return {"skipped": [first, second], "status": read_status()}

    result = run_in_child(child)
    assert result["skipped"] == [[], []]
    assert result["status"]["CapBnd"] == 1 << 0 | 1 << ALL_CAPABILITIES["CAP_SETPCAP"]
