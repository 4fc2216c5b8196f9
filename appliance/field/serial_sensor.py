"""A serial line sensor as a service: frames from the reader thread become readings on the event loop,
and a channel that has been silent longer than `stale_after_s` (on the monotonic clock, which no step of
the wall clock moves) is published once more, marked stale."""

from __future__ import annotations

import asyncio
import time

from appliance.config.devices import SerialAsciiDeviceSettings, SerialBinaryDeviceSettings
from appliance.field.poller import ReadingSink
from appliance.records import Quality, Reading, is_bad_value
from appliance.service import Service
from appliance.status.field import SerialStatus
from drivers.serial import (
    AsciiField,
    AsciiFramer,
    AsciiProtocol,
    BinaryChannel,
    BinaryFramer,
    BinaryProtocol,
    Checksum,
    Framer,
    Parity,
    Record,
    SerialFormat,
    SerialLine,
    SerialLineSettings,
    StopBits,
)


def framer_for(settings: SerialAsciiDeviceSettings | SerialBinaryDeviceSettings) -> Framer:
    if isinstance(settings, SerialAsciiDeviceSettings):
        fields = tuple(AsciiField(f.name, f.scale, f.offset, f.unit) for f in settings.fields)
        return AsciiFramer(AsciiProtocol(settings.pattern, fields, Checksum(settings.checksum)))
    channels = tuple(BinaryChannel(c.id, c.name, c.scale, c.offset, c.unit) for c in settings.channels)
    return BinaryFramer(BinaryProtocol(channels))


class SerialSensor(Service):
    stop_timeout_s = 1.0  # its reader thread ends

    def __init__(
        self,
        device_id: str,
        settings: SerialAsciiDeviceSettings | SerialBinaryDeviceSettings,
        sink: ReadingSink,
    ) -> None:
        super().__init__()
        self.name = f"serial:{device_id}"
        self.device_id = device_id
        self.settings = settings
        self.sink = sink
        self.framer = framer_for(settings)
        self.units = dict(self.framer.units)
        # channel -> (monotonic s, value) of the last good reading
        self.last: dict[str, tuple[float, float]] = {}
        self.stale: set[str] = set()
        self.bad_values: dict[str, int] = {}  # by channel: values that were no finite number
        self._loop: asyncio.AbstractEventLoop | None = None
        s = settings
        self.line = SerialLine(
            SerialLineSettings(
                s.url,
                SerialFormat(s.baudrate, s.bytesize, Parity(s.parity), StopBits(s.stopbits)),
                stale_after_s=s.stale_after_s,
            ),
            self.framer,
            self._from_reader_thread,
            name=self.name,
        )

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.line.start()

    async def close(self) -> None:
        await asyncio.to_thread(self.line.stop)

    async def run(self) -> None:
        """Mark channels stale: at least a few times per `stale_after_s`, so the mark is timely."""
        while True:
            await asyncio.sleep(min(self.settings.stale_after_s / 4, 1.0))
            self._mark_stale(time.monotonic())

    def status(self) -> SerialStatus:
        line = self.line.status()
        return SerialStatus(
            **{**self.basics(), "last_error": line["last_error"]},  # the line's, as it reconnects itself
            state=line["state"],
            frames_ok=line["frames_ok"],
            errors=line["errors"],
            reconnects=line["reconnects"],
            stale=sorted(self.stale),
            bad_values=dict(self.bad_values),
        )

    def _from_reader_thread(self, record: Record) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._publish, record)

    def _publish(self, record: Record) -> None:
        readings = []
        seen = record.received_ns / 1e9
        for channel, value in record.values.items():
            quality = Quality.OK
            if is_bad_value(value):  # "1e999", a scale past float's range, a probe's NaN: not a fresh value
                quality = Quality.ERROR
                self.bad_values[channel] = self.bad_values.get(channel, 0) + 1
            else:
                self.last[channel] = (seen, value)
                self.stale.discard(channel)
            readings.append(
                Reading(
                    self.device_id, channel, value, self.units.get(channel, ""), record.timestamp, quality
                )
            )
        self.sink(readings, record.received_ns)

    def _mark_stale(self, now: float) -> None:
        expected = set(self.units)
        newly = [
            c
            for c in sorted(expected)
            if c not in self.stale
            and (c not in self.last or now - self.last[c][0] > self.settings.stale_after_s)
        ]
        if not newly:
            return
        self.stale.update(newly)
        ts, marked_ns = time.time(), time.monotonic_ns()
        # the last good value, marked stale: the page and the rules see what it was and that it is old
        self.sink(
            [
                Reading(
                    self.device_id,
                    c,
                    self.last[c][1] if c in self.last else None,
                    self.units.get(c, ""),
                    ts,
                    Quality.STALE,
                )
                for c in newly
            ],
            marked_ns,
        )
