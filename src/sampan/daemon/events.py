"""The event bus behind ``GET /events``: Docker's event JSON, a short history for ``since``,
live subscribers, and the event filters."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from sampan import errdefs

Event = dict[str, Any]

HISTORY = 1024  # Docker keeps 256; a few more cost nothing
_FILTER_KEYS = frozenset(
    {"container", "event", "image", "label", "type", "daemon", "network", "volume", "plugin",
     "scope", "config", "node", "secret", "service"}
)


def make_event(type_: str, action: str, actor_id: str, attributes: Mapping[str, str],
               now_ns: int | None = None) -> Event:
    """Docker's events.Message; container and image events also carry the legacy
    ``status``/``id``/``from`` members."""
    ns = time.time_ns() if now_ns is None else now_ns
    event: Event = {}
    if type_ in ("container", "image"):
        event["status"] = action
        event["id"] = actor_id
        if type_ == "container" and "image" in attributes:
            event["from"] = attributes["image"]
    event.update({
        "Type": type_,
        "Action": action,
        "Actor": {"ID": actor_id, "Attributes": dict(attributes)},
        "scope": "local",
        "time": ns // 1_000_000_000,
        "timeNano": ns,
    })
    return event


def check_filters(filters: Mapping[str, Sequence[str]]) -> None:
    for key in filters:
        if key not in _FILTER_KEYS:
            raise errdefs.InvalidParameter(f"invalid filter '{key}'")


def matches(event: Event, filters: Mapping[str, Sequence[str]]) -> bool:
    """Docker's rules: every given key must match; values of one key are alternatives."""
    actor = event["Actor"]
    attributes: Mapping[str, str] = actor["Attributes"]
    type_ = event["Type"]
    action: str = event["Action"]

    def one_of(key: str, candidates: Sequence[str]) -> bool:
        # ids also match by prefix (Docker's FuzzyMatch); names exactly
        return any(w in candidates or (w and candidates[0].startswith(w))
                   for w in filters.get(key, ()))

    if filters.get("type") and type_ not in filters["type"]:
        return False
    if filters.get("event"):
        base = action.split(":", 1)[0]
        if action not in filters["event"] and base not in filters["event"]:
            return False
    if filters.get("scope") and "local" not in filters["scope"]:
        return False
    if filters.get("container"):
        if type_ != "container":
            return False
        if not one_of("container", [actor["ID"], attributes.get("name", "")]):
            return False
    if filters.get("image"):
        image = attributes.get("image", "") if type_ == "container" else actor["ID"]
        names = [image, attributes.get("name", "")] if type_ == "image" else [image]
        bare = [n.split(":", 1)[0] for n in names]
        if not any(w in names or w in bare for w in filters["image"]):
            return False
    for key, kind in (("network", "network"), ("volume", "volume"), ("plugin", "plugin")):
        if filters.get(key) and (type_ != kind or not one_of(
                key, [actor["ID"], attributes.get("name", "")])):
            return False
    for label in filters.get("label", ()):
        key, sep, value = label.partition("=")
        if key not in attributes or (sep and attributes[key] != value):
            return False
    return True


class EventBus:
    """Publishes events to subscribers and keeps the last ``HISTORY`` for ``since``."""

    def __init__(self) -> None:
        self._history: deque[Event] = deque(maxlen=HISTORY)
        self._subscribers: set[asyncio.Queue[Event]] = set()

    def publish(self, type_: str, action: str, actor_id: str,
                attributes: Mapping[str, str]) -> Event:
        event = make_event(type_, action, actor_id, attributes)
        self._history.append(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        return event

    @property
    def listeners(self) -> int:
        return len(self._subscribers)

    async def subscribe(self, since_ns: int, until_ns: int,
                        filters: Mapping[str, Sequence[str]]) -> AsyncIterator[Event]:
        """Past events from ``since_ns`` (0: none), then live ones until ``until_ns`` (0: for
        ever). With an ``until`` in the past only history is returned."""
        check_filters(filters)
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            seen_last = 0
            if since_ns:
                for event in list(self._history):
                    if event["timeNano"] < since_ns:
                        continue
                    if until_ns and event["timeNano"] > until_ns:
                        break
                    seen_last = event["timeNano"]
                    if matches(event, filters):
                        yield event
            while True:
                timeout = None
                if until_ns:
                    timeout = (until_ns - time.time_ns()) / 1e9
                    if timeout <= 0:
                        return
                try:
                    event = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    return
                if event["timeNano"] <= seen_last:
                    continue  # already sent from the history
                if until_ns and event["timeNano"] > until_ns:
                    return
                if matches(event, filters):
                    yield event
        finally:
            self._subscribers.discard(queue)
