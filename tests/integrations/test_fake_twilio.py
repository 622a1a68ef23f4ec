"""The fake provider the delivery tests count on must behave like the real one where exactly-once
depends on it: a request cut off mid-body (a worker SIGKILLed between urllib3's header and body
writes) is never a message, and a form without To or Body is refused. Before this held, the batch
SIGKILL test once counted 61 recipients for 60 messages: the 61st was the empty To of a cut request."""

from __future__ import annotations

import socket

import requests

from tests.integrations.fake_twilio import FakeTwilio

PATH = "/2010-04-01/Accounts/AC123/Messages.json"


def test_a_request_cut_off_before_its_body_is_not_accepted() -> None:
    with FakeTwilio() as fake:
        host, port = fake.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as client:
            client.sendall(
                f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                "Content-Length: 60\r\n\r\nTo=%2B1312".encode()
            )
            client.shutdown(socket.SHUT_WR)  # the sender dies: the rest of the body never comes
            client.settimeout(5)
            assert client.recv(1024) == b""  # closed without an answer
        # The fake answers the next request after the cut one, so the cut one was handled by now.
        ok = requests.post(fake.url + PATH, data={"To": "+13125550100", "Body": "hi"}, auth=("AC123", "x"), timeout=5)
        assert ok.status_code == 201
        assert [m.to for m in fake.accepted] == ["+13125550100"]


def test_a_form_without_to_or_body_is_refused_like_twilio_does() -> None:
    with FakeTwilio() as fake:
        no_to = requests.post(fake.url + PATH, data={"Body": "hi"}, auth=("AC123", "x"), timeout=5)
        no_body = requests.post(fake.url + PATH, data={"To": "+13125550100"}, auth=("AC123", "x"), timeout=5)
        assert (no_to.status_code, no_to.json()["code"]) == (400, 21604)
        assert (no_body.status_code, no_body.json()["code"]) == (400, 21602)
        assert fake.accepted == []
