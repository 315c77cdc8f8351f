"""Settings from the environment: defaults, the store's batches in flight, snapshots, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.cli import main
from router.config import Credentials, Settings, load_credentials
from router.serve import app_config


def test_defaults_without_any_setting() -> None:
    settings = Settings.from_env({})
    assert settings.store_batches_in_flight == 2 and settings.database_url is None


def test_the_stores_batches_in_flight_come_from_the_environment() -> None:
    assert Settings.from_env({"ROUTER_STORE_BATCHES_IN_FLIGHT": "4"}).store_batches_in_flight == 4
    assert Settings.from_env({"ROUTER_STORE_BATCHES_IN_FLIGHT": " "}).store_batches_in_flight == 2


@pytest.mark.parametrize("raw", ["0", "17", "-1", "two", "2.5", "1e3", "\u00b2"])
def test_a_wrong_value_is_refused_with_its_name(raw: str) -> None:
    with pytest.raises(ValueError, match=r"ROUTER_STORE_BATCHES_IN_FLIGHT must be a whole number from 1 to 16"):
        Settings.from_env({"ROUTER_STORE_BATCHES_IN_FLIGHT": raw})


def test_the_command_line_says_which_setting_is_wrong(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ROUTER_STORE_BATCHES_IN_FLIGHT", "many")
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert "ROUTER_STORE_BATCHES_IN_FLIGHT" in err and "Traceback" not in err


def test_offer_and_desk_timers_come_from_the_environment_to_the_router() -> None:
    settings = Settings.from_env({"ROUTER_MAX_MISSED_OFFERS": "5", "ROUTER_DISCONNECT_GRACE_S": "40"})
    config = app_config(settings, Credentials("t" * 32), "postgresql://nowhere/db", demo=False)
    assert (config.router_settings.timers.max_missed_offers, config.router_settings.timers.disconnect_grace_s) == (5, 40)
    defaults = app_config(Settings.from_env({}), Credentials("t" * 32), "postgresql://nowhere/db", demo=False)
    assert (defaults.router_settings.timers.max_missed_offers, defaults.router_settings.timers.disconnect_grace_s) == (3, 15)
    for name, raw in (("ROUTER_MAX_MISSED_OFFERS", "0"), ("ROUTER_DISCONNECT_GRACE_S", "forever")):
        with pytest.raises(ValueError, match=f"{name} must be a whole number"):
            Settings.from_env({name: raw})


def test_snapshot_settings_come_from_the_environment_and_are_checked() -> None:
    settings = Settings.from_env({"ROUTER_SNAPSHOT_EVERY_S": "60", "ROUTER_SNAPSHOT_KEY": "k" * 16})
    assert settings.snapshot_every_s == 60 and settings.snapshot_key == "k" * 16
    assert Settings.from_env({}).snapshot_every_s == 300
    with pytest.raises(ValueError, match="ROUTER_SNAPSHOT_EVERY_S must be a whole number from 0 to 86400"):
        Settings.from_env({"ROUTER_SNAPSHOT_EVERY_S": "soon"})
    with pytest.raises(ValueError, match="ROUTER_SNAPSHOT_KEY must be 16 characters or more"):
        Settings.from_env({"ROUTER_SNAPSHOT_KEY": "short"})


def test_the_snapshot_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings.from_env({"ROUTER_VAR_DIR": str(tmp_path)})
    first = load_credentials(settings).snapshot_key
    assert first is not None and len(first) >= 32 and load_credentials(settings).snapshot_key == first
    assert (tmp_path / "snapshot-key").stat().st_mode & 0o777 == 0o600
    given = Settings.from_env({"ROUTER_VAR_DIR": str(tmp_path), "ROUTER_SNAPSHOT_KEY": "x" * 20})
    assert load_credentials(given).snapshot_key == b"x" * 20
