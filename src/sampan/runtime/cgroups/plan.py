"""The shared vocabulary of resource planning: a write to make, and how requests are read.

The v1 and v2 planners turn OCI ``linux.resources`` into a list of :class:`Write` steps; one
executor per manager checks the controller is there and performs them. A value that is absent,
``null`` or ``0`` is "not requested": nothing is written for it, which gives ``apply`` on a fresh
cgroup and ``runc update`` (where 0 means "unchanged") the same code path.
"""


from __future__ import annotations

import collections
from collections.abc import Mapping

from sampan import errdefs

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple

    class Write(NamedTuple):
        """Write ``value`` to the first of ``files`` that exists in the ``controller``'s cgroup.

        ``files`` lists alternatives (``blkio.weight`` on CFQ kernels, ``blkio.bfq.weight`` on
        BFQ ones); with more than one, the executor checks which exists. ``optional`` writes are
        skipped when no file exists (deprecated knobs such as kernel memory limits).
        ``controller`` is ``""`` for files every v2 cgroup has (no controller needed).
        """

        controller: str
        files: tuple[str, ...]
        value: str
        optional: bool = False
else:
    Write = collections.namedtuple("Write", "controller files value optional", defaults=(False,))



def section(resources: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """Return ``resources[key]`` as a mapping (``{}`` when absent or null)."""
    value = resources.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise errdefs.InvalidParameter(f"linux.resources.{key} must be an object")
    return value


def entries(resources: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    """Return ``resources[key]`` as a list of objects (``[]`` when absent or null)."""
    value = resources.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise errdefs.InvalidParameter(f"{where}.{key} must be a list of objects")
    return value


def number(values: Mapping[str, Any], key: str, where: str) -> int | None:
    """The integer ``values[key]``, or None when it is absent, null or 0 (not requested)."""
    value = values.get(key)
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise errdefs.InvalidParameter(f"{where}.{key} must be an integer, not {value!r}")
    return value


def text(values: Mapping[str, Any], key: str, where: str) -> str | None:
    """The string ``values[key]``, or None when it is absent, null or empty."""
    value = values.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise errdefs.InvalidParameter(f"{where}.{key} must be a string, not {value!r}")
    return value


def limit(value: int) -> str:
    """A limit for a v2 file: -1 (or any negative value) means unlimited, written ``max``."""
    return "max" if value < 0 else str(value)


def device(entry: Mapping[str, Any], where: str) -> str:
    """``major:minor`` of a blockIO device entry."""
    major, minor = entry.get("major"), entry.get("minor")
    if not isinstance(major, int) or not isinstance(minor, int):
        raise errdefs.InvalidParameter(f"{where} needs integer major and minor numbers")
    return f"{major}:{minor}"


def page_size(entry: Mapping[str, Any]) -> str:
    """The ``pageSize`` of a hugepageLimits entry as the kernel spells it in file names."""
    size = entry.get("pageSize")
    if not isinstance(size, str) or not size or "/" in size or "." in size:
        raise errdefs.InvalidParameter(
            f"linux.resources.hugepageLimits pageSize must be like 2MB, not {size!r}"
        )
    return size
