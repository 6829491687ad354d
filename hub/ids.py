"""Public identifiers: a short prefix that says what the thing is, then 128 random bits.

The prefix lets people (and secret scanners) tell a client id from a member id at a glance; the random part makes
identifiers unguessable, so knowing one says nothing about any other.
"""

from __future__ import annotations

import base64
import hashlib
import secrets


def new_id(prefix: str, nbytes: int = 16) -> str:
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def new_ids(prefix: str, count: int, nbytes: int = 16) -> list[str]:
    """`count` ids like `new_id`, from one read of the system's randomness (bulk imports make millions)."""
    pool = secrets.token_bytes(nbytes * count)
    return [
        f"{prefix}_{base64.urlsafe_b64encode(pool[i : i + nbytes]).rstrip(b'=').decode()}"
        for i in range(0, nbytes * count, nbytes)
    ]


def secret_hash(secret: str) -> str:
    """Hash of a high-entropy secret (client secrets, refresh tokens).

    These secrets carry 256 random bits, so a fast hash is enough: slow password hashes exist for low-entropy
    human passwords and would only add latency to every token request.
    """
    return hashlib.sha256(secret.encode()).hexdigest()
