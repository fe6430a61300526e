"""The supervisor: the pure machine, driven by one thread, with the world around it.

One control thread owns the :class:`~watchdog.core.machine.Machine`. Everything else
talks to it through its inbox: a person's commands (with a future for the reply),
exits from the waiter threads, readiness and liveness from the prober threads, "tree
gone" from the teardown workers, usage from the sampler. The thread steps the machine
with each message and carries out the effects it returns, in order (journal, persist,
spawn, teardown, sweep, reply). Timers are the machine's next deadline: the thread
sleeps in ``Queue.get(timeout)``, so any message wakes it at once.

Readers never touch the machine: after every step the thread publishes an immutable
:class:`Status`, and ``status()`` returns the latest one without locking.

    >>> sup = Supervisor(load_settings(Path("settings.json")))    # doctest: +SKIP
    >>> sup.begin()                 # adopts or starts the remembered framework
    >>> sup.switch("comfyui", requested_by="api").state
    <State.STOPPING: 'STOPPING'>
    >>> sup.shutdown()              # stops the framework's whole tree
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from functools import partial

from .. import __version__
from ..core import messages as m
from ..core.errors import NotInstalled, UnknownFramework, WatchDisabled
from ..core.machine import Machine
from ..core.snapshot import snapshot
from ..core.states import State
from ..core.status import Status
from ..monitor.gpu import GpuReader
from ..settings import Settings, did_you_mean
from . import teardown
from .events import EventLog, Journal, SlotJournal
from .idle_command import idle_command_work
from .leftovers import Leftovers
from .logs import RunLogs, tail_lines
from .logstore import LogStore
from .requeue import SUSPECTS, requeue_work
from .runs import Run, RunIds, adopt_run, spawn_run
from .statefile import RunRecord, StateFile

log = logging.getLogger(__name__)

COMMAND_REPLY_TIMEOUT_S = 30.0

__all__ = ["State", "Status", "Supervisor"]


@dataclass(frozen=True)
class _Asked:
    """A person's command in the inbox, with the future that answers it."""

    command: m.Command
    reply: Future[Status]


