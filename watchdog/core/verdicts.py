"""The judgements that end a run the framework did not end itself.

Each is a pure function of the run's record, a message and the time: it returns a
:class:`Failure` (what to journal, why) or a :class:`ProbeNews`, and never acts.
The machine decides what follows (policy, teardown).

- startup timeout: not ready within ``startup_timeout_s``;
- hang: ``failure_threshold`` liveness probes in a row failed while idle;
- stall: busy, but no step, progress or output for ``stall_timeout_s``;
- RSS and VRAM limits: above ``max_rss_mb`` / ``max_vram_mb`` for ``rss_limit_s``
  (a running queue gets up to ``busy_wait_max_s`` more to drain; what is still queued
  then is submitted again after the restart, where the framework's queue is kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .messages import Probe, Usage
from .run import RunView

GPU_ALIVE_PCT = 10.0  # GPU utilisation that counts as progress of a running job


@dataclass(frozen=True)
class Failure:
    event: str  # the verdict's own journal event
    reason: str
    stable: bool
    teardown_reason: str
    fields: dict[str, Any] = field(default_factory=dict)
    tails: int = 0


@dataclass(frozen=True)
class ProbeNews:
    """A change worth a state: ``unhealthy`` (first failure) or ``healthy`` again."""

    event: str
    fields: dict[str, Any]


def startup_deadline(run: RunView) -> float:
    """``startup_timeout_s`` after the start or its newest output, whichever is later
    (A1111's first start installs torch for 10+ minutes, printing all along), but
    never later than ``startup_max_s`` after the start."""
    w = run.watch
    quiet_since = max(run.waiting_since, run.output_mono)
    return min(quiet_since + w.startup_timeout_s, run.waiting_since + w.startup_max_s)


def startup_timeout(run: RunView, now: float) -> Failure | None:
    if run.ready or now < startup_deadline(run):
        return None
    w = run.watch
    if now - run.waiting_since >= w.startup_max_s:
        reason = f"not ready within startup_max_s={w.startup_max_s:g}"
    elif run.output_mono > run.waiting_since:
        reason = f"not ready within startup_timeout_s={w.startup_timeout_s:g} of its last output"
    else:
        reason = f"not ready within startup_timeout_s={w.startup_timeout_s:g}"
    return Failure("startup_timeout", reason, False, "startup timeout", tails=3)


def judge_probe(run: RunView, msg: Probe, now: float) -> Failure | ProbeNews | None:
    """Count a liveness probe of a ready run (and update its progress marks)."""
    if msg.busy is not None:
        run.busy = msg.busy
    if run.is_busy:
        return _judge_busy(run, msg, now)
    run.progress_mono = now
    failures_before = run.probe_failures
    run.last_probe = msg.detail
    if msg.ok:
        run.probe_failures = 0
        if failures_before:
            return ProbeNews("healthy", {"after_failures": failures_before})
        return None
    run.probe_failures += 1
    threshold = run.watch.failure_threshold
    if run.probe_failures < threshold:
        if run.probe_failures == 1:
            return ProbeNews("unhealthy", {"detail": msg.detail, "threshold": threshold})
        return None
    reason = f"hang: {run.probe_failures} health probes in a row failed ({msg.detail})"
    return Failure(
        "hang",
        reason,
        run.stable(now),
        "hang",
        {
            "failures": run.probe_failures,
            "interval_s": run.watch.health_interval_s,
            "timeout_s": run.watch.health_timeout_s,
        },
    )


def _judge_busy(run: RunView, msg: Probe, now: float) -> Failure | ProbeNews | None:
    """During a job, slow or failing probes are no hang while the job moves on.

    Signs of life: the reported step/progress changes, or the framework writes output.
    None of them for ``stall_timeout_s`` while busy is a stall.
    """
    assert run.busy is not None
    mark = (run.busy.fingerprint, msg.output_bytes)
    if mark != run.progress_mark:
        run.progress_mark = mark
        run.progress_mono = now
    news = None
    if msg.ok and run.probe_failures:
        news = ProbeNews("healthy", {"after_failures": run.probe_failures})
        run.probe_failures = 0
    still = now - run.progress_mono
    if still < run.watch.stall_timeout_s:
        return news
    reason = (
        f"stalled: busy ({run.busy.detail}) with no progress and no output for"
        f" {still:.0f}s (stall_timeout_s={run.watch.stall_timeout_s:g})"
    )
    return Failure("stalled", reason, run.stable(now), "stalled")


@dataclass(frozen=True)
class Limits:
    """A framework's memory limits in MB (None: no limit)."""

    rss_mb: float | None = None
    vram_mb: float | None = None


@dataclass(frozen=True)
class Notice:
    """Worth a journal line, not a state: a limit passed while the queue drains."""

    event: str
    fields: dict[str, Any]


def judge_usage(run: RunView, msg: Usage, limits: Limits, now: float) -> Failure | Notice | None:
    """The sampler's reading: a busy GPU is progress; memory over a limit too long is
    a restart, once the queue has drained (or ``busy_wait_max_s`` has passed)."""
    if msg.gpu_util_pct is not None and msg.gpu_util_pct >= GPU_ALIVE_PCT:
        run.progress_mono = now
    notice = None
    readings = (("rss", msg.rss_mb, limits.rss_mb), ("vram", msg.vram_mb, limits.vram_mb))
    for what, used, limit in readings:
        verdict = _over_limit(run, what, used, limit, now)
        if isinstance(verdict, Failure):
            return verdict
        notice = notice or verdict
    return notice


LIMIT_NAMES = {"rss": ("RSS", "max_rss_mb"), "vram": ("VRAM", "max_vram_mb")}


def _over_limit(
    run: RunView, what: str, used: float | None, limit: float | None, now: float
) -> Failure | Notice | None:
    if used is None:
        return None  # unreadable this time: neither over nor under
    if limit is None or used <= limit:
        run.over_since.pop(what, None)
        run.limit_wait_said.discard(what)
        return None
    since = run.over_since.setdefault(what, now)
    over = now - since
    if over < run.watch.rss_limit_s:
        return None
    label, key = LIMIT_NAMES[what]
    reason = f"{label} {used:.0f} MB above {key}={limit:g} for {over:.0f} s"
    if run.is_busy and over < run.watch.rss_limit_s + run.watch.busy_wait_max_s:
        if what in run.limit_wait_said:
            return None  # let the generation finish first, up to busy_wait_max_s
        run.limit_wait_said.add(what)
        queued = run.busy.queued if run.busy is not None else 0
        return Notice("limit_wait", {
            **run.ids(), "reason": f"{reason}; the restart waits up to"
            f" {run.watch.busy_wait_max_s:g} s for the queue to drain",
            "limit": key, "used_mb": round(used, 1), "limit_mb": limit, "queued": queued,
        })  # fmt: skip
    return Failure(
        "restart",
        reason,
        run.stable(now),
        f"{what}_limit",
        {
            "reason": f"{what}_limit",
            "detail": reason,
            f"{what}_mb": round(used, 1),
            "limit_mb": limit,
            "queued": run.busy.queued if run.busy is not None else 0,
            "requested_by": "watch",
        },
    )
