"""The daemon's events (`docker events`): what happened to containers, images and the daemon, in order.

As in dockerd, the last 256 events are kept in memory (nothing on disk: a restarted daemon starts with an
empty history) and every subscriber gets the live ones as they happen. A subscriber asks for a time range:
`since` replays the kept events from then on, `until` ends the stream at that time (at once when it lies
in the past), and neither means live events only. Filters are Docker's: values of one key are
alternatives, different keys must all match.

Events are emitted by the daemon layer (the container manager for every lifecycle change, whoever caused
it: a user, a restart policy, `--rm`), by the image API for image changes, and by the networks' code for
network changes (logship.daemon.netattach). The JSON shape is dockerd's,
including the legacy `status`/`id`/`from` fields the docker CLI and docker-py still read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from logship.errors import InvalidParameter

log = logging.getLogger("logship.events")

HISTORY = 256  # dockerd's eventsLimit
SUBSCRIBER_BACKLOG = 10_000  # a subscriber this far behind is dropped (its stream ends) rather than grow forever
IDLE_S = 5.0  # a quiet stream yields None this often, so its reader can see whether its client is still there

CONTAINER = "container"
IMAGE = "image"
DAEMON = "daemon"
NETWORK = "network"  # create, destroy, and connect/disconnect (a container joining or leaving, as dockerd)
# Every filter key dockerd accepts; logship emits container, image, network and daemon events, so the others
# just never match an event of another type.
FILTER_KEYS = frozenset(
    {"config", "container", "daemon", "event", "image", "label", "network", "node", "plugin", "scope", "secret"}
    | {"service", "type", "volume"}
)
# Actions that carry the command after a colon ("exec_start: sh -c ..."); a filter naming the bare action
# matches them all, as in dockerd (moby#25798).
_PREFIX_ACTIONS = ("exec_create", "exec_start", "health_status")


@dataclass(frozen=True)
class Event:
    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    time_ns: int = field(default_factory=time.time_ns)
    image: str = ""  # a container event's image as the user named it: the legacy "from" field

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.type in (CONTAINER, IMAGE):  # dockerd's legacy fields, still read by older clients
            data["status"] = self.action
            data["id"] = self.actor_id
            if self.type == CONTAINER:
                data["from"] = self.image
        data["Type"] = self.type
        data["Action"] = self.action
        data["Actor"] = {"ID": self.actor_id, "Attributes": dict(self.attributes)}
        data["scope"] = "local"
        data["time"] = self.time_ns // 1_000_000_000
        data["timeNano"] = self.time_ns
        return data


class EventFilter:
    """Docker's event filters, checked at subscription: an unknown key is refused with dockerd's message."""

    def __init__(self, filters: Mapping[str, list[str]]) -> None:
        for key in filters:
            if key not in FILTER_KEYS:
                raise InvalidParameter(f"Invalid filter '{key}'")
        self.filters = {key: list(values) for key, values in filters.items() if values}

    def matches(self, event: Event) -> bool:
        return all(self._matches_key(key, values, event) for key, values in self.filters.items())

    @staticmethod
    def _matches_key(key: str, values: list[str], event: Event) -> bool:
        attributes = event.attributes
        if key == "type":
            return event.type in values
        if key == "event":
            bare = event.action.split(":", 1)[0]
            return any(event.action == v or (v in _PREFIX_ACTIONS and bare == v) for v in values)
        if key == "scope":
            return "local" in values
        if key == "label":
            return any(_label_matches(attributes, v) for v in values)
        if key == "container":
            if event.type != CONTAINER:
                return False
            name = attributes.get("name", "")
            return any(event.actor_id.startswith(v) or name == v.lstrip("/") for v in values)
        if key == "image":
            candidates = {event.actor_id, attributes.get("image", ""), event.image}
            if event.type == IMAGE:
                candidates.add(attributes.get("name", ""))
            candidates.discard("")
            return any(_same_image(v, c) for v in values for c in candidates)
        if key == "daemon":
            return event.type == DAEMON and any(v in (event.actor_id, attributes.get("name")) for v in values)
        # network (by id or name); volume, plugin, service, node, secret, config: types logship never emits.
        return event.type == key and any(event.actor_id.startswith(v) or attributes.get("name") == v for v in values)


def _label_matches(attributes: Mapping[str, str], wanted: str) -> bool:
    key, has_value, value = wanted.partition("=")
    return key in attributes and (not has_value or attributes[key] == value)


def _same_image(wanted: str, candidate: str) -> bool:
    """`busybox` names `busybox:latest`; an id matches by prefix, with or without "sha256:"."""
    if wanted == candidate:
        return True
    if candidate.startswith("sha256:") and (
        candidate.startswith(wanted) or candidate.startswith("sha256:" + wanted.removeprefix("sha256:"))
    ):
        return len(wanted.removeprefix("sha256:")) >= 1
    return _with_tag(wanted) == _with_tag(candidate)


def _with_tag(name: str) -> str:
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last or "@" in name else name + ":latest"


class Events:
    """The bounded history and the live subscribers."""

    def __init__(self, history: int = HISTORY) -> None:
        self._history: deque[Event] = deque(maxlen=history)
        self._subscribers: set[asyncio.Queue[Event | None]] = set()

    def publish(self, event: Event) -> None:
        self._history.append(event)
        for queue in list(self._subscribers):
            if queue.qsize() >= SUBSCRIBER_BACKLOG:
                log.warning("an events subscriber fell %d events behind; ending its stream", SUBSCRIBER_BACKLOG)
                self._subscribers.discard(queue)
                queue.put_nowait(None)
                continue
            queue.put_nowait(event)

    def emit(
        self, type_: str, action: str, actor_id: str, attributes: Mapping[str, str] | None = None, image: str = ""
    ) -> Event:
        event = Event(type_, action, actor_id, dict(attributes or {}), time.time_ns(), image)
        self.publish(event)
        return event

    def image_listener(self, loop: asyncio.AbstractEventLoop) -> Callable[[str, str, str], None]:
        """The image store's hook (`ImageStore.subscribe`), called from worker threads: each change becomes
        dockerd's event, published on `loop`. dockerd names the image by its familiar reference for a tag,
        a pull or a push, by its ID otherwise, and tags an imported image before the import."""

        def on_change(action: str, image_id: str, reference: str) -> None:
            name = reference if action in ("tag", "pull", "push") and reference else image_id
            if action == "import" and reference:
                loop.call_soon_threadsafe(self.emit, IMAGE, "tag", image_id, {"name": reference})
            actor = reference if action in ("pull", "push") and reference else image_id
            loop.call_soon_threadsafe(self.emit, IMAGE, action, actor, {"name": name})

        return on_change

    def history(self) -> list[Event]:
        return list(self._history)

    async def subscribe(
        self, since_ns: int, until_ns: int, event_filter: EventFilter
    ) -> AsyncGenerator[Event | None, None]:
        """Kept events from `since_ns` on (none when 0), then live ones until `until_ns` (0: for ever); None
        after IDLE_S without one."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        now = time.time_ns()
        live = not until_ns or until_ns > now
        if live:
            self._subscribers.add(queue)  # no await until the history is read: no event falls between
        try:
            past = [e for e in self._history if since_ns and e.time_ns >= since_ns]
            for event in past:
                if until_ns and event.time_ns > until_ns:
                    return
                if event_filter.matches(event):
                    yield event
            if not live:
                return
            while True:
                left = (until_ns - time.time_ns()) / 1e9 if until_ns else IDLE_S
                if left <= 0:
                    return
                try:
                    item = await asyncio.wait_for(queue.get(), min(left, IDLE_S))
                except TimeoutError:
                    yield None
                    continue
                if item is None:
                    return
                if event_filter.matches(item):
                    yield item
        finally:
            with contextlib.suppress(KeyError):
                self._subscribers.remove(queue)
