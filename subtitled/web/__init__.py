"""The daemon's HTTP side: one ASGI app on one server, for /health and /metrics and for the
webhooks of the media stack, each one more way into the job store."""
