"""Worker and Reconnector: the thread a driver reads in and the loop that keeps its connection open,
against a real TCP server on the loopback that drops every connection after a few lines."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from drivers.backoff import Backoff
from drivers.reconnect import LinkState, Reconnector
from drivers.worker import Worker
from tests.drivers.serial.test_line import wait_for


class Dropper:
    """A loopback server that sends `lines` lines to each client, then hangs up; `accepting` off closes
    the listening socket, as a device that is gone."""

    def __init__(self, lines: int = 3) -> None:
        self.lines = lines
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                for i in range(self.lines):
                    conn.sendall(f"line {i}\n".encode())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept(); a close alone may not
        self.listener.close()
        self._thread.join(2)


@pytest.fixture
def server() -> Iterator[Dropper]:
    dropper = Dropper()
    yield dropper
    dropper.close()


class LineClient:
    """A reader of text lines over TCP, on a Reconnector, as SerialLine is over a port."""

    def __init__(self, port: int, backoff: Backoff, bug_on: str | None = None) -> None:
        self.port, self.bug_on = port, bug_on
        self.lines: list[str] = []
        self.link: Reconnector[socket.socket] = Reconnector(
            "test-link",
            lambda: socket.create_connection(("127.0.0.1", self.port), timeout=0.1),
            self.serve,
            lambda sock: sock.close(),
            backoff,
            expected=(OSError, EOFError),
            describe=lambda exc, opening: f"{'open' if opening else 'read'}: {exc}",
            join_s=1.0,
        )

    def serve(self, sock: socket.socket) -> None:
        reader = sock.makefile("rb")
        while not self.link.stopping:
            try:
                line = reader.readline()
            except TimeoutError:
                continue
            if not line:
                raise EOFError("the peer hung up")
            if line.decode().strip() == self.bug_on:
                raise KeyError("a driver bug")
            self.lines.append(line.decode().strip())
            self.link.worked()


def test_a_dropped_connection_is_reopened_and_counted(server: Dropper) -> None:
    client = LineClient(server.port, Backoff(0.01, 0.02))
    assert client.link.state is LinkState.STOPPED
    client.link.start()
    try:
        wait_for(lambda: client.link.opens >= 3, "three connections")
        assert client.link.failures >= 2 and client.link.retries >= 2
        assert client.link.open_failures == 0
        assert client.link.last_error == "read: the peer hung up"
        assert client.lines[:4] == ["line 0", "line 1", "line 2", "line 0"]
        # each connection delivered, so each retry waited the shortest time
        assert client.link.backoff.upcoming_s == 0.02
    finally:
        started = time.monotonic()
        assert client.link.stop()
    assert time.monotonic() - started < 1.0
    assert client.link.state is LinkState.STOPPED


def test_a_gone_peer_backs_off_and_a_stop_cuts_the_wait_short(server: Dropper) -> None:
    server.close()
    client = LineClient(server.port, Backoff(0.01, 5.0))
    client.link.start()
    wait_for(lambda: client.link.open_failures >= 4, "repeated open failures")
    assert client.link.state is LinkState.CONNECTING
    assert client.link.opens == 0 and (client.link.last_error or "").startswith("open: ")
    wait_for(lambda: client.link.backoff.upcoming_s >= 0.16, "growing waits")
    started = time.monotonic()
    client.link.stop()
    assert time.monotonic() - started < 0.5


def test_a_bug_in_serve_is_logged_and_the_reader_goes_on(
    server: Dropper, caplog: pytest.LogCaptureFixture
) -> None:
    client = LineClient(server.port, Backoff(0.01, 0.02), bug_on="line 1")
    client.link.start()
    try:
        wait_for(lambda: client.link.opens >= 3, "reopened after the bug")
    finally:
        client.link.stop()
    assert client.lines[:2] == ["line 0", "line 0"]
    assert client.link.last_error == "unexpected KeyError: 'a driver bug'"
    assert "unexpected error while reading" in caplog.text


def test_a_worker_refuses_a_second_thread_and_wakes_a_blocked_one() -> None:
    jobs: queue.Queue[int | None] = queue.Queue()
    done: list[int] = []

    def run() -> None:
        while (job := jobs.get()) is not None:
            done.append(job)

    worker = Worker("jobs", run, join_s=1.0, wake=lambda: jobs.put(None))
    worker.start()
    jobs.put(1)
    with pytest.raises(RuntimeError, match="already running"):
        worker.start()
    assert worker.stop() and not worker.alive
    assert done == [1]
    worker.start()  # a stopped worker starts again
    jobs.put(2)
    assert worker.stop() and done == [1, 2]


def test_a_worker_that_does_not_end_is_kept_so_start_refuses() -> None:
    release = threading.Event()

    def stuck() -> None:
        release.wait(5)  # a read that blocks past the stop

    worker = Worker("stuck", stuck, join_s=0.05)
    worker.start()
    assert not worker.stop()
    with pytest.raises(RuntimeError):
        worker.start()
    release.set()
    wait_for(lambda: not worker.alive, "the stuck call ends")
    worker.start()  # once it ended, a new thread may take over
    release.set()
    assert worker.stop()
