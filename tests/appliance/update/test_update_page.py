"""The page's update section in a real headless Chromium: the admin uploads a bundle with the page, sees it
wait for the updater, then the outcome and the slots the root updater recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.appliance.test_page import SHOTS, browser  # noqa: F401  # the module's Chromium
from tests.appliance.update.box import Box, Bundles
from tests.conftest import ApplianceProcess, start_appliance

pytestmark = pytest.mark.browser


@pytest.fixture
def app(tmp_path: Path, box: Box, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApplianceProcess]:
    box.state_dir.mkdir()
    monkeypatch.setenv("APPLIANCE_UPDATE_STATE_DIR", str(box.state_dir))
    config = tmp_path / "appliance.toml"
    config.write_text('[http]\nlisten = "127.0.0.1:0"\n')
    app = start_appliance(config, tmp_path / "data")
    yield app
    app.close()


def test_the_admin_installs_an_update_from_the_page(
    browser: object,  # noqa: F811
    app: ApplianceProcess,
    box: Box,
    bundles: Bundles,
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.goto(app.url)
    section = page.locator("#update-section")
    section.wait_for(timeout=10_000)
    assert page.locator("#update-login-hint").is_visible() and page.locator("#update-form").is_hidden()
    page.locator("#login-button").click()
    page.locator("#login-password").fill(app.admin_credential())
    page.locator("#login-form button").click()
    page.locator("#update-form").wait_for(timeout=10_000)
    page.locator("#update-file").set_input_files(str(bundles.good))
    page.locator("#update-button").click()
    page.wait_for_function(
        "document.getElementById('update-message').textContent.startsWith('bundle received')", timeout=10_000
    )
    page.wait_for_function(
        "document.getElementById('update-step').textContent.startsWith('waiting for the updater')",
        timeout=10_000,
    )
    assert page.locator("#update-form").is_hidden()  # one at a time
    done = box.update("--from-request", "--data-dir", app.data_dir, "--no-reboot")
    assert done.returncode == 0, done.stderr
    outcome = page.locator('#update-facts tr[data-fact="outcome"]')
    page.wait_for_function(
        "(document.querySelector('#update-facts tr[data-fact=\"outcome\"]') || {}).textContent"
        "?.includes('installed version 2.0.1')",
        timeout=15_000,
    )
    assert "installed version 2.0.1 in rootfs.1 (B)" in outcome.inner_text()
    assert "version 2.0.1 in rootfs.1" in page.locator('#update-facts tr[data-fact="trial"]').inner_text()
    assert page.locator('#update-slots tr[data-slot="rootfs.1"]').inner_text().split("\t")[:3] == [
        "rootfs.1",
        "B",
        "boots next",
    ]
    assert page.locator("#update-progress").is_hidden()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "update-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SHOTS / "update-phone.png"), full_page=True)
    page.close()
