"""HL7 v2 over MLLP: messages/s and ACK latency through the real listener (issue #16's numbers).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/healthcrm REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/bench_hl7.py [--messages 20000] [--connections 1 8] [--threads 8]

It works in its own database (DATABASE_URL's name + "_bench"), created and migrated on the first
run and reused after. It starts `manage.py hl7_listener` as its own process on a free loopback
port (as docker-compose and `make run` do), registers a sender, then for each connection count
sends `--messages` mixed messages: per synthetic patient an ADT^A04 (register), an SIU^S12 (book,
a new practitioner slot each), an ADT^A08 (update) and an SIU^S14 (modify), so a quarter each,
every one applied with encryption, blind indexes, audit rows and its message log row. A patient's
four messages go over one connection, in order; patients are spread over the connections.

Prints, per run: messages/s (all messages over wall time), ACK latency p50/p95 (frame written to
ACK read, per message, ms) and the ACK codes seen (all AA expected). All data is synthetic.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FACILITY = "BENCHCLINIC"
APPLICATION = "BENCHPM"
SECRET = "bench-shared-secret-0123456789"
VT, FS_CR = b"\x0b", b"\x1c\r"


def _bench_url(url: str) -> str:
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "healthcrm"
    return urlunsplit(parts._replace(path="/" + (name if name.endswith("_bench") else f"{name}_bench")))


def _manage(*args: str, owner: bool = False) -> None:
    env = dict(os.environ, DATABASE_LOGIN="owner" if owner else "app")
    subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _msh(kind: str, control: str) -> str:
    return f"MSH|^~\\&|{APPLICATION}|{FACILITY}|HEALTHCRM|CRM|20261201080000|{SECRET}|{kind}|{control}|P|2.5.1"


def _pid(mrn: str, n: int, given: str) -> str:
    return (
        f"PID|1||{mrn}^^^BENCHHOS^MR~B{mrn}^^^OTHERPM^PI||BENCHPERSON{n % 997}^{given}^Q||"
        f"{1940 + n % 60}0{1 + n % 9}1{n % 9}|{'FM'[n % 2]}|||{n} ELM ST^^SPRINGFIELD^IL^62704^USA||"
        f"^PRN^CP^^1^217^555{n % 10000:04d}||ENG"
    )


def _siu(
    trigger: str, control: str, mrn: str, n: int, appointment: str, start: datetime, practitioner: int, given: str
) -> str:
    stamp = start.strftime("%Y%m%d%H%M")
    return "\r".join(
        [
            _msh(f"SIU^{trigger}^SIU_S12", control),
            f"SCH|{appointment}|{appointment}|||{appointment}|OFFICE|^Follow-up visit|FOLLOWUP|30|min|^^30^{stamp}"
            "||||||||||||||Booked",
            f"TQ1|1||||||{stamp}+0000||R",
            _pid(mrn, n, given),
            "RGS|1|A",
            f"AIP|1|A|{1000000000 + practitioner}^DOCTOR{practitioner}^DANA^^^DR^^^NPI|D^Doctor",
            f"AIL|1|A|ROOM{practitioner % 5}^^^{FACILITY}^^^^^Bench room {practitioner % 5}",
        ]
    )


def conversations(run: str, patients: int, base: datetime, practitioners: int = 50) -> list[list[str]]:
    """Per patient, its four messages in order (A04, S12, A08, S14); visits from `base` on."""
    out = []
    for n in range(patients):
        mrn = f"{run}-{n:06d}"
        appointment = f"{run}A{n}"
        practitioner = n % practitioners
        start = base + timedelta(minutes=30 * (n // practitioners))
        out.append(
            [
                "\r".join([_msh("ADT^A04^ADT_A01", f"{run}-{n}-1"), "EVN|A04", _pid(mrn, n, "JAMIE")]),
                _siu("S12", f"{run}-{n}-2", mrn, n, appointment, start, practitioner, "JAMIE"),
                "\r".join([_msh("ADT^A08^ADT_A01", f"{run}-{n}-3"), "EVN|A08", _pid(mrn, n, "JAMIE-LEE")]),
                _siu("S14", f"{run}-{n}-4", mrn, n, appointment, start, practitioner, "JAMIE-LEE"),
            ]
        )
    return out


async def _connection(port: int, messages: list[str], latencies: list[float], codes: Counter) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    buffer = b""
    for message in messages:
        started = time.perf_counter()
        writer.write(VT + message.encode() + FS_CR)
        await writer.drain()
        while FS_CR not in buffer:
            chunk = await reader.read(65536)
            if not chunk:
                raise RuntimeError("the listener closed the connection")
            buffer += chunk
        ack, _, buffer = buffer.partition(FS_CR)
        latencies.append(time.perf_counter() - started)
        msa = next((line for line in ack.decode().split("\r") if line.startswith("MSA|")), "MSA|?")
        codes[msa.split("|")[1]] += 1
    writer.close()


async def _run(port: int, streams: list[list[str]]) -> tuple[float, list[float], Counter]:
    latencies: list[float] = []
    codes: Counter = Counter()
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, stream, latencies, codes) for stream in streams))
    return time.perf_counter() - started, latencies, codes


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return statistics.median(ordered) * 1000, p95 * 1000


def _after(organization: object) -> datetime:
    """A start after every visit booked so far: runs never double-book the bench's practitioners."""
    from django.db.models import Max

    from healthcrm.tenancy import organization_context
    from patients.models import Appointment

    with organization_context(organization):  # type: ignore[arg-type]
        last = Appointment.objects.aggregate(last=Max("ends_at"))["last"]
    start = datetime(2027, 1, 4, 14, 0, tzinfo=UTC)
    return max(start, last + timedelta(days=1)) if last else start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000, help="per run (a multiple of 4)")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=8, help="the listener's database threads")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = _bench_url(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:54329/healthcrm")
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthcrm.settings")
    _manage("db_bootstrap")
    _manage("migrate", "--noinput", owner=True)

    import django

    django.setup()
    from healthcrm.models import Organization
    from healthcrm.tenancy import organization_context
    from integrations.hl7v2.models import Hl7Sender
    from integrations.hl7v2.services import hl7_sender_register

    organization, _ = Organization.objects.get_or_create(
        slug="bench-hl7", defaults={"name": "Bench HL7 Clinic", "timezone": "America/Chicago"}
    )
    with organization_context(organization):
        if not Hl7Sender.objects.filter(sending_facility=FACILITY).exists():
            hl7_sender_register(
                name="Bench PM", sending_facility=FACILITY, sending_application=APPLICATION, secret=SECRET
            )

    port = _free_port()
    env = dict(os.environ, HL7_LISTENER_THREADS=str(args.threads), LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    listener = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "manage.py", "hl7_listener", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
    )
    try:
        assert listener.stdout is not None
        if not select.select([listener.stdout], [], [], 60)[0]:
            raise SystemExit("the listener did not start")
        print(listener.stdout.readline().decode().strip())
        print(f"machine: {os.cpu_count()} cores; listener threads: {args.threads}; messages per run: {args.messages}")
        warm = conversations(f"w{int(time.time()) % 10**6:x}", 25, _after(organization))
        asyncio.run(_run(port, [sum(warm, [])]))
        for count in args.connections:
            run = f"r{count}x{int(time.time()) % 10**6:x}"
            patients = conversations(run, args.messages // 4, _after(organization))
            streams = [sum(patients[i::count], []) for i in range(count)]
            seconds, latencies, codes = asyncio.run(_run(port, streams))
            p50, p95 = _percentiles(latencies)
            total = sum(codes.values())
            print(
                f"{count} connection{'s' if count > 1 else ''}: {total} messages in {seconds:.1f} s = "
                f"{total / seconds:.0f} messages/s; ACK latency p50 {p50:.1f} ms, p95 {p95:.1f} ms; "
                f"ACKs {dict(codes)}"
            )
    finally:
        listener.send_signal(signal.SIGTERM)
        try:
            listener.wait(timeout=30)
        except subprocess.TimeoutExpired:
            listener.kill()


if __name__ == "__main__":
    main()
