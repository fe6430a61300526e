"""The framework's job queue as the machine knows it, for the page and the API.

Two frameworks keep a queue worth a sentence:

- ComfyUI's lives in its memory and dies with it: the watchdog remembers it and, after
  an unasked end, submits it again (``runtime/requeue.py``). The book says what a
  crash owes and what the last requeue did, with the prompts it set aside.
- InvokeAI's lives in its own database: pending jobs resume by themselves at its next
  start (the one in progress is cancelled by InvokeAI at start). The book says what
  will resume; the watchdog leaves that queue alone unless a person clears it.

Pure: the machine feeds the book; ``view`` turns it into the status's ``queue`` block.

    >>> book = QueueBook()
    >>> book.ended("invoke", "invokeai", Busy(True, "", "", running=1, pending=3))
    >>> print(view(book, "invoke", "invokeai", None, None).text)  # doctest: +NORMALIZE_WHITESPACE
    InvokeAI keeps its queue in its own database: 3 pending jobs resume at its next
    start (the 1 in progress does not: InvokeAI cancels it at start)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..frameworks.busy import Busy
from .messages import RequeueDone
from .status import iso

# Who keeps the queue across an end: the watchdog submits it again, or the framework
# resumes it itself.
KEPT_BY = {"comfyui": "watchdog", "invokeai": "framework"}
NAMES = {"comfyui": "ComfyUI", "invokeai": "InvokeAI"}


@dataclass
class QueueBook:
    owed_count: int | None = None  # prompts lost with the run a crash owes (None: unknown)
    resumes_of: str | None = None  # the framework (InvokeAI) whose queue resumes at start
    resumes: int = 0  # jobs pending at its last end
    cancelled: int = 0  # in progress at its last end (InvokeAI cancels it at start)
    last_of: str | None = None  # the framework the last requeue was for
    last: RequeueDone | None = None
    last_wall: float = 0.0

    def ended(self, framework: str, kind: str | None, busy: Busy | None) -> None:
        """A run ended (crash, stop, switch): what InvokeAI will resume at its next start."""
        if kind == "invokeai":
            self.resumes_of = framework
            self.resumes = busy.pending if busy else 0
            self.cancelled = busy.running if busy else 0

    def owe(self, busy: Busy | None) -> None:
        """A crash owes the run's remembered queue: how many prompts, as last seen."""
        self.owed_count = busy.queued if busy is not None else None

    def started(self, framework: str) -> None:
        """A new run answered its first busy probe: what was pending has resumed."""
        if self.resumes_of == framework:
            self.resumes_of, self.resumes, self.cancelled = None, 0, 0

    def requeued(self, framework: str, done: RequeueDone, wall: float) -> None:
        self.owed_count = None
        if done.requeued or done.skipped or done.error:
            self.last_of, self.last, self.last_wall = framework, done, wall

    def cleared(self, framework: str) -> None:
        """A person emptied the framework's queue: nothing of it is left to tell."""
        self.owed_count = None
        self.started(framework)
        if self.last_of == framework:
            self.last_of, self.last = None, None


@dataclass(frozen=True)
class QueueView:
    kind: str
    kept_by: str
    running: int | None  # in the framework's queue now (None: not running or not probed)
    pending: int | None
    owed_from: str | None
    owed_count: int | None
    resumes: int
    cancelled: int
    last: RequeueDone | None
    last_wall: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        last = self.last
        return {
            "kind": self.kind,
            "kept_by": self.kept_by,
            "running": self.running,
            "pending": self.pending,
            "owed": (
                {"from_run_id": self.owed_from, "count": self.owed_count}
                if self.owed_from
                else None
            ),
            "resumes": {"pending": self.resumes, "cancelled": self.cancelled}
            if self.resumes or self.cancelled
            else None,
            "last_requeue": None
            if last is None
            else {
                "time": iso(self.last_wall),
                "run_id": last.run_id,
                "from_run_id": last.from_run,
                # A night's batch is thousands of prompts: the status stays small.
                "requeued_count": len(last.requeued),
                "requeued": [_short(p) for p in last.requeued[:SHOWN]],
                "skipped_count": len(last.skipped),
                "skipped": [
                    {"prompt_id": _short(p), "reason": why[:300]} for p, why in last.skipped[:SHOWN]
                ],
                "set_aside": [_short(p) for p in last.set_aside[:SHOWN]],
                "error": last.error,
            },
            "text": self.text,
        }


def view(book: QueueBook, framework: str, kind: str | None, busy: Busy | None,
         owed_from: str | None) -> QueueView | None:  # fmt: skip
    """The chosen framework's ``queue`` block (None: it keeps no queue we know of).
    ``busy``: its live run's last busy probe (None: not running, or not probed yet)."""
    if kind not in KEPT_BY:
        return None
    resumes = book.resumes_of == framework and busy is None
    v = QueueView(
        kind, KEPT_BY[kind], busy.running if busy else None, busy.pending if busy else None,
        owed_from, book.owed_count if owed_from else None,
        book.resumes if resumes else 0, book.cancelled if resumes else 0,
        book.last if book.last_of == framework else None, book.last_wall, "",
    )  # fmt: skip
    return QueueView(**{**v.__dict__, "text": _text(v)})


SHOWN = 20  # ids listed in the status; the journal has them all
ID_CHARS = 64  # a prompt id is whatever its sender chose: ComfyUI's are uuids


def _short(prompt_id: str) -> str:
    return prompt_id if len(prompt_id) <= ID_CHARS else prompt_id[: ID_CHARS - 1] + "…"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _text(v: QueueView) -> str:
    """One or two sentences for the card; "" when there is nothing to say."""
    name, said = NAMES[v.kind], []
    if v.owed_from:
        what = _plural(v.owed_count, "prompt") if v.owed_count else "The prompts"
        said.append(f"{what} lost with run {v.owed_from} go back into {name}'s queue once ready")
    if v.resumes or v.cancelled:
        jobs = _plural(v.resumes, "pending job") + (" resumes" if v.resumes == 1 else " resume")
        text = f"{name} keeps its queue in its own database: {jobs} at its next start"
        if v.cancelled:
            text += f" (the {v.cancelled} in progress does not: {name} cancels it at start)"
        said.append(text)
    last = v.last
    if last is not None:
        when = iso(v.last_wall)[11:16]
        if last.error:
            said.append(f"The requeue at {when} UTC failed: {last.error}")
        else:
            said.append(f"Requeued {_plural(len(last.requeued), 'prompt')} at {when} UTC")
        if last.set_aside:
            more = len(last.set_aside) - 3
            ids = ", ".join(_short(p) for p in last.set_aside[:3])
            ids += f" and {more} more" if more > 0 else ""
            said.append(
                f"set aside {ids}: running at two crashes in a row, it may be what ends"
                f" {name} (its prompt is in the requeue_skipped event)"
            )
    return "; ".join(said)
