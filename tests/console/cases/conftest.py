"""The case-work tests: a console with small inbox pages, so pagination needs only a few cases (cases
and signed-in people come from tests/console/conftest.py)."""
from __future__ import annotations

import pytest

PAGE_SIZE = 3


@pytest.fixture
def console_settings(console_env, settings):
    from console.settings import ConsoleSettings

    return ConsoleSettings.from_env(console_env).with_overrides(page_size=PAGE_SIZE)
