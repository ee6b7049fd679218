"""``streamer serve``: the pipeline as a service with a stream API, health checks and
Prometheus metrics (FastAPI + uvicorn, prometheus-client)."""

from streamer.service.core import STREAM_ID, Service, StreamView
from streamer.service.http import HttpServer, create_app

__all__ = ["STREAM_ID", "HttpServer", "Service", "StreamView", "create_app"]
