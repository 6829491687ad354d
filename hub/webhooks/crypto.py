"""The webhook key: kept beside the signing keys (HUB_KEYS_DIR), never in the database.

It encrypts endpoint secrets at rest (Fernet: AES-128-CBC with HMAC-SHA256), and derives each partner's key for
`webhook-id`s: an HMAC of the event id under a key of the partner's own, so two partners receiving one event get
ids that cannot be matched (one shared id would let them join their members on it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

from hub.keyfile import read_or_create

KEY_FILE = "webhook.key"


class WebhookKey:
    def __init__(self, directory: Path) -> None:
        raw = read_or_create(directory, KEY_FILE, Fernet.generate_key)
        self._fernet = Fernet(raw)
        self._root = hashlib.sha256(b"hub webhook ids\x00" + raw).digest()

    def seal(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def open(self, sealed: bytes) -> str:
        return self._fernet.decrypt(sealed).decode()

    def webhook_id(self, partner_id: int, event_id: int) -> str:
        partner_key = hmac.new(self._root, f"partner:{partner_id}".encode(), hashlib.sha256).digest()
        digest = hmac.new(partner_key, f"event:{event_id}".encode(), hashlib.sha256).digest()
        return "msg_" + base64.b32encode(digest[:20]).decode().lower().rstrip("=")


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
