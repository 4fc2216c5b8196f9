"""The status page in a real headless Chromium: live values, readable on a desktop and on a phone."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.upstream.broker import find_mosquitto
from bench.upstream.rig import SyncRig
from tests.conftest import ROOT, ApplianceProcess, bench_config, free_port, start_appliance

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags that keep Chromium from reaching for the network at start (this box has none).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / "test-output" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install chromium (./dev test does this when run as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield PredicateBrowser(browser)
        browser.close()


class PredicateBrowser:
    """The browser whose pages let the tests' string predicates run: Playwright evaluates them with
    `eval`, which the page's Content-Security-Policy forbids (its own test asks for a page that keeps it)."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser

    def new_page(self, **options: Any) -> Any:
        return self.browser.new_page(**({"bypass_csp": True} | options))


def test_the_page_shows_live_values_that_change(browser: object, appliance: ApplianceProcess) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    page.goto(appliance.url)
    row = page.locator('tr[data-sensor="line.temperature"]')
    row.wait_for(timeout=10_000)
    page.wait_for_function("document.getElementById('link').className === 'live'", timeout=10_000)
    assert page.locator("#device").inner_text() == "test-box"
    assert row.locator(".badge").inner_text() == "ok"
    assert page.locator('tr[data-sensor="line.setpoint"] .value').inner_text() == "42.5"
    assert "xnnpack: CPU: XNNPACK" in page.locator("#hal").inner_text()
    assert page.locator("#estop-section").is_hidden()  # no [safety] section: no stop output to show
    first = row.locator(".value").inner_text()
    assert 14.0 <= float(first) <= 26.0  # the simulated sine: 20 +- 5 degC
    page.wait_for_function(
        "(v) => document.querySelector('tr[data-sensor=\"line.temperature\"] .value').textContent !== v",
        arg=first,
        timeout=10_000,
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "status-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SHOTS / "status-phone.png"), full_page=True)
    page.close()


def test_the_page_says_when_the_appliance_is_gone(browser: object, appliance: ApplianceProcess) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(appliance.url)
    page.wait_for_function("document.getElementById('link').className === 'live'", timeout=10_000)
    assert appliance.stop() == 0
    page.wait_for_function("document.getElementById('link').className === 'down'", timeout=10_000)
    assert "no connection" in page.locator("#link").inner_text()
    page.close()


def test_the_page_shows_defects_found_by_the_camera_qc(browser: object, tmp_path: Path) -> None:
    from tests.appliance.qc.test_camera_qc import LABELS
    from tests.conftest import free_port, start_appliance

    camera = free_port()
    policy = "".join(
        f'[qc.policy.{label}]\nseverity = "warning"\nthreshold = 0.7\ndebounce = [2, 3]\n'
        for label in LABELS[1:]
    )
    config = tmp_path / "a.toml"
    config.write_text(
        f'[http]\nlisten = "127.0.0.1:0"\n[qc]\nmodel = "{ROOT / "bench/models/qc_demo_int8.tflite"}"\n'
        f"labels = {LABELS!r}\ninput_range = [0.0, 255.0]\n".replace("'", '"')
        + f'camera = {{ type = "stream", uri = "http://127.0.0.1:{camera}/stream.mjpg" }}\n'
        + policy
        + f'[[bench.cameras]]\nname = "cam"\nport = {camera}\nfps = 20\n'
        + "frames_per_part = 12\ndefect_rate = 0.6\n"
    )
    app = start_appliance(config, tmp_path / "data")
    try:
        app.wait_for(lambda s: s["qc"] and s["qc"]["evidence"]["saved"] >= 2, timeout=60)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
        page.goto(app.url)
        page.wait_for_function("document.querySelectorAll('#qc-rejects img').length >= 2", timeout=15_000)
        page.wait_for_function(
            "[...document.querySelectorAll('#qc-rejects img')]"
            ".every((i) => i.complete && i.naturalWidth > 0)",
            timeout=15_000,
        )
        assert not page.locator("#qc-section").is_hidden()
        assert page.locator("#qc-classes tr").count() >= 5
        assert "ms per frame" in page.locator("#hal").inner_text()  # the plan's measured latency
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "status-qc.png"), full_page=True)
        page.close()
    finally:
        app.close()


