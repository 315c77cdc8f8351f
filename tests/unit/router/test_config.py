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


def test_gateway_rate_limits_come_from_the_environment_to_the_app() -> None:
    settings = Settings.from_env({"ROUTER_GATEWAY_RATE_PER_S": "200", "ROUTER_GATEWAY_BURST": "400"})
    config = app_config(settings, Credentials("t" * 32), "postgresql://nowhere/db", demo=False)
    assert (config.gateway_rate_per_s, config.gateway_burst) == (200, 400)
    defaults = app_config(Settings.from_env({}), Credentials("t" * 32), "postgresql://nowhere/db", demo=False)
    assert (defaults.gateway_rate_per_s, defaults.gateway_burst) == (5000, 10000)
    with pytest.raises(ValueError, match="ROUTER_GATEWAY_RATE_PER_S must be a whole number"):
        Settings.from_env({"ROUTER_GATEWAY_RATE_PER_S": "0"})


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _write(path: Path, text: str) -> None:
    # A new file in place of the old (as editors and config management do): a new inode, so the
    # change shows even within the file system's timestamp granularity.
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def test_gateway_secrets_follow_their_file_without_a_restart(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    from router.config import GatewaySecrets

    path, clock = tmp_path / "secrets.json", _Clock()
    _write(path, '{"phone": "phone-old-secret-0123456789"}')
    secrets = GatewaySecrets(path, clock=clock)
    assert secrets.get("phone") == ("phone-old-secret-0123456789",) and "app" not in secrets
    _write(path, '{"phone": ["phone-new-secret-0123456789", "phone-old-secret-0123456789"], '
                 '"app": "app-secret-0123456789abc"}')
    assert secrets.get("phone") == ("phone-old-secret-0123456789",)  # checked at most once a second
    clock.now += 1.0
    assert secrets.get("phone") == ("phone-new-secret-0123456789", "phone-old-secret-0123456789")
    assert secrets["app"] == ("app-secret-0123456789abc",)
    assert "app, phone gateway(s) changed" in caplog.text

    caplog.clear()
    _write(path, '{"phone": "phone-new-secret-')  # an editor halfway through, or a typo
    for _ in range(3):
        clock.now += 1.0
        assert secrets.get("phone") == ("phone-new-secret-0123456789", "phone-old-secret-0123456789")
    assert [r.levelname for r in caplog.records] == ["ERROR"], "logged once, not once a second"
    assert "stay in force" in caplog.text

    _write(path, '{"phone": "short"}')  # parsed but invalid: refused the same way
    clock.now += 1.0
    assert secrets.get("phone") == ("phone-new-secret-0123456789", "phone-old-secret-0123456789")
    _write(path, '{"phone": null, "app": 12345}')  # not even text: the same
    clock.now += 1.0
    assert secrets.get("phone") == ("phone-new-secret-0123456789", "phone-old-secret-0123456789")
    path.unlink()
    clock.now += 1.0
    assert secrets.get("app") == ("app-secret-0123456789abc",)

    _write(path, '{"phone": "phone-new-secret-0123456789"}')
    clock.now += 1.0
    assert dict(secrets) == {"phone": ("phone-new-secret-0123456789",)}


def test_gateway_secrets_from_the_environment_take_the_files_place(tmp_path: Path) -> None:
    settings = Settings.from_env({"ROUTER_VAR_DIR": str(tmp_path),
                                  "ROUTER_GATEWAY_SECRET_VIDEO": "video-new-0123456789ab, video-old-0123456789ab"})
    credentials = load_credentials(settings)
    assert credentials.gateway_secrets["video"] == ("video-new-0123456789ab", "video-old-0123456789ab")
    assert set(credentials.gateway_secrets) == {"phone", "webchat", "video", "app"}
    made = (tmp_path / "gateway-secrets.json").read_text()
    assert "video" not in made, "a secret the environment gives is not also made into the file"
    with pytest.raises(ValueError, match="ROUTER_GATEWAY_SECRET_<GATEWAY>: gateway secrets: 'app' needs"):
        Settings.from_env({"ROUTER_GATEWAY_SECRET_APP": "short"})


def test_a_secrets_file_that_cannot_be_parsed_stops_the_start_clearly(tmp_path: Path) -> None:
    (tmp_path / "gateway-secrets.json").write_text("{not json")
    with pytest.raises(ValueError, match="gateway secrets file .*gateway-secrets.json"):
        load_credentials(Settings.from_env({"ROUTER_VAR_DIR": str(tmp_path)}))


def test_a_database_url_in_a_message_hides_the_password() -> None:
    from router.serve import redacted

    assert redacted("postgresql://bank:pa%40ss@db.internal:5432/router") == "postgresql://bank:***@db.internal:5432/router"
    assert redacted("postgresql://bank@db/router") == "postgresql://bank@db/router"
    assert redacted("postgresql://db/router?sslmode=require") == "postgresql://db/router?sslmode=require"
    assert redacted("postgresql://bank:pw@[::1]:5432/r") == "postgresql://bank:***@[::1]:5432/r"


def test_only_reaching_the_database_counts_as_a_database_problem() -> None:
    import asyncpg

    from router.serve import database_problem

    try:
        try:
            raise asyncpg.InvalidCatalogNameError('database "gone" does not exist')
        except asyncpg.PostgresError as inner:
            raise RuntimeError("wrapped, as SQLAlchemy does") from inner
    except RuntimeError as outer:
        assert database_problem(outer) == 'database "gone" does not exist'
    assert database_problem(ConnectionRefusedError(111, "Connect call failed")).startswith("connection refused")
    assert database_problem(asyncpg.UniqueViolationError("duplicate key")) is None  # a bug keeps its traceback
    assert database_problem(KeyError("x")) is None
