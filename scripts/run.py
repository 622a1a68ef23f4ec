#!/usr/bin/env python3
"""Run the development web server, a Celery worker, Celery beat and the HL7 v2 MLLP listener
together (`make run`).

Each child inherits the environment; its output is prefixed with its name. Ctrl-C or SIGTERM stops
all of them (SIGTERM, then SIGKILL after 10 s); if any child dies on its own, the others are stopped
and this script exits non-zero. The binaries are the ones beside this interpreter (the venv's).

Then the project-local PostgreSQL and Redis that `make run` started (DEVSERVICES_STARTED, from
`scripts/devservices.py start --report`) are stopped too; those that were already running before
(DEVSERVICES_KEPT) keep running, and the last lines say so and how to stop them.

Beat and the worker log at WARNING by default (at INFO each prints a line for every 2-second
outbox scan: beat when it sends it, the worker when it receives it): BEAT_LOG_LEVEL=info and
WORKER_LOG_LEVEL=info for more; the development email backend's messages still show. PORT (default 8000) is the
web server's port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GRACE_SECONDS = 10.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if this supervisor dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def web_port() -> str:
    return os.environ.get("PORT", "8000")


def commands() -> dict[str, list[str]]:
    celery = str(BIN / "celery")
    worker_level = os.environ.get("WORKER_LOG_LEVEL", "warning")
    beat_level = os.environ.get("BEAT_LOG_LEVEL", "warning")
    return {
        "web": [sys.executable, "manage.py", "runserver", f"127.0.0.1:{web_port()}", "--noreload"],
        "worker": [
            celery, "-A", "healthcrm", "worker", "-l", worker_level,
            "-Q", "default,outreach,integrations", "--concurrency", "2",
        ],
        "beat": [celery, "-A", "healthcrm", "beat", "-l", beat_level, "--schedule", ".data/celerybeat-schedule"],
        # HL7 v2 over MLLP for practice-management systems (HL7_LISTENER_PORT, default 2575).
        "hl7": [sys.executable, "manage.py", "hl7_listener", "--host", "127.0.0.1"],
    }  # fmt: skip


def port_problem(port: str) -> str | None:
    """Why the web server cannot listen on 127.0.0.1:port, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", int(port)))
        except ValueError:
            return f"PORT={port!r} is not a port number"
        except OSError:
            return (
                f"port {port} on 127.0.0.1 is taken by another program: "
                f"choose another, e.g. `PORT={int(port) + 1} make run`"
            )
    return None


def _names(variable: str) -> list[str]:
    return os.environ.get(variable, "").split()


def services_epilogue(say) -> int:
    """Stop the local services `make run` started; say which keep running and how to stop them."""
    status = 0
    started = _names("DEVSERVICES_STARTED")
    if started:
        say("run", f"stopping {' and '.join(started)} (started by this make run)")
        # Its own session: another Ctrl-C now must not interrupt a clean database shutdown.
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [sys.executable, str(REPO / "scripts" / "devservices.py"), "stop", *started],
            cwd=REPO,
            start_new_session=True,
        )
        if result.returncode != 0:
            say("run", f"could not stop {' and '.join(started)}: `make services-stop` tries again")
            status = 1
    kept = _names("DEVSERVICES_KEPT")
    if kept:
        verb = "were" if len(kept) > 1 else "was"
        say(
            "run",
            f"{' and '.join(kept)} {verb} already running before this make run and keep running "
            "(`make services-status`; `make services-stop` stops them)",
        )
    return status


class Supervisor:
    def __init__(self, specs: dict[str, list[str]]) -> None:
        self.specs = specs
        self.width = max(len(name) for name in specs)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.readers: list[threading.Thread] = []
        self.output_lock = threading.Lock()
        self.stop_signal: int | None = None
        self.signal_count = 0

    def say(self, name: str, text: str) -> None:
        with self.output_lock:
            sys.stdout.write(f"{name:<{self.width}} | {text}\n")
            sys.stdout.flush()

    def pump(self, name: str, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.say(name, raw.decode(errors="replace").rstrip("\r\n"))
        stream.close()

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for name, argv in self.specs.items():
            # Each child gets its own session: the terminal's Ctrl-C reaches only us, and we stop
            # the children in order; killpg then also reaches their own children (Celery's pool).
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                argv,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks
            )
            self.procs[name] = proc
            reader = threading.Thread(target=self.pump, args=(name, proc.stdout), daemon=True)
            reader.start()
            self.readers.append(reader)
            self.say("run", f"started {name} (pid {proc.pid}): {' '.join(argv)}")

    def on_signal(self, signum: int, _frame) -> None:
        self.signal_count += 1
        if self.stop_signal is None:
            self.stop_signal = signum
        if self.signal_count > 1:
            # A second Ctrl-C: no more waiting.
            self.kill_all(signal.SIGKILL)

    def kill_all(self, sig: int) -> None:
        for proc in self.procs.values():
            try:
                if sig == signal.SIGKILL:
                    os.killpg(proc.pid, sig)
                elif proc.poll() is None:
                    proc.send_signal(sig)
            except (ProcessLookupError, PermissionError):
                pass

    def stop_all(self) -> None:
        running = [name for name, proc in self.procs.items() if proc.poll() is None]
        if running:
            self.say("run", f"stopping {', '.join(running)}")
        self.kill_all(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline and any(p.poll() is None for p in self.procs.values()):
            time.sleep(0.1)
        left = [name for name, proc in self.procs.items() if proc.poll() is None]
        if left:
            self.say("run", f"{', '.join(left)} still running after {GRACE_SECONDS:.0f} s: SIGKILL")
        # Also sweeps up grandchildren that outlived their parent.
        self.kill_all(signal.SIGKILL)
        for proc in self.procs.values():
            proc.wait()
        for reader in self.readers:
            reader.join(timeout=2)

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGTERM, self.on_signal)
        try:
            self.start()
        except OSError as exc:
            self.say("run", f"cannot start: {exc}")
            self.stop_all()
            return 1
        exited: tuple[str, int] | None = None
        while self.stop_signal is None and exited is None:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    exited = (name, proc.returncode)
                    break
            else:
                time.sleep(0.2)
        if exited is not None:
            name, code = exited
            self.say("run", f"{name} exited with code {code}: stopping the others")
            self.stop_all()
            return code if code > 0 else 1
        self.say("run", f"received {signal.Signals(self.stop_signal).name}")
        self.stop_all()
        return 0


def main(specs: dict[str, list[str]] | None = None) -> int:
    """Run `specs` (default: web, worker and beat) until Ctrl-C, then stop what make run started."""
    (REPO / ".data").mkdir(exist_ok=True)  # beat's schedule file lives there
    supervisor = Supervisor(specs if specs is not None else commands())
    code = 1
    try:
        problem = port_problem(web_port()) if specs is None else None
        if problem:
            supervisor.say("run", f"cannot start web: {problem}")
        else:
            code = supervisor.run()
    finally:
        code = services_epilogue(supervisor.say) or code
    return code


if __name__ == "__main__":
    sys.exit(main())
