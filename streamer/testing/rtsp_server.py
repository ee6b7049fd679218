"""A real RTSP server for tests and benchmarks: GStreamer's gst-rtsp-server serving looping clips.

Run with Debian's ``/usr/bin/python3`` (``python3-gi``, ``gir1.2-gst-rtsp-server-1.0``,
``gstreamer1.0-plugins-{base,good,ugly}``, which ``.ci/run`` installs)::

    /usr/bin/python3 streamer/testing/rtsp_server.py --port 8554 --size 320x240 --fps 30 \
        /cam1=clip1.rgb /cam2=clip2.rgb

Each ``MOUNT=FILE`` serves a raw RGB clip (frames of WIDTHxHEIGHTx3 bytes, back to back)
as H.264 over RTP, looped for ever at ``--fps`` in real time, one pipeline per client.
Frame ``n`` of the loop carries pts ``n / fps``. Prints ``ready`` when it listens.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


class LoopingClip(GstRtspServer.RTSPMediaFactory):
    def __init__(self, path: str, width: int, height: int, fps: int) -> None:
        super().__init__()
        with open(path, "rb") as f:
            data = f.read()
        size = width * height * 3
        if not data or len(data) % size:
            raise SystemExit(f"{path}: not a whole number of {width}x{height} RGB frames")
        self.frames = [data[i:i + size] for i in range(0, len(data), size)]
        self.fps = fps
        self.launch = (
            f"( appsrc name=src is-live=true format=time do-timestamp=false "
            f"caps=video/x-raw,format=RGB,width={width},height={height},framerate={fps}/1 "
            f"! videoconvert ! video/x-raw,format=I420 "
            f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bframes=0 "
            f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        self.set_launch(self.launch)
        self.connect("media-configure", self._configure)

    def _configure(self, factory, media) -> None:
        src = media.get_element().get_by_name_recurse_up("src")
        state = {"n": 0}
        duration = Gst.SECOND // self.fps

        def need_data(appsrc, _length) -> None:
            n = state["n"]
            buf = Gst.Buffer.new_wrapped(self.frames[n % len(self.frames)])
            buf.pts = n * duration
            buf.duration = duration
            state["n"] = n + 1
            appsrc.emit("push-buffer", buf)

        src.connect("need-data", need_data)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--size", required=True, help="WIDTHxHEIGHT")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("mounts", nargs="+", help="MOUNT=FILE.rgb")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for item in args.mounts:
        mount, path = item.split("=", 1)
        mounts.add_factory(mount, LoopingClip(path, width, height, args.fps))
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{args.port}")
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("ready", flush=True)
    loop.run()
    sys.exit(0)


if __name__ == "__main__":
    main()
