"""Docker's default profile and the resolution of Docker's profile format."""

from typing import Any

import pytest

from sampan import errdefs
from sampan.runtime.capabilities import DEFAULT_CAPABILITIES
from sampan.runtime.seccomp import (
    default_profile,
    docker_default_profile,
    resolve_docker_profile,
)
from sampan.runtime.seccomp.profile import plan_filter


def _rules_for(profile: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [rule for rule in profile["syscalls"] if name in rule["names"]]


def test_docker_format_keeps_its_conditions() -> None:
    raw = docker_default_profile()
    assert raw["defaultAction"] == "SCMP_ACT_ERRNO"
    assert any(rule.get("includes", {}).get("caps") for rule in raw["syscalls"])
    with pytest.raises(errdefs.InvalidParameter, match="includes"):
        plan_filter(raw)


def test_default_profile_for_default_caps_masks_clone_and_answers_clone3_with_enosys() -> None:
    profile = default_profile(machine="x86_64", kernel_release="6.1.0-13-amd64")
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert "archMap" not in profile
    assert all("includes" not in rule and "excludes" not in rule for rule in profile["syscalls"])
    assert _rules_for(profile, "clone") == [
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    ]
    assert _rules_for(profile, "clone3") == [
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    ]
    for denied in ("mount", "unshare", "setns", "reboot", "kexec_load", "bpf", "ptrace_nothing"):
        assert not any(
            rule["action"] == "SCMP_ACT_ALLOW" for rule in _rules_for(profile, denied)
        ), denied
    personality = [rule["args"][0]["value"] for rule in _rules_for(profile, "personality")]
    assert personality == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
    assert _rules_for(profile, "chroot")  # CAP_SYS_CHROOT is a default capability
    assert _rules_for(profile, "arch_prctl")
    assert not _rules_for(profile, "arm_fadvise64_64")
    plan_filter(profile)  # a valid OCI profile


def test_cap_sys_admin_opens_namespace_syscalls_and_unmasks_clone() -> None:
    profile = default_profile(
        [*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"], machine="x86_64", kernel_release="6.1.0"
    )
    allowed = {
        name
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW" and "args" not in rule
        for name in rule["names"]
    }
    assert {"mount", "unshare", "setns", "clone", "clone3"} <= allowed
    clone3_actions = {rule["action"] for rule in _rules_for(profile, "clone3")}
    assert clone3_actions == {"SCMP_ACT_ALLOW"}


def test_arm64_gets_arm_subarchitecture_and_arm_syscalls() -> None:
    profile = default_profile(machine="aarch64", kernel_release="5.10.0")
    assert profile["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert _rules_for(profile, "arm_fadvise64_64")
    assert not _rules_for(profile, "arch_prctl")


def test_min_kernel_condition_compares_versions_numerically() -> None:
    docker_format = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}}
        ],
    }
    old = resolve_docker_profile(docker_format, [], machine="x86_64", kernel_release="4.4.0")
    new = resolve_docker_profile(docker_format, [], machine="x86_64", kernel_release="4.10.2-x")
    assert old["syscalls"] == []
    assert new["syscalls"] == [{"names": ["ptrace"], "action": "SCMP_ACT_ALLOW"}]


def test_default_profile_returns_a_fresh_copy() -> None:
    first = docker_default_profile()
    first["syscalls"].clear()
    assert docker_default_profile()["syscalls"]
