"""What the log line of the request being served should say, filled in as the request goes (the GraphQL endpoint
adds the client and the operation). A context variable: every log record made during the request carries its id."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class RequestInfo:
    request_id: str
    client_id: str | None = None
    operation: str | None = None


current: ContextVar[RequestInfo | None] = ContextVar("hub_request", default=None)


def note(*, client_id: str | None = None, operation: str | None = None) -> None:
    found = current.get()
    if found is None:
        return
    if client_id is not None:
        found.client_id = client_id
    if operation is not None:
        found.operation = operation
