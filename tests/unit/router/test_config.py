"""Settings from the environment: defaults, the store's batches in flight, and clear refusals."""

from __future__ import annotations

import pytest

from router.cli import main
from router.config import Settings


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
