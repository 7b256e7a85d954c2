"""Where the bot's log goes: stderr, or in the sandbox a private file with only warnings on the terminal.

In the sandbox the terminal is where a person plays, so INFO lines between the prompts and the
bot's answers are noise; they go to a file next to the database instead.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

from bot.private_files import PRIVATE_FILE_MODE, make_private_files, make_private_folder

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# In the sandbox the log goes to this file next to the database, so the terminal shows only
# what the bot says; it is rotated at this size, keeping this many old files.
LOG_FILE_NAME = "playground.log"
LOG_FILE_BYTES = 5 * 1024 * 1024
LOG_FILE_BACKUPS = 2


class OneLineFormatter(logging.Formatter):
    """A record as one terminal line: no traceback (that is in the log file), no line breaks."""

    def __init__(self, log_file: Path) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.log_file = log_file

    def format(self, record: logging.LogRecord) -> str:
        text = " ".join(record.getMessage().split())
        line = f"{record.levelname} {record.name}: {text}"
        if record.exc_info or record.stack_info:
            line += f" (details in {self.log_file})"
        return line


def _not_voice_notice(record: logging.LogRecord) -> bool:
    # discord.py warns at every start that voice is unsupported; the bot has no voice.
    return "voice will NOT be supported" not in record.getMessage()


def configure_logging(level: str, log_file: Path | None = None, *, process: str | None = None) -> None:
    """Logs on stderr; with ``log_file`` (the sandbox terminal) everything goes to that file and
    only warnings and errors, one line each, to the terminal, so log lines do not land between
    the prompts and the bot's answers.  ``process``: a tag after the time on every line (a sharded
    bot's processes share one stderr: ``p1`` tells whose line it is)."""
    root = logging.getLogger()
    if log_file is not None:
        try:
            make_private_folder(log_file.parent)
            # Created private: a log can name servers, members and paths.
            os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE))
            make_private_files([log_file])
            to_file: logging.Handler | None = logging.handlers.RotatingFileHandler(
                log_file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
            )
        except OSError:
            to_file = None  # the preflight says what is wrong with the data folder, in one line
        if to_file is not None:
            to_file.setFormatter(logging.Formatter(LOG_FORMAT))
            to_terminal = logging.StreamHandler(sys.stderr)
            to_terminal.setLevel(logging.WARNING)
            to_terminal.setFormatter(OneLineFormatter(log_file))
            to_terminal.addFilter(_not_voice_notice)
            root.setLevel(level)
            root.addHandler(to_file)
            root.addHandler(to_terminal)
    if not root.handlers:
        line_format = LOG_FORMAT if process is None else LOG_FORMAT.replace("%(asctime)s ", f"%(asctime)s {process} ")
        logging.basicConfig(level=level, format=line_format, stream=sys.stderr)
    # discord.py is chatty at INFO about every gateway event.
    logging.getLogger("discord").setLevel(max(logging.WARNING, logging.getLevelName(level)))
