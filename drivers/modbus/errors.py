"""Why a Modbus read failed: one exception with a kind, raised by the TCP and RTU clients alike and
counted per kind in the poller's status."""

from __future__ import annotations

import enum


class FailureKind(enum.StrEnum):
    """Why a read produced no data; counted per kind in the poller's status."""

    DISCONNECTED = "disconnected"
    TIMEOUT = "timeout"
    EXCEPTION = "exception"  # the device answered with a Modbus exception code
    BAD_RESPONSE = "bad_response"  # an answer that does not fit the request
    BAD_CRC = "bad_crc"  # RTU: a frame whose checksum does not match
    BACKED_OFF = "backed_off"  # RTU: not asked, the slave is resting after failing to answer


class ReadFailure(Exception):
    """A block could not be read; `kind` says why, the message says what."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
