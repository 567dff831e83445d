"""compile_profile's on-disk cache (libseccomp is needed, root is not)."""

import os
from pathlib import Path

import pytest

import sampan.runtime.seccomp as seccomp
from sampan.runtime.seccomp import compile_profile
from sampan.runtime.seccomp.cache import ProgramCache, profile_digest

PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "flags": ["SECCOMP_FILTER_FLAG_LOG"],
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}],
}


def test_digest_ignores_key_order() -> None:
    reordered = {key: PROFILE[key] for key in reversed(list(PROFILE))}
    assert profile_digest(reordered) == profile_digest(PROFILE)
    assert profile_digest({**PROFILE, "defaultAction": "SCMP_ACT_LOG"}) != profile_digest(PROFILE)


def test_miss_compiles_and_writes_then_hit_reads_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cold = compile_profile(PROFILE, str(tmp_path / "cache"))
    assert cold.flags == 2
    assert len(cold.program) % 8 == 0 and cold.program
    files = os.listdir(tmp_path / "cache")
    assert files == [f"{profile_digest(PROFILE)}.{os.uname().machine}.v1.bpf"]

    def no_compiling(plan: object) -> bytes:
        raise AssertionError("a cache hit must not compile")

    monkeypatch.setattr(seccomp, "_compile", no_compiling)
    warm = compile_profile(PROFILE, str(tmp_path / "cache"))
    assert warm == cold


def test_without_cache_dir_nothing_is_written(tmp_path: Path) -> None:
    assert compile_profile(PROFILE, None) == compile_profile(PROFILE, str(tmp_path))


def test_truncated_cache_file_is_a_miss_and_is_rewritten(tmp_path: Path) -> None:
    good = compile_profile(PROFILE, str(tmp_path))
    cache = ProgramCache(str(tmp_path))
    path = cache.path_for(profile_digest(PROFILE))
    with open(path, "wb") as file:
        file.write(good.program[:13])
    assert cache.read(profile_digest(PROFILE)) is None
    assert compile_profile(PROFILE, str(tmp_path)) == good
    with open(path, "rb") as file:
        assert file.read() == good.program


def test_unknown_syscall_names_are_skipped() -> None:
    with_unknown = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "no_such_syscall_anywhere"], "action": "SCMP_ACT_ERRNO"}
        ],
    }
    only_known = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}],
    }
    assert compile_profile(with_unknown, None) == compile_profile(only_known, None)
