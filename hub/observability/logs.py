"""Logging: one JSON object a line in production (python-json-logger), plain text in development.

Every record made while a request is served carries its `request_id`. What is never logged: tokens, secrets,
phone numbers, names (no request bodies, no query strings, no member data); the modules that log say so where it
matters. Expected client errors are not logged as errors (no tracebacks for a bad query or a wrong code).
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from hub.observability.context import current


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        found = current.get()
        if found is not None and not hasattr(record, "request_id"):
            record.request_id = found.request_id
        return True


def configure(*, json_lines: bool, level: str = "INFO") -> None:
    """The root logger writes to stderr: JSON lines (`json_lines`) or text. Idempotent (uvicorn's workers and the
    CLI may both call it)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RequestIdFilter())
    # The logging HOWTO's "Optimization": a record need not find its caller's frame, thread, process or task,
    # which no line of ours shows; a request's line costs about half as much without (measured).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # uvicorn's own: its errors through our handler, and no access log of its own (ours has the client and id).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
