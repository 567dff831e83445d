"""Docker's image list/prune filters, parsed once and checked per image.

Filters arrive as ``{"key": ["value", ...]}`` (the daemon converts the Engine API's
``{"key": {"value": true}}`` form). Keys for ``list``: ``reference`` (glob on the familiar
name or ``name:tag``), ``dangling`` (``true``/``false``), ``label`` (``key`` or
``key=value``), ``before`` and ``since`` (an image name or ID: created strictly before/after
it), ``until`` (a timestamp or duration). For ``prune``: ``dangling``, ``label``, ``label!``
and ``until``. Several values of one key: any may match (OR) for ``reference``, all must
match (AND) for ``label``, as in Docker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sampan import errdefs

from . import timestamps
from .reference import Reference, match_pattern

LIST_KEYS = frozenset({"reference", "dangling", "label", "before", "since", "until"})
PRUNE_KEYS = frozenset({"dangling", "label", "label!", "until"})


@dataclass
class ImageFilters:
    references: list[str] = field(default_factory=list)
    dangling: bool | None = None
    labels: list[str] = field(default_factory=list)
    not_labels: list[str] = field(default_factory=list)
    before_ns: int | None = None
    since_ns: int | None = None
    until_ns: int | None = None

    def matches(
        self,
        created_ns: int,
        refs: list[Reference],
        labels: Mapping[str, str] | None,
    ) -> bool:
        tagged = [ref for ref in refs if ref.tag is not None or ref.digest is not None]
        if self.dangling is not None and self.dangling != (not tagged):
            return False
        if self.before_ns is not None and created_ns >= self.before_ns:
            return False
        if self.since_ns is not None and created_ns <= self.since_ns:
            return False
        if self.until_ns is not None and created_ns >= self.until_ns:
            return False
        if not self.matches_labels(labels):
            return False
        return not self.references or any(
            match_pattern(pattern, ref) for pattern in self.references for ref in refs
        )


    def matches_labels(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(_label_matches(spec, labels) for spec in self.labels) and not any(
            _label_matches(spec, labels) for spec in self.not_labels
        )


def _label_matches(spec: str, labels: Mapping[str, str]) -> bool:
    key, sep, value = spec.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value


def _bool(key: str, values: list[str]) -> bool:
    if len(values) != 1:
        raise errdefs.InvalidParameter(f"invalid filter '{key}': needs exactly one value")
    value = values[0].lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise errdefs.InvalidParameter(f"invalid filter '{key}={values[0]}'")


def parse_filters(
    raw: Mapping[str, Iterable[str]] | None,
    allowed: frozenset[str],
    created_of: Callable[[str], int],
) -> ImageFilters:
    """Validate ``raw`` against ``allowed`` keys; ``created_of(name)`` resolves before/since."""
    result = ImageFilters()
    for key, value_iter in (raw or {}).items():
        values = _values(value_iter)
        if key not in allowed:
            raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        if not values:
            continue
        if key == "reference":
            result.references.extend(values)
        elif key == "dangling":
            result.dangling = _bool(key, values)
        elif key == "label":
            result.labels.extend(values)
        elif key == "label!":
            result.not_labels.extend(values)
        elif key == "before":
            result.before_ns = min(created_of(value) for value in values)
        elif key == "since":
            result.since_ns = max(created_of(value) for value in values)
        elif key == "until":
            result.until_ns = min(timestamps.parse_filter_time(value) for value in values)
    return result


def _values(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, Mapping):
        return [str(key) for key, enabled in raw.items() if enabled]
    return [str(value) for value in raw]
