"""A throwaway PostgreSQL server from the Debian packages, in a temporary directory.

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` system user
(created by the Debian package). It listens on 127.0.0.1 on a free port with trust auth and a
private socket directory; :meth:`PostgresServer.stop` removes everything.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ember.storage.backup import postgres_binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ember-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
            self.root.chmod(0o700)
        self._counter = 0

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as_user, *argv], check=True, capture_output=True, text=True)

    def start(self) -> PostgresServer:
        if not self.data.exists():
            self._run(
                postgres_binary("initdb"),
                "-D",
                str(self.data),
                "-U",
                "ember",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            )
        self._run(
            postgres_binary("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off",
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.data.exists():
            subprocess.run(
                [
                    *self._as_user,
                    postgres_binary("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    mode,
                    "-w",
                    "stop",
                ],
                check=False,
                capture_output=True,
            )

    def restart_later(self, delay_s: float) -> subprocess.Popen[bytes]:
        """Start the (stopped) server again after ``delay_s`` seconds, in the background."""
        command = " ".join(
            [
                *self._as_user,
                postgres_binary("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "log"),
                "-w",
                "-o",
                f"'-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off'",
                "start",
            ]
        )
        return subprocess.Popen(
            ["bash", "-c", f"sleep {delay_s}; {command}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://ember@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh empty database; returns its SQLAlchemy URL."""
        import psycopg

        self._counter += 1
        name = f"ember_test_{self._counter}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=ember dbname=postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
