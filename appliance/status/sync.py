"""The sync service: the link's tier and figures, the backlog by class, what went upstream."""

from __future__ import annotations

from typing import Annotated, Literal

from appliance.status.metric import MS, Metric
from appliance.status.section import Section
from appliance.status.service import ServiceStatus, service_kind


class UpstreamStatus(Section):
    kind: str
    connected: Annotated[bool, Metric("appliance_sync_upstream_connected", "1 while upstream is connected.")]
    last_error: str | None
    secure: Annotated[
        bool, Metric("appliance_sync_upstream_secure", "1 if the upstream is reached over TLS.")
    ]
    loopback: bool  # the upstream is on this box: nothing crosses a network, TLS or not


class SyncDisabled(Section):
    """The `sync` section of a box without [sync]: everything stays in the store."""

    tier: Literal["disabled"] = "disabled"
    backlog: None = None
    last_ok: None = None


@service_kind("sync")
class SyncStatus(ServiceStatus):
    tier: str
    goodput_mbit: Annotated[
        float | None,
        Metric("appliance_sync_goodput_bytes_per_second", "Measured uplink goodput.", 1e6 / 8),
    ]
    rtt_ms: Annotated[
        float | None, Metric("appliance_sync_rtt_seconds", "Smoothed round-trip time to upstream.", MS)
    ]
    samples: int
    since: Annotated[float, Metric("appliance_sync_tier_age_seconds", "Time in the current link tier.")]
    metered: Annotated[bool, Metric("appliance_sync_link_metered", "1 if the link is paid for by the byte.")]
    link: str
    failures: Annotated[int, Metric("appliance_sync_failures_total", "Transfers that timed out or failed.")]
    backlog: Annotated[
        dict[str, int],
        Metric("appliance_sync_backlog_records", "Records waiting to go upstream, by class.", by="class"),
    ]
    oldest_s: Annotated[
        dict[str, float | None],
        Metric("appliance_sync_oldest_record_age_seconds", "Age of the oldest waiting.", by="class"),
    ]
    last_ok: Annotated[
        float | None, Metric("appliance_sync_last_ok_timestamp_seconds", "Last acknowledgement (Unix time).")
    ]
    inflight: Annotated[
        int, Metric("appliance_sync_inflight_batches", "Batches sent and not yet acknowledged.")
    ]
    batches_sent: Annotated[int, Metric("appliance_sync_batches_sent_total", "Batches sent upstream.")]
    batches_acked: Annotated[
        int, Metric("appliance_sync_batches_acked_total", "Batches acknowledged by upstream.")
    ]
    records_acked: Annotated[
        int, Metric("appliance_sync_records_acked_total", "Records acknowledged by upstream.")
    ]
    resent: Annotated[
        int, Metric("appliance_sync_batches_resent_total", "Batches sent again for want of an ack.")
    ]
    payload_bytes: Annotated[
        int, Metric("appliance_sync_payload_bytes_total", "Batch bytes sent (encoded, compressed).")
    ]
    wire_bytes: Annotated[
        int, Metric("appliance_sync_wire_bytes_total", "Protocol bytes sent (before TCP/IP and TLS).")
    ]
    upstream: UpstreamStatus | None
