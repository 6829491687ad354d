"""`hub keys`: the access-token signing keys (ES256) in HUB_KEYS_DIR."""

from __future__ import annotations

import typer

from hub.auth.keys import KeyStore
from hub.cli.output import JsonOption, Output

NAME = "keys"
app = typer.Typer(help="Access-token signing keys.", no_args_is_help=True)


@app.command("rotate")
def rotate(as_json: JsonOption = False) -> None:
    """Start signing with a new key; older keys keep verifying the tokens they signed."""
    out = Output(as_json)
    key = KeyStore(out.settings().keys_dir).rotate()
    out.emit({"kid": key.kid}, f"new signing key {key.kid}")


@app.command("prune")
def prune(as_json: JsonOption = False) -> None:
    """Remove keys that have not signed anything for longer than the longest token lifetime."""
    out = Output(as_json)
    settings = out.settings()
    removed = KeyStore(settings.keys_dir).prune(older_than_seconds=settings.access_token_ttl + 60)
    out.emit({"removed": list(removed)}, f"removed {len(removed)} key(s)")


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List the keys in the JWKS; the last one signs."""
    out = Output(as_json)
    keys = KeyStore(out.settings().keys_dir).jwks()["keys"]
    rows = [{"kid": k["kid"], "alg": k.get("alg", ""), "signs": i == len(keys) - 1} for i, k in enumerate(keys)]
    out.rows("keys", rows, ["kid", "alg", "signs"], "signing keys")
