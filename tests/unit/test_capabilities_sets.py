"""Parsing OCI process.capabilities and deciding which kernel calls bring a process there."""

import errno

import pytest

from sampan import errdefs
from sampan.runtime.capabilities import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    CapabilitySets,
    apply_capabilities,
    drop_bounding,
    mask_of,
    parse_capabilities,
)

CHOWN, KILL, SETPCAP, NET_BIND, SYS_ADMIN, SYS_RESOURCE = 0, 5, 8, 10, 21, 24


def test_capability_numbers_match_the_kernel_headers() -> None:
    assert ALL_CAPABILITIES["CAP_CHOWN"] == 0
    assert ALL_CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert ALL_CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert sorted(ALL_CAPABILITIES.values()) == list(range(41))
    assert len(DEFAULT_CAPABILITIES) == 14


def test_parse_reads_the_five_sets() -> None:
    caps = parse_capabilities(
        {
            "bounding": ["CAP_CHOWN", "CAP_KILL"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL", "CAP_CHOWN"],
            "inheritable": [],
            "ambient": ["CAP_KILL"],
        }
    )
    assert caps == CapabilitySets(
        bounding=frozenset({CHOWN, KILL}),
        effective=frozenset({KILL}),
        inheritable=frozenset(),
        permitted=frozenset({CHOWN, KILL}),
        ambient=frozenset({KILL}),
    )


def test_missing_capabilities_mean_empty_sets() -> None:
    assert parse_capabilities(None) == CapabilitySets()
    assert parse_capabilities({"bounding": ["CAP_KILL"]}) == CapabilitySets(
        bounding=frozenset({KILL})
    )


def test_unknown_capability_is_an_invalid_parameter() -> None:
    with pytest.raises(errdefs.InvalidParameter) as caught:
        parse_capabilities({"effective": ["CAP_KILL", "CAP_FOO"]})
    assert str(caught.value) == 'unknown capability "CAP_FOO"'


@pytest.mark.parametrize("bad", [{"effective": "CAP_KILL"}, {"effective": [5]}, ["CAP_KILL"]])
def test_malformed_capabilities_are_invalid(bad: object) -> None:
    with pytest.raises(errdefs.InvalidParameter, match=r"process\.capabilities"):
        parse_capabilities(bad)  # type: ignore[arg-type]


class RecordingKernel:
    """A process holding ``bounding``/``permitted``/``effective``; records the calls."""

    def __init__(
        self, bounding: set[int], permitted: set[int], effective: set[int], inheritable: set[int]
    ) -> None:
        self.bounding = set(bounding)
        self.state = (mask_of(effective), mask_of(permitted), mask_of(inheritable))
        self.calls: list[tuple[str, int | tuple[int, int, int]]] = []
        self.refuse_ambient: set[int] = set()

    def capget(self, pid: int = 0) -> tuple[int, int, int]:
        return self.state

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        self.calls.append(("capset", (effective, permitted, inheritable)))

    def bounding_has(self, cap: int) -> bool:
        return cap in self.bounding

    def bounding_drop(self, cap: int) -> None:
        self.calls.append(("drop", cap))

    def ambient_raise(self, cap: int) -> None:
        if cap in self.refuse_ambient:
            raise OSError(errno.EPERM, "prctl(PR_CAP_AMBIENT_RAISE): Operation not permitted")
        self.calls.append(("ambient", cap))

    def ambient_clear_all(self) -> None:
        self.calls.append(("ambient_clear", 0))


def test_drop_bounding_drops_only_present_capabilities_and_reports_missing_ones() -> None:
    kernel = RecordingKernel({CHOWN, KILL, SETPCAP, SYS_ADMIN}, set(), set(), set())
    caps = CapabilitySets(bounding=frozenset({CHOWN, KILL, SYS_RESOURCE}))
    skipped = drop_bounding(caps, kernel=kernel, last_cap=40)
    assert kernel.calls == [("drop", SETPCAP), ("drop", SYS_ADMIN)]
    assert skipped == ["CAP_SYS_RESOURCE"]


def test_apply_sets_the_three_sets_in_one_capset_then_raises_ambient() -> None:
    everything = set(range(41)) - {SYS_RESOURCE}
    kernel = RecordingKernel(everything, everything, set(), set())  # after setuid with keepcaps
    caps = CapabilitySets(
        effective=frozenset({CHOWN, NET_BIND}),
        permitted=frozenset({CHOWN, NET_BIND}),
        inheritable=frozenset({NET_BIND}),
        ambient=frozenset({NET_BIND}),
    )
    assert apply_capabilities(caps, kernel=kernel) == []
    assert kernel.calls == [
        ("capset", (mask_of({CHOWN, NET_BIND}), mask_of({CHOWN, NET_BIND}), mask_of({NET_BIND}))),
        ("ambient_clear", 0),
        ("ambient", NET_BIND),
    ]


def test_apply_skips_what_the_process_does_not_have() -> None:
    have = set(range(41)) - {SYS_RESOURCE}
    kernel = RecordingKernel(have, have, have, set())
    every = frozenset(range(41))
    skipped = apply_capabilities(
        CapabilitySets(effective=every, permitted=every, inheritable=every, ambient=every),
        kernel=kernel,
    )
    mask = mask_of(have)
    assert kernel.calls[0] == ("capset", (mask, mask, mask))
    assert skipped == ["CAP_SYS_RESOURCE"]


def test_ambient_needs_permitted_and_inheritable() -> None:
    have = {CHOWN, KILL, NET_BIND}
    kernel = RecordingKernel(have, have, set(), set())
    skipped = apply_capabilities(
        CapabilitySets(
            permitted=frozenset({KILL, NET_BIND}),
            inheritable=frozenset({NET_BIND}),
            ambient=frozenset({KILL, NET_BIND}),
        ),
        kernel=kernel,
    )
    assert ("ambient", NET_BIND) in kernel.calls
    assert ("ambient", KILL) not in kernel.calls
    assert skipped == ["CAP_KILL"]


def test_ambient_raise_refused_by_the_kernel_is_skipped() -> None:
    have = {NET_BIND}
    kernel = RecordingKernel(have, have, set(), set())
    kernel.refuse_ambient = {NET_BIND}
    skipped = apply_capabilities(
        CapabilitySets(
            permitted=frozenset(have), inheritable=frozenset(have), ambient=frozenset(have)
        ),
        kernel=kernel,
    )
    assert skipped == ["CAP_NET_BIND_SERVICE"]
