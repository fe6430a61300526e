"""The verdicts on their own: hang, stall, long job, RSS limit, startup timeout."""

from __future__ import annotations

from watchdog.core import verdicts
from watchdog.core.messages import Probe, Usage
from watchdog.core.run import RunView
from watchdog.frameworks.busy import Busy
from watchdog.settings import WatchSettings

W = WatchSettings(
    failure_threshold=3, stall_timeout_s=60, rss_limit_s=10, busy_wait_max_s=30,
    startup_timeout_s=100, stable_uptime_s=5,
)  # fmt: skip


def ready_run(now: float = 0.0) -> RunView:
    return RunView("a", "r1", 42, W, 0.0, 0.0, "http://x", "http://x", ready_mono=now)


def busy(step: int) -> Busy:
    return Busy(True, f"job 1 step {step}", f"step {step}/20")


def test_three_failed_probes_in_a_row_are_a_hang():
    run = ready_run()
    news = [verdicts.judge_probe(run, Probe("r1", False, "timeout"), t) for t in (1, 2, 3)]
    assert isinstance(news[0], verdicts.ProbeNews) and news[0].event == "unhealthy"
    assert news[1] is None
    assert isinstance(news[2], verdicts.Failure) and news[2].event == "hang"


def test_an_answer_in_between_starts_the_count_again():
    run = ready_run()
    verdicts.judge_probe(run, Probe("r1", False, "timeout"), 1)
    healthy = verdicts.judge_probe(run, Probe("r1", True, "HTTP 200"), 2)
    assert isinstance(healthy, verdicts.ProbeNews) and healthy.event == "healthy"
    for t in (3, 4):
        assert not isinstance(
            verdicts.judge_probe(run, Probe("r1", False, "timeout"), t), verdicts.Failure
        )


def test_a_long_job_that_moves_is_no_hang_however_slow_the_probes():
    run = ready_run()
    for t in range(1, 200):
        out = verdicts.judge_probe(run, Probe("r1", False, "timeout", busy(t // 10)), t)
        assert not isinstance(out, verdicts.Failure), f"at {t}s"


def test_output_alone_is_progress_too():
    run = ready_run()
    for t in range(1, 200):
        out = verdicts.judge_probe(run, Probe("r1", False, "timeout", busy(3), t * 100), t)
        assert not isinstance(out, verdicts.Failure)


def test_busy_with_no_progress_for_stall_timeout_is_a_stall():
    run = ready_run()
    outs = [verdicts.judge_probe(run, Probe("r1", True, "HTTP 200", busy(3), 500), t)
            for t in range(0, 62)]  # fmt: skip
    stalls = [o for o in outs if isinstance(o, verdicts.Failure)]
    assert stalls and stalls[0].event == "stalled" and "no progress" in stalls[0].reason


def test_a_busy_gpu_is_progress():
    run = ready_run()
    for t in range(0, 120):
        verdicts.judge_usage(run, Usage(None, gpu_util_pct=95), NO_LIMITS, t)
        out = verdicts.judge_probe(run, Probe("r1", True, "HTTP 200", busy(3), 500), t)
        assert not isinstance(out, verdicts.Failure)


NO_LIMITS = verdicts.Limits()
RSS_100 = verdicts.Limits(rss_mb=100)
VRAM_100 = verdicts.Limits(vram_mb=100)


def test_rss_over_the_limit_waits_rss_limit_s_and_a_job_up_to_busy_wait_max_s():
    run = ready_run()
    assert verdicts.judge_usage(run, Usage(200), RSS_100, now=0) is None
    assert verdicts.judge_usage(run, Usage(200), RSS_100, now=9) is None
    run.busy = busy(3)
    wait = verdicts.judge_usage(run, Usage(200), RSS_100, now=20)  # let it finish
    assert isinstance(wait, verdicts.Notice) and wait.event == "limit_wait"
    assert "waits up to 30 s for the queue to drain" in wait.fields["reason"]
    assert verdicts.judge_usage(run, Usage(200), RSS_100, now=21) is None, "said once"
    out = verdicts.judge_usage(run, Usage(200), RSS_100, now=41)
    assert isinstance(out, verdicts.Failure) and out.fields["reason"] == "rss_limit"


def test_rss_back_under_the_limit_resets_the_clock():
    run = ready_run()
    verdicts.judge_usage(run, Usage(200), RSS_100, now=0)
    verdicts.judge_usage(run, Usage(50), RSS_100, now=5)
    assert verdicts.judge_usage(run, Usage(200), RSS_100, now=12) is None


def test_vram_over_the_limit_restarts_once_the_queue_drains():
    run = ready_run()
    run.busy = busy(3)
    assert verdicts.judge_usage(run, Usage(10, vram_mb=200), VRAM_100, now=0) is None
    wait = verdicts.judge_usage(run, Usage(10, vram_mb=200), VRAM_100, now=15)
    assert isinstance(wait, verdicts.Notice) and wait.fields["limit"] == "max_vram_mb"
    run.busy = None  # the queue drained: no need to wait for busy_wait_max_s
    out = verdicts.judge_usage(run, Usage(10, vram_mb=200), VRAM_100, now=16)
    assert isinstance(out, verdicts.Failure) and out.teardown_reason == "vram_limit"
    assert out.fields["vram_mb"] == 200 and out.fields["limit_mb"] == 100
    assert out.reason == "VRAM 200 MB above max_vram_mb=100 for 16 s"


def test_an_unreadable_vram_figure_is_neither_over_nor_under():
    run = ready_run()
    verdicts.judge_usage(run, Usage(10, vram_mb=200), VRAM_100, now=0)
    verdicts.judge_usage(run, Usage(10, vram_mb=None), VRAM_100, now=5)  # no GPU reading
    out = verdicts.judge_usage(run, Usage(10, vram_mb=200), VRAM_100, now=11)
    assert isinstance(out, verdicts.Failure), "a gap in the readings does not reset it"
    assert verdicts.judge_usage(ready_run(), Usage(10, None), VRAM_100, now=99) is None


def test_startup_timeout_counts_from_the_wait_not_the_spawn():
    run = RunView("a", "r1", 42, W, 0.0, 0.0, None, None, waiting_since=500.0)
    assert verdicts.startup_timeout(run, 599) is None
    assert verdicts.startup_timeout(run, 600) is not None
