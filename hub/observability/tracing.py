"""OpenTelemetry traces, when the usual variables ask for them (OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_TRACES_EXPORTER=otlp; OTEL_SERVICE_NAME names the service, "hub" by
default): a span per request (the ASGI instrumentation), per GraphQL operation and resolver (strawberry's
extension) and per SQL statement (the SQLAlchemy instrumentation), exported over OTLP/HTTP. The packages are the
`otel` extra; without them, or without the variables, nothing is traced and nothing costs anything."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.db import Database

log = logging.getLogger("hub.tracing")
_configured = False


def wanted() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").lower()
    if exporter == "none":
        return False
    return bool(
        exporter == "otlp"
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def setup(db: Database) -> bool:
    """Install the tracer provider (once a process) and instrument this database's engines; True if tracing."""
    global _configured
    if not wanted():
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_* is set but OpenTelemetry is not installed: pip install 'hub[otel]'; not tracing")
        return False
    if not _configured:
        provider = TracerProvider(
            resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "hub")})
        )
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _configured = True
    # One call for every engine (the instrumentor instruments once a process). Its declared range stops before
    # SQLAlchemy 2.1, whose engine events it uses are unchanged: checked by tests/test_observability.py.
    SQLAlchemyInstrumentor().instrument(engines=[e.sync_engine for e in db.engines], skip_dep_check=True)
    return True


def asgi(app: Any) -> Any:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app, excluded_urls="healthz,readyz,metrics")


def schema_extension() -> Any:
    from strawberry.extensions.tracing import OpenTelemetryExtension

    return OpenTelemetryExtension


def flush() -> None:
    if _configured:
        from opentelemetry import trace

        provider: Any = trace.get_tracer_provider()
        provider.force_flush()
