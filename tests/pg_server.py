"""A throwaway PostgreSQL server for the distributed search tests.

initdb into a fresh temporary folder, listening on 127.0.0.1 and a free port
only, trust authentication, fsync off; `stop()` shuts it down and deletes the
folder. initdb refuses to run as root, so as root the server runs as the
`postgres` user of Debian's package (or `nobody`). The binaries are looked for
on PATH and in Debian's /usr/lib/postgresql/<version>/bin; `make test` installs
the package where they are missing.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def server_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`url` is postgresql://postgres@127.0.0.1:PORT/postgres once `start()` returned."""

    def __init__(self):
        self.bin = server_bin()
        self.folder: Path | None = None
        self.url: str | None = None

    def _run(self, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
        kwargs = {}
        if os.geteuid() == 0:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        return subprocess.run([str(self.bin / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout,
                              cwd=self.folder, **kwargs)

    def start(self) -> str:
        if self.bin is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.folder = Path(tempfile.mkdtemp(prefix="pg-search-test-"))
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                self.user = pwd.getpwnam("nobody")
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        data, port = self.folder / "data", _free_port()
        done = self._run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
                         "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()[-800:]}")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {self.folder} -c fsync=off -c max_connections=50"
        done = self._run("pg_ctl", "-D", str(data), "-l", str(self.folder / "server.log"), "-o", options, "-w",
                         "-t", "60", "start")
        if done.returncode != 0:
            log = (self.folder / "server.log").read_text() if (self.folder / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()[-400:]} {log[-800:]}")
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        return self.url

    def stop(self) -> None:
        if self.folder is None:
            return
        if (self.folder / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None
