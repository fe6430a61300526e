"""The supervisor's states and every edge between them, as one table.

The machine (``machine.py``) may only move along an edge listed here; each edge names
what takes it. ``Machine._enter`` checks the table, so an edge that is not written
down is a bug that fails loudly in the replay tests instead of a state nobody planned.
"""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    UNHEALTHY = "UNHEALTHY"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    FATAL = "FATAL"
    SLEEPING = "SLEEPING"


S = State

# (from, to): what takes that edge, and the event the new state is entered with.
TRANSITIONS: dict[tuple[State, State], str] = {
    (S.STOPPED, S.STARTING): "start, switch or boot: spawn (or adopt a live run at boot)",
    (S.STOPPED, S.BACKOFF): "the spawn failed (port taken, no such command): backoff",
    (S.STOPPED, S.FATAL): "the spawn failed once too often in the window: fatal",
    (S.STOPPED, S.SLEEPING): "boot: it was asleep when the last watchdog stopped: sleep",
    (S.STARTING, S.RUNNING): "ready line seen or health URL answered: ready",
    (S.STARTING, S.BACKOFF): "exited before ready: backoff",
    (S.STARTING, S.FATAL): "exited before ready, once too often: fatal",
    (S.STARTING, S.STOPPING): "stop, switch, restart, shutdown or startup timeout: stopping",
    (S.STARTING, S.STOPPED): "shutdown leaving the framework running: detach",
    (S.RUNNING, S.UNHEALTHY): "one health probe failed: unhealthy",
    (S.RUNNING, S.BACKOFF): "crashed, or asked to be restarted: backoff",
    (S.RUNNING, S.FATAL): "crashed once too often: fatal",
    (S.RUNNING, S.STOPPING): "stop, switch, restart, shutdown, stall or RSS limit: stopping",
    (S.RUNNING, S.STOPPED): "shutdown leaving the framework running: detach",
    (S.UNHEALTHY, S.RUNNING): "a probe answered again: healthy",
    (S.UNHEALTHY, S.BACKOFF): "crashed: backoff",
    (S.UNHEALTHY, S.FATAL): "crashed once too often: fatal",
    (S.UNHEALTHY, S.STOPPING): "hang (failure_threshold probes failed), stop, switch…: stopping",
    (S.UNHEALTHY, S.STOPPED): "shutdown leaving the framework running: detach",
    (S.BACKOFF, S.STARTING): "the delay is over, or a person started it: spawn",
    (S.BACKOFF, S.BACKOFF): "the spawn failed again: backoff",
    (S.BACKOFF, S.FATAL): "the spawn failed once too often, or cleanup failed: fatal",
    (S.BACKOFF, S.STOPPED): "stop, or shutdown: stop",
    (S.STOPPING, S.STOPPED): "the tree is gone and nothing should run: stop",
    (S.STOPPING, S.STARTING): "the tree is gone after a switch or restart: spawn",
    (S.STOPPING, S.BACKOFF): "the tree is gone after a hang, stall or timeout: backoff",
    (S.STOPPING, S.FATAL): "a failure too many, VRAM never freed, or the teardown failed: fatal",
    (S.STOPPING, S.SLEEPING): "the tree is gone after the idle policy stopped it: sleep",
    (S.FATAL, S.STARTING): "a person's start, switch or restart: spawn",
    (S.FATAL, S.BACKOFF): "a person's start whose spawn failed: backoff",
    (S.FATAL, S.STOPPED): "a person's stop, or shutdown: stop",
    (S.FATAL, S.FATAL): "after a person's start, the spawn or the sweep failed at once: fatal",
    (S.SLEEPING, S.STARTING): "a request through the door woke it, or a person's start: spawn",
    (S.SLEEPING, S.BACKOFF): "woken, but the spawn failed: backoff",
    (S.SLEEPING, S.FATAL): "woken, but leftovers could not be stopped: fatal",
    (S.SLEEPING, S.STOPPED): "a person's stop, or shutdown: stop",
}
