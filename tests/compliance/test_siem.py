"""Issue #13 item 8: audit and access events leave for the SIEM as JSON lines (a file, or syslog
RFC 5424 over TCP with octet-counting framing), one per event, ids and fingerprints only, resuming
after a restart at the checkpoint: every event exactly once, in order."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from compliance.models import AccessAction, AccessLog, SiemCheckpoint
from compliance.siem import FileSink, SinkError, SyslogSink, siem_ship
from compliance.siem.sinks import octet_frame, syslog_message
from healthcrm.tenancy import organization_context
from patients.services import patient_create, patient_update

pytestmark = pytest.mark.django_db


class Collector:
    """A loopback syslog collector (RFC 6587 octet counting). `close_after`: it closes the
    connection it is reading once it has received that many messages in all (then accepts again)."""

    def __init__(self, close_after: int | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.messages: list[bytes] = []
        self.close_after = close_after
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            if self.tls is not None:
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except OSError:  # a client that refused our certificate
                    conn.close()
                    continue
            with conn:
                self._read(conn)

    def _read(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            while b" " in buffer:
                length, _, rest = buffer.partition(b" ")
                if len(rest) < int(length):
                    break
                with self.lock:
                    self.messages.append(rest[: int(length)])
                buffer = rest[int(length) :]
                if self.close_after is not None and len(self.messages) == self.close_after:
                    conn.close()
                    self.closed.set()
                    return
            chunk = conn.recv(65536)
            if not chunk:
                return
            buffer += chunk

    def seqs(self, count: int, timeout: float = 5.0) -> list[int]:
        """The `seq` of each message received, once `count` have arrived (or the wait is over)."""
        for _ in range(int(timeout / 0.01)):
            with self.lock:
                if len(self.messages) >= count:
                    break
            threading.Event().wait(0.01)
        with self.lock:
            return [json.loads(message.split(b" ", 7)[7])["seq"] for message in self.messages]

    def stop(self) -> None:
        self.server.close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector(close_after=10)
    yield server
    server.stop()


def _access_rows(organization: Any, count: int) -> None:
    with organization_context(organization):
        for i in range(count):
            AccessLog.objects.create(
                actor_label="nurse@north.example",
                action=AccessAction.VIEW,
                view_name="patients:detail",
                records=[f"patients.patient:{1000 + i}"],
                ip_address="10.0.0.7",
            )


def _commit_point() -> None:
    """Run the audit chain's deferred triggers now, as a commit would (the test never commits)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Interrupted(Exception):
    pass


def test_the_stream_resumes_after_a_dropped_connection_and_a_crash_without_gaps_or_repeats(
    org_a, org_b, collector
) -> None:
    _access_rows(org_a, 23)
    _access_rows(org_b, 4)  # another organization's events never enter organization A's stream
    _commit_point()
    sink = SyslogSink("127.0.0.1", collector.port, timeout=5)

    # Two batches, then the collector closes the connection after its 10th message.
    assert siem_ship(organization=org_a, sink=sink, batch_size=5, max_batches=2) == 10
    assert collector.closed.wait(5)

    # The same shipper notices the closed connection, opens another, and is killed after its batch.
    def crash(last_seq: int) -> None:
        raise Interrupted(last_seq)

    with pytest.raises(Interrupted):
        siem_ship(organization=org_a, sink=sink, batch_size=5, after_batch=crash)
    sink.close()
    # A new process starts from the checkpoint in the database.
    with organization_context(org_a):
        assert SiemCheckpoint.objects.get(sink="syslog").last_seq == 15
    restarted = SyslogSink("127.0.0.1", collector.port, timeout=5)
    assert siem_ship(organization=org_a, sink=restarted, batch_size=5) == 8
    assert siem_ship(organization=org_a, sink=restarted, batch_size=5) == 0  # nothing new: nothing sent
    restarted.close()

    assert collector.seqs(23) == list(range(1, 24))
    first = collector.messages[0]
    assert first.startswith(b"<110>1 ")  # facility log audit (13), informational (6), RFC 5424 version 1
    event = json.loads(first.split(b" ", 7)[7])
    assert event["event_id"] == "north:1" and event["organization_id"] == org_a.pk
    assert event["records"] == ["patients.patient:1000"] and event["ip"] == "10.0.0.7"


def test_a_collector_that_is_down_moves_nothing_and_the_next_run_sends_it_all(org_a, collector) -> None:
    _access_rows(org_a, 3)
    _commit_point()
    unused = socket.create_server(("127.0.0.1", 0))
    port = unused.getsockname()[1]
    unused.close()  # nobody listens there now
    down = SyslogSink("127.0.0.1", port, timeout=1)
    with pytest.raises(SinkError) as error:
        siem_ship(organization=org_a, sink=down, batch_size=2)
    assert not error.value.permanent
    with organization_context(org_a):
        assert not SiemCheckpoint.objects.filter(last_seq__gt=0).exists()
    up = SyslogSink("127.0.0.1", collector.port, timeout=5)
    assert siem_ship(organization=org_a, sink=up, batch_size=2) == 3
    up.close()
    assert collector.seqs(3) == [1, 2, 3]


