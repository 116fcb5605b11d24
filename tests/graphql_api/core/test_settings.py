"""Settings read from the environment: bounds that keep a typo from becoming a policy."""

from __future__ import annotations

import pytest

from graphql_api.core.settings import Settings, SettingsError


def test_a_link_code_lives_a_day_at_most() -> None:
    assert Settings.from_env({}).link_code_ttl_seconds == 600
    assert Settings.from_env({"LINK_CODE_TTL_SECONDS": "86400"}).link_code_ttl_seconds == 86_400
    for bad in ("86401", "10000000", "0", "2.5"):
        with pytest.raises(SettingsError, match="LINK_CODE_TTL_SECONDS"):
            Settings.from_env({"LINK_CODE_TTL_SECONDS": bad})
