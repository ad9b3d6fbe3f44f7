"""A real PostgreSQL server for the tests: Debian's binaries, a cluster in a temporary
folder, reached on a Unix socket only (no TCP port to collide with). PostgreSQL refuses
to run as root, so under root the cluster belongs to the `postgres` user."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path


def _binaries() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("PostgreSQL's server binaries are missing: install the Debian "
                           "package `postgresql` (scripts/setup.sh does)")
    return found[-1].parent


class PostgresServer:
    def __init__(self) -> None:
        self.bin = _binaries()
        # Not under pytest's temporary folders: those are private to the test's user.
        self.folder = Path(tempfile.mkdtemp(prefix="subtitled-pg-"))
        self.data = self.folder / "data"
        self.socket_dir = self.folder
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust",
                  "--encoding=UTF8", "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        # fsync off: the tests crash processes, not the machine.
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l",
                  str(self.folder / "server.log"), "-o",
                  f"-c listen_addresses='' -k {self.socket_dir} -c fsync=off "
                  "-c max_connections=200", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop")

    def restart(self) -> None:
        """Stopped at once (every connection cut, as a crash of the server would) and
        started again."""
        self.stop("immediate")
        self.start()

    def url(self, database: str) -> str:
        """As `state.database` takes it: a URL, the socket's folder as its host."""
        return f"postgresql://{self.user}@/{database}?host={self.socket_dir}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
