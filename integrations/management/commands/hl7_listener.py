"""python manage.py hl7_listener [--host HOST] [--port PORT]: the HL7 v2 MLLP listener (one process
for every organization; `make run` and docker-compose start it). SIGTERM or Ctrl-C stops it after
the messages in hand are answered."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from integrations.hl7v2.listener import MllpListener, ssl_context_from_settings


class Command(BaseCommand):
    help = "Listen for HL7 v2 messages over MLLP (TLS when HL7_TLS_CERT_FILE is set)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=settings.HL7_LISTENER_HOST)
        parser.add_argument("--port", type=int, default=settings.HL7_LISTENER_PORT)

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._serve(options["host"], options["port"]))

    async def _serve(self, host: str, port: int) -> None:
        context = ssl_context_from_settings()
        listener = MllpListener(host=host, port=port, ssl_context=context)
        server = await listener.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        scheme = "MLLP over TLS" if context else "MLLP"
        self.stdout.write(f"HL7 listener: {scheme} on {host}:{listener.port}", ending="\n")
        self.stdout.flush()
        async with server:
            await stop.wait()
        await listener.close()
        self.stdout.write("HL7 listener stopped")
