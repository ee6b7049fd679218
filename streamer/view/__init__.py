"""The live view of ``streamer serve``: each stream's annotated picture in the browser
over WebRTC (aiortc), and as MJPEG and JPEG snapshots for tools that do not speak it."""
