"""SIEM export: the audit chain's events (access-log rows and change-log entries) as JSON lines,
shipped to a collector (a file, or syslog RFC 5424 over TCP/TLS) with a checkpoint in the database.

    events.py   one JSON object per audit-chain link: ids, times, fingerprints; no PHI in clear
    sinks.py    where the lines go: FileSink (JSON lines), SyslogSink (RFC 5424, RFC 6587 framing)
    shipper.py  siem_ship(): batches after the checkpoint, written, then the checkpoint advanced
"""

from compliance.siem.events import siem_event
from compliance.siem.shipper import siem_ship
from compliance.siem.sinks import FileSink, SinkError, SyslogSink, sink_from_settings

__all__ = ["FileSink", "SinkError", "SyslogSink", "siem_event", "siem_ship", "sink_from_settings"]
