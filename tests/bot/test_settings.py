"""Bot settings: documented in .env.example, secrets never shown, master key handling."""

import logging
import re
import stat
from pathlib import Path

import pytest

from bot.settings import MasterKeyMissingError, Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented_in_env_example():
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_secrets_never_appear_in_repr_or_str():
    settings = Settings(discord_token="super-secret-token", master_key="ab" * 32, _env_file=None)
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert "super-secret-token" not in text and "ab" * 32 not in text


def test_master_key_is_created_once_with_a_warning(tmp_path, caplog):
    settings = Settings(master_key_file=tmp_path / "keys" / "master.key", _env_file=None)
    with caplog.at_level(logging.WARNING):
        key = settings.load_master_key(lambda n: b"\x07" * n)
    assert key == b"\x07" * 32
    path = tmp_path / "keys" / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "created a new one" in caplog.text and key.hex() not in caplog.text
    assert settings.load_master_key(lambda n: b"\x09" * n) == key  # read back, not recreated


def test_master_key_from_settings_wins(tmp_path):
    settings = Settings(master_key="cd" * 32, master_key_file=tmp_path / "unused.key", _env_file=None)
    assert settings.load_master_key() == b"\xcd" * 32
    assert not (tmp_path / "unused.key").exists()


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("a0b0ab5c" * 7 + "a0b0ab5", "must be 64 hex digits, got 63"),
        ("ab" * 31, "must be 64 hex digits, got 62"),
        ("zz" * 32, "must be 64 hex digits (0-9, a-f)"),
        ("0x" + "a0b0ab5c" * 8, "without a 0x prefix"),
    ],
)
def test_an_invalid_master_key_is_named_without_its_value(bad, says, monkeypatch):
    for make in (lambda: Settings(master_key=bad, _env_file=None), lambda: Settings(_env_file=None)):
        monkeypatch.setenv("MASTER_KEY", bad)
        with pytest.raises(SettingsError) as caught:
            make()
        error = caught.value
        assert str(error).startswith("MASTER_KEY ") and says in str(error)
        # Not in the message, nor anywhere a traceback printer or error reporter could find it.
        for text in (str(error), repr(error), *map(str, error.args)):
            assert bad not in text and bad[2:18] not in text and "input" not in text
        assert error.__context__ is None and error.__cause__ is None


def test_every_bad_setting_is_named_in_one_line():
    with pytest.raises(SettingsError) as caught:
        Settings(master_key="ab" * 31, hashing_workers="many", log_level="LOUD", _env_file=None)
    message = str(caught.value)
    assert "\n" not in message
    assert "MASTER_KEY must be 64 hex digits" in message
    assert "HASHING_WORKERS: Input should be a valid integer" in message and "many" not in message
    assert "LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR" in message and "LOUD" not in message


def test_a_key_with_surrounding_blanks_is_accepted(tmp_path):
    settings = Settings(master_key=" " + "cd" * 32 + "\n", master_key_file=tmp_path / "unused.key", _env_file=None)
    assert settings.load_master_key() == b"\xcd" * 32


def test_no_new_key_is_made_when_the_database_needs_the_old_one(tmp_path):
    settings = Settings(master_key_file=tmp_path / "master.key", _env_file=None)
    with pytest.raises(MasterKeyMissingError) as caught:
        settings.load_master_key(may_create=False)
    assert "no master key" in str(caught.value) and str(tmp_path / "master.key") in str(caught.value)
    assert not (tmp_path / "master.key").exists()


def test_a_bad_key_file_is_named_without_its_content(tmp_path):
    path = tmp_path / "master.key"
    path.write_text("a0b0ab5c" * 7 + "\n")
    with pytest.raises(SettingsError) as caught:
        Settings(master_key_file=path, _env_file=None).load_master_key()
    assert "must be 64 hex digits, got 56" in str(caught.value) and "a0b0ab5c" not in str(caught.value)


def test_the_key_files_new_folder_is_private(tmp_path):
    settings = Settings(master_key_file=tmp_path / "keys" / "master.key", _env_file=None)
    settings.load_master_key()
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700


def test_invalid_values_are_refused():
    with pytest.raises(SettingsError):
        Settings(hashing_workers=0, _env_file=None)
    with pytest.raises(SettingsError):
        Settings(log_level="LOUD", _env_file=None)
    with pytest.raises(SettingsError):
        Settings(watts_per_core=0, _env_file=None)
    for percent in (0, 101):
        with pytest.raises(SettingsError):
            Settings(hashing_cpu_percent=percent, _env_file=None)


def test_the_hashing_cpu_budget_defaults_to_the_whole_machine(monkeypatch):
    assert Settings(_env_file=None).hashing_cpu_percent == 100
    monkeypatch.setenv("HASHING_CPU_PERCENT", "50")
    assert Settings(_env_file=None).hashing_cpu_percent == 50


def test_environment_variables_are_read(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "x.sqlite3"))
    monkeypatch.setenv("HASHING_WORKERS", "3")
    monkeypatch.setenv("DEV_GUILD_ID", "42")
    monkeypatch.setenv("WATTS_PER_CORE", "40")
    settings = Settings(_env_file=None)
    assert settings.watts_per_core == 40
    assert settings.database_path == tmp_path / "x.sqlite3"
    assert settings.hashing_workers == 3 and settings.dev_guild_id == 42


def test_database_url_selects_postgres_and_is_never_shown(tmp_path):
    url = "postgresql://bot:hunter2-secret@127.0.0.1:5432/playground"
    settings = Settings(database_url=url, database_path=tmp_path / "unused.sqlite3", _env_file=None)
    assert settings.database_target() == url
    assert settings.database_name() == "PostgreSQL database playground on 127.0.0.1"
    for text in (repr(settings), str(settings), str(settings.model_dump()), settings.database_name()):
        assert "hunter2-secret" not in text
    default = Settings(database_path=tmp_path / "db.sqlite3", database_url="", _env_file=None)
    assert default.database_target() == tmp_path / "db.sqlite3"  # empty: SQLite, the default


def test_a_database_url_that_is_not_postgres_is_refused_without_its_value():
    with pytest.raises(SettingsError) as caught:
        Settings(database_url="mysql://root:topsecret@db/x", _env_file=None)
    assert "DATABASE_URL must start with postgresql://" in str(caught.value)
    assert "topsecret" not in str(caught.value)


def test_env_example_copied_as_is_starts_with_every_default(tmp_path, monkeypatch):
    """The documented first step: copy .env.example to .env. Its empty values mean "unset"."""
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = Settings()
    defaults = Settings(_env_file=None)
    assert settings == defaults
    assert settings.discord_token is None and settings.hashing_workers is None
    assert settings.dev_guild_id is None and settings.dashboard_port is None
    assert settings.database_target() == Path("data/playground.sqlite3")


def test_an_empty_variable_is_unset_and_a_set_one_still_counts(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("HASHING_WORKERS=\nDASHBOARD_PORT=9000\nLOG_LEVEL=\n")
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("DEV_GUILD_ID", "")
    monkeypatch.setenv("SANDBOX_PORT", "")
    settings = Settings()
    assert settings.hashing_workers is None and settings.dev_guild_id is None
    assert settings.sandbox_port == 8765 and settings.log_level == "INFO"
    assert settings.dashboard_port == 9000
    with pytest.raises(SettingsError, match="HASHING_WORKERS"):
        Settings(hashing_workers="0", _env_file=None)
