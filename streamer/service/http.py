"""The service's HTTP API (FastAPI, served by uvicorn on its own thread).

``/api/streams`` (list, get, PUT, DELETE, analytics), ``/healthz`` (the watchdog),
``/readyz`` and ``/metrics``. With a token, every ``/api`` call and ``/metrics`` needs
``Authorization: Bearer TOKEN``; a wrong one gets 401 and nothing else. Request bodies
are limited in size (413), source sections are checked by the same pydantic models as
the YAML (422, naming the field).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import socket
import threading
from typing import Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from streamer.errors import ConfigError, StreamerError
from streamer.service import prometheus
from streamer.service.core import Service

log = logging.getLogger(__name__)

__all__ = ["MAX_BODY", "HttpServer", "create_app"]

MAX_BODY = 256 * 1024  # bytes; a source section is well under 1 KiB


class _BodyLimit:
    """ASGI middleware: the request body is read here, up to ``limit`` bytes, before the
    app sees it; over that (declared or streamed in chunks) the answer is 413."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(self.limit)(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await _too_large(self.limit)(scope, receive, send)
                return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return await receive()  # a disconnect, when it comes
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"error": f"request body over {limit} bytes"}, status_code=413)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _unknown(sid: str) -> JSONResponse:
    return _error(404, f"no stream {sid[:80]!r}; GET /api/streams lists them")


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise ConfigError(f"body: not JSON ({exc})") from None
    except RecursionError:
        raise ConfigError("body: nested too deeply; a source section is a flat object") from None


def create_app(service: Service, token: str | None = None, max_body: int = MAX_BODY, collector: Any = None) -> Any:
    """The ASGI app of ``service`` (``collector``: what ``/metrics`` reads instead of the
    service's pipeline, e.g. a Ray cluster's controller)."""
    app = FastAPI(title="streamer", docs_url=None, redoc_url=None, openapi_url=None)
    expected = token.encode() if token else None

    def check(request: Request, media: bool = False) -> None:
        """The token as ``Authorization: Bearer``; for ``media`` (what ``<img>`` tags, VLC and
        Home Assistant fetch: they cannot send a header) also as ``?token=``."""
        if expected is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # the scheme is case-insensitive (RFC 7235); the token is compared in constant time
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
            return
        if media and hmac.compare_digest(request.query_params.get("token", "").encode(), expected):
            return
        raise _Unauthorized

    def authorized(request: Request) -> None:  # the dependency of the API's routes: the header only
        check(request)

    @app.exception_handler(_Unauthorized)
    async def _unauthorized(request: Request, exc: _Unauthorized) -> Response:
        return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ConfigError)
    async def _bad(request: Request, exc: ConfigError) -> Response:
        return _error(422, str(exc))

    @app.exception_handler(StreamerError)
    async def _failed(request: Request, exc: StreamerError) -> Response:
        return _error(503, str(exc))

    app.include_router(_stream_routes(service), dependencies=[Depends(authorized)])
    app.include_router(_probe_routes(service, Depends(authorized), collector))
    if service.hub is not None and service.peers is not None:
        from streamer.view.routes import view_routes

        app.include_router(view_routes(service.hub, service.peers, lambda sid: sid in service.desired, check))
    return _BodyLimit(app, max_body)


def _stream_routes(service: Service) -> APIRouter:
    """``/api/streams``: the desired stream set."""
    api = APIRouter(prefix="/api/streams")

    @api.get("")
    def list_streams() -> Any:
        return {"streams": [dataclasses.asdict(v) for v in service.views()]}

    @api.get("/{sid}")
    def get_stream(sid: str) -> Any:
        try:
            return dataclasses.asdict(service.view(sid))
        except KeyError:
            return _unknown(sid)

    @api.put("/{sid}")
    async def put_stream(sid: str, request: Request) -> Any:
        body = await _json_body(request)
        created = await _in_thread(service.put_stream, sid, body)
        return JSONResponse(dataclasses.asdict(service.view(sid)), status_code=201 if created else 200)

    @api.delete("/{sid}")
    def delete_stream(sid: str) -> Any:
        try:
            service.delete_stream(sid)
        except KeyError:
            return _unknown(sid)
        return {"id": sid, "deleted": True}

    @api.put("/{sid}/analytics")
    async def put_analytics(sid: str, request: Request) -> Any:
        body = await _json_body(request)
        try:
            analytics = await _in_thread(service.set_analytics, sid, body)
        except KeyError:
            return _unknown(sid)
        return analytics.model_dump()

    return api


def _probe_routes(service: Service, authorized: Any, collector: Any = None) -> APIRouter:
    """``/healthz`` and ``/readyz`` (open: they tell nothing), ``/metrics`` (behind the token)."""
    probes = APIRouter()
    registry = prometheus.registry(service, collector)

    @probes.api_route("/healthz", methods=["GET", "HEAD"])
    def healthz() -> Any:
        stuck = service.stuck()
        if stuck:
            return JSONResponse({"status": "stuck", "stuck_seconds": {k: round(v, 1) for k, v in stuck.items()}},
                                status_code=503)
        return {"status": "ok"}

    @probes.api_route("/readyz", methods=["GET", "HEAD"])
    def readyz() -> Any:
        ok, why = service.ready()
        return JSONResponse({"ready": ok, "reason": why}, status_code=200 if ok else 503)

    @probes.get("/metrics", dependencies=[authorized])
    def metrics() -> Any:
        return Response(prometheus.render(registry), media_type="text/plain; version=0.0.4; charset=utf-8")

    return probes


class _Unauthorized(Exception):
    pass


async def _in_thread(fn: Any, *args: Any) -> Any:
    """Runs a blocking service call off the event loop (a change waits for the old stream)."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


class HttpServer:
    """uvicorn on a socket bound here, before the model loads (so a busy port is a clear
    error at once), run on its own thread; the pipeline keeps the main thread and its
    signals."""

    def __init__(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise StreamerError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --http address") \
                from None
        self.sock.listen(128)  # connections wait in the backlog until uvicorn takes over
        self.host, self.port = host, self.sock.getsockname()[1]
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self._loop_ref: asyncio.AbstractEventLoop | None = None

    def _serve(self) -> None:
        assert self.server is not None
        asyncio.run(self._serve_on_loop())

    async def _serve_on_loop(self) -> None:
        self._loop_ref = asyncio.get_running_loop()
        assert self.server is not None
        await self.server.serve(sockets=[self.sock])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, app: Any) -> None:
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="http", daemon=True)
        self.thread.start()

    def stop(self, before: Any = None) -> None:
        """Stops serving; ``before``: a coroutine function run on the server's loop first
        (the live view's peer connections are closed there)."""
        if self.server is not None and self.thread is not None:
            loop = self._loop_ref
            if before is not None and loop is not None and loop.is_running():
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(before(), loop).result(3.0)
            self.server.should_exit = True
            self.thread.join(5.0)
        self.sock.close()
