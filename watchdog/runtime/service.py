"""Everything that runs behind the page: supervisor, GPU reader, sampler, history.

>>> svc = Service(load_settings(Path("settings.json")))      # doctest: +SKIP
>>> svc.start()              # boots the remembered framework, starts sampling
>>> svc.stop()               # stops sampling, then the framework's whole tree
"""

from __future__ import annotations

import socket

from ..core.status import Status
from ..monitor.counters import Counters
from ..monitor.gpu import GpuReader, make_reader
from ..monitor.metrics import History, Sampler
from ..notify.delivery import Notifier
from ..settings import Settings
from .private import make_private
from .proctree import CachedTree
from .supervisor import Supervisor

DAY_S = 86400


class Service:
    def __init__(
        self, settings: Settings, *, watch: bool = True, reader: GpuReader | None = None
    ) -> None:
        self.settings = settings
        make_private(settings.logs_dir)  # before anything writes into it
        # Where users open the framework (the front's door) and the page, once bound.
        self.door_url: str | None = None
        self.page_url: str | None = None
        self.reader = reader if reader is not None else make_reader()
        self.history = History(
            settings.logs_dir / "history.sqlite", settings.metrics.retention_days * DAY_S
        )
        self.supervisor = Supervisor(settings, watch=watch, gpu=self.reader)
        self.sampler = Sampler(
            self.reader,
            self.history,
            settings.metrics.interval_s,
            CachedTree(self.supervisor.tree_pids),
            self.supervisor.report_usage,
        )
        n = settings.notify
        events = self.supervisor.events
        self.notifier = Notifier(
            n.urls, n.events, n.min_interval_s, events.write, socket.gethostname(),
            lambda: self.page_url, settings.watch.stable_uptime_s,
        )  # fmt: skip
        events.listeners.append(self.notifier.offer)
        self.counters = Counters()  # for /metrics
        events.listeners.append(self.counters.count)

    def start(self) -> Status:
        errors = [e for e in (self.history.error, *self.notifier.errors) if e]
        status = self.supervisor.begin(errors or None)
        self.notifier.start()
        self.sampler.start()
        return status

    def stop(self, leave_running: bool = False, requested_by: str = "signal") -> None:
        try:
            self.sampler.stop()
        finally:
            try:
                self.supervisor.shutdown(leave_running=leave_running, requested_by=requested_by)
            finally:
                self.history.close()
                self.notifier.stop()
