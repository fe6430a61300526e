"""InvokeAI keeps its queue in its own database (issue 16, part 3): the demo as
InvokeAI with its queue in a file, a real supervisor. The watchdog says what will
resume, never touches that queue on a stop, forced or not, and empties it only when a
person asks (``clear_queue``)."""

from __future__ import annotations

import os
import signal
import time

from conftest import events, invokeai_db, invokeai_demo, invokeai_enqueue, running, wait_event

from watchdog.core.states import State
from watchdog.web.cards import status_card


def database(tmp_path) -> list[str]:
    """What InvokeAI's database holds: each item's status, oldest first."""
    return [item["status"] for item in invokeai_db(tmp_path)]


def test_a_forced_stop_leaves_the_queue_and_the_page_says_what_resumes(
    make_settings, supervise, tmp_path
):
    sup = supervise(make_settings(frameworks={"invoke": invokeai_demo(tmp_path, 30)}))
    first = sup.wait_for(running, timeout=15)
    invokeai_enqueue(first.url, 3)
    busy = sup.wait_for(lambda s: s.busy, timeout=10).to_dict()["queue"]
    assert (busy["kind"], busy["kept_by"]) == ("invokeai", "framework")
    assert (busy["running"], busy["pending"]) == (1, 2)

    sup.stop(requested_by="ui", force=True)
    stopped = sup.wait_for(lambda s: s.state is State.STOPPED, 15).to_dict()
    assert not events(sup, "interrupt") and not events(sup, "queue_cleared")
    assert database(tmp_path) == ["in_progress", "pending", "pending"], "left as it was"
    queue = stopped["queue"]
    assert queue["resumes"] == {"pending": 2, "cancelled": 1}
    assert "2 pending jobs resume at its next start" in queue["text"]
    assert "the 1 in progress does not: InvokeAI cancels it at start" in queue["text"]
    assert "2 pending jobs resume" in status_card(stopped)

    sup.start(requested_by="ui")
    again = sup.wait_for(lambda s: s.busy and s.pid != first.pid, timeout=15)
    resumed = wait_event(sup, "jobs_resumed", 5)[-1]
    assert (resumed["running"], resumed["pending"]) == (1, 1)
    assert again.to_dict()["queue"]["resumes"] is None, "said once it resumed"
    assert database(tmp_path) == ["canceled", "in_progress", "pending"]


def test_clear_queue_empties_it_and_nothing_resumes(make_settings, supervise, tmp_path):
    sup = supervise(make_settings(frameworks={"invoke": invokeai_demo(tmp_path, 30)}))
    first = sup.wait_for(running, timeout=15)
    invokeai_enqueue(first.url, 3)
    sup.wait_for(lambda s: s.busy, timeout=10)
    sup.stop(requested_by="ui", clear_queue=True)  # clearing ends the job: no force needed
    stopped = sup.wait_for(lambda s: s.state is State.STOPPED, 15).to_dict()
    cleared = wait_event(sup, "queue_cleared", 5)[-1]
    assert cleared["ok"] is True and cleared["requested_by"] == "ui"
    assert cleared["detail"] == "PUT /api/v1/queue/default/clear: HTTP 200, 3 deleted"
    assert database(tmp_path) == []
    assert stopped["queue"]["resumes"] is None and stopped["queue"]["text"] == ""
    sup.start(requested_by="ui")
    second = sup.wait_for(lambda s: s.state is State.RUNNING and s.pid != first.pid, 15)
    time.sleep(1)  # a few busy probes
    assert not sup.status().busy
    assert second.run_id not in {e["run_id"] for e in events(sup, "jobs_resumed")}


def test_after_a_crash_invokeai_resumes_by_itself_and_nothing_is_submitted(
    make_settings, supervise, tmp_path
):
    sup = supervise(make_settings(frameworks={"invoke": invokeai_demo(tmp_path, 30)}))
    first = sup.wait_for(running, timeout=15)
    invokeai_enqueue(first.url, 2)
    sup.wait_for(lambda s: s.busy, timeout=10)
    os.kill(first.pid, signal.SIGKILL)
    sup.wait_for(lambda s: s.busy and s.pid != first.pid, timeout=20)
    assert wait_event(sup, "jobs_resumed", 5)[-1]["pending"] == 0
    assert database(tmp_path) == ["canceled", "in_progress"]
    assert not events(sup, "requeued") and not events(sup, "requeue_skipped")
