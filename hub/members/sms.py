"""Sending one-time codes. Development logs them; production posts them to the operator's SMS gateway."""

from __future__ import annotations

import logging
from typing import Protocol

import httpx

log = logging.getLogger("hub.sms")


class SmsSender(Protocol):
    async def send(self, phone: str, text: str) -> None: ...


class LogSender:
    """Development only: the message goes to the log, where the developer reads the code."""

    async def send(self, phone: str, text: str) -> None:
        log.warning("SMS to %s: %s", phone, text)


class HttpSender:
    """POSTs `{"to": phone, "text": text}` as JSON to the gateway; a non-2xx answer or a timeout is an error."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 5.0) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = httpx.Timeout(timeout, connect=2.0)

    async def send(self, phone: str, text: str) -> None:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            response = await client.post(self.url, json={"to": phone, "text": text}, headers=self.headers)
            response.raise_for_status()


class UnconfiguredSender:
    """Production without a gateway: refuse rather than write codes into logs."""

    async def send(self, phone: str, text: str) -> None:
        raise RuntimeError("no SMS gateway configured (HUB_SMS_GATEWAY_URL)")


def sender_for(gateway_url: str | None, token: str | None, development: bool) -> SmsSender:
    if gateway_url:
        return HttpSender(gateway_url, token)
    return LogSender() if development else UnconfiguredSender()
