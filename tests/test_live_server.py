"""Outside in: a real hub process on 127.0.0.1, set up with the CLI, used with an off-the-shelf OAuth 2 client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client

from tests.conftest import ENROLL, ROOT, enrolment, live_server, new_phone


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_hub(database_url: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HUB_DATABASE_URL": database_url, "HUB_KEYS_DIR": str(tmp_path / "keys"), "HUB_ISSUER": base}
    run = lambda *a: subprocess.run(  # noqa: E731, S603
        [sys.executable, "-m", "hub.cli", *a], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    partner = json.loads(run("partner", "create", "--name", f"Live {port}", "--kind", "insurer", "--json").stdout)
    client = json.loads(
        run("client", "create", "--partner", partner["id"], "--scopes", "member:read member:enroll", "--json").stdout
    )
    with live_server({"HUB_DATABASE_URL": database_url, "HUB_KEYS_DIR": str(tmp_path / "keys")}, port) as served:
        yield served, client


async def test_off_the_shelf_oauth_client_through_discovery(live_hub: tuple[str, dict[str, Any]]) -> None:
    base, client = live_hub
    async with httpx.AsyncClient() as plain:
        meta = (await plain.get(f"{base}/.well-known/oauth-authorization-server")).json()
    assert meta["issuer"] == base
    async with AsyncOAuth2Client(
        client["client_id"], client["client_secret"], scope="member:read member:enroll"
    ) as oauth:
        token = await oauth.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
        assert token["scope"] == "member:enroll member:read"
        enrolled = await oauth.post(
            f"{base}/graphql", json={"query": ENROLL, "variables": enrolment("L-1", new_phone())}
        )
        member_id = enrolled.json()["data"]["enrollMember"]["member"]["id"]
        found = await oauth.post(
            f"{base}/graphql",
            json={"query": "query($id: ID!) { member(id: $id) { id name } }", "variables": {"id": member_id}},
        )
        assert found.json()["data"] == {"member": {"id": member_id, "name": "王芳"}}
        revoked = await oauth.post(
            meta["revocation_endpoint"],
            data={"token": token["access_token"]},
            auth=(client["client_id"], client["client_secret"]),
        )
        assert revoked.status_code == 200
        after = await oauth.post(f"{base}/graphql", json={"query": "{ viewer { scopes } }"})
        assert after.status_code == 401
