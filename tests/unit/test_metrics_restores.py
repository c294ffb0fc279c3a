"""govcloud_backup_restores_total: each ended BackupRestore counted by tenant and result, and
a deleted tenant's series gone."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from govcloud import metrics


def test_ended_restores_are_counted_by_tenant_and_result_and_forgotten_with_the_tenant() -> None:
    recorder = metrics.Recorder(CollectorRegistry())
    recorder.restores.count("fin", "completed")
    recorder.restores.count("fin", "completed")
    recorder.restores.count("fin", "refused")
    recorder.restores.count("hr", "failed")
    text = recorder.exposition().decode()
    assert 'govcloud_backup_restores_total{result="completed",tenant="fin"} 2.0' in text
    assert 'govcloud_backup_restores_total{result="refused",tenant="fin"} 1.0' in text
    recorder.forget_tenant("fin")
    text = recorder.exposition().decode()
    assert 'tenant="fin"' not in text
    assert 'govcloud_backup_restores_total{result="failed",tenant="hr"} 1.0' in text