def test_the_page_shows_the_stop_output_trip_and_reset(browser: object, tmp_path: Path) -> None:
    config = tmp_path / "a.toml"
    config.write_text(
        bench_config(free_port())
        + textwrap.dedent("""
            [safety]
            heartbeat_deadline_ms = 2000
            stop_line = { gpio = "mock", line = "STOP" }

            [[safety.rules]]
            name = "overheat"
            type = "threshold"
            sensor = "line.temperature"
            above = 1000.0
            severity = "warning"
        """)
    )
    app = start_appliance(config, tmp_path / "data")
    try:
        token = app.admin_credential()
        page = browser.new_page(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
        page.goto(app.url)
        section = page.locator("#estop-section")
        state = "(s) => document.getElementById('estop-section').dataset.state === s"
        page.wait_for_function(state, arg="ok", timeout=10_000)
        shown = page.locator("main > section:not([hidden])")
        assert shown.first.get_attribute("id") == "estop-section"  # on top
        assert page.locator("#estop-label").inner_text() == "Line energized \u2014 running allowed"
        assert page.locator("#estop-since").inner_text().startswith("since ")
        assert section.locator('tr[data-fact="latched"] td').inner_text() == "no"
        assert section.locator('tr[data-fact="causes"] td').inner_text() == "none"
        assert page.locator("#estop-no-history").is_visible()
        rule = section.locator('tr[data-rule="overheat"]')
        assert rule.locator(".badge").inner_text() == "clear"
        assert "warning" in rule.inner_text()
        assert "POST /api/v1/estop/trip" in section.inner_text()
        assert page.locator("#estop-control").is_hidden()  # not logged in: no buttons
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "status-estop-ok.png"), full_page=True)

        page.click("#login-button")
        page.fill("#login-password", "not the credential")
        page.click("#login-form button[type=submit]")
        page.wait_for_function("document.getElementById('login-error').textContent !== ''", timeout=10_000)
        assert "wrong" in page.locator("#login-error").inner_text()
        page.fill("#login-password", token)
        page.click("#login-form button[type=submit]")
        page.locator("#estop-control").wait_for(state="visible", timeout=10_000)
        assert page.locator("#who").inner_text() == "logged in as admin"
        page.fill("#trip-reason", "guard open")
        page.click("#trip-button")
        page.wait_for_function(state, arg="tripped", timeout=10_000)
        assert page.locator("#estop-label").inner_text() == "TRIPPED"
        assert "guard open" in section.locator('tr[data-fact="reason"] td').inner_text()
        assert section.locator('tr[data-fact="latched"] td').inner_text().startswith("yes")
        page.wait_for_function("document.querySelectorAll('#estop-history tr').length === 1", timeout=10_000)
        trip = section.locator('#estop-history tr[data-kind="trip"]')
        assert "guard open" in trip.inner_text()
        assert trip.locator(".badge").inner_text() == "trip"
        assert float(trip.locator("td.latency").inner_text()) >= 0.0  # latency_ms
        assert page.title().startswith("TRIPPED")
        page.screenshot(path=str(SHOTS / "status-estop-tripped.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate(
            "document.documentElement.scrollWidth <= window.innerWidth"
        )  # no sideways scroll
        page.screenshot(path=str(SHOTS / "status-estop-phone.png"), full_page=True)
        page.wait_for_function(
            "document.querySelector('[data-insight=\"estop-tripped\"]') !== null", timeout=10_000
        )
        assert "guard open" in page.locator('[data-insight="estop-tripped"]').inner_text()

        page.click("#reset-button")
        page.wait_for_function(state, arg="ok", timeout=10_000)
        assert page.locator("#estop-label").inner_text() == "Line energized \u2014 running allowed"
        page.wait_for_function("document.querySelectorAll('#estop-history tr').length === 2", timeout=10_000)
        kinds = section.locator("#estop-history tr").evaluate_all("(rows) => rows.map((r) => r.dataset.kind)")
        assert kinds == ["reset", "trip"]  # newest first
        page.close()
    finally:
        app.close()


def test_the_page_shows_the_sync_tier_and_backlog(browser: object, tmp_path: Path) -> None:
    if find_mosquitto() is None:
        pytest.skip("needs mosquitto (./dev test installs it when root)")
    with SyncRig(tmp_path) as rig:
        runtime = rig.start()
        try:
            rig.wait(runtime, lambda s: s["records_acked"] > 0, 20, "records acknowledged")
            page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
            page.goto(runtime.url)
            page.locator('#sync-backlog tr[data-class="background"]').wait_for(timeout=10_000)
            assert page.locator("#sync-disabled").is_hidden()
            assert "connected" in page.locator("#sync-kpis").inner_text()
            classes = page.locator("#sync-backlog tr").evaluate_all("rows => rows.map(r => r.dataset.class)")
            assert classes == ["critical", "important", "normal", "background"]
            rig.broker.stop()
            page.wait_for_function(
                "document.getElementById('sync-kpis').textContent.includes('offline')", timeout=20_000
            )
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.locator("#sync-section").screenshot(path=str(SHOTS / "sync-offline.png"))
            page.close()
        finally:
            rig.stop(runtime)


def test_where_reading_needs_a_login_the_page_asks_for_it_first(browser: object, tmp_path: Path) -> None:
    config = tmp_path / "a.toml"
    config.write_text(
        bench_config(free_port()).replace(
            '[http]\nlisten = "127.0.0.1:0"\n', '[http]\nlisten = "127.0.0.1:0"\nstatus_login = "always"\n'
        )
    )
    app = start_appliance(config, tmp_path / "data")
    try:
        token = app.admin_credential()
        page = browser.new_page(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
        page.goto(app.url)
        page.locator("#login-section").wait_for(state="visible", timeout=10_000)
        assert "log in" in page.locator("#link").inner_text()
        assert page.locator("#sensors tr").count() == 0  # nothing shown before the login
        page.fill("#login-password", token)
        page.click("#login-form button[type=submit]")
        page.locator('tr[data-sensor="line.temperature"]').wait_for(timeout=10_000)
        page.wait_for_function("document.getElementById('link').className === 'live'", timeout=10_000)
        assert page.locator("#login-section").is_hidden()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "status-after-login-phone.png"), full_page=True)
        page.click("#logout-button")
        page.locator("#login-section").wait_for(state="visible", timeout=10_000)
        page.close()
    finally:
        app.close()


def test_the_page_keeps_to_its_content_security_policy(browser: object, appliance: ApplianceProcess) -> None:
    """The policy lets in the page's own script and style only: nothing the page does is blocked (a
    violation is reported in the console), its style applies, and another page may not frame it."""
    page = browser.new_page(bypass_csp=False)  # type: ignore[attr-defined]
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(appliance.url.replace("127.0.0.1", "localhost"))  # by the box's name, as a browser on it
    page.locator("#link.live").wait_for(timeout=10_000)  # the script ran and follows the live stream
    assert page.locator('tr[data-sensor="line.temperature"]').count() == 1
    assert page.evaluate("() => getComputedStyle(document.body).margin") == "0px"  # the inline style applies
    assert not [text for text in console if "Content Security Policy" in text], console
    page.close()
    other = browser.new_page(bypass_csp=False)  # type: ignore[attr-defined]
    other.on("console", lambda message: console.append(message.text))
    other.set_content(f'<iframe src="{appliance.url}"></iframe>')  # waits for the frame's load too
    assert other.frames[-1].url == "chrome-error://chromewebdata/"
    assert any("frame-ancestors 'none'" in text for text in console), console
    other.close()
