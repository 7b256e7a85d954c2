"""`python -m bot` in the sandbox: what reaches the terminal from the log (issue 9, item 16)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from bot.log_output import OneLineFormatter, _not_voice_notice


def record(message: str, *, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("bot.app", logging.ERROR, __file__, 1, message, None, exc_info)


def test_a_warning_on_the_terminal_is_one_line_and_points_at_the_log_for_the_traceback() -> None:
    formatter = OneLineFormatter(Path("data/playground.log"))
    assert formatter.format(record("could not\n  reach the webhook")) == "ERROR bot.app: could not reach the webhook"
    line = formatter.format(record("command failed", exc=True))
    assert line == "ERROR bot.app: command failed (details in data/playground.log)"
    assert "\n" not in line and "Traceback" not in line


def test_discord_pys_voice_notice_stays_in_the_file() -> None:
    assert not _not_voice_notice(record("PyNaCl is not installed, voice will NOT be supported"))
    assert _not_voice_notice(record("no MASTER_KEY set"))
