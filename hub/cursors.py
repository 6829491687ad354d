"""Opaque page cursors. A cursor wraps the public id of the last item seen, never an internal row number, so a
cursor says nothing a partner could not already see."""

from __future__ import annotations

import base64
import binascii

from hub.errors import DomainError


def encode(public_id: str) -> str:
    return base64.urlsafe_b64encode(public_id.encode()).decode()


def decode(cursor: str, prefix: str) -> str:
    """The public id inside a cursor this API returned (it must start with `prefix`), else INVALID_CURSOR."""
    try:
        public_id = base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        public_id = ""
    if not public_id.startswith(prefix):
        raise DomainError("INVALID_CURSOR", "the cursor is not one this API returned", "after")
    return public_id
