"""Sending the messages: Apprise on a thread of its own, never in supervision's way.

The journal hands every event to :meth:`Notifier.offer`, which only puts it on a
bounded queue (a full queue drops and counts: a burst never blocks the supervisor).
One thread decides with :class:`~.policy.Throttle` and sends with Apprise, each
service with short connect and read timeouts; a service that fails is journaled as
``notify_failed`` naming the service with its secrets masked.

Notify URLs hold tokens and passwords: they are only ever shown masked
(``json://127.0.0.1:8080/…``, Apprise's privacy form), in the journal and our log.

    >>> n = Notifier(settings.notify, journal.write, machine="vm1")   # doctest: +SKIP
    >>> journal.listeners.append(n.offer); n.start()
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .policy import Message, Throttle

log = logging.getLogger(__name__)
# Apprise logs a failed send with details of the service; ours says it masked.
logging.getLogger("apprise").setLevel(logging.CRITICAL)

QUEUE_MAX = 256
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 5.0
OURS = ("notify_failed", "notify_sent")  # never notified about: no loop


@dataclass(frozen=True)
class Service:
    """One notify URL: Apprise's object for it and the URL as shown (masked)."""

    shown: str
    target: Any


def services(urls: list[str]) -> tuple[list[Service], list[str]]:
    """Apprise objects for ``urls``, and an error for each URL it cannot use (masked)."""
    if not urls:
        return [], []
    import apprise  # only with notify.urls: the core stays small without them

    found, errors = [], []
    for i, url in enumerate(urls):
        target = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        if target is None:
            scheme = url.split("://", 1)[0][:20] if "://" in url else "?"
            errors.append(f"notify.urls[{i}] ({scheme}://…) is not a URL Apprise knows")
            continue
        target.socket_connect_timeout = min(target.socket_connect_timeout, CONNECT_TIMEOUT_S)
        target.socket_read_timeout = min(target.socket_read_timeout, READ_TIMEOUT_S)
        found.append(Service(target.url(privacy=True), target))
    return found, errors


class Notifier:
    def __init__(
        self,
        urls: list[str],
        kinds: list[str],
        min_interval_s: float,
        journal: Callable[..., Any],
        machine: str,
        page_url: Callable[[], str | None] = lambda: None,
        stable_s: float = 60.0,
    ) -> None:
        self.services, self.errors = services(urls)
        self.throttle = Throttle(kinds, min_interval_s, machine, None, stable_s)
        self.journal = journal
        self.page_url = page_url
        self.dropped = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_MAX)
        self._thread = threading.Thread(target=self._loop, name="notify", daemon=True)

    def start(self) -> None:
        if self.services:
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            try:
                self._queue.put(None, timeout=1)
            except queue.Full:
                pass
            self._thread.join(timeout)

    def offer(self, event: dict[str, Any]) -> None:
        """Called by the journal for every event: never blocks, never raises."""
        if not self.services or event.get("event") in OURS:
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def send(self, message: Message) -> list[str]:
        """Send to every service now; the masked URLs that failed."""
        failed = []
        for service in self.services:
            try:
                ok = service.target.notify(
                    body=message.body, title=message.title, notify_type=message.level
                )
            except Exception as exc:  # a plugin's bug must not end the thread
                log.warning("notify %s: %s", service.shown, exc.__class__.__name__)
                ok = False
            if not ok:
                failed.append(service.shown)
        return failed

    def _loop(self) -> None:
        while True:
            due = self.throttle.next_due()
            wait = None if due is None else max(0.0, due - time.monotonic())
            try:
                event = self._queue.get(timeout=wait)
            except queue.Empty:
                event = {}
            if event is None:
                return
            self.throttle.page_url = self.page_url()
            now = time.monotonic()
            messages = self.throttle.offer(event, now) if event else []
            for message in messages + self.throttle.due(now):
                self._deliver(message)

    def _deliver(self, message: Message) -> None:
        failed = self.send(message)
        for shown in failed:
            self.journal(
                "notify_failed",
                framework=message.framework or None,
                kind=message.kind,
                service=shown,
                reason="the service did not accept the message (see its own status)",
            )
