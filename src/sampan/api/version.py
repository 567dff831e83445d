"""API versions: what this server speaks and how a request's version is checked."""

from __future__ import annotations

from sampan import errdefs

API_VERSION = (1, 44)
"""The highest API version whose semantics are implemented (advertised in Api-Version)."""

MIN_API_VERSION = (1, 24)


def format_version(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def parse_version(text: str) -> tuple[int, int]:
    """``"1.44"`` -> (1, 44). Raises InvalidParameter for anything else."""
    major, _, minor = text.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise errdefs.InvalidParameter(f"invalid API version: {text}")
    return int(major), int(minor)


def check_version(version: tuple[int, int]) -> None:
    """Docker's version middleware: 400 outside [MIN_API_VERSION, API_VERSION]."""
    if version > API_VERSION:
        raise errdefs.InvalidParameter(
            f"client version {format_version(version)} is too new. "
            f"Maximum supported API version is {format_version(API_VERSION)}"
        )
    if version < MIN_API_VERSION:
        raise errdefs.InvalidParameter(
            f"client version {format_version(version)} is too old. "
            f"Minimum supported API version is {format_version(MIN_API_VERSION)}, "
            "please upgrade your client to a newer version"
        )
