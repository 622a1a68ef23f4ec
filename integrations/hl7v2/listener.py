"""The MLLP listener: asyncio TCP (TLS optional), one for every organization.

MLLP frames a message as <VT> message <FS><CR>. Each frame read is handed to the processing core
in a thread (the database work is synchronous) and its ACK written back before the next frame is
read: a sender waits for each ACK, as MLLP expects.

What the listener does with bad input (nothing is written for any of it, the listener keeps serving):
- bytes before a frame's <VT> (not MLLP, binary noise): the connection is closed;
- a frame larger than HL7_MAX_MESSAGE_BYTES (a 5 MB segment): an AR ACK, then the connection is
  closed (the rest of the frame cannot be told from the next one);
- a frame cut short by the sender closing, or idle longer than HL7_IDLE_TIMEOUT_SECONDS: closed;
- a frame without MSH, with wrong separators or binary data inside: AR (the processing core);
- anything unforeseen while processing: AE, logged with the exception's type only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from integrations.hl7v2.parsing import APPLICATION_INTERNAL_ERROR, Hl7Error, build_ack
from integrations.hl7v2.processing import Received, hl7_message_receive

logger = logging.getLogger("integrations.hl7v2.listener")

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
_BETWEEN_FRAMES = b"\r\n \t"
READ_CHUNK = 64 * 1024


class NotMllp(Exception):  # noqa: N818 - control flow: close the connection
    pass


class FrameTooLarge(Exception):  # noqa: N818 - control flow: refuse, then close
    pass


def frame(message: str | bytes) -> bytes:
    """One MLLP frame around a message (the bench, the tests, senders in Python)."""
    data = message.encode() if isinstance(message, str) else message
    return START_BLOCK + data + END_BLOCK


def receive_safely(data: bytes, client_cert_sha256: str = "", *, own_connection: bool = True) -> Received:
    """The processing core, in a listener thread: an unforeseen error becomes an AE (named by type in
    the log, no message: it may hold values), and the thread's connection is dropped so that the next
    message starts on a fresh one (`own_connection`: the thread is the listener's, not a caller's)."""
    try:
        return hl7_message_receive(data, client_cert_sha256=client_cert_sha256)
    except Exception as exc:  # the listener must answer, whatever happened
        logger.error("hl7 message failed unexpectedly: %s", type(exc).__name__)
        if own_connection:
            close_old_connections()
            connection.close()
        error = Hl7Error("MSH", "the message could not be processed", code=APPLICATION_INTERNAL_ERROR)
        return Received(build_ack(None, "AE", now=timezone.now(), error=error), "AE", "error")


Handler = Callable[[bytes, str], Awaitable[Received]]


class MllpListener:
    """Serve MLLP on host:port. `thread_sensitive=True` runs database work in the thread that
    drives the event loop's caller (tests under async_to_sync); by default a pool of threads."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        max_bytes: int | None = None,
        idle_timeout: float | None = None,
        threads: int | None = None,
        thread_sensitive: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.max_bytes = max_bytes or settings.HL7_MAX_MESSAGE_BYTES
        self.idle_timeout = idle_timeout or settings.HL7_IDLE_TIMEOUT_SECONDS
        self.thread_sensitive = thread_sensitive
        self.executor = None if thread_sensitive else ThreadPoolExecutor(threads or settings.HL7_LISTENER_THREADS)
        self.server: asyncio.Server | None = None
        self.connections = 0

    async def handle(self, data: bytes, client_cert_sha256: str) -> Received:
        if self.thread_sensitive:
            receive = partial(receive_safely, own_connection=False)
            return await sync_to_async(receive, thread_sensitive=True)(data, client_cert_sha256)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, partial(receive_safely, data, client_cert_sha256))

    async def start(self) -> asyncio.Server:
        self.server = await asyncio.start_server(
            self._client, self.host, self.port, ssl=self.ssl_context, limit=READ_CHUNK
        )
        self.port = self.server.sockets[0].getsockname()[1]
        return self.server

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        if self.executor is not None:
            self.executor.shutdown(wait=True)

    async def _next_frame(self, reader: asyncio.StreamReader, buffer: bytearray) -> bytes | None:
        """The next frame's message, or None at the end of the stream (a cut frame is dropped)."""
        while True:
            skip = 0
            while skip < len(buffer) and buffer[skip] in _BETWEEN_FRAMES:
                skip += 1
            if skip:
                del buffer[:skip]
            if buffer:
                if buffer[0:1] != START_BLOCK:
                    raise NotMllp
                end = buffer.find(END_BLOCK, 1)
                if end != -1:
                    message = bytes(buffer[1:end])
                    del buffer[: end + len(END_BLOCK)]
                    if len(message) > self.max_bytes:
                        raise FrameTooLarge
                    return message
                if len(buffer) - 1 > self.max_bytes:
                    raise FrameTooLarge
            chunk = await asyncio.wait_for(reader.read(READ_CHUNK), self.idle_timeout)
            if not chunk:
                return None
            buffer += chunk

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        client_cert = ""
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            certificate = ssl_object.getpeercert(binary_form=True)
            client_cert = hashlib.sha256(certificate).hexdigest() if certificate else ""
        buffer = bytearray()
        try:
            while True:
                data = await self._next_frame(reader, buffer)
                if data is None:
                    break
                received = await self.handle(data, client_cert)
                writer.write(frame(received.ack))
                await writer.drain()
        except FrameTooLarge:
            logger.info("hl7 frame larger than %s bytes: refused, connection closed", self.max_bytes)
            error = Hl7Error("MSH", f"the message is larger than {self.max_bytes} bytes", refuse=True)
            writer.write(frame(build_ack(None, "AR", now=timezone.now(), error=error)))
            await self._drain(writer)
        except NotMllp:
            logger.info("hl7 connection closed: bytes outside an MLLP frame")
        except TimeoutError:
            logger.info("hl7 connection closed: idle")
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass  # the listener is stopping
        except Exception as exc:  # never let one connection take the listener down
            logger.error("hl7 connection failed: %s", type(exc).__name__)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
                await writer.wait_closed()

    @staticmethod
    async def _drain(writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError, asyncio.TimeoutError, OSError):
            await asyncio.wait_for(writer.drain(), 5)


def ssl_context_from_settings() -> ssl.SSLContext | None:
    """TLS for the listener when HL7_TLS_CERT_FILE is set; client certificates required (and
    their fingerprints passed to sender checks) when HL7_TLS_CLIENT_CA_FILE is set too."""
    if not settings.HL7_TLS_CERT_FILE:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.HL7_TLS_CERT_FILE, settings.HL7_TLS_KEY_FILE)
    if settings.HL7_TLS_CLIENT_CA_FILE:
        context.load_verify_locations(settings.HL7_TLS_CLIENT_CA_FILE)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
