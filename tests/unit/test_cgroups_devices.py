"""The cgroup v2 device program, run in a tiny eBPF interpreter against the rule semantics."""

import itertools
import struct

import pytest

from sampan import errdefs
from sampan.runtime.cgroups.devices import DeviceRule, compile_program, parse_rules, v1_line

ACCESS_BITS = {"m": 1, "r": 2, "w": 4}
TYPE_CODES = {"b": 1, "c": 2}


def run_program(program: bytes, dev_type: str, major: int, minor: int, access: str) -> int:
    """Interpret the eBPF subset the compiler emits on a ``struct bpf_cgroup_dev_ctx``."""
    access_bits = sum(ACCESS_BITS[c] for c in access)
    ctx = struct.pack("<III", (access_bits << 16) | TYPE_CODES[dev_type], major, minor)
    insns = [struct.unpack("<BBhi", program[i : i + 8]) for i in range(0, len(program), 8)]
    regs = [0] * 11
    pc = 0
    for _ in range(10_000):
        code, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == 0x61:
            assert src == 1, "loads only from the context"
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == 0xBF:
            regs[dst] = regs[src]
        elif code == 0xB7:
            regs[dst] = imm
        elif code == 0x57:
            regs[dst] &= imm
        elif code == 0x77:
            regs[dst] >>= imm
        elif code == 0x55:
            pc += off if regs[dst] != imm else 0
        elif code == 0x5D:
            pc += off if regs[dst] != regs[src] else 0
        elif code == 0x15:
            pc += off if regs[dst] == imm else 0
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("program did not exit")


def expected(rules: list[DeviceRule], dev_type: str, major: int, minor: int, access: str) -> int:
    """The reference semantics: the last matching rule decides, no match allows."""
    for rule in reversed(rules):
        if rule.type != "a" and rule.type != dev_type:
            continue
        if rule.major is not None and rule.major != major:
            continue
        if rule.minor is not None and rule.minor != minor:
            continue
        if rule.allow and not set(access) <= set(rule.access):
            continue
        if not rule.allow and not set(access) & set(rule.access):
            continue
        return int(rule.allow)
    return 1


DOCKER_LIKE = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rw"},
    {"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"},
    {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"},
]

PROBES = list(
    itertools.product(
        "bc", [1, 8, 136], [0, 3, 5], ["r", "w", "m", "rw", "rwm", "wm"]
    )
)


@pytest.mark.parametrize(
    "raw",
    [
        DOCKER_LIKE,
        [],
        [{"allow": False, "access": "rwm"}],
        [{"allow": True, "access": "rwm"}, {"allow": False, "type": "b", "major": 8}],
        [{"allow": False, "type": "c", "access": "r"}],
        [{"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"}],
    ],
)
def test_program_decides_like_the_rules(raw: list[dict[str, object]]) -> None:
    rules = parse_rules(raw)
    program = compile_program(rules)
    for dev_type, major, minor, access in PROBES:
        got = run_program(program, dev_type, major, minor, access)
        want = expected(rules, dev_type, major, minor, access)
        assert got == want, (dev_type, major, minor, access)


def test_docker_like_rules_allow_null_and_deny_disks() -> None:
    program = compile_program(parse_rules(DOCKER_LIKE))
    assert run_program(program, "c", 1, 3, "rw") == 1
    assert run_program(program, "b", 8, 0, "r") == 0
    assert run_program(program, "b", 8, 0, "m") == 1  # mknod allowed, opening is not
    assert run_program(program, "c", 1, 5, "w") == 0  # the later deny wins
    assert run_program(program, "c", 1, 5, "r") == 1


def test_nothing_follows_an_unconditional_rule() -> None:
    # The verifier rejects unreachable instructions, so the program must end at a catch-all.
    program = compile_program(parse_rules([{"allow": True, "type": "c", "major": 1},
                                           {"allow": False, "access": "rwm"}]))  # fmt: skip
    prologue, verdict = 6, 2
    assert len(program) // 8 == prologue + verdict
    code, _, _, imm = struct.unpack("<BBhi", program[-16:-8])
    assert (code, imm) == (0xB7, 0)


def test_jumps_stay_inside_the_program() -> None:
    program = compile_program(parse_rules(DOCKER_LIKE))
    count = len(program) // 8
    for index in range(count):
        code, _, off, _ = struct.unpack("<BBhi", program[index * 8 : index * 8 + 8])
        if code in (0x55, 0x5D, 0x15):
            assert 0 < index + 1 + off < count


def test_v1_lines() -> None:
    rules = parse_rules(DOCKER_LIKE)
    assert [v1_line(r) for r in rules] == [
        "a", "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rw", "c 136:* rwm", "c 1:5 w",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "bad",
    [
        [{"access": "rwm"}],
        [{"allow": True, "type": "x"}],
        [{"allow": True, "access": "rwx"}],
        [{"allow": True, "major": -2}],
        [{"allow": True, "major": "1"}],
    ],
)
def test_bad_rules_are_invalid(bad: list[dict[str, object]]) -> None:
    with pytest.raises(errdefs.InvalidParameter):
        parse_rules(bad)
