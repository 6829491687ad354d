"""Signing keys for access tokens: ES256 keys kept as private JWK files outside the repository.

The newest key signs; every key still in the directory verifies and is published in the JWKS, so rotating
(`hub keys rotate`) never invalidates a token that has not expired. `hub keys prune` removes keys that have not
signed anything for longer than the longest token lifetime. Processes that find a token signed by a key they
do not know re-read the directory once, so a rotation done by the CLI reaches running servers without restart.
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

ALGORITHM = "ES256"
_RELOAD_INTERVAL = 5.0  # seconds between re-reads of the directory prompted by unknown kids
_VERIFIED_MAX = 4096  # tokens whose signature this process remembers having checked


@dataclass(frozen=True)
class StoredKey:
    kid: str
    created_at: float
    key: ECKey


def _generate(created_at: float) -> dict[str, object]:
    key = ECKey.generate_key("P-256", private=True)
    kid = key.thumbprint()
    data = key.as_dict(private=True)
    data.update(kid=kid, alg=ALGORITHM, use="sig")
    return {"created_at": created_at, "jwk": data}


class KeyStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._keys: list[StoredKey] = []
        self._public = KeySet([])
        self._last_reload = 0.0
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.load(create_if_empty=True)

    def load(self, *, create_if_empty: bool = False) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        keys = [self._read(path) for path in sorted(self.directory.glob("*.jwk.json"))]
        if not keys and create_if_empty:
            keys = [self._write(_generate(time.time()))]
        keys.sort(key=lambda k: k.created_at)
        self._keys = keys
        self._public = KeySet.import_key_set({"keys": [k.key.as_dict(private=False) for k in keys]})
        self._last_reload = time.monotonic()
        self._verified.clear()  # a removed key must stop verifying the tokens it signed

    def _read(self, path: Path) -> StoredKey:
        doc = json.loads(path.read_text())
        key = ECKey.import_key(doc["jwk"])
        return StoredKey(kid=doc["jwk"]["kid"], created_at=float(doc["created_at"]), key=key)

    def _write(self, doc: dict[str, object]) -> StoredKey:
        jwk = doc["jwk"]
        assert isinstance(jwk, dict)
        path = self.directory / f"{int(float(str(doc['created_at'])))}-{jwk['kid'][:16]}.jwk.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(doc, handle)
        return self._read(path)

    @property
    def signing_key(self) -> StoredKey:
        return self._keys[-1]

    @property
    def public_keys(self) -> KeySet:
        return self._public

    def jwks(self) -> dict[str, Any]:
        return dict(self._public.as_dict(private=False))

    def knows(self, kid: str) -> bool:
        if any(k.kid == kid for k in self._keys):
            return True
        if time.monotonic() - self._last_reload > _RELOAD_INTERVAL:
            self.load()
            return any(k.kid == kid for k in self._keys)
        return False

    def verified_claims(self, raw: str) -> dict[str, Any]:
        """The claims of a compact JWS whose signature one of these keys verifies; raises joserfc's JoseError.

        Checking an ES256 signature costs more than the rest of a request's authentication, and a partner sends
        the same token for minutes, so each token is checked once per process. The cache is keyed by the whole
        token, signature included; the claims are validated (expiry, audience, ...) by the caller on every use.
        Callers must not modify the returned dict.
        """
        claims = self._verified.get(raw)
        if claims is not None:
            self._verified.move_to_end(raw)
            return claims
        claims = jwt.decode(raw, self._public, algorithms=[ALGORITHM]).claims
        self._verified[raw] = claims
        if len(self._verified) > _VERIFIED_MAX:
            self._verified.popitem(last=False)
        return claims

    def rotate(self) -> StoredKey:
        newest = self._write(_generate(max(time.time(), self.signing_key.created_at + 1)))
        self.load()
        return newest

    def prune(self, older_than_seconds: float) -> list[str]:
        """Remove keys retired (superseded) more than `older_than_seconds` ago; the signing key always stays."""
        removed = []
        now = time.time()
        for older, newer in zip(self._keys, self._keys[1:], strict=False):
            if now - newer.created_at > older_than_seconds:
                for path in self.directory.glob(f"*-{older.kid[:16]}.jwk.json"):
                    path.unlink()
                removed.append(older.kid)
        self.load()
        return removed
