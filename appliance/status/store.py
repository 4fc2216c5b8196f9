"""The store's service: what it committed, what waits, how much disk it uses and what it thinned."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from appliance.status.metric import MS, Metric
from appliance.status.service import ServiceStatus, service_kind


@service_kind("store")
class StoreStatus(ServiceStatus):
    path: str
    schema_version: int | None = Field(alias="schema")  # `schema` would shadow pydantic's own
    rows_committed: Annotated[int, Metric("appliance_store_rows_committed_total", "Sensor rows committed.")]
    events_committed: Annotated[int, Metric("appliance_store_events_committed_total", "Events committed.")]
    held_records: int
    commits: Annotated[int, Metric("appliance_store_commits_total", "SQLite transactions committed.")]
    flushes: int
    pending_records: Annotated[
        int, Metric("appliance_store_pending_records", "Records queued and not yet committed.")
    ]
    dropped: Annotated[
        int, Metric("appliance_store_dropped_records_total", "Records dropped: the write queue was full.")
    ]
    commit_errors: Annotated[int, Metric("appliance_store_commit_errors_total", "Commits that failed.")]
    journal_errors: int
    last_commit_ms: Annotated[
        float, Metric("appliance_store_last_commit_seconds", "Duration of the last commit.", MS)
    ]
    used_mb: Annotated[float, Metric("appliance_store_used_bytes", "Disk used by the database.", 1e6)]
    quota_mb: Annotated[float, Metric("appliance_store_quota_bytes", "The database's disk quota.", 1e6)]
    over_quota: Annotated[
        bool, Metric("appliance_store_over_quota", "1 while the database is over its quota.")
    ]
    evicted: Annotated[
        dict[str, int],
        Metric("appliance_store_evicted_records_total", "Records thinned, by class.", by="class"),
    ]
    bytes_written_per_record: Annotated[
        float | None, Metric("appliance_store_written_bytes_per_record", "Disk bytes per record.")
    ]
