"""A local PostgreSQL cluster from Debian's packages, under the state folder.

The sink and the lookups need a real database in development, tests and
the demo; nothing here may depend on a server someone set up by hand. This
runs `initdb` and `pg_ctl` from the installed packages on a free loopback
port. PostgreSQL refuses to run as root, so as root the server runs as the
`postgres` user the Debian package creates.

The cluster is tuned for throwaway data (fsync off): it is for development,
never for data anyone needs to keep.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.dev.processes import free_ports, log_tail
from pipeline.errors import PipelineError

DATABASE = "pipeline"
USER = "pipeline"
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "'128MB'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "log_min_duration_statement": "-1",
}


class PostgresNotInstalledError(PipelineError):
    pass


class PostgresStartError(PipelineError):
    pass


@dataclass
class PostgresState:
    port: int
    bin_dir: str

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"


def find_bin_dir() -> Path:
    """The directory of `pg_ctl` and `initdb` (Debian keeps them off PATH)."""
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    raise PostgresNotInstalledError(
        "PostgreSQL is not installed: run `make postgres` "
        "(it runs `apt-get install -y postgresql`), then try again"
    )


class LocalPostgres:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir
        self.data = state_dir / "data"
        self.sockets = state_dir / "run"
        self.log_path = state_dir / "postgres.log"
        self._state_path = state_dir / "state.json"

    # -- state -------------------------------------------------------------------

    def load_state(self) -> PostgresState | None:
        if not self._state_path.exists():
            return None
        return PostgresState(**json.loads(self._state_path.read_text()))

    def _save_state(self, state: PostgresState) -> None:
        self._state_path.write_text(json.dumps(asdict(state)))

    def running(self) -> bool:
        state = self.load_state()
        if state is None or not (self.data / "PG_VERSION").exists():
            return False
        done = self._server_command(Path(state.bin_dir) / "pg_ctl", "-D", str(self.data), "status")
        return done.returncode == 0

    # -- commands that must run as a non-root user --------------------------------

    def _as_server_user(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresStartError(
                "running as root, and there is no `postgres` user to run the server as; "
                "install Debian's postgresql package (`make postgres`) or run as another user"
            ) from None
        return ["runuser", "-u", "postgres", "--"]

    def _server_command(self, program: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as_server_user(), str(program), *args],
            capture_output=True,
            text=True,
            check=False,
        )

    def _hand_to_server_user(self) -> None:
        if os.geteuid() != 0:
            return
        subprocess.run(["chown", "-R", "postgres:postgres", str(self.root)], check=True)
        probe = self._server_command(Path("/usr/bin/test"), "-w", str(self.root))
        if probe.returncode != 0:
            raise PostgresStartError(
                f"the postgres user cannot reach {self.root}: a parent folder is not "
                "searchable by others (chmod o+x it), or move the state folder with "
                "PIPELINE_STATE_DIR"
            )

    # -- lifecycle ------------------------------------------------------------------

    def up(self, timeout_s: float = 60, progress: Callable[[str], None] | None = None) -> str:
        """Start the cluster (initialising it on first use); its URL. Idempotent."""
        say = progress or (lambda _message: None)
        if self.running():
            state = self.load_state()
            assert state is not None
            return state.url
        bin_dir = find_bin_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.sockets.mkdir(exist_ok=True)
        self._hand_to_server_user()
        if not (self.data / "PG_VERSION").exists():
            say(f"initialising a PostgreSQL cluster in {self.data}")
            shutil.rmtree(self.data, ignore_errors=True)
            self._run_or_fail(
                bin_dir / "initdb",
                "-D",
                str(self.data),
                "-U",
                USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            )
            settings = {**SERVER_SETTINGS, "unix_socket_directories": f"'{self.sockets}'"}
            with open(self.data / "postgresql.conf", "a") as conf:
                conf.write("\n# pipeline: local development cluster\n")
                conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        previous = self.load_state()
        port = previous.port if previous and _port_free(previous.port) else free_ports(1)[0]
        state = PostgresState(port=port, bin_dir=str(bin_dir))
        say(f"starting PostgreSQL on 127.0.0.1:{port}")
        self._run_or_fail(
            bin_dir / "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            str(int(timeout_s)),
            "-o",
            f"-p {port}",
            "start",
        )
        self._save_state(state)
        self._ensure_database(state)
        return state.url

    def _run_or_fail(self, program: Path, *args: str) -> None:
        done = self._server_command(program, *args)
        if done.returncode != 0:
            raise PostgresStartError(
                f"{program.name} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}\n"
                f"server log {self.log_path}:\n{log_tail(self.log_path)}"
            )

    def _ensure_database(self, state: PostgresState) -> None:
        psql = Path(state.bin_dir) / "psql"
        base = [str(psql), "-h", "127.0.0.1", "-p", str(state.port), "-U", USER, "-tA"]
        exists = subprocess.run(
            [
                *base,
                "-d",
                "postgres",
                "-c",
                f"SELECT 1 FROM pg_database WHERE datname='{DATABASE}'",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if exists.returncode != 0:
            raise PostgresStartError(f"cannot query the new cluster: {exists.stderr}")
        if exists.stdout.strip() != "1":
            subprocess.run(
                [*base, "-d", "postgres", "-c", f"CREATE DATABASE {DATABASE}"],
                capture_output=True,
                text=True,
                check=True,
            )

    def down(self) -> bool:
        """Stop the cluster; False when it was not running."""
        state = self.load_state()
        if state is None or not self.running():
            return False
        self._run_or_fail(
            Path(state.bin_dir) / "pg_ctl", "-D", str(self.data), "-m", "fast", "stop"
        )
        return True


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def ephemeral_postgres(
    progress: Callable[[str], None] | None = None,
) -> Iterator[str]:
    """POSTGRES_URL if set, else a throwaway cluster stopped and removed on exit."""
    existing = os.environ.get("POSTGRES_URL")
    if existing:
        yield existing
        return
    with tempfile.TemporaryDirectory(prefix="pipeline-pg-") as folder:
        Path(folder).chmod(0o755)  # the server may run as another user
        cluster = LocalPostgres(Path(folder) / "postgres")
        try:
            yield cluster.up(progress=progress)
        finally:
            cluster.down()
