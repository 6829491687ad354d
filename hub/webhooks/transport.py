"""Calling a partner's URL without letting it call into the hub's own network (SSRF).

The host is resolved when the delivery is sent, every address it resolves to is checked, and the connection goes
to a checked address (the URL's host is kept for `Host` and TLS SNI), so a second lookup cannot rebind it. No
redirects are followed; connecting may take 5 s and the whole exchange 15 s; at most 64 KiB of the answer is read.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from urllib.parse import urlsplit

import httpx

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


async def _resolve(host: str, port: int) -> list[IPv4Address | IPv6Address]:
    try:
        literal = ip_address(host)
    except ValueError:
        pass
    else:
        return [literal]
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), CONNECT_TIMEOUT)
    return list(dict.fromkeys(ip_address(str(info[4][0]).split("%")[0]) for info in infos))


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the schedule decides


async def post(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes, *, allow_private: bool
) -> Answer:
    started = time.monotonic()

    def answer(status: int | None, error: str | None, retry_after: float | None = None) -> Answer:
        return Answer(status, error, retry_after, int((time.monotonic() - started) * 1000))

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await _resolve(host, port)
    except (OSError, TimeoutError, UnicodeError) as exc:
        return answer(None, f"could not resolve {host}: {type(exc).__name__}")
    if not addresses:
        return answer(None, f"{host} has no address")
    refused = [a for a in addresses if forbidden(a, allow_private)]
    if refused:
        return answer(None, f"{host} resolves to a forbidden address ({refused[0]})")
    address = addresses[0]
    target = f"[{address}]" if address.version == 6 else str(address)
    pinned = parts._replace(netloc=f"{target}:{port}").geturl()
    request = client.build_request(
        "POST",
        pinned,
        content=body,
        headers={**headers, "Host": parts.netloc.rsplit("@", 1)[-1], "Content-Type": "application/json"},
        extensions={"sni_hostname": host} if parts.scheme == "https" else {},
    )
    try:
        async with asyncio.timeout(TOTAL_TIMEOUT):
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= MAX_RESPONSE:
                        break
            finally:
                await response.aclose()
    except TimeoutError:
        return answer(None, f"no answer within {TOTAL_TIMEOUT:.0f} s")
    except httpx.HTTPError as exc:
        return answer(None, f"{type(exc).__name__}: {str(exc)[:200]}" if str(exc) else type(exc).__name__)
    retry_after = _retry_after(response.headers.get("retry-after")) if response.status_code in (429, 503) else None
    error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    return answer(response.status_code, error, retry_after)


def new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        follow_redirects=False,
        timeout=httpx.Timeout(TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT),
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=128),
        trust_env=False,  # no proxy from the environment: the checked address is the one connected to
    )
