"""Driving the real listener over loopback TCP from a test.

`run_listener(scenario)` starts an MllpListener on 127.0.0.1 (a free port) and runs
`scenario(port)`; the listener's database work runs in the test's thread (async_to_sync and
thread-sensitive sync_to_async), so it sees and writes the test's transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync

from integrations.hl7v2.listener import END_BLOCK, MllpListener, frame


def run_listener(scenario: Callable[[int], Awaitable[Any]], **options: Any) -> Any:
    async def main() -> Any:
        listener = MllpListener(host="127.0.0.1", port=0, thread_sensitive=True, **options)
        await listener.start()
        try:
            return await scenario(listener.port)
        finally:
            await listener.close()

    return async_to_sync(main)()


async def read_frames(reader: asyncio.StreamReader, count: int, timeout: float = 10.0) -> list[str]:
    """Up to `count` ACK frames (fewer when the listener closes the connection)."""
    acks: list[str] = []
    buffer = b""
    while len(acks) < count:
        chunk = await asyncio.wait_for(reader.read(65536), timeout)
        if not chunk:
            break
        buffer += chunk
        while END_BLOCK in buffer:
            one, _, buffer = buffer.partition(END_BLOCK)
            acks.append(one.lstrip(b"\x0b").decode())
    return acks


async def exchange(port: int, *messages: str | bytes, raw: bytes = b"") -> list[str]:
    """Send each message framed (or `raw` bytes as they are) on one connection; the ACKs."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    acks: list[str] = []
    try:
        for message in messages:
            writer.write(frame(message))
            await writer.drain()
            acks += await read_frames(reader, 1)
        if raw:
            writer.write(raw)
            await writer.drain()
            acks += await read_frames(reader, 1)
    finally:
        writer.close()
    return acks


async def closed_by_listener(reader: asyncio.StreamReader, timeout: float = 10.0) -> bool:
    """True when the listener closes the connection (end of stream) before `timeout`."""
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
    except ConnectionResetError:
        return True
    return True
