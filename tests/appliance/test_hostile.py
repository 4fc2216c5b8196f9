"""Hostile clients against a running `appliance run` on loopback, with its default limits: oversize bodies,
slow and silent connections, live streams hogged by one address, a rotating X-Forwarded-For, a rebinding
Host name; the security headers on every answer; the runtime's memory through the abuse."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import hostile, raw_http
from tests.appliance.test_config import errors_of
from tests.conftest import ApplianceProcess, bench_config, free_port, start_appliance

MB = 1_000_000


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApplianceProcess]:
    folder = tmp_path_factory.mktemp("hostile")
    config = folder / "appliance.toml"
    config.write_text(bench_config(free_port()))
    app = start_appliance(config, folder / "data")
    yield app
    app.close()


def wrong_login() -> bytes:
    return b'{"user": "admin", "password": "not-the-password"}'


def test_an_oversize_login_body_is_refused_by_its_content_length_before_it_is_read(
    box: ApplianceProcess,
) -> None:
    answer = hostile.oversize_body(box.url, "/api/v1/login", 48 * MB)
    assert answer.status == 413, answer
    assert answer.json() == {"error": "the body is over 4096 bytes, the most this route takes"}
    assert answer.headers["connection"] == "close"
    assert answer.sent < 16 * MB and answer.seconds < 3  # what the sockets' buffers held, no more


def test_a_chunked_login_body_is_cut_once_it_grows_past_the_limit(box: ApplianceProcess) -> None:
    answer = hostile.oversize_body(box.url, "/api/v1/login", 48 * MB, chunked=True)
    assert answer.status == 413, answer
    assert answer.sent < 16 * MB and answer.seconds < 3


def test_a_get_takes_no_body(box: ApplianceProcess) -> None:
    answer = raw_http.request(box.url, "/api/v1/status", body=b"x" * 100)
    assert answer.status == 413 and "no body" in answer.json()["error"]
    assert raw_http.request(box.url, "/api/v1/status").status == 200


def test_a_login_within_the_limit_is_checked(box: ApplianceProcess) -> None:
    headers = {"Content-Type": "application/json"}
    answer = raw_http.request(box.url, "/api/v1/login", "POST", headers, wrong_login(), source="127.0.0.9")
    assert answer.status == 401


def test_the_runtimes_memory_holds_under_oversize_bodies(box: ApplianceProcess) -> None:
    """Each 48 MB body was read whole into memory (the process grew by 150 MB)."""
    raw_http.request(box.url, "/api/v1/login", "POST", {}, b"{}")  # the route's first use is not the abuse
    before = hostile.rss_mb(box.proc.pid)
    for chunked in (False, True, False, True):
        hostile.oversize_body(box.url, "/api/v1/login", 48 * MB, chunked=chunked)
    grown = hostile.rss_mb(box.proc.pid) - before
    assert grown < 40, f"the runtime grew by {grown:.0f} MB"


def test_password_checks_give_their_memory_back(appliance: ApplianceProcess) -> None:
    """Each scrypt check takes 16 MB; glibc kept the freed blocks in its heaps (the process grew by 32 MB
    after a few wrong logins, the most of the hostile run's growth). A box of its own: the 8 checks spend
    most of a box's budget of 10 a minute."""
    box = appliance
    headers = {"Content-Type": "application/json"}
    before = hostile.rss_mb(box.proc.pid)
    for i in range(8):  # 4 addresses, within each one's limit and the box's budget
        source = f"127.0.3.{i % 4 + 1}"
        answer = raw_http.request(box.url, "/api/v1/login", "POST", headers, wrong_login(), source)
        assert answer.status == 401
    grown = hostile.rss_mb(box.proc.pid) - before
    assert grown < 8, f"the runtime grew by {grown:.0f} MB"


def test_one_address_cannot_take_every_live_stream(box: ApplianceProcess) -> None:
    with hostile.hog_streams(box.url, 6, source="127.0.0.2") as hog:
        assert hog.statuses == [200, 200, 200, 200, 429, 429]
        with hostile.hog_streams(box.url, 1, source="127.0.0.3") as other:
            assert other.statuses == [200]


def test_x_forwarded_for_from_loopback_is_ignored_by_default(box: ApplianceProcess) -> None:
    """A loopback client claiming to forward for another address is still loopback (reads freely), and
    rotating the claim does not make wrong logins count for many addresses."""
    answer = raw_http.request(box.url, "/api/v1/status", headers={"X-Forwarded-For": "203.0.113.7"})
    assert answer.status == 200
    statuses = hostile.forwarded_rotation(box.url, "/api/v1/login", 8, "POST", wrong_login(), "127.0.0.4")
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses


@pytest.mark.parametrize(
    "host", ["rebind.attacker.example", "localhost.attacker.example", "evil", "[::1", "a:b:c"]
)
def test_a_foreign_host_name_is_refused(box: ApplianceProcess, host: str) -> None:
    answer = hostile.foreign_host(box.url, "/api/v1/status", host)
    assert answer.status == 421 and answer.json() == {"error": "unknown host"}


def test_the_boxs_own_names_and_any_address_are_served(box: ApplianceProcess) -> None:
    port = box.url.rsplit(":", 1)[1].strip("/")
    names = ["localhost", socket.gethostname(), socket.gethostname() + ".local", "127.0.0.1", "[::1]"]
    names += [f"{name}:{port}" for name in names] + ["LOCALHOST.", "10.1.2.3"]
    for name in names:
        assert hostile.foreign_host(box.url, "/api/v1/status", name).status == 200, name


@pytest.mark.parametrize("path", ["/", "/api/v1/status", "/nope", "/openapi.json"])
def test_every_answer_has_the_security_headers(box: ApplianceProcess, path: str) -> None:
    headers = raw_http.request(box.url, path).headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "server" not in headers


def test_refusals_have_the_security_headers_too(box: ApplianceProcess) -> None:
    for answer in (
        hostile.foreign_host(box.url),
        hostile.oversize_body(box.url, "/api/v1/login", 10_000),
    ):
        assert answer.headers["x-frame-options"] == "DENY", answer


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["silent", "head", "body"])
def test_slow_and_silent_connections_are_closed_within_the_bound(box: ApplianceProcess, mode: str) -> None:
    """The default bounds: a request head within 10 s, no pause in a body over 10 s, and at least
    1 kB/s after the first 10 s."""
    held = hostile.slowloris(box.url, 5, mode, interval=1.0, duration=20.0, source="127.0.0.5")
    assert all(h is not None and h < 13 for h in held), held


