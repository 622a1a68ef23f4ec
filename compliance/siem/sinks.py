"""Where SIEM events go. A sink takes a batch of events and either writes all of them or raises
`SinkError`; the shipper advances its checkpoint only after a batch was written.

- `FileSink`: JSON lines appended to a file, flushed and fsynced per batch.
- `SyslogSink`: RFC 5424 messages over TCP (optionally TLS), framed by octet counting (RFC 6587
  3.4.1: "<length> <message>"), facility 13 (log audit), severity 6 (informational); the MSG is the
  event's JSON. The connection is opened lazily and kept; a peer that has closed it is noticed
  before the next batch (and the connection opened again), a failed write closes it and raises.
"""

from __future__ import annotations

import json
import os
import select
import socket
import ssl
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings

FACILITY_LOG_AUDIT = 13
SEVERITY_INFO = 6
APP_NAME = "healthcrm"


class SinkError(Exception):
    """The batch was not (entirely) written. `permanent`: retrying cannot help (a bad setting)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sink(Protocol):
    name: str

    def write(self, events: list[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


def json_line(event: dict[str, Any]) -> str:
    """One event, one line: compact, keys sorted, no raw newlines (json escapes them)."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)


class FileSink:
    def __init__(self, path: str | os.PathLike[str], name: str = "file") -> None:
        self.path = Path(path)
        self.name = name

    def write(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write("".join(json_line(event) + "\n" for event in events))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise SinkError(f"Could not append to the SIEM file ({error.strerror or 'error'}).") from None

    def close(self) -> None:
        return None


def syslog_message(event: dict[str, Any], hostname: str) -> bytes:
    """An RFC 5424 message: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG."""
    pri = FACILITY_LOG_AUDIT * 8 + SEVERITY_INFO
    msgid = str(event.get("source") or "-")[:32]
    timestamp = str(event.get("time") or "-")
    header = f"<{pri}>1 {timestamp} {hostname[:255] or '-'} {APP_NAME} - {msgid} -"
    return f"{header} {json_line(event)}".encode()


def octet_frame(message: bytes) -> bytes:
    """RFC 6587 octet-counting framing."""
    return str(len(message)).encode() + b" " + message


class SyslogSink:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool = False,
        ca_file: str = "",
        timeout: float = 10.0,
        name: str = "syslog",
        hostname: str | None = None,
    ) -> None:
        self.host, self.port, self.tls, self.ca_file, self.timeout = host, port, tls, ca_file, timeout
        self.name = name
        self.hostname = hostname or socket.gethostname() or "-"
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        try:
            sock: socket.socket = socket.create_connection((self.host, self.port), timeout=self.timeout)
            if self.tls:
                context = ssl.create_default_context(cafile=self.ca_file or None)
                sock = context.wrap_socket(sock, server_hostname=self.host)
        except ssl.SSLCertVerificationError:
            raise SinkError("The SIEM collector's certificate was refused.", permanent=True) from None
        except OSError as error:
            raise SinkError(f"Could not connect to the SIEM collector ({type(error).__name__}).") from None
        return sock

    def _peer_closed(self, sock: socket.socket) -> bool:
        """Whether the collector has closed (or reset) the connection since the last batch."""
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            if isinstance(sock, ssl.SSLSocket):
                # Readable may be a TLS record that is no data (a TLS 1.3 session ticket): read
                # without waiting; a collector never sends data, so a byte read is no loss.
                sock.setblocking(False)
                try:
                    return sock.recv(1) == b""
                except ssl.SSLWantReadError:
                    return False
                finally:
                    sock.settimeout(self.timeout)
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (OSError, ValueError):
            return True

    def write(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        if self._sock is not None and self._peer_closed(self._sock):
            self.close()
        if self._sock is None:
            self._sock = self._connect()
        payload = b"".join(octet_frame(syslog_message(event, self.hostname)) for event in events)
        try:
            self._sock.sendall(payload)
        except OSError as error:
            self.close()
            raise SinkError(f"Writing to the SIEM collector failed ({type(error).__name__}).") from None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None


def sink_from_settings() -> Sink:
    if settings.SIEM_SINK == "syslog":
        return SyslogSink(
            settings.SIEM_SYSLOG_HOST,
            settings.SIEM_SYSLOG_PORT,
            tls=settings.SIEM_SYSLOG_TLS,
            ca_file=settings.SIEM_SYSLOG_CA_FILE,
            timeout=settings.SIEM_TIMEOUT,
        )
    return FileSink(settings.SIEM_FILE_PATH)
