"""What the machine does with a framework's job queue, message by message.

- A person's stop, restart or switch drops a queue a crash still owes, unless they ask
  for it back (``requeue``) or ask for it gone (``clear_queue``, which wins).
- At the next ready, a queue owed goes back (the ``Requeue`` effect, run on a worker).
- What the requeue did comes back as ``RequeueDone``, for the page.

The queue itself is remembered by the runtime (``queue_memory``); the machine holds
only whose it is (``requeue_from``) and what the page says (``jobqueue.QueueBook``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .messages import Command, Requeue, RequeueDone, Wanted
from .run import RunView

if TYPE_CHECKING:
    from .machine import Machine


def owe_queue(m: Machine, cmd: Command, wanted: Wanted) -> None:
    """A person's command: what of the queue goes back (``requeue``: a stop or
    restart then owes the running run's queue; ``clear_queue`` says the opposite)."""
    ends = cmd.kind in ("stop", "restart") or wanted.framework != m.wanted.framework
    if not ends:
        return
    if cmd.clear_queue and m.run is not None:
        m.queue.cleared(m.run.framework)  # a person emptied it: nothing goes back
    if cmd.requeue and not cmd.clear_queue and cmd.kind in ("stop", "restart"):
        if m.run is not None:
            m.lost_queue(m.run, unasked=False)
    else:
        m.requeue_from = None


def requeue_at_ready(m: Machine, run: RunView) -> None:
    """The run is ready: a queue owed goes back into it."""
    if m.requeue_from is not None and run.url and m.keeps_queue(run.framework):
        lost, unasked = m.requeue_from, m.requeue_unasked
        m.requeue_from = None
        m.out.append(Requeue(run.run_id, run.framework, run.url, lost, unasked))
        m.persist()


def on_requeue_done(m: Machine, msg: RequeueDone) -> None:
    framework = m.run.framework if m.run is not None else m.wanted.framework
    m.queue.requeued(framework, msg, m.wall)
    if msg.error:
        ids = {"framework": framework, "run_id": msg.run_id, "from_run_id": msg.from_run}
        m.journal("requeue_skipped", **ids, reason=f"the requeue could not run: {msg.error}")