def test_a_flood_of_sockets_is_capped(box: ApplianceProcess) -> None:
    kept, closed = hostile.flood(box.url, 40, source="127.0.0.6")
    assert kept == 16 and closed == 24
    assert raw_http.request(box.url, "/api/v1/status", source="127.0.0.7").status == 200


def test_the_config_names_trusted_proxies_and_more_host_names(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    http = '[http]\ntrusted_proxies = ["127.0.0.2"]\nhosts = ["box.plant.example"]\nlisten = '
    config.write_text(bench_config(free_port()).replace("[http]\nlisten = ", http))
    app = start_appliance(config, tmp_path / "data")
    try:
        forwarded = {"X-Forwarded-For": "203.0.113.7"}
        assert (
            raw_http.request(app.url, "/api/v1/status", headers=forwarded, source="127.0.0.2").status == 401
        )
        assert (
            raw_http.request(app.url, "/api/v1/status", headers=forwarded, source="127.0.0.3").status == 200
        )
        assert hostile.foreign_host(app.url, "/", "box.plant.example").status == 200
        assert hostile.foreign_host(app.url, "/", "other.plant.example").status == 421
    finally:
        app.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[http]\ntrusted_proxies = ['gateway']",
            "http.trusted_proxies[0]: expected an IP address or network",
        ),
        ("[http]\ntrusted_proxies = '10.0.0.1'", "http.trusted_proxies: expected an array"),
        ("[http]\nhosts = ['box plant']", "http.hosts[0]: expected a host name"),
        ("[http]\nhosts = ['box..plant']", "http.hosts[0]: expected a host name"),
    ],
)
def test_a_bad_proxy_or_host_name_in_the_config_names_its_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    errors = errors_of(tmp_path, text)
    assert any(expected in error for error in errors), errors


def test_the_abuse_left_no_traceback_in_the_log(box: ApplianceProcess) -> None:
    """Last in this file: a client cut off by a limit is routine, not an error with a traceback; the
    refusals are counted in the status."""
    assert raw_http.request(box.url, "/api/v1/status").status == 200
    assert "Traceback" not in box.output, box.output
    web = box.status()["services"]["web"]
    assert {"unknown_host", "body_too_large", "connections_per_client"} <= web["refused"].keys(), web
    assert web["connections"] >= 1  # this request's
