"""Health: /healthz (database, Redis, channel layer, worker-queue heartbeats) and the header badge."""
