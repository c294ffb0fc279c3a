"""The restore-drill metrics: each tenant's record asked at scrape time, in /metrics; no
series before a source is set, and setting it again (leading again) does not register twice."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from govcloud import metrics


def test_each_tenants_drill_record_is_exported_at_scrape_time() -> None:
    recorder = metrics.Recorder(CollectorRegistry())
    assert b"govcloud_recovery_drill_" not in recorder.exposition()
    records = [
        metrics.DrillRecord("fin", 1_800_000_000.0, 42.0, "fin-q4", False, False),
        metrics.DrillRecord("tax", None, None, "tax-1", True, True),
        metrics.DrillRecord("parks", None, None, None, False, None),
    ]
    recorder.watch_drills(lambda: records)
    recorder.watch_drills(lambda: records)  # again, as when this replica leads again
    text = recorder.exposition().decode()
    assert 'govcloud_recovery_drill_last_success_timestamp_seconds{tenant="fin"} 1.8e+09' in text
    assert 'govcloud_recovery_drill_recovery_time_seconds{tenant="fin"} 42.0' in text
    assert 'govcloud_recovery_drill_failed{drill="fin-q4",tenant="fin"} 0.0' in text
    assert 'govcloud_recovery_drill_failed{drill="tax-1",tenant="tax"} 1.0' in text
    assert 'govcloud_recovery_drill_overdue{tenant="tax"} 1.0' in text
    assert 'govcloud_recovery_drill_overdue{tenant="fin"} 0.0' in text
    assert 'tenant="parks"' not in text
    assert 'last_success_timestamp_seconds{tenant="tax"}' not in text
