"""History: persisted, pruned, downsampled; the sampler feeds it from real processes."""

from __future__ import annotations

import time

from conftest import demo, running

from watchdog.monitor.gpu import NoGpuReader
from watchdog.monitor.metrics import MAX_POINTS, History, Sample
from watchdog.runtime.service import Service


def sample(ts: float, util: float = 50.0) -> Sample:
    return Sample(ts, util, 1000.0, 24000.0, 800.0, 500.0, 12.5, 8000.0, 24000.0, 0.5)


def test_samples_survive_a_restart_of_the_watchdog(make_settings):
    settings = make_settings(frameworks={"demo": demo()}, metrics={"interval_s": 0.2})
    first = Service(settings, reader=NoGpuReader())
    try:
        first.start()
        first.supervisor.wait_for(running, timeout=10)
        time.sleep(1.2)
    finally:
        first.stop()
    reopened = History(settings.logs_dir / "history.sqlite", 7 * 86400)
    try:
        assert reopened.count() >= 4
        rows = reopened.window(minutes=5)
        assert any(r["framework_rss_mb"] and r["framework_rss_mb"] > 5 for r in rows)
        assert all(r["gpu_util_pct"] is None for r in rows)  # no GPU here: stored as null
    finally:
        reopened.close()


def test_retention_deletes_old_samples(tmp_path):
    history = History(tmp_path / "h.sqlite", retention_s=3600)
    now = time.time()
    history.add_many([sample(now - 7200), sample(now - 3000), sample(now - 10)])
    assert history.prune(now) == 1
    assert history.count() == 2
    history.close()


def test_a_week_at_two_seconds_plots_from_a_bounded_series(tmp_path):
    history = History(tmp_path / "h.sqlite", retention_s=8 * 86400)
    now = time.time()
    week = 7 * 86400
    history.add_many([sample(now - week + i * 2, util=i % 100) for i in range(week // 2)])
    assert history.count() == 302_400
    t0 = time.perf_counter()
    rows = history.window(minutes=7 * 24 * 60, now=now)
    took = time.perf_counter() - t0
    assert 300 <= len(rows) <= MAX_POINTS
    assert took < 3, took  # measured ~0.15 s here; generous bound
    assert abs(rows[len(rows) // 2]["gpu_util_pct"] - 49.5) < 2  # averages, not picks
    assert len(history.window(minutes=15, now=now)) <= MAX_POINTS
    history.close()


def test_a_damaged_history_file_is_set_aside(tmp_path):
    path = tmp_path / "h.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    history = History(path, retention_s=3600)
    assert "unreadable" in (history.error or "")
    history.add(sample(time.time()))
    assert history.count() == 1
    assert list(tmp_path.glob("h.sqlite.corrupt-*"))
    history.close()
