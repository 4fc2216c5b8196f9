"""Fixtures of the update tests: signed bundles (made once per session) and a box of two slots."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.appliance.update.box import Box, Bundles, make_bundles, tools_missing


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    if (missing := tools_missing()) is not None:
        pytest.skip(missing)
    return make_bundles(tmp_path_factory.mktemp("bundles"))


@pytest.fixture
def box(tmp_path: Path, bundles: Bundles) -> Box:
    return Box(tmp_path, bundles.dev.ca)
