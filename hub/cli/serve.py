"""`hub serve`: the hub over HTTP (GraphQL, OAuth, the member portal); `--demo` migrates and seeds first."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Annotated

import typer

from hub import demo, migrate
from hub.cli.demo import print_clients
from hub.cli.output import Output, console
from hub.config import Settings
from hub.observability import logs
from hub.state import Hub


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    demo: Annotated[bool, typer.Option("--demo", help="Migrate, seed the demo coalition if empty, print it")] = False,
) -> None:
    """Serve the hub (GraphQL at /graphql, OAuth at /oauth/*)."""
    import uvicorn

    if not os.environ.get("HUB_ISSUER"):
        # Tokens name their issuer; without configuration that is the address we serve on.
        os.environ["HUB_ISSUER"] = f"http://{host}:{port}"
    if demo:
        # The demo is for a developer's machine: GraphiQL, error detail, sign-in codes in the log.
        os.environ.setdefault("HUB_ENV", "development")
    settings = Output().settings()
    if demo:
        _prepare_demo(settings)
    logs.configure(json_lines=settings.json_logs, level=settings.log_level)
    logging.getLogger("hub.serve").info("hub serving on http://%s:%s (GraphQL at /graphql)", host, port)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker counts in files of this directory and /metrics adds them up (prometheus_client's
        # multiprocess mode); emptied at every start, as its documentation asks.
        folder = Path("var/metrics").resolve()
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    uvicorn.run(
        "hub.app:serve_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=None,  # the hub's own logging (JSON lines in production), set up by serve_app in each worker
        log_level=settings.log_level.lower(),
        # X-Forwarded-* only from the proxies named in HUB_TRUSTED_PROXIES: anyone else could pick the client
        # address that the sign-in limits count (uvicorn's default trusts 127.0.0.1).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
    )


def _prepare_demo(settings: Settings) -> None:
    migrate.upgrade(settings.database_url)

    async def work(hub: Hub) -> list[demo.DemoClient] | None:
        async with hub.db.write() as conn:
            if await demo.is_seeded(conn):
                return None
            clients = await demo.seed(
                conn, now=hub.clock.now(), policy=hub.settings.points_policy, programme=hub.settings.programme
            )
        await demo.score(hub.db, hub.clock.now(), hub.settings.points_policy.zone)
        return clients

    out = Output()
    clients = out.run(work)
    if clients is not None:
        demo.save_credentials(settings.demo_credentials_file, clients)
    else:
        clients = demo.load_credentials(settings.demo_credentials_file)
    if clients:
        print_clients(clients, out)
        console.print(
            "get a token:  curl -s -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials "
            f"{settings.issuer}/oauth/token",
            soft_wrap=True,
        )
        console.print(
            f"member portal: {settings.issuer}/portal  (demo member {demo.DEMO_MEMBER_PHONE}; in development the "
            "one-time code is printed in this log)",
            soft_wrap=True,
        )