def test_a_failing_file_keeps_the_checkpoint_and_each_collector_has_its_own(org_a, tmp_path) -> None:
    _access_rows(org_a, 4)
    _commit_point()
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    with pytest.raises(SinkError):
        siem_ship(organization=org_a, sink=FileSink(blocked / "siem.jsonl"), batch_size=10)
    path = tmp_path / "siem.jsonl"
    assert siem_ship(organization=org_a, sink=FileSink(path), batch_size=3) == 4
    assert [json.loads(line)["seq"] for line in path.read_text().splitlines()] == [1, 2, 3, 4]
    # Another collector keeps its own checkpoint and gets the whole stream.
    other = FileSink(tmp_path / "archive.jsonl", name="archive")
    assert siem_ship(organization=org_a, sink=other, batch_size=10) == 4


def test_no_patient_value_ever_appears_in_the_stream(org_a, client_for, admin_user, tmp_path) -> None:
    phi = {
        "given": "Quendolyn",
        "family": "Zabriskiewicz",
        "mrn": "ZQ-778812",
        "phone": "+13125550177",
        "email": "quendolyn.z@example.org",
        "dob": "1961-07-14",
        "city": "Oskaloosaville",
    }
    with organization_context(org_a):
        patient = patient_create(
            mrn=phi["mrn"],
            given_name=phi["given"],
            family_name=phi["family"],
            date_of_birth=phi["dob"],
            phone_mobile=phi["phone"],
            email=phi["email"],
            address_city=phi["city"],
        )
        patient_update(patient=patient, given_name="Quendolyna", address_city="Oskaloosaburg")
    client = client_for(admin_user)
    assert client.get(f"/patients/{patient.pk}/").status_code == 200
    client.post("/compliance/access-log/", {"patient_query": phi["family"]})  # a search: fingerprint only
    _commit_point()
    path = tmp_path / "siem.jsonl"
    shipped = siem_ship(organization=org_a, sink=FileSink(path), batch_size=100)
    text = path.read_text()
    events = [json.loads(line) for line in text.splitlines()]
    assert shipped == len(events) >= 4
    assert {e["source"] for e in events} == {"access", "write"}
    assert any(e.get("record") == f"patients.patient:{patient.pk}" and "given_name" in e["fields"] for e in events)
    assert any(f"patients.patient:{patient.pk}" in e.get("records", []) for e in events)
    assert any(e.get("search_fingerprint") for e in events)
    lowered = text.lower()
    for value in [*phi.values(), "Quendolyna", "Oskaloosaburg", "3125550177", "778812", "zabrisk", "quendol"]:
        assert value.lower() not in lowered, value


def test_syslog_framing_counts_octets_of_utf8() -> None:
    message = syslog_message({"source": "access", "time": "2026-12-01T10:00:00+00:00", "actor": "zoë"}, "host1")
    assert message.startswith(b"<110>1 2026-12-01T10:00:00+00:00 host1 healthcrm - access - {")
    framed = octet_frame(message)
    length, _, rest = framed.partition(b" ")
    assert int(length) == len(rest) == len(message) and b"\n" not in message


def _self_signed(tmp_path: Any) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as PEM files (the test's own CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "collector.test")])
    # OpenSSL checks validity against the real clock, not the test's frozen one: a wide window.
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "collector.pem", tmp_path / "collector.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file)


def test_syslog_over_tls_verifies_the_collector_and_resumes_across_connections(org_a, tmp_path) -> None:
    cert, key = _self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    collector = Collector(close_after=2, tls=server_context)
    try:
        _access_rows(org_a, 5)
        _commit_point()
        # A collector whose certificate the configured CA did not sign is refused for good.
        (tmp_path / "other").mkdir()
        other_ca, _ = _self_signed(tmp_path / "other")
        impostor = SyslogSink("127.0.0.1", collector.port, tls=True, ca_file=other_ca, timeout=5)
        with pytest.raises(SinkError) as refused:
            siem_ship(organization=org_a, sink=impostor, batch_size=2)
        assert refused.value.permanent
        sink = SyslogSink("127.0.0.1", collector.port, tls=True, ca_file=cert, timeout=5)
        assert siem_ship(organization=org_a, sink=sink, batch_size=2, max_batches=1) == 2
        assert collector.closed.wait(5)
        assert siem_ship(organization=org_a, sink=sink, batch_size=2) == 3  # a new TLS connection
        sink.close()
        assert collector.seqs(5) == [1, 2, 3, 4, 5]
    finally:
        collector.stop()


def test_the_command_ships_to_the_configured_file_and_the_beat_task_waits_for_the_flag(
    org_a, org_b, settings, tmp_path
) -> None:
    from io import StringIO

    from django.core.management import call_command

    from compliance.tasks import siem_ship_all_task, siem_ship_task

    _access_rows(org_a, 3)
    _access_rows(org_b, 2)
    _commit_point()
    settings.SIEM_SINK, settings.SIEM_FILE_PATH = "file", str(tmp_path / "out.jsonl")
    settings.SIEM_ENABLED = False
    assert siem_ship_all_task() == 0  # off: nothing enqueued
    output = StringIO()
    call_command("siem_ship", "--organization", "north", stdout=output)
    assert "north: 3 events shipped to file" in output.getvalue()
    assert siem_ship_task(org_b.pk) == 2  # the task takes the organization's id
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(e["organization"], e["seq"]) for e in lines] == [("north", 1), ("north", 2), ("north", 3)] + [
        ("lake", 1),
        ("lake", 2),
    ]
