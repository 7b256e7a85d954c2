"""Bot settings: documented in .env.example, secrets never shown, master key handling."""

import logging
import re
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.mark.parametrize("bad", ["zz" * 32, "ab" * 31])
def test_invalid_master_key(bad):
    with pytest.raises(ValidationError):
        Settings(master_key=bad, _env_file=None)


def test_invalid_values_are_refused():
    with pytest.raises(ValidationError):
        Settings(hashing_workers=0, _env_file=None)
    with pytest.raises(ValidationError):
        Settings(log_level="LOUD", _env_file=None)
    with pytest.raises(ValidationError):
        Settings(watts_per_core=0, _env_file=None)


def test_environment_variables_are_read(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "x.sqlite3"))
    monkeypatch.setenv("HASHING_WORKERS", "3")
    monkeypatch.setenv("DEV_GUILD_ID", "42")
    monkeypatch.setenv("WATTS_PER_CORE", "40")
    settings = Settings(_env_file=None)
    assert settings.watts_per_core == 40
    assert settings.database_path == tmp_path / "x.sqlite3"
    assert settings.hashing_workers == 3 and settings.dev_guild_id == 42
