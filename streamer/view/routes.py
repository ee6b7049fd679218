"""The live view's HTTP side: the page at ``/``, WebRTC sessions (WHEP's shape: the offer
in one POST, the answer in its response, ``DELETE`` on the session's URL to hang up), and
the fallbacks for tools that do not speak WebRTC: a JPEG snapshot and multipart MJPEG.

The media endpoints accept the token as ``?token=`` too, as ``<img>`` tags, VLC and Home
Assistant cannot send a header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from streamer.errors import ConfigError
from streamer.view.feed import ViewHub, jpeg
from streamer.view.webrtc import Peers

__all__ = ["view_routes"]

_STATIC = {"index.html": "text/html; charset=utf-8", "view.js": "text/javascript; charset=utf-8",
           "view.css": "text/css; charset=utf-8"}
_BOUNDARY = "streamerframe"


def _static(name: str) -> bytes:
    return resources.files("streamer.view").joinpath("static", name).read_bytes()


def view_routes(hub: ViewHub, peers: Peers, known: Callable[[str], bool], check: Callable[..., None]) -> APIRouter:
    """The view's routes; ``known(sid)``: whether a stream of that id is in the set;
    ``check(request, media=False)``: the service's token check (raises when it fails)."""
    router = APIRouter()
    router.include_router(_page_routes())
    router.include_router(_media_routes(hub, peers, known, check))
    return router


def _unknown(sid: str) -> JSONResponse:
    return JSONResponse({"error": f"no stream {sid[:80]!r}; GET /api/streams lists them"}, status_code=404)


def _page_routes() -> APIRouter:
    """The page and its files: open, as they hold no data (every figure comes from the API)."""
    router = APIRouter()

    @router.get("/")
    def page() -> Response:
        return Response(_static("index.html"), media_type=_STATIC["index.html"])

    @router.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @router.get("/view/{name}")
    def asset(name: str) -> Response:
        if name not in _STATIC:
            return Response(status_code=404)
        return Response(_static(name), media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})

    return router


def _media_routes(hub: ViewHub, peers: Peers, known: Callable[[str], bool], check: Callable[..., None]) -> APIRouter:
    router = APIRouter()

    @router.get("/api/view")
    def settings(request: Request) -> Any:
        check(request)
        c = hub.config
        return {"max_width": c.max_width, "fps": c.fps,
                "ice_servers": [s.model_dump(exclude_none=True) for s in c.ice_servers]}

    @router.post("/api/streams/{sid}/webrtc")
    async def offer(sid: str, request: Request) -> Response:
        check(request)
        if not known(sid):
            return _unknown(sid)
        sdp = _offer_sdp(await request.body(), request.headers.get("content-type", ""))
        if not known(sid):  # deleted while the body came
            return _unknown(sid)
        answer, session = await peers.answer(hub.feed(sid), sdp)
        return Response(answer, status_code=201, media_type="application/sdp",
                        headers={"Location": f"/api/streams/{sid}/webrtc/{session}"})

    @router.delete("/api/streams/{sid}/webrtc/{session}")
    async def hang_up(sid: str, session: str, request: Request) -> Response:
        check(request)
        if not await peers.close(session):
            return JSONResponse({"error": f"no viewer session {session[:40]!r}"}, status_code=404)
        return Response(status_code=200)

    @router.get("/api/streams/{sid}/snapshot.jpg")
    def snapshot(sid: str, request: Request) -> Response:
        check(request, media=True)
        if not known(sid):
            return _unknown(sid)
        image, state = hub.feed(sid).snapshot()  # a stream with no frame yet: a still saying so
        return Response(jpeg(image, hub.config.jpeg_quality), media_type="image/jpeg",
                        headers={"X-Stream-State": state, "Cache-Control": "no-store"})

    @router.get("/api/streams/{sid}/mjpeg")
    async def mjpeg(sid: str, request: Request) -> Response:
        check(request, media=True)
        if not known(sid):
            return _unknown(sid)
        return StreamingResponse(_mjpeg(hub, sid, request, known), headers={"Cache-Control": "no-store"},
                                 media_type=f"multipart/x-mixed-replace; boundary={_BOUNDARY}")

    return router


def _offer_sdp(body: bytes, content_type: str) -> str:
    """The offer, as ``application/sdp`` (WHEP) or as the JSON of an RTCSessionDescription."""
    text = body.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            data = json.loads(text)
        except ValueError:
            raise ConfigError("body: not JSON; send the offer as application/sdp or {\"type\": \"offer\", "
                              "\"sdp\": ...}") from None
        if not isinstance(data, dict) or data.get("type", "offer") != "offer" or not isinstance(data.get("sdp"), str):
            raise ConfigError("body: expected {\"type\": \"offer\", \"sdp\": \"v=0...\"}")
        text = data["sdp"]
    if not text.startswith("v=0"):
        raise ConfigError("body: not an SDP offer (it starts with v=0); send the browser's offer")
    return text


async def _mjpeg(hub: ViewHub, sid: str, request: Request, known: Callable[[str], bool]) -> AsyncIterator[bytes]:
    """Multipart JPEG parts as the feed encodes them, the latest only: a slow client skips
    pictures, it never queues them."""
    loop = asyncio.get_running_loop()
    latest: list[bytes] = []
    ready = asyncio.Event()

    def arrived(data: bytes) -> None:
        latest[:] = [data]
        ready.set()

    def from_thread(data: bytes) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(arrived, data)

    if not known(sid):  # deleted since the request was answered
        return
    feed = hub.feed(sid)
    sub = feed.subscribe("jpeg", from_thread)
    try:
        while not hub.closed and not await request.is_disconnected():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), timeout=1.0)
            if not latest:
                continue
            ready.clear()
            data = latest.pop()
            yield (f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                   + data + b"\r\n")
    finally:
        feed.unsubscribe(sub)
