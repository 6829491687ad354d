"""What the operator sees of a running hub: Prometheus metrics (metrics.py), one JSON log line per request and
security events at warning (logs.py, middleware.py), and OpenTelemetry traces when the usual OTEL_* variables ask
for them (tracing.py)."""
