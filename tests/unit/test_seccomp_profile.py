"""OCI linux.seccomp -> FilterPlan: validation and the decisions made before libseccomp."""

from typing import Any

import pytest

from sampan import errdefs
from sampan.runtime.seccomp.profile import (
    ACT_ALLOW,
    ACT_ERRNO,
    ACT_KILL_PROCESS,
    ACT_KILL_THREAD,
    ACT_LOG,
    ACT_TRACE,
    ACT_TRAP,
    ArgCondition,
    SyscallRule,
    plan_filter,
)


def _profile(**fields: Any) -> dict[str, Any]:
    profile: dict[str, Any] = {"defaultAction": "SCMP_ACT_ALLOW"}
    profile.update(fields)
    return profile


def _rule(**fields: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}
    rule.update(fields)
    return rule


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({}, "linux.seccomp.defaultAction is required"),
        (_profile(defaultAction="SCMP_ACT_MAYBE"), "linux.seccomp.defaultAction: unknown action"),
        (_profile(architectures=["SCMP_ARCH_Z80"]), "linux.seccomp.architectures[0]"),
        (_profile(flags=["SECCOMP_FILTER_FLAG_BOGUS"]), "linux.seccomp.flags[0]"),
        (_profile(syscalls=[_rule(action="SCMP_ACT_NOPE")]), "linux.seccomp.syscalls[0].action"),
        (_profile(syscalls=[{"names": ["read"]}]), "linux.seccomp.syscalls[0].action is required"),
        (_profile(syscalls=[_rule(names=[])]), "linux.seccomp.syscalls[0].names"),
        (_profile(syscalls=[_rule(names="mkdir")]), "syscalls[0].names must be a list"),
        (
            _profile(
                syscalls=[_rule(), _rule(args=[{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}])]
            ),
            "linux.seccomp.syscalls[1].args[0].index",
        ),
        (
            _profile(syscalls=[_rule(args=[{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}])]),
            "linux.seccomp.syscalls[0].args[0].op",
        ),
        (
            _profile(syscalls=[_rule(args=[{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}])]),
            "linux.seccomp.syscalls[0].args[0].value",
        ),
        (
            _profile(syscalls=[_rule(args=[{"index": 0, "value": 1 << 64, "op": "SCMP_CMP_EQ"}])]),
            "linux.seccomp.syscalls[0].args[0].value",
        ),
        (_profile(syscalls=[_rule(errnoRet=-1)]), "linux.seccomp.syscalls[0].errnoRet"),
        (
            _profile(defaultAction="SCMP_ACT_ERRNO", defaultErrnoRet="EPERM"),
            "linux.seccomp.defaultErrnoRet",
        ),
        (_profile(syscalls=[_rule(includes={"caps": ["CAP_SYS_ADMIN"]})]), "includes"),
        (_profile(syscalls="read"), "linux.seccomp.syscalls must be a list"),
        ([], "linux.seccomp must be an object"),
    ],
)
def test_bad_profile_is_an_invalid_parameter_naming_the_field(
    profile: Any, message: str
) -> None:
    with pytest.raises(errdefs.InvalidParameter) as caught:
        plan_filter(profile)
    assert message in str(caught.value)


def test_notify_action_is_not_implemented() -> None:
    with pytest.raises(errdefs.NotImplementedFeature, match="SCMP_ACT_NOTIFY"):
        plan_filter(_profile(syscalls=[_rule(action="SCMP_ACT_NOTIFY")]))


def test_listener_path_is_not_implemented() -> None:
    with pytest.raises(errdefs.NotImplementedFeature, match="listenerPath"):
        plan_filter(_profile(listenerPath="/run/seccomp.sock"))


@pytest.mark.parametrize(
    ("name", "errno_ret", "encoded"),
    [
        ("SCMP_ACT_KILL", None, ACT_KILL_THREAD),
        ("SCMP_ACT_KILL_THREAD", None, ACT_KILL_THREAD),
        ("SCMP_ACT_KILL_PROCESS", None, ACT_KILL_PROCESS),
        ("SCMP_ACT_TRAP", None, ACT_TRAP),
        ("SCMP_ACT_LOG", None, ACT_LOG),
        ("SCMP_ACT_ERRNO", None, ACT_ERRNO | 1),
        ("SCMP_ACT_ERRNO", 42, ACT_ERRNO | 42),
        ("SCMP_ACT_TRACE", 7, ACT_TRACE | 7),
    ],
)
def test_actions_are_encoded_as_libseccomp_values(
    name: str, errno_ret: int | None, encoded: int
) -> None:
    rule = _rule(action=name) if errno_ret is None else _rule(action=name, errnoRet=errno_ret)
    plan = plan_filter(_profile(syscalls=[rule]))
    assert plan.rules == (SyscallRule("mkdir", encoded),)


def test_default_errno_ret_is_part_of_the_default_action() -> None:
    plan = plan_filter({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38})
    assert plan.default_action == ACT_ERRNO | 38


def test_rule_equal_to_the_default_action_is_skipped() -> None:
    plan = plan_filter(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                _rule(names=["mount"], action="SCMP_ACT_ERRNO", errnoRet=1),
                _rule(names=["mount"], action="SCMP_ACT_ERRNO", errnoRet=2),
            ],
        }
    )
    assert plan.rules == (SyscallRule("mount", ACT_ERRNO | 2),)


def test_duplicate_syscalls_in_allow_and_errno_rules_are_kept() -> None:
    plan = plan_filter(
        _profile(
            defaultAction="SCMP_ACT_ERRNO",
            defaultErrnoRet=38,
            syscalls=[
                _rule(names=["read", "setns"], action="SCMP_ACT_ALLOW"),
                _rule(names=["setns"], action="SCMP_ACT_ERRNO", errnoRet=1),
            ],
        )
    )
    assert [(rule.name, rule.action) for rule in plan.rules] == [
        ("read", ACT_ALLOW),
        ("setns", ACT_ALLOW),
        ("setns", ACT_ERRNO | 1),
    ]


def test_conditions_on_distinct_arguments_form_one_rule() -> None:
    args = [
        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 0xF, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"},
    ]
    plan = plan_filter(_profile(syscalls=[_rule(names=["socket"], args=args)]))
    assert plan.rules == (
        SyscallRule(
            "socket", ACT_ERRNO | 1, (ArgCondition(0, 4, 2, 0), ArgCondition(1, 7, 0xF, 1))
        ),
    )


def test_conditions_on_the_same_argument_become_one_rule_each() -> None:
    args = [
        {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
        {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
    ]
    plan = plan_filter(_profile(syscalls=[_rule(names=["personality"], args=args)]))
    assert plan.rules == (
        SyscallRule("personality", ACT_ERRNO | 1, (ArgCondition(0, 4, 0, 0),)),
        SyscallRule("personality", ACT_ERRNO | 1, (ArgCondition(0, 4, 8, 0),)),
    )


def test_architectures_and_flags_are_translated() -> None:
    plan = plan_filter(
        _profile(
            architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                   "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        )
    )
    assert plan.architectures == ("x86_64", "x86", "x32")
    assert plan.flags == 0b111


def test_unknown_fields_are_ignored_like_gos_decoder_does() -> None:
    plan = plan_filter(_profile(comment="x", syscalls=[_rule(comment="y", future=1)]))
    assert plan.rules == (SyscallRule("mkdir", ACT_ERRNO | 1),)
