"""`--network none`: the container gets a namespace of its own with only a loopback, and that
loopback is up (127.0.0.1 works inside), as Docker gives it; nothing is left after removal."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sampand_harness import Sampand, started_with_busybox


@pytest.fixture(scope="module")
def sampand() -> Iterator[Sampand]:
    daemon = started_with_busybox()
    try:
        yield daemon
    finally:
        daemon.close()


def test_network_none_has_only_a_loopback_and_it_is_up(sampand: Sampand) -> None:
    out = sampand.ok("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                     "ip -o link show; ip -o addr show lo")
    links = [line.split(":")[1].strip() for line in out.splitlines() if ": " in line
             and "link/" in line]
    assert links == ["lo"], out
    assert "UP" in out.splitlines()[0] or "LOWER_UP" in out.splitlines()[0], out
    assert "inet 127.0.0.1/8" in out, out


def test_loopback_serves_a_tcp_round_trip_inside(sampand: Sampand) -> None:
    out = sampand.ok("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                     "nc -l -p 7777 -e echo pong & sleep 0.3; nc 127.0.0.1 7777 </dev/null")
    assert out.strip() == "pong"


def test_the_namespace_file_goes_with_the_container(sampand: Sampand) -> None:
    cid = sampand.ok("run", "-d", "--network", "none", "busybox", "sleep", "100").strip()
    sampand.seen.add(cid)
    netns_dir = os.path.join(sampand.root, "exec", "netns")
    assert cid in os.listdir(netns_dir)
    sampand.ok("rm", "-f", cid)
    assert cid not in os.listdir(netns_dir)
