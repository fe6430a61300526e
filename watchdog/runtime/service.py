"""Everything that runs behind the page: the supervisors (one per GPU slot, one
without slots), GPU reader, sampler, history, the shared journal.

>>> svc = Service(load_settings(Path("settings.json")))      # doctest: +SKIP
>>> svc.start()              # boots the remembered framework, starts sampling
>>> svc.stop()               # stops sampling, then the framework's whole tree
"""

from __future__ import annotations

import socket
import threading

from ..core.status import Status
from ..monitor.counters import Counters
from ..monitor.gpu import GpuReader, SlotGpus, make_reader
from ..monitor.metrics import Feed, History, Sampler
from ..notify.delivery import Notifier
from ..settings import Settings
from ..slots import for_slot, names
from .events import EventLog
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
        self.door_urls: dict[str | None, str] = {}  # with slots: each slot's door
        self.page_url: str | None = None
        self.reader = reader if reader is not None else make_reader()
        self.history = History(
            settings.logs_dir / "history.sqlite", settings.metrics.retention_days * DAY_S
        )
        events = EventLog(settings.logs_dir / "events.jsonl")
        self.events = events
        self.supervisors: dict[str | None, Supervisor] = {}
        feeds = []
        for slot in names(settings):
            gpus = SlotGpus(self.reader, settings.slots[slot].gpus) if slot else None
            sup = Supervisor(for_slot(settings, slot), watch=watch, gpu=gpus or self.reader,
                             slot=slot, journal=events)  # fmt: skip
            self.supervisors[slot] = sup
            feeds.append(Feed(CachedTree(sup.tree_pids), sup.report_usage, gpus and gpus.gpus))
        # The first slot (the only one without slots) answers calls that name none.
        self.supervisor = next(iter(self.supervisors.values()))
        self.sampler = Sampler(self.reader, self.history, settings.metrics.interval_s, feeds)
        n = settings.notify
        self.notifier = Notifier(
            n.urls, n.events, n.min_interval_s, events.write, socket.gethostname(),
            lambda: self.page_url, settings.watch.stable_uptime_s,
        )  # fmt: skip
        events.listeners.append(self.notifier.offer)
        self.counters = Counters()  # for /metrics
        events.listeners.append(self.counters.count)

    def supervisor_of(self, slot: str | None) -> Supervisor:
        """The supervisor of ``slot`` (None: the first); KeyError for an unknown one."""
        return self.supervisor if slot is None else self.supervisors[slot]

    def start(self) -> Status:
        errors = [e for e in (self.history.error, *self.notifier.errors) if e]
        status = self.supervisor.begin(errors or None)
        for sup in self.supervisors.values():
            sup.begin()  # the first one has begun: begin() twice is a no-op
        self.notifier.start()
        self.sampler.start()
        return status

    def _shutdown_all(self, leave_running: bool, requested_by: str) -> None:
        """Every slot at once (each stops its own tree); a failure of one never leaves
        another's framework running."""
        threads = [
            threading.Thread(target=sup.shutdown, args=(leave_running, requested_by))
            for sup in self.supervisors.values()
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def stop(self, leave_running: bool = False, requested_by: str = "signal") -> None:
        try:
            self.sampler.stop()
        finally:
            try:
                self._shutdown_all(leave_running, requested_by)
            finally:
                self.history.close()
                self.notifier.stop()