class Supervisor:
    """Keeps the chosen framework alive. Public methods are thread-safe."""

    def __init__(
        self,
        settings: Settings,
        *,
        watch: bool = True,
        gpu: GpuReader | None = None,
        slot: str | None = None,
        journal: EventLog | None = None,
    ) -> None:
        """``slot``: the GPU slot this supervisor keeps (``settings`` as that slot sees
        them); its events go to the shared ``journal`` with ``slot`` in each."""
        self.settings = settings
        self.slot = slot
        self.watching = watch
        self.gpu = gpu
        logs_dir = settings.logs_dir
        self.logs = LogStore(
            logs_dir,
            settings.logs.max_bytes,
            settings.logs.keep_runs,
            settings.logs.max_total_bytes,
        )
        shared = journal if journal is not None else EventLog(logs_dir / "events.jsonl")
        self.events: Journal = SlotJournal(shared, slot) if slot else shared
        self.logs.journal = self.events.write
        self.statefile = StateFile(logs_dir / "state.json")
        self.home = str(logs_dir.resolve())
        self.machine = Machine(settings, watching=watch)
        self._inbox: queue.Queue[object] = queue.Queue()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._abort = threading.Event()
        self._stopped = threading.Event()
        self._closed: Future[None] = Future()
        self._boot_swept = threading.Event()
        # Owned by the control thread.
        self._runs: dict[str, Run] = {}
        self._ids = RunIds()
        self._recorded: RunRecord | None = None  # the run the last watchdog recorded
        self._last_logs: RunLogs | None = None
        self._status = self._snapshot()

    # -- public API (any thread) ---------------------------------------------------

    def begin(self, problems: list[str] | None = None) -> Status:
        """Start the control thread: adopt the recorded run or start the remembered one.

        ``problems``: what others found damaged on start (history…), for the journal.
        """
        if self._thread is not None:
            return self._status
        remembered = self.statefile.load()
        found = [*(problems or []), *([self.statefile.error] if self.statefile.error else [])]
        self._recorded = remembered.run if remembered else None
        adopted, not_adopted = self._adopt(self._recorded)
        wanted = remembered.wanted if remembered else None
        if wanted is not None and wanted.framework not in self.settings.frameworks:
            log.warning("remembered framework %r is no longer in the settings", wanted.framework)
        info = {"pid": os.getpid(), "version": __version__, "settings": self.settings.source}
        owed = remembered.requeue_from if remembered else None
        boot = m.Boot(wanted, adopted, {**info, "problems": found or None}, not_adopted, owed)
        self._apply(boot)  # before the thread starts: nothing else runs yet
        self._publish()
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)
        self._thread.start()
        if self.watching:  # leftovers of earlier runs go first; then it spawns, or adopts
            self._boot_swept.wait(self.settings.watch.stop_timeout_s + 10)
        return self._status

    def _adopt(self, rec: RunRecord | None) -> tuple[m.AdoptedRun | None, dict[str, object] | None]:
        """Take over the run the last watchdog recorded, if it is still that run; else
        its ids and why not (for the journal)."""
        if rec is None or not self.watching:
            return None, None
        run, answer = adopt_run(self.settings, rec, self._inbox.put)
        if run is None or not isinstance(answer, m.AdoptedRun):
            ids = {"framework": rec.framework, "run_id": rec.run_id, "pid": rec.pid}
            return None, {**ids, "reason": answer}
        self._runs[run.run_id] = run
        self._last_logs = run.logs
        self.logs.set_live(run.logs)
        run.prober.start()
        return answer, None

    def status(self) -> Status:
        return self._status

    def tree_pids(self) -> list[int]:
        """Pids of the running framework's whole tree (a /proc scan; for the sampler)."""
        run_view = self.machine.run
        run = self._runs.get(run_view.run_id) if run_view is not None else None
        return [p.pid for p in run.proc.find()] if run is not None else []

    # Stop, restart and switch refuse (BusyRefused) while the framework reports a
    # generation in progress, unless ``force``: then its interrupt endpoint is called
    # before the stop.

    def start(
        self, name: str | None = None, requested_by: str = "api", force: bool = False
    ) -> Status:
        """Run ``name`` (default: the chosen framework); switches if another runs."""
        return self._command("start", name, requested_by, force)

    def switch(self, name: str, requested_by: str = "api", force: bool = False) -> Status:
        return self._command("switch", name, requested_by, force)

    # ``requeue``: the framework's queue (ComfyUI's) goes back once it runs again;
    # ``clear_queue``: the framework's own queue (InvokeAI's database) is emptied first.

    def stop(self, requested_by: str = "api", force: bool = False, **queue: bool) -> Status:
        return self._command("stop", None, requested_by, force, **queue)

    def restart(self, requested_by: str = "api", force: bool = False, **queue: bool) -> Status:
        return self._command("restart", None, requested_by, force, **queue)

    def keep_awake(self, requested_by: str = "api", force: bool = False) -> Status:
        """The idle clock starts over; an idle command in its grace will not run."""
        return self._command("keep_awake", None, requested_by, force)

    def report_activity(self, source: str = "door") -> None:
        """Someone used the framework (a request through the door); wakes it if asleep."""
        self._inbox.put(m.Activity(source))

    def report_usage(
        self, rss_mb: float | None, gpu_util_pct: float | None = None, vram_mb: float | None = None
    ) -> None:
        """The sampler's reading of the framework's tree (see ``messages.Usage``)."""
        self._inbox.put(m.Usage(rss_mb, gpu_util_pct, vram_mb))

    def wait_for(self, predicate: Callable[[Status], bool], timeout: float) -> Status:
        """Block until a published status satisfies ``predicate``; TimeoutError if not."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self._status), timeout):
                raise TimeoutError(f"status never matched; last: {self._status.to_dict()}")
            return self._status

    def shutdown(
        self, leave_running: bool = False, requested_by: str = "signal", timeout: float = 120
    ) -> None:
        """Stop supervising; stop the framework's tree unless ``leave_running``."""
        if self._thread is None or not self._thread.is_alive():
            self.logs.close()
            return
        self._inbox.put(m.Shutdown(leave_running, requested_by))
        try:
            self._closed.result(timeout)
        finally:
            self._abort.set()
            self._thread.join(timeout=5)
            self.logs.close()

    def _command(self, kind: str, name: str | None, by: str, force: bool, **queue: bool) -> Status:
        if name is not None and name not in self.settings.frameworks:
            known = ", ".join(self.settings.frameworks)
            hint = did_you_mean(name, self.settings.frameworks)
            raise UnknownFramework(f"unknown framework {name!r:.80}{hint} (known: {known})")
        if name is not None:
            missing = self.settings.framework(name).missing()
            if missing:
                raise NotInstalled(f"{name} is {missing}")
        if not self.watching:
            raise WatchDisabled("this watchdog runs with --no-watch: it never starts or stops")
        if self._thread is None or self._stopped.is_set():
            raise RuntimeError("the supervisor is not running")
        reply: Future[Status] = Future()
        self._inbox.put(_Asked(m.Command(kind, name, by, force, **queue), reply))
        return reply.result(COMMAND_REPLY_TIMEOUT_S)

    # -- the control loop (control thread only below) ----------------------------------

    def _loop(self) -> None:
        while not self._stopped.is_set():
            deadline = self.machine.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                msg = self._inbox.get(timeout=timeout)
            except queue.Empty:
                msg = m.Tick()
            reply = None
            if isinstance(msg, _Asked):
                msg, reply = msg.command, msg.reply
            answer = self._apply(msg)
            self._publish()
            if self.machine.busy_with != "sweep":
                self._boot_swept.set()
            if reply is not None:
                if answer is not None and answer.error is not None:
                    reply.set_exception(answer.error)
                else:
                    note = answer.note if answer is not None else None
                    reply.set_result(replace(self._status, note=note) if note else self._status)

    def _apply(self, first: object) -> m.Reply | None:
        """Step the machine with ``first`` and carry out the effects, and those of the
        answers that come back at once (a spawn's). Returns the answer to a command."""
        pending = [first]
        answer_to_command: m.Reply | None = None
        while pending:
            msg = pending.pop(0)
            try:
                effects = self.machine.step(msg, time.monotonic(), time.time())  # type: ignore[arg-type]
            except Exception as exc:  # the loop must outlive any bug in one step
                log.exception("supervisor step failed on %s", type(msg).__name__)
                self.events.write("internal_error", error=f"{exc.__class__.__name__}: {exc}")
                return m.Reply(exc)
            for effect in effects:
                try:
                    answer = self._carry_out(effect)
                except Exception as exc:
                    log.exception("effect %s failed", type(effect).__name__)
                    self.events.write("internal_error", error=f"{exc.__class__.__name__}: {exc}")
                    continue
                if isinstance(effect, m.Reply):
                    answer_to_command = effect
                if answer is not None:
                    pending.append(answer)
            if isinstance(msg, m.TornDown):
                self._forget(msg.run_id)
        return answer_to_command

    def _carry_out(self, effect: m.Effect) -> m.Message | None:
        if isinstance(effect, m.Journal):
            self._journal(effect)
        elif isinstance(effect, m.Persist):
            run = self._runs.get(effect.run_id) if effect.run_id else None
            record = run.record(effect.url) if run else None
            self.statefile.save(effect.wanted, record, effect.requeue_from)
        elif isinstance(effect, m.Spawn):
            return self._spawn(effect.framework)
        elif isinstance(effect, m.Teardown):
            self._start_teardown(effect)
        elif isinstance(effect, m.Sweep):
            self._start_sweep(effect)
        elif isinstance(effect, m.RunIdleCommand):
            work = idle_command_work(self.settings.idle.command or "", effect, self._inbox.put)
            self._worker(work, "idle-command", lambda e: m.IdleCommandDone(None, error=e))
        elif isinstance(effect, m.Requeue):
            args = (effect, self.logs.runs_dir, self.settings.logs_dir / SUSPECTS, self.events)
            failed = partial(m.RequeueDone, effect.run_id, effect.from_run)
            work = partial(requeue_work, *args, post=self._inbox.put)
            self._worker(work, "requeue", lambda e: failed(error=e))
        elif isinstance(effect, m.Detach):
            run = self._runs.pop(effect.run_id, None)
            if run is not None:
                run.prober.stop()
                self.logs.set_live(None)
        elif isinstance(effect, m.Done):
            self.events.write("watchdog_stop", pid=os.getpid(), requested_by=self._closing_by())
            self._stopped.set()
            self._closed.set_result(None)
        return None

    def _journal(self, j: m.Journal) -> None:
        fields = dict(j.fields)
        run = self._runs.get(str(fields.get("run_id")))
        if j.tails and run is not None:
            fields["last_stdout"] = tail_lines(run.logs.stdout, j.tails)
            fields["last_stderr"] = tail_lines(run.logs.stderr, j.tails)
        self.events.write(j.event, **fields)

    def _spawn(self, name: str) -> m.Message:
        try:
            run, answer = spawn_run(
                self.settings, name, self.logs, self._ids, self.home, self._inbox.put
            )
        except Exception as exc:  # whatever it was, the machine must hear of it
            log.exception("spawning %s failed", name)
            return m.SpawnFailed(name, f"cannot start: {exc.__class__.__name__}: {exc}"[:300])
        if run is not None:
            self._runs[run.run_id] = run
            self._last_logs = run.logs
            self.logs.set_live(run.logs)
            run.prober.start()
        return answer

    def _start_teardown(self, td: m.Teardown) -> None:
        run = self._runs.get(td.run_id)
        if run is None:  # never: the machine only tears down runs it was told of
            self._inbox.put(m.TornDown(td.run_id, error="no such run in the runtime"))
            return
        run.prober.stop()

        def work() -> None:
            teardown.tear_down(run, td, self.gpu, self.events, self._abort, self._inbox.put)

        self._worker(work, f"stop-{run.proc.pid}", lambda e: m.TornDown(td.run_id, error=e))

    def _forget(self, run_id: str) -> None:
        """A torn-down run: its files stay the page's "last run", its record goes."""
        run = self._runs.pop(run_id, None)
        if run is not None and self.logs.live == run.logs:
            self.logs.set_live(None)

    def _start_sweep(self, sweep: m.Sweep) -> None:
        keep = self._runs.get(sweep.keep_run).proc if sweep.keep_run in self._runs else None
        leftovers = Leftovers(self.home, self._recorded, keep)
        timeout = self.settings.watch.stop_timeout_s

        def work() -> None:
            teardown.sweep(leftovers, timeout, self._abort, self._inbox.put)

        self._worker(work, "sweep", lambda e: m.Swept(error=e))

    def _worker(
        self, work: Callable[[], None], name: str, failed: Callable[[str], m.Message]
    ) -> None:
        """Run ``work`` on a thread of its own; if no thread can be had (the process is
        out of threads or memory), the machine is told at once instead of waiting."""
        try:
            threading.Thread(target=work, name=name, daemon=True).start()
        except Exception as exc:
            log.exception("cannot start the %s worker", name)
            self._inbox.put(failed(f"{exc.__class__.__name__}: {exc}"[:300]))

    def _closing_by(self) -> str:
        return self.machine.closing.requested_by if self.machine.closing else "signal"

    # -- publishing ----------------------------------------------------------------------

    def _snapshot(self) -> Status:
        errors = tuple(e for e in (self.logs.error, self.events.error, self.statefile.error) if e)
        return snapshot(self.machine, time.monotonic(), time.time(), errors, self._last_logs)

    def _publish(self) -> None:
        status = self._snapshot()
        with self._changed:
            self._status = status
            self._changed.notify_all()
