"""`manage.py hl7_listener` as `make run` and docker-compose start it: it listens, refuses what is
not MLLP without dying, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_command_listens_survives_noise_and_stops_on_sigterm() -> None:
    port = _free_port()
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "manage.py", "hl7_listener", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the listener did not start within 60 s"
        assert f"MLLP on 127.0.0.1:{port}" in proc.stdout.readline().decode()
        for _ in range(2):  # noise twice: the first did not take it down
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert conn.recv(1024) == b""  # closed: not MLLP
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
