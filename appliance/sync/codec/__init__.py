"""The sync batch wire format: records of one stream and class, in columns, zstd-compressed (docs/sync.md)."""

from appliance.sync.codec.bodies import (
    EventRow,
    EvidenceRow,
    ReadingRow,
    decode_events,
    decode_evidence,
    decode_readings,
    encode_events,
    encode_evidence,
    encode_readings,
)
from appliance.sync.codec.envelope import CLASSES, MAGIC, STREAMS, VERSION, BatchHeader, open_batch
from appliance.sync.codec.wire import MAX_BODY, MAX_PAYLOAD, MAX_RECORDS, BatchFormatError

__all__ = [
    "CLASSES",
    "MAGIC",
    "MAX_BODY",
    "MAX_PAYLOAD",
    "MAX_RECORDS",
    "STREAMS",
    "VERSION",
    "BatchFormatError",
    "BatchHeader",
    "EventRow",
    "EvidenceRow",
    "ReadingRow",
    "decode",
    "encode_events",
    "encode_evidence",
    "encode_readings",
]


def decode(payload: bytes) -> tuple[BatchHeader, list[ReadingRow] | list[EventRow] | list[EvidenceRow]]:
    """The header and rows of a batch; anything malformed raises BatchFormatError."""
    header, body = open_batch(payload)
    if header.stream == "events":
        return header, decode_events(header, body)
    if header.stream == "evidence":
        return header, decode_evidence(header, body)
    return header, decode_readings(header, body)
