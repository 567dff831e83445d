"""``docker ps`` filters (pure): id, name, label, status, ancestor, before, since, exited,
health, network, volume, is-task, publish, expose."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from sampan import errdefs
from sampan.daemon.model import Container
from sampan.daemon.shapes import network_name
from sampan.daemon.status import state_word

KEYS = frozenset({"id", "name", "label", "status", "ancestor", "before", "since", "exited",
                  "health", "network", "volume", "is-task", "publish", "expose"})
STATUSES = frozenset({"created", "restarting", "running", "removing", "paused", "exited",
                      "dead"})
HEALTH = frozenset({"starting", "healthy", "unhealthy", "none"})


def check(filters: Mapping[str, Sequence[str]]) -> None:
    for key, values in filters.items():
        if key not in KEYS:
            raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        for value in values:
            if key == "status" and value not in STATUSES:
                raise errdefs.InvalidParameter(f"invalid filter 'status={value}'")
            if key == "health" and value not in HEALTH:
                raise errdefs.InvalidParameter(f"invalid filter 'health={value}'")
            if key == "exited":
                try:
                    int(value)
                except ValueError as exc:
                    raise errdefs.InvalidParameter(f"invalid filter 'exited={value}'") from exc
            if key == "is-task" and value not in ("true", "false"):
                raise errdefs.InvalidParameter(f"invalid filter 'is-task={value}'")


def labels_match(labels: Mapping[str, str], wanted: Sequence[str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def matcher(filters: Mapping[str, Sequence[str]],
            resolve: Callable[[str], Container],
            image_matches: Callable[[Container, str], bool]) -> Callable[[Container], bool]:
    """A predicate for the records; ``resolve`` finds ``before``/``since`` containers,
    ``image_matches(container, ref)`` answers ``ancestor``."""
    check(filters)
    before = [resolve(v).created for v in filters.get("before", ())]
    since = [resolve(v).created for v in filters.get("since", ())]

    def keep(c: Container) -> bool:
        if filters.get("id") and not any(c.id.startswith(v) for v in filters["id"]):
            return False
        if filters.get("name") and not any(re.search(v, c.name.lstrip("/")) or v == c.name
                                           for v in filters["name"]):
            return False
        if filters.get("label") and not labels_match(c.config.get("Labels") or {},
                                                     filters["label"]):
            return False
        if filters.get("status") and state_word(c.state) not in filters["status"]:
            return False
        if filters.get("exited"):
            if state_word(c.state) != "exited":
                return False
            if str(c.state.exit_code) not in filters["exited"]:
                return False
        if filters.get("health"):
            health = c.state.health.status if c.state.health else "none"
            if health not in filters["health"]:
                return False
        if filters.get("ancestor") and not any(image_matches(c, v) for v in filters["ancestor"]):
            return False
        if before and not all(c.created < t for t in before):
            return False
        if since and not all(c.created > t for t in since):
            return False
        if filters.get("network") and network_name(c) not in filters["network"]:
            return False
        if filters.get("is-task") and "true" in filters["is-task"]:
            return False
        return not (filters.get("volume") or filters.get("publish"))

    return keep


def needs_all(filters: Mapping[str, Sequence[str]]) -> bool:
    """Docker lists stopped containers too when a filter asks for them."""
    statuses = set(filters.get("status", ()))
    return bool(statuses - {"running", "paused"}) or bool(filters.get("exited"))
