"""A real PostgreSQL server for the test session: started once in a temporary folder, stopped at the end.

The server binaries (``initdb``, ``pg_ctl``, ``postgres``) come from Debian's ``postgresql`` package,
which ``scripts/setup.sh`` installs when they are missing. They refuse to run as root, so as root they
run as the ``postgres`` user (created if missing) through ``runuser``. The server listens on 127.0.0.1
only, on a free port, with a Unix socket in its own folder; fsync is off: this data is thrown away.

Every test that asks for a database gets a new, empty one (``create_database``), so tests never see
each other's rows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

SERVER_USER = "postgres"
# The newest first; the issue names 15, any recent one speaks the same SQL.
BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")


class PostgresUnavailableError(RuntimeError):
    """No server binaries on this machine (and setup could not install them)."""


def find_bin_dir() -> Path | None:
    for candidate in BIN_DIRS:
        if (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ensure_server_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
            check=True, capture_output=True,
        )
        return pwd.getpwnam(SERVER_USER)


@dataclass
class PostgresServer:
    """One running server; ``stop`` ends it and removes its folder."""

    bin_dir: Path
    folder: Path
    port: int
    as_root: bool
    _names: count[int] = field(default_factory=lambda: count(1))

    @property
    def admin_url(self) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True)

    @classmethod
    def start(cls, *, durable: bool = False) -> PostgresServer:
        """``durable``: keep fsync on (benchmarks compare commits with SQLite's synchronous=FULL)."""
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise PostgresUnavailableError(
                f"no PostgreSQL server binaries in {', '.join(BIN_DIRS)}: run scripts/setup.sh as root "
                "(it installs Debian's postgresql package)"
            )
        as_root = os.geteuid() == 0
        folder = Path(tempfile.mkdtemp(prefix="playground-pg-"))
        if as_root:
            user = _ensure_server_user()
            os.chown(folder, user.pw_uid, user.pw_gid)
        os.chmod(folder, 0o700)
        server = cls(bin_dir, folder, _free_port(), as_root)
        try:
            server._run("initdb", "-D", str(folder / "data"), "-U", SERVER_USER, "-A", "trust", "--no-sync",
                        "-E", "UTF8", "--locale=C")
            # Test data is thrown away: no need to survive a power cut, so no fsync.
            fast = () if durable else ("-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")
            options = " ".join((
                "-c listen_addresses=127.0.0.1", f"-c port={server.port}",
                f"-c unix_socket_directories={folder}", *fast,
                "-c shared_buffers=32MB", "-c max_connections=200",
            ))
            server._run("pg_ctl", "-D", str(folder / "data"), "-l", str(folder / "server.log"),
                        "-o", options, "-w", "start")
        except subprocess.CalledProcessError as exc:
            log_text = (folder / "server.log").read_text() if (folder / "server.log").exists() else ""
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}\n{log_text}") from exc
        log.info("PostgreSQL %s listening on 127.0.0.1:%d", bin_dir, server.port)
        return server

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def create_database(self) -> str:
        """A new, empty database's URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        asyncio.run(self._admin(f'CREATE DATABASE "{name}"'))
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _admin(self, statement: str) -> None:
        connection = await asyncpg.connect(self.admin_url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()
