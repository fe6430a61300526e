"""Leftovers of earlier runs: found before anything is spawned, stopped like a stop.

What a crash of the watchdog (or a failed teardown) can leave behind: a framework
server whose launcher died, workers that escaped a stop, a run that was never
recorded. They hold the port and the VRAM the next framework needs. Found by:

- the home marker (``SD_WATCHDOG_HOME=<logs dir>``) in their environment: every
  framework this watchdog (this logs folder) ever started carries it, and no other
  watchdog's does;
- the process group and session of the recorded run (when its leader's pid is not
  now a stranger's);
- orphans re-parented to the core (a child subreaper);

plus every descendant of those. The adopted run's own tree is kept.

    >>> Leftovers(home, recorded=run_record, keep=adopted_proc).stop(signal.SIGTERM, 20)
    StopResult(…)                                                   # doctest: +SKIP
"""

from __future__ import annotations

import psutil

from .process import ManagedProcess, home_marker
from .proctree import Tree, as_processes, has_marker, orphans, scan, stat, with_descendants
from .statefile import RunRecord


class Leftovers(Tree):
    name = "leftovers"

    def __init__(
        self,
        home: str,
        recorded: RunRecord | None = None,
        keep: ManagedProcess | None = None,
    ) -> None:
        self._marker = home_marker(home)
        self._recorded = recorded
        self._keep = keep

    def find(self) -> list[psutil.Process]:
        infos = scan()
        kept = {p.pid for p in self._keep.find()} if self._keep is not None else set()
        group = self._recorded_group()
        found = {
            pid
            for pid, info in infos.items()
            if pid not in kept
            and (
                has_marker(pid, self._marker)
                or (group is not None and group in (info.pgrp, info.session))
            )
        }
        found |= orphans(infos, kept)
        return as_processes(with_descendants(found, infos) - kept)

    def _recorded_group(self) -> int | None:
        """The recorded run's group id, if it can still only be ours: Linux does not
        reuse a pid while a group of that id lives, so unless the pid now belongs to a
        newer process (a stranger), the group's members are the run's."""
        rec = self._recorded
        if rec is None or (self._keep is not None and self._keep.pid == rec.pid):
            return None
        holder = stat(rec.pid)
        if holder is not None and holder.start_ticks != rec.start_ticks:
            return None
        return rec.pid
