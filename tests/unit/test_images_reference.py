import pytest

from sampan import errdefs
from sampan.drivers.graph.images.reference import (
    is_id_prefix,
    match_pattern,
    parse_normalized,
    parse_tagged,
)


@pytest.mark.parametrize(
    ("text", "full", "familiar"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("me/app:v1", "docker.io/me/app:v1", "me/app:v1"),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
        ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t"),
        ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest", "127.0.0.1:5000/app:latest"),
        ("registry.example.com/x", "registry.example.com/x:latest", "registry.example.com/x:latest"),  # noqa: E501
        ("[::1]:5000/app:v2", "[::1]:5000/app:v2", "[::1]:5000/app:v2"),
    ],
)
def test_references_normalise_like_docker(text: str, full: str, familiar: str) -> None:
    ref = parse_tagged(text)
    assert str(ref) == full
    assert ref.familiar() == familiar


def test_digest_reference_gets_no_default_tag() -> None:
    digest = "sha256:" + "a" * 64
    ref = parse_tagged(f"busybox@{digest}")
    assert ref.tag is None and ref.digest == digest
    assert str(ref) == f"docker.io/library/busybox@{digest}"
    assert ref.familiar() == f"busybox@{digest}"


def test_tag_and_digest_together_are_kept() -> None:
    digest = "sha256:" + "b" * 64
    ref = parse_normalized(f"localhost:5000/app:v1@{digest}")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("localhost:5000", "app", "v1", digest)


def test_port_is_not_mistaken_for_a_tag() -> None:
    ref = parse_normalized("localhost:5000/app")
    assert ref.tag is None and ref.domain == "localhost:5000"


@pytest.mark.parametrize(
    "bad",
    ["Busybox", "busybox:", "busy box", "a" * 64, "busybox@sha256:xyz", "-a/b", "a//b", "", ":tag"],
)
def test_malformed_references_are_invalid_parameters(bad: str) -> None:
    with pytest.raises(errdefs.InvalidParameter):
        parse_normalized(bad)


def test_uppercase_repository_message_says_lowercase() -> None:
    with pytest.raises(errdefs.InvalidParameter, match="must be lowercase"):
        parse_normalized("me/MyApp")


def test_id_prefixes() -> None:
    assert is_id_prefix("1b9b19")
    assert is_id_prefix("sha256:1b9b19")
    assert not is_id_prefix("busybox")
    assert not is_id_prefix("")


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("busybox", "busybox:latest", True),
        ("busybox:latest", "busybox:latest", True),
        ("busybox:1*", "busybox:latest", False),
        ("busy*", "busybox:latest", True),
        ("*", "me/app:v1", False),
        ("*/*", "me/app:v1", True),
        ("me/app:v?", "me/app:v1", True),
        ("localhost:5000/*", "localhost:5000/app:v1", True),
    ],
)
def test_reference_filter_matches_familiar_names_with_path_globs(
    pattern: str, text: str, expected: bool
) -> None:
    assert match_pattern(pattern, parse_tagged(text)) is expected
