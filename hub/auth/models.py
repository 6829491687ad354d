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
    # Set for member-delegated tokens (authorization code and refresh grants): whose data, under which consent,
    # and which grant (authorization code) produced it, so that a replayed code can revoke what it produced.
    Column("member_id", BigId, ForeignKey("member.id"), nullable=True, index=True),
    Column("consent_id", BigId, ForeignKey("consent.id"), nullable=True),
    Column("grant_id", String(64), nullable=True, index=True),
)

# Authorization codes (RFC 6749 §4.1), stored by hash, single-use, 60 s, bound to client, redirect URI and the
# PKCE challenge. A used code keeps its row (used_at) so that a replay can be recognised and punished.
authorization_code = Table(
    "authorization_code",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_pk", BigId, ForeignKey("oauth_client.id"), nullable=False),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False),
    Column("consent_id", BigId, ForeignKey("consent.id"), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("code_challenge_method", String(10), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
    Column("used_at", UtcDateTime, nullable=True),
)

# Refresh tokens: opaque, stored by hash, rotated on every use (the old one is revoked when the new one is issued).
refresh_token = Table(
    "refresh_token",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("client_pk", BigId, ForeignKey("oauth_client.id"), nullable=False),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False, index=True),
    Column("consent_id", BigId, ForeignKey("consent.id"), nullable=False, index=True),
    Column("grant_id", String(64), nullable=False, index=True),
    Column("scope", Text, nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
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
