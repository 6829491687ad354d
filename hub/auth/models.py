from __future__ import annotations

from sqlalchemy import Column, ForeignKey, String, Table, Text

from hub.db import BigId, UtcDateTime, metadata

# One row per access token issued. The token itself (a signed JWT) is never stored: its `jti` is enough to
# revoke it, to let a client introspect only its own tokens, and to audit who held which rights when.
access_token = Table(
    "access_token",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("client_pk", BigId, ForeignKey("oauth_client.id"), nullable=False, index=True),
    Column("scope", Text, nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
    Column("revoked_at", UtcDateTime, nullable=True),
)

# JWT ids of private_key_jwt client assertions already used: an assertion authenticates once (RFC 7523 §3).
client_assertion = Table(
    "client_assertion",
    metadata,
    Column("client_pk", BigId, ForeignKey("oauth_client.id"), primary_key=True),
    Column("jti", String(200), primary_key=True),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)
