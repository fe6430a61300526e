"""The judgements that end a run the framework did not end itself.

Each is a pure function of the run's record, a message and the time: it returns a
:class:`Failure` (what to journal, why) or a :class:`ProbeNews`, and never acts.
The machine decides what follows (policy, teardown).

- startup timeout: not ready within ``startup_timeout_s``;
- hang: ``failure_threshold`` liveness probes in a row failed while idle;
- stall: busy, but no step, progress or output for ``stall_timeout_s``;
- RSS limit: above ``max_rss_mb`` for ``rss_limit_s`` (a running job gets up to
  ``busy_wait_max_s`` more to finish).
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


def judge_usage(run: RunView, msg: Usage, limit_mb: float | None, now: float) -> Failure | None:
    """The sampler's reading: a busy GPU is progress; RSS over the limit too long is a
    restart."""
    if msg.gpu_util_pct is not None and msg.gpu_util_pct >= GPU_ALIVE_PCT:
        run.progress_mono = now
    if msg.rss_mb is None:
        return None
    if limit_mb is None or msg.rss_mb <= limit_mb:
        run.rss_over_since = None
        return None
    if run.rss_over_since is None:
        run.rss_over_since = now
    over = now - run.rss_over_since
    if over < run.watch.rss_limit_s:
        return None
    if run.is_busy and over < run.watch.rss_limit_s + run.watch.busy_wait_max_s:
        return None  # let the generation finish first, up to busy_wait_max_s
    reason = f"RSS {msg.rss_mb:.0f} MB above max_rss_mb={limit_mb:g} for {over:.0f} s"
    return Failure(
        "restart",
        reason,
        run.stable(now),
        "rss_limit",
        {
            "reason": "rss_limit",
            "detail": reason,
            "rss_mb": round(msg.rss_mb, 1),
            "limit_mb": limit_mb,
            "requested_by": "watch",
        },
    )
