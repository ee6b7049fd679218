"""WebRTC viewers with aiortc: one request per viewer (WHEP's shape), H.264 encoded once
per stream by its :class:`~streamer.view.feed.Feed` and handed to every viewer's sender
as packets (aiortc packetizes them; it encodes nothing itself).

Everything here runs on the HTTP server's event loop; the feed's renderer thread hands
packets over with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from typing import Any

import av
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from streamer.errors import ConfigError, StreamerError
from streamer.view.feed import Feed

log = logging.getLogger(__name__)
# aioice logs every candidate check at INFO: a service's log is for what its operator acts on
logging.getLogger("aioice").setLevel(logging.WARNING)
logging.getLogger("aiortc").setLevel(logging.WARNING)

__all__ = ["Peers", "PacketTrack"]

_QUEUE = 30  # packets a viewer may be behind (2 s at 15 fps) before it skips to the next keyframe


class PacketTrack(MediaStreamTrack):
    """A viewer's video track: the feed's H.264 packets, freshest first.

    A viewer whose sender falls ``_QUEUE`` packets behind drops what it holds and waits
    for the next keyframe (asking the feed for one), so it can only lose picture, never
    build latency or hold anything up."""

    kind = "video"

    def __init__(self, feed: Feed, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.feed = feed
        self._loop = loop
        self._queue: deque[av.Packet] = deque()
        self._ready = asyncio.Event()
        self._waiting_key = True  # a decoder starts at a keyframe
        self.skipped = 0  # packets dropped because this viewer fell behind
        self._sub = feed.subscribe("h264", self._from_thread)

    def _from_thread(self, packet: av.Packet) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is stopping
            self._loop.call_soon_threadsafe(self._arrived, packet)

    def _arrived(self, packet: av.Packet) -> None:
        if self.readyState != "live":
            return
        if len(self._queue) >= _QUEUE:
            self.skipped += len(self._queue)
            self._queue.clear()
            self._waiting_key = True
            self.feed.request_keyframe()
        if self._waiting_key and not packet.is_keyframe:
            self.skipped += 1
            return
        self._waiting_key = False
        self._queue.append(packet)
        self._ready.set()

    async def recv(self) -> av.Packet:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def stop(self) -> None:
        self.feed.unsubscribe(self._sub)
        super().stop()
        self._ready.set()


class Peers:
    """The open peer connections, by session id; each is closed and forgotten when its
    connection fails or closes (a tab closed, a network gone), or on ``DELETE``.

    Args:
        ice_servers: ``view.ice_servers`` (STUN/TURN, for viewers behind NATs).
        max_per_stream: Viewers of one stream at most (``view.max_viewers``).
        max_peers: Viewers in all at most.
        connect_timeout: Seconds a new session may take to connect before it is closed.
    """

    def __init__(self, ice_servers: list[Any], max_per_stream: int = 16, max_peers: int = 64,
                 connect_timeout: float = 30.0) -> None:
        self._ice = [RTCIceServer(urls=s.urls, username=s.username, credential=s.credential) for s in ice_servers]
        self.open: dict[str, tuple[str, RTCPeerConnection, PacketTrack]] = {}
        self.max_per_stream, self.max_peers, self.connect_timeout = max_per_stream, max_peers, connect_timeout
        self.closed = 0
        self._tasks: set[asyncio.Future] = set()

    async def answer(self, feed: Feed, offer_sdp: str) -> tuple[str, str]:
        """The SDP answer to a viewer's offer, and the session's id. Raises ConfigError
        for an offer that cannot be answered, StreamerError when there are too many viewers."""
        if "m=video" not in offer_sdp:
            raise ConfigError("offer: no video in the SDP offer; add a recvonly video transceiver")
        if len(self.open) >= self.max_peers or self.count(feed.sid) >= self.max_per_stream:
            raise StreamerError(f"too many viewers ({len(self.open)} in all, {self.count(feed.sid)} of "
                                f"{feed.sid}); view.max_viewers is {self.max_per_stream} a stream")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice))
        track: PacketTrack | None = None
        try:
            transceiver = pc.addTransceiver("video", direction="sendonly")
            h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() == "video/h264"]
            transceiver.setCodecPreferences(h264)  # the packets are H.264: nothing else may be negotiated
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            # No end-of-candidates is signalled: browsers hide their host addresses behind mDNS
            # names aioice cannot resolve, and the pair that works is then found from the browser's
            # own checks (peer reflexive); a session that never connects is closed by the deadline.
            await pc.setLocalDescription(await pc.createAnswer())
            track = PacketTrack(feed, asyncio.get_running_loop())  # subscribed once the answer exists
            transceiver.sender.replaceTrack(track)
        except BaseException as exc:
            if track is not None:
                track.stop()
            await pc.close()
            if not isinstance(exc, Exception):
                raise
            if "codec" in str(exc).lower() or "send parameters" in str(exc):
                raise ConfigError("offer: the browser offers no H.264 video (this view sends H.264); "
                                  "use the MJPEG view (/api/streams/ID/mjpeg) instead") from None
            raise ConfigError(f"offer: not a usable SDP offer ({exc})") from None
        session = uuid.uuid4().hex
        self.open[session] = (feed.sid, pc, track)

        @pc.on("connectionstatechange")
        async def _changed() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close(session)

        async def _deadline() -> None:  # a viewer that never connects (a tab closed mid-offer) goes too
            await asyncio.sleep(self.connect_timeout)
            if pc.connectionState != "connected":
                await self.close(session)

        self._tasks.add(task := asyncio.ensure_future(_deadline()))
        task.add_done_callback(self._tasks.discard)
        return pc.localDescription.sdp, session

    async def close(self, session: str) -> bool:
        """Closes one viewer's connection; False when there is no such session."""
        held = self.open.pop(session, None)
        if held is None:
            return False
        _, pc, track = held
        track.stop()
        await pc.close()
        self.closed += 1
        return True

    async def close_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(self.close(session) for session in list(self.open)), return_exceptions=True)

    def count(self, sid: str | None = None) -> int:
        return sum(1 for s, _, _ in list(self.open.values()) if sid is None or s == sid)
