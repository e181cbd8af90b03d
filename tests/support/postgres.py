"""A throwaway PostgreSQL server for the test run: initdb in a temporary folder, on a local port.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user that
Debian's package creates.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.support.processes import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found[-1]


class PostgresServer:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_user, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> "PostgresServer":
        if self.as_user:
            shutil.chown(self.root, "postgres")
        data = self.root / "data"
        self._run(_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run(
            _bin("pg_ctl"), "-D", str(data), "-l", str(self.root / "log"), "-w", "-t", "60", "start",
            "-o", f"-p {self.port} -k {self.root} -h 127.0.0.1 -c fsync=off -c full_page_writes=off",
        )
        return self

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    MIGRATED = "hotline_migrated"  # a template database at head, made once per server

    def _admin(self):
        import psycopg

        return psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True)

    def fill_from_migrated(self, url: str) -> None:
        """Make the new, still empty database at url a copy of one migrated to head (PostgreSQL copies a
        template far faster than Alembic replays every migration). Leaves it alone if anyone is
        connected to it, or it is not one of new_database's: upgrade then does the work."""
        from storage.migrate import upgrade

        name = url.rsplit("/", 1)[1]
        if not name.startswith("hotline_") or name == self.MIGRATED:
            return
        with self._admin() as connection:
            if not getattr(self, "_migrated", False):
                connection.execute(f'CREATE DATABASE "{self.MIGRATED}"')
                upgrade(self.url(self.MIGRATED))  # its engine is disposed: nobody stays connected
                self._migrated = True
            busy = connection.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()[0]
            if busy:
                return
            connection.execute(f'DROP DATABASE "{name}"')
            connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.MIGRATED}"')

    def new_database(self) -> str:
        import psycopg

        name = "hotline_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
