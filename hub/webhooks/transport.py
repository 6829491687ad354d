"""Calling a partner's URL without letting it call into the hub's own network (SSRF).

The host is resolved when a connection is made, every address it resolves to is checked, and the connection goes
to a checked address: the resolver that checks is the connector's only resolver, with no DNS cache, so no second
lookup can rebind it (the URL's host stays in `Host` and TLS SNI). A literal address is checked before the
request. No redirects are followed; connecting may take 5 s and the whole exchange 15 s; at most 64 KiB of the
answer is read.

aiohttp, not httpx: posting to a local receiver at 16 in flight, httpx 0.28 managed ~740 requests/s and aiohttp
~9,900 on this machine (bench/webhooks.py has the figures); httpx's connection pool scans every connection for
every request (encode/httpx#3215).
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 15.0
MAX_RESPONSE = 64 * 1024

# Never a receiver: loopback, private, shared (CGNAT), link-local (cloud metadata), documentation, benchmarking,
# multicast and reserved ranges, in IPv4 and IPv6. IPv4-mapped and NAT64 IPv6 addresses are checked as the
# IPv4 address they carry. Written out, not left to `ipaddress.is_global`, so the list is reviewable and tested.
FORBIDDEN = tuple(
    ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
        "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
        "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "2002::/16",
        "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    )
)  # fmt: skip
# What HUB_WEBHOOK_ALLOW_PRIVATE lets through (development and tests): loopback and private networks only; the
# metadata and link-local ranges stay closed.
PRIVATE = tuple(ip_network(n) for n in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128"))


def forbidden(address: IPv4Address | IPv6Address, allow_private: bool = False) -> bool:
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in ip_network("64:ff9b::/96"):  # NAT64: the IPv4 address in the last 32 bits
            address = IPv4Address(int(address) & 0xFFFFFFFF)
    if allow_private and any(address in net for net in PRIVATE):
        return False
    return any(address in net for net in FORBIDDEN if net.version == address.version)


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (refused, timed out, forbidden address, ...)
    error: str | None
    retry_after: float | None
    duration_ms: int


class ForbiddenAddress(OSError):
    pass


class CheckedResolver(AbstractResolver):
    """The default resolver's answers, refused whole if any address is forbidden."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self.allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        infos = await self._inner.resolve(host, port, family)
        for info in infos:
            address = ip_address(str(info["host"]).split("%")[0])
            if forbidden(address, self.allow_private):
                raise ForbiddenAddress(f"{host} resolves to a forbidden address ({address})")
        if not infos:
            raise ForbiddenAddress(f"{host} has no address")
        return list(infos)

    async def close(self) -> None:
        await self._inner.close()


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the schedule decides


def _literal(host: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


async def post(
    client: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes, *, allow_private: bool
) -> Answer:
    started = time.monotonic()

    def answer(status: int | None, error: str | None, retry_after: float | None = None) -> Answer:
        return Answer(status, error, retry_after, int((time.monotonic() - started) * 1000))

    host = urlsplit(url).hostname or ""
    literal = _literal(host)
    if literal is not None and forbidden(literal, allow_private):  # no resolver runs for a literal address
        return answer(None, f"{host} is a forbidden address")
    try:
        async with (
            asyncio.timeout(TOTAL_TIMEOUT),
            client.post(
                url, data=body, headers={**headers, "Content-Type": "application/json"}, allow_redirects=False
            ) as response,
        ):
            await response.content.read(MAX_RESPONSE)
            status = response.status
            retry_header = response.headers.get("Retry-After")
    except TimeoutError:
        return answer(None, f"no answer within {TOTAL_TIMEOUT:.0f} s")
    except aiohttp.ClientConnectorError as exc:
        cause = exc.os_error
        if isinstance(cause, ForbiddenAddress):
            return answer(None, str(cause))
        return answer(None, f"could not connect: {cause}"[:300])
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return answer(None, f"{type(exc).__name__}: {exc}"[:300])
    retry_after = _retry_after(retry_header) if status in (429, 503) else None
    return answer(status, None if 200 <= status < 300 else f"HTTP {status}", retry_after)


def new_client(allow_private: bool = False) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        resolver=CheckedResolver(allow_private),
        use_dns_cache=False,  # every new connection is resolved, and so checked, anew
        limit=512,
        limit_per_host=64,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT),
        auto_decompress=False,
        trust_env=False,  # no proxy from the environment: the checked address is the one connected to
    )
