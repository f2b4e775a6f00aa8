"""A throwaway PostgreSQL server in a temporary folder, for the search tests and the storage
benchmark: the scale-out claims are checked against a real server, not a mock.

It runs Debian's packaged binaries (`apt-get install postgresql`; `.ci/run` installs them where
they are missing) with `initdb` and `pg_ctl`, which refuse to run as root: under root the server
runs as the `postgres` user. It listens on a free port of 127.0.0.1 (and a socket in its folder)
and trusts local connections, so its URLs need no password.
"""

import getpass
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl: on the PATH, else Debian's newest /usr/lib/postgresql/<n>/bin."""
    if found := shutil.which("pg_ctl"):
        return Path(found).resolve().parent  # the folder of the real binaries, not of a link to one
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(folders[-1]).parent if folders else None


class PostgresServer:
    """`start()`, `database(name)` for a fresh database's URL, `stop()`; stop and start again to
    take the server away for a while, with its data kept."""

    def __init__(self, fsync: bool = True) -> None:
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL's initdb and pg_ctl are not installed: apt-get install -y postgresql (.ci/run does)")
        self.folder = Path(tempfile.mkdtemp(prefix="autoencoder-pg-"))
        self.user = "postgres" if os.geteuid() == 0 else getpass.getuser()
        if os.geteuid() == 0:
            shutil.chown(self.folder, self.user)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._run("initdb", "--auth=trust", "--username=postgres", "--encoding=UTF8", "-D", str(self.folder / "data"))
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c max_connections=200 -c fsync={'on' if fsync else 'off'}"
        self._control = ["-D", str(self.folder / "data"), "-o", options, "-l", str(self.folder / "server.log"), "-w"]

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed: {result.stderr[-2000:]}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self._run("pg_ctl", "start", *self._control)

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-m", "fast", "-D", str(self.folder / "data"), "-w")

    def database(self, name: str) -> str:
        """A new, empty database's URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def cpu_seconds(self) -> float:
        """The CPU time the server's processes have used so far: the postmaster, its live children
        (a backend per connection, the writers) and the children it has reaped (closed connections)."""
        tick = os.sysconf("SC_CLK_TCK")
        postmaster = int((self.folder / "data" / "postmaster.pid").read_text().split()[0])
        fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()  # from the state on: utime is the 12th
        total = sum(int(f) for f in fields[11:15])  # utime, stime, and those of its reaped children
        for child in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
            try:
                total += sum(int(f) for f in Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[11:13])
            except FileNotFoundError:  # ended meanwhile: its time is with the postmaster's reaped children now, or soon
                continue
        return total / tick

    def remove(self) -> None:
        """Stop the server if it runs and delete its folder."""
        if (self.folder / "data" / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
