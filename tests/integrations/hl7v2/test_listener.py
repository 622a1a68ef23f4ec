"""The MLLP listener over real loopback TCP: ACKs per frame, and every hostile input the issue
names (truncated frame, missing MSH, wrong separators, a 5 MB segment, binary noise) answered with
AR or a closed connection, never a crash, nothing written; the listener keeps serving after each."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from healthcrm.tenancy import organization_context
from integrations.hl7v2.listener import frame
from integrations.hl7v2.parsing import ack_code
from integrations.models import Hl7Message
from patients.models import Patient
from tests.integrations.hl7v2.messages import adt
from tests.integrations.hl7v2.mllp import closed_by_listener, exchange, read_frames, run_listener

pytestmark = pytest.mark.django_db


def _nothing_written(org: Any) -> bool:
    with organization_context(org):
        return not Patient.objects.exists() and not Hl7Message.objects.exists()


def test_frames_on_one_connection_get_one_ack_each_in_order(sender: Any, org_a: Any) -> None:
    async def scenario(port: int) -> list[str]:
        return await exchange(port, adt("A04", "MSG0001"), adt("A08", "MSG0002"), adt("A04", "MSG0001"))

    acks = run_listener(scenario)

    assert [ack_code(a) for a in acks] == ["AA", "AA", "AA"]
    assert ["MSA|AA|MSG0001" in acks[0], "MSA|AA|MSG0002" in acks[1]] == [True, True]
    assert acks[2] == acks[0]  # the resend: the same ACK
    with organization_context(org_a):
        assert Patient.objects.count() == 1


@pytest.mark.parametrize(
    "message",
    [
        pytest.param("PID|1||191919^^^GENHOS^MR||TESTPERSON^JAMIE||19560129|F\r", id="missing MSH"),
        pytest.param(adt("A04", "MSG0001").replace("MSH|^~\\&|", "MSHA^~\\&A", 1), id="letter as field separator"),
        pytest.param(adt("A04", "MSG0001").replace("MSH|^~\\&|", "MSH|^^^^|", 1), id="repeated encoding chars"),
        pytest.param(b"MSH|^~\\&|\x00\x01\x02\xff\xfe" + bytes(range(256)), id="binary noise inside a frame"),
        pytest.param(adt("A04", ""), id="no control id"),
    ],
)
def test_a_malformed_frame_is_refused_and_the_next_one_is_served(sender: Any, org_a: Any, message: Any) -> None:
    async def scenario(port: int) -> list[str]:
        return await exchange(port, message, adt("A04", "MSG0009"))

    refused, served = run_listener(scenario)

    assert ack_code(refused) == "AR"
    assert ack_code(served) == "AA"
    with organization_context(org_a):
        assert list(Hl7Message.objects.values_list("control_id", flat=True)) == ["MSG0009"]


def test_a_truncated_frame_is_dropped_and_the_listener_keeps_serving(sender: Any, org_a: Any) -> None:
    async def scenario(port: int) -> list[str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frame(adt("A04", "MSG0001"))[:-40])  # cut short: no end block
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        return await exchange(port, adt("A04", "MSG0002", pid_segment=None))

    (ack,) = run_listener(scenario)

    assert ack_code(ack) == "AA" and "MSG0002" in ack
    with organization_context(org_a):
        assert list(Hl7Message.objects.values_list("control_id", flat=True)) == ["MSG0002"]


def test_a_5_mb_segment_is_refused_and_the_connection_closed(sender: Any, org_a: Any) -> None:
    huge = adt("A04", "MSG0001") + "NTE|1||" + "A" * (5 * 1024 * 1024) + "\r"

    async def scenario(port: int) -> tuple[list[str], bool, list[str]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frame(huge))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        acks = await read_frames(reader, 1)
        closed = await closed_by_listener(reader)
        writer.close()
        after = await exchange(port, adt("A04", "MSG0002"))
        return acks, closed, after

    acks, closed, after = run_listener(scenario)

    assert [ack_code(a) for a in acks] == ["AR"]
    assert "larger than" in acks[0]
    assert closed
    assert ack_code(after[0]) == "AA"
    with organization_context(org_a):
        assert list(Hl7Message.objects.values_list("control_id", flat=True)) == ["MSG0002"]


def test_bytes_outside_a_frame_close_the_connection_and_write_nothing(sender: Any, org_a: Any) -> None:
    noise = bytes((i * 37 + 11) % 256 for i in range(4096)).replace(b"\x0b", b"").replace(b"\r", b"")

    async def scenario(port: int) -> tuple[bool, list[str]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(noise)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        closed = await closed_by_listener(reader)
        writer.close()
        return closed, await exchange(port, adt("A04", "MSG0003"))

    closed, after = run_listener(scenario)

    assert closed
    assert ack_code(after[0]) == "AA"
    with organization_context(org_a):
        assert list(Hl7Message.objects.values_list("control_id", flat=True)) == ["MSG0003"]


def test_an_idle_connection_is_closed(sender: Any, org_a: Any) -> None:
    async def scenario(port: int) -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        closed = await closed_by_listener(reader, timeout=5)
        writer.close()
        return closed

    assert run_listener(scenario, idle_timeout=0.2)
    assert _nothing_written(org_a)
