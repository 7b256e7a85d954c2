"""Only the bot's own user may read its data: the data folder 0700, every file in it 0600.

The database holds sealed wallet keys and the key file holds the key that opens
them; neither is anyone else's business, not even to read.  New folders and files
are created private; existing ones that are open to others are tightened at
startup, with a warning, so an install from before this rule is fixed on its own.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_FOLDER_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_OTHERS = 0o077


def make_private_folder(folder: Path) -> None:
    """Create ``folder`` (0700) if it is missing; take group and others' access away if it has any.

    A folder shared by design (sticky, like /tmp), not ours, the home folder, the
    filesystem root or the current directory is left alone, with a warning: the files
    in it are still made private.
    """
    if not folder.exists():
        folder.mkdir(mode=PRIVATE_FOLDER_MODE, parents=True, exist_ok=True)
        return
    info = folder.stat()
    mode = stat.S_IMODE(info.st_mode)
    if not mode & _OTHERS:
        return
    if _shared(folder, info):
        log.warning(
            "data folder %s is open to other users (mode %04o) and is not the bot's own: its files are "
            "made private (0600) but the folder is left as it is. Point DATABASE_PATH into a folder of its own.",
            folder, mode,
        )
        return
    os.chmod(folder, PRIVATE_FOLDER_MODE)
    log.warning("data folder %s was open to other users (mode %04o): now %04o", folder, mode, PRIVATE_FOLDER_MODE)


def make_private_files(paths: Iterable[Path]) -> None:
    """Make each existing file of ``paths`` 0600 if group or others had any access to it."""
    for path in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & _OTHERS:
            os.chmod(path, PRIVATE_FILE_MODE)
            log.warning("%s was open to other users (mode %04o): now %04o", path, mode, PRIVATE_FILE_MODE)


def database_files(database: Path) -> list[Path]:
    """The database and the files SQLite and the bot keep next to it."""
    return [database.with_name(database.name + suffix) for suffix in ("", "-wal", "-shm", "-journal", ".lock")]


def _shared(folder: Path, info: os.stat_result) -> bool:
    if info.st_mode & stat.S_ISVTX or info.st_uid != os.getuid():
        return True
    resolved = folder.resolve()
    return resolved in {Path(resolved.anchor), Path.home().resolve(), Path.cwd().resolve()}
