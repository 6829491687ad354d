"""Coupon codes: 10 symbols of Crockford base32 (50 bits) and a mod-37 check symbol, shown `7K3M9-Q2XTB-N`.

A claim's code is derived from its id under the rewards key (HUB_KEYS_DIR, never the database), so the hub can
show it again to the member and the claiming partner, while the database keeps only an HMAC of it under a second
key derived from the same file, for look-ups: a copy of the database alone yields no code. The check symbol
catches every single mistyped symbol and every swap of two neighbours before any database read.

Written here rather than taken from a package: the one Crockford package on PyPI (base32-crockford) has had no
release since 2016, and the whole scheme is the two functions below.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from hub.errors import DomainError
from hub.keyfile import read_or_create

SYMBOLS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CHECK_SYMBOLS = SYMBOLS + "*~$=U"
LENGTH = 10
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
KEY_FILE = "rewards.key"


class CodeError(DomainError):
    def __init__(self, field: str = "code") -> None:
        super().__init__("INVALID_CODE", "this is not a coupon code: check it for a typing mistake", field)


def _encode(value: int) -> str:
    symbols = []
    for _ in range(LENGTH):
        value, digit = divmod(value, 32)
        symbols.append(SYMBOLS[digit])
    return "".join(reversed(symbols))


def check_symbol(body: str) -> str:
    return CHECK_SYMBOLS[_value(body) % 37]


def _value(body: str) -> int:
    value = 0
    for symbol in body:
        value = value * 32 + SYMBOLS.index(symbol)
    return value


def display(body: str) -> str:
    return f"{body[:5]}-{body[5:]}-{check_symbol(body)}"


def parse(text: str, field: str = "code") -> str:
    """The code's 10 symbols, read the way Crockford intends (any case, hyphens and spaces ignored, O as 0, I and L
    as 1), or INVALID_CODE when it is malformed or its check symbol disagrees. Touches no database."""
    cleaned = "".join(text.split()).replace("-", "").upper()
    if len(cleaned) != LENGTH + 1:
        raise CodeError(field)
    body, check = cleaned[:LENGTH].translate(_READ_AS), cleaned[LENGTH]
    if any(s not in SYMBOLS for s in body) or check not in CHECK_SYMBOLS or check_symbol(body) != check:
        raise CodeError(field)
    return body


class RewardKey:
    def __init__(self, directory: Path) -> None:
        root = read_or_create(directory, KEY_FILE, lambda: secrets.token_hex(32).encode())
        self._mint = hmac.new(root, b"hub coupon codes", hashlib.sha256).digest()
        self._lookup = hmac.new(root, b"hub coupon look-ups", hashlib.sha256).digest()

    def code_of(self, claim_public_id: str) -> str:
        """The claim's code body (50 bits of an HMAC of its id): unguessable without the key."""
        digest = hmac.new(self._mint, claim_public_id.encode(), hashlib.sha256).digest()
        return _encode(int.from_bytes(digest[:7], "big") >> 6)

    def lookup_hash(self, body: str) -> str:
        return hmac.new(self._lookup, body.encode(), hashlib.sha256).hexdigest()
